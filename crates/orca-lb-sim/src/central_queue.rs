//! The central-queue oracle: every worker of every backend behind one FIFO.

use std::collections::{BTreeSet, VecDeque};

use crate::backend::{Backend, Job};
use crate::clock::Nanos;

/// One FIFO queue shared by all workers of all backends, which no
/// distributed balancer can beat.
///
/// A call takes a free worker on the fastest backend. When only slower
/// workers are free, the head of the queue waits for a faster one unless
/// the queue is long enough that its last call would finish sooner on the
/// slow worker: with `L` calls queued, faster workers completing `Λ` calls
/// a second between them and the fastest mean `m_f`, a worker of mean `m`
/// takes the head when `L / Λ + m_f > m`. This is the threshold rule that
/// is optimal for heterogeneous servers (Lin and Kumar), in its
/// expected-completion form. A backend that fails fast is never used.
#[derive(Debug)]
pub(crate) struct CentralQueue {
    queue: VecDeque<Job>,
    /// Backends with a free worker, fastest first: `(mean ns, index)`.
    free: BTreeSet<(u64, usize)>,
    /// Distinct means, ascending.
    classes: Vec<SpeedClass>,
    /// Each backend's mean service time in nanoseconds; `None` while it
    /// fails fast (it is never used then).
    mean_ns: Vec<Option<u64>>,
}

/// The workers sharing one mean service time, and what the faster ones can
/// do instead.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SpeedClass {
    /// The class's mean service time, seconds.
    mean_s: f64,
    /// Calls a second all strictly faster workers complete together.
    faster_rate: f64,
    /// The fastest mean of all, seconds (infinite for the fastest class).
    fastest_mean_s: f64,
}

impl CentralQueue {
    pub(crate) fn new(backends: &[Backend]) -> Self {
        let mut central = Self {
            queue: VecDeque::new(),
            free: BTreeSet::new(),
            classes: Vec::new(),
            mean_ns: vec![None; backends.len()],
        };
        central.rebuild(backends);
        central
    }

    /// Recomputes speeds after a scripted event.
    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        self.free.clear();
        let mut means: Vec<(f64, f64)> = Vec::new();
        for (i, b) in backends.iter().enumerate() {
            let m = b.mean_secs();
            self.mean_ns[i] = m.is_finite().then_some((m * 1e9) as u64);
            if let Some(key) = self.mean_ns[i] {
                means.push((m, f64::from(b.capacity) / m));
                if b.has_free_worker() {
                    self.free.insert((key, i));
                }
            }
        }
        means.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.classes.clear();
        let (mut rate, mut fastest) = (0.0, f64::INFINITY);
        let mut k = 0;
        while k < means.len() {
            let m = means[k].0;
            self.classes.push(SpeedClass {
                mean_s: m,
                faster_rate: rate,
                fastest_mean_s: fastest,
            });
            while k < means.len() && means[k].0 == m {
                rate += means[k].1;
                k += 1;
            }
            fastest = fastest.min(m);
        }
    }

    /// A call joins the queue.
    pub(crate) fn arrive(&mut self, job: Job) {
        self.queue.push_back(job);
    }

    /// A worker of `backend` became free (or a backend changed).
    pub(crate) fn freed(&mut self, backend: usize, backends: &[Backend]) {
        if let Some(key) = self.mean_ns[backend]
            && backends[backend].has_free_worker()
        {
            self.free.insert((key, backend));
        }
    }

    /// Whether a free worker of mean `m` should take the head with `len`
    /// calls queued.
    fn worth_it(&self, m: f64, len: usize) -> bool {
        let i = self.classes.partition_point(|c| c.mean_s < m);
        match self.classes.get(i) {
            Some(c) if c.faster_rate > 0.0 => len as f64 / c.faster_rate + c.fastest_mean_s > m,
            _ => true,
        }
    }

    /// Starts as many queued calls as the rule allows: `(backend, job)`
    /// pairs, each with a worker taken. Calls past their deadline are
    /// dropped from the head (their clients count them at the deadline).
    pub(crate) fn dispatch(
        &mut self,
        now: Nanos,
        deadline: Nanos,
        backends: &mut [Backend],
        mut start: impl FnMut(usize, Job, &mut [Backend]),
    ) {
        loop {
            while self
                .queue
                .front()
                .is_some_and(|j| now >= j.t0.saturating_add(deadline))
            {
                self.queue.pop_front();
            }
            if self.queue.is_empty() {
                return;
            }
            let Some(&(key, b)) = self.free.first() else {
                return;
            };
            if !self.worth_it(key as f64 / 1e9, self.queue.len()) {
                return;
            }
            let job = self.queue.pop_front().expect("not empty");
            let took = backends[b].try_take_worker();
            debug_assert!(took, "a backend in the free set has a free worker");
            if !backends[b].has_free_worker() {
                self.free.remove(&(key, b));
            }
            start(b, job, backends);
        }
    }

    /// The backend with the fewest open streams, for a new stream.
    pub(crate) fn stream_backend(&self, backends: &[Backend]) -> usize {
        (0..backends.len())
            .filter(|&i| self.mean_ns[i].is_some())
            .min_by_key(|&i| (backends[i].streams(), i))
            .unwrap_or(0)
    }
}
