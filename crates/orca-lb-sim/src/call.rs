//! Calls in flight, as their clients hold them.

use crate::clock::Nanos;
use crate::route::Route;

/// A client's handle on a call: an index into [`Calls`] and the generation
/// of the slot, so a late response to a call that already timed out finds
/// nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CallRef {
    id: u32,
    generation: u32,
}

/// A call from its pick until its client learns how it ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    pub(crate) client: u32,
    /// Where it was sent.
    pub(crate) route: Route,
    /// The intended send time: latency and the deadline count from here.
    pub(crate) t0: Nanos,
    pub(crate) stream: bool,
    pub(crate) probe: bool,
    /// When this attempt was picked (later than `t0` after a hand-back).
    pub(crate) picked: Nanos,
    /// Times it was handed back and picked again.
    pub(crate) hand_backs: u32,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    call: Option<Call>,
}

/// A slab of calls whose slots are reused, so memory follows the calls in
/// flight, not the calls made.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Calls {
    pub(crate) fn insert(&mut self, call: Call) -> CallRef {
        match self.free.pop() {
            Some(id) => {
                let slot = &mut self.slots[id as usize];
                slot.generation = slot.generation.wrapping_add(1);
                slot.call = Some(call);
                CallRef {
                    id,
                    generation: slot.generation,
                }
            }
            None => {
                let id = u32::try_from(self.slots.len()).expect("fewer than 2^32 calls in flight");
                self.slots.push(Slot {
                    generation: 0,
                    call: Some(call),
                });
                CallRef { id, generation: 0 }
            }
        }
    }

    /// The call `r` refers to, if still there.
    pub(crate) fn get_mut(&mut self, r: CallRef) -> Option<&mut Call> {
        self.slots
            .get_mut(r.id as usize)
            .filter(|s| s.generation == r.generation)
            .and_then(|s| s.call.as_mut())
    }

    /// Takes the call out, if it is still there.
    pub(crate) fn remove(&mut self, r: CallRef) -> Option<Call> {
        let slot = self.slots.get_mut(r.id as usize)?;
        if slot.generation != r.generation {
            return None;
        }
        let call = slot.call.take()?;
        self.free.push(r.id);
        Some(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_handle_finds_nothing() {
        let mut calls = Calls::default();
        let call = Call {
            client: 0,
            route: Route::Backend(1),
            t0: 5,
            stream: false,
            probe: false,
            picked: 5,
            hand_backs: 0,
        };
        let a = calls.insert(call);
        assert_eq!(calls.get_mut(a).map(|c| c.t0), Some(5));
        assert!(calls.remove(a).is_some());
        assert!(calls.remove(a).is_none());
        assert!(calls.get_mut(a).is_none());
        let b = calls.insert(call);
        assert_ne!(a, b, "same slot, new generation");
        assert!(calls.remove(a).is_none());
        assert_eq!(calls.remove(b).map(|c| c.t0), Some(5));
    }
}
