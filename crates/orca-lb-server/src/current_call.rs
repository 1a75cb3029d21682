//! The call whose handler a thread is running, for
//! [`CallRecorder::of`](crate::CallRecorder::of).
//!
//! `http::Extensions` boxes every value put in it, so a recorder carried in
//! the request's extensions would cost every call an allocation. Instead the
//! layer marks the request with [`LayeredCall`], which has no size and so is
//! boxed without allocating, and keeps the call's recorder itself. While it
//! runs the wrapped service's code for that call (its `call`, each poll of
//! its response future and of its response body), the recorder is this
//! thread's current call ([`Serving`]); a handler that asks for it then gets
//! a clone.
//!
//! A handler whose code runs on another task finds no current call. With
//! [`call_recorder_in_extensions`](crate::ReportingConfig::call_recorder_in_extensions)
//! the layer puts the recorder itself in the request ([`OwnedCall`]) instead
//! of the mark, at the cost of the extension's box, and a handler finds it
//! wherever it asks.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::call_recorder::CallRecorder;

thread_local! {
    /// The recorder of the call being served on this thread, while the layer
    /// runs its handler.
    static CURRENT: Cell<Option<CallRecorder>> = const { Cell::new(None) };
}

/// Marks a request that came through a layer giving its calls a recorder,
/// to be found as the thread's current call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayeredCall;

/// The recorder of the call a request belongs to, carried in the request
/// (with `call_recorder_in_extensions`), for handlers whose code runs on
/// another task than the layer's.
#[derive(Debug, Clone)]
pub(crate) struct OwnedCall(pub(crate) CallRecorder);

/// Whether a handler has asked for its recorder where the layer was not
/// serving its call, and been told so in the log.
static MISS_LOGGED: AtomicBool = AtomicBool::new(false);

/// Makes a call's recorder the current one for as long as it lives, then
/// puts it back where it came from and restores the one before (the outer
/// call's, when one layered service calls another in-process).
#[derive(Debug)]
pub(crate) struct Serving<'a> {
    slot: &'a mut Option<CallRecorder>,
    outer: Option<CallRecorder>,
}

impl<'a> Serving<'a> {
    /// Serves the call whose recorder is in `slot`. A call without one
    /// (the recorder is off) changes nothing, so its handler finds none: its
    /// request carries no [`LayeredCall`].
    pub(crate) fn enter(slot: &'a mut Option<CallRecorder>) -> Option<Self> {
        let recorder = slot.take()?;
        let outer = CURRENT.replace(Some(recorder));
        Some(Self { slot, outer })
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        *self.slot = CURRENT.replace(self.outer.take());
    }
}

/// The recorder of the call the request carrying `extensions` belongs to,
/// if it came through a layer with recorders on: the one in the request, or
/// else the call being served on this thread.
pub(crate) fn recorder_of(extensions: &http::Extensions) -> Option<CallRecorder> {
    if extensions.get::<LayeredCall>().is_none() {
        return extensions.get::<OwnedCall>().map(|owned| owned.0.clone());
    }
    let found = CURRENT.with(|current| {
        let recorder = current.take();
        let copy = recorder.clone();
        current.set(recorder);
        copy
    });
    if found.is_none() && !MISS_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "CallRecorder::of found no call being served on this thread: the handler's code \
             runs on another task than the reporting layer's (a task it spawned, a tower \
             Buffer's worker); take the recorder in the handler and move it there, or turn on \
             ReportingConfig::call_recorder_in_extensions. Logged once"
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sampler::SystemLoad;
    use crate::tracker::LoadTracker;
    use crate::{ReportingConfig, StreamingMethods};

    fn tracker() -> Arc<LoadTracker> {
        let load = SystemLoad {
            cpu_utilization: 0.0,
            mem_utilization: 0.0,
        };
        Arc::new(LoadTracker::new(
            ReportingConfig::default(),
            StreamingMethods::default(),
            load,
            std::time::Instant::now(),
        ))
    }

    fn marked() -> http::Extensions {
        let mut extensions = http::Extensions::new();
        extensions.insert(LayeredCall);
        extensions
    }

    #[test]
    fn a_call_finds_its_recorder_only_while_it_is_served() {
        let tracker = tracker();
        let extensions = marked();
        let mut slot = Some(CallRecorder::new(&tracker));
        let mine = slot.clone().unwrap();
        assert!(recorder_of(&extensions).is_none(), "not served yet");
        {
            let _serving = Serving::enter(&mut slot).expect("a recorder");
            let found = recorder_of(&extensions).expect("served");
            assert!(found.same_call(&mine));
            assert!(
                recorder_of(&http::Extensions::new()).is_none(),
                "a request that did not come through the layer has none"
            );
        }
        assert!(recorder_of(&extensions).is_none(), "served no more");
        assert!(slot.is_some_and(|r| r.same_call(&mine)), "given back");
    }

    #[test]
    fn a_request_carrying_its_recorder_finds_it_wherever_it_is_asked() {
        let tracker = tracker();
        let mine = CallRecorder::new(&tracker);
        let mut extensions = http::Extensions::new();
        extensions.insert(OwnedCall(mine.clone()));
        let found = recorder_of(&extensions).expect("carried");
        assert!(found.same_call(&mine), "not served: the carried one");
        let mut other = Some(CallRecorder::new(&tracker));
        let _serving = Serving::enter(&mut other).expect("a recorder");
        let found = recorder_of(&extensions).expect("carried");
        assert!(
            found.same_call(&mine),
            "another call served on the thread: still the carried one"
        );
    }

    #[test]
    fn an_inner_call_served_within_an_outer_one_gives_the_outer_one_back() {
        let tracker = tracker();
        let extensions = marked();
        let mut outer = Some(CallRecorder::new(&tracker));
        let mut inner = Some(CallRecorder::new(&tracker));
        let (outer_copy, inner_copy) = (outer.clone().unwrap(), inner.clone().unwrap());
        let _outer = Serving::enter(&mut outer).expect("a recorder");
        {
            let _inner = Serving::enter(&mut inner).expect("a recorder");
            assert!(recorder_of(&extensions).unwrap().same_call(&inner_copy));
        }
        assert!(recorder_of(&extensions).unwrap().same_call(&outer_copy));
        let mut none = None;
        assert!(
            Serving::enter(&mut none).is_none(),
            "no recorder, no change"
        );
        assert!(recorder_of(&extensions).unwrap().same_call(&outer_copy));
    }
}
