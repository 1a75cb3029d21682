//! Open-loop load: calls started at a fixed rate, each on its own task,
//! without waiting for earlier ones to finish, so that a stalled backend
//! cannot slow the load down and hide what it costs.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tonic::Code;

use crate::within;

/// One call: the name of the backend that answered, or the status.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<String, tonic::Status>> + Send>>;

/// One unary call through `client` carrying `deadline` (as `grpc-timeout`,
/// which the client enforces too).
pub fn call_through<T>(client: &GreeterClient<T>, deadline: Duration) -> CallFuture
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    T::Future: Send,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut client = client.clone();
    Box::pin(async move {
        let mut request = tonic::Request::new(HelloRequest {
            name: "load".into(),
            ..Default::default()
        });
        request.set_timeout(deadline);
        client
            .say_hello(request)
            .await
            .map(|r| r.into_inner().backend)
    })
}

/// What a run of open-loop load saw.
#[derive(Debug, Default)]
pub struct LoadRun {
    /// Calls started.
    pub calls: usize,
    /// Successful replies per backend name.
    pub ok: HashMap<String, usize>,
    /// Failed calls, as their status, in the order they failed.
    pub failed: Vec<tonic::Status>,
    /// Calls still unfinished when the hang limit passed: each was given up
    /// on, and counts neither as a success nor as a failure.
    pub hung: usize,
}

impl LoadRun {
    /// Successful replies from `name`.
    pub fn ok(&self, name: &str) -> usize {
        self.ok.get(name).copied().unwrap_or(0)
    }

    /// All successful replies.
    pub fn total_ok(&self) -> usize {
        self.ok.values().sum()
    }

    /// The codes of the failed calls, each with its count, in the order each
    /// code was first seen.
    pub fn codes(&self) -> Vec<(Code, usize)> {
        let mut out: Vec<(Code, usize)> = Vec::new();
        for status in &self.failed {
            match out.iter_mut().find(|(c, _)| *c == status.code()) {
                Some((_, n)) => *n += 1,
                None => out.push((status.code(), 1)),
            }
        }
        out
    }
}

/// Open-loop load running in the background until stopped.
#[derive(Debug)]
pub struct OpenLoop {
    run: Arc<Mutex<LoadRun>>,
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    ticker: JoinHandle<Vec<JoinHandle<()>>>,
}

impl OpenLoop {
    /// Starts a call made by `call` every `1 / rate_per_sec` seconds. A call
    /// that has not finished `hang_limit` after it started is given up on
    /// and counted as hung. The load stops by itself after `max_run` (a
    /// bound in case the test never stops it).
    pub fn start(
        rate_per_sec: u64,
        hang_limit: Duration,
        max_run: Duration,
        call: impl Fn() -> CallFuture + Send + 'static,
    ) -> OpenLoop {
        assert!(rate_per_sec > 0, "a rate of zero starts no call");
        let run = Arc::new(Mutex::new(LoadRun::default()));
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (run, started, finished, stop) =
                (run.clone(), started.clone(), finished.clone(), stop.clone());
            tokio::spawn(async move {
                let period = Duration::from_micros(1_000_000 / rate_per_sec);
                let mut tick = tokio::time::interval(period);
                // Behind schedule (a loaded machine), start the missed calls
                // in a burst: the rate over the run is what was asked.
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let end = tokio::time::Instant::now() + max_run;
                let mut tasks = Vec::new();
                while !stop.load(Ordering::SeqCst) && tokio::time::Instant::now() < end {
                    tick.tick().await;
                    let call = call();
                    let (run, finished) = (run.clone(), finished.clone());
                    started.fetch_add(1, Ordering::SeqCst);
                    tasks.push(tokio::spawn(async move {
                        let result = tokio::time::timeout(hang_limit, call).await;
                        {
                            let mut run = run.lock();
                            run.calls += 1;
                            match result {
                                Ok(Ok(name)) => *run.ok.entry(name).or_insert(0) += 1,
                                Ok(Err(status)) => run.failed.push(status),
                                Err(_) => run.hung += 1,
                            }
                        }
                        finished.fetch_add(1, Ordering::SeqCst);
                    }));
                }
                tasks
            })
        };
        OpenLoop {
            run,
            started,
            finished,
            stop,
            ticker,
        }
    }

    /// Calls started so far.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    /// Calls finished so far (answered, failed or given up on).
    pub fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    /// Successful replies from `name` so far.
    pub fn ok(&self, name: &str) -> usize {
        self.run.lock().ok(name)
    }

    /// Failed calls so far.
    pub fn failures(&self) -> usize {
        self.run.lock().failed.len()
    }

    /// Waits (bounded) until `n` more calls have finished.
    pub async fn wait_calls(&self, n: usize) {
        let target = self.finished() + n;
        crate::wait_until(&format!("{n} more calls"), || self.finished() >= target).await;
    }

    /// Stops starting calls, waits (bounded) for those started to finish,
    /// and returns what the run saw.
    pub async fn stop(self) -> LoadRun {
        self.stop.store(true, Ordering::SeqCst);
        let tasks = within("the load stops", self.ticker)
            .await
            .expect("load task");
        for task in tasks {
            within("a call of the load", task).await.expect("call task");
        }
        std::mem::take(&mut *self.run.lock())
    }
}

/// Starts calls made by `call` at `rate_per_sec` for `run`, calls `halfway`
/// once half of them have been started, and returns what they did once all
/// have finished. Calls are given up on (hung) after 10 s.
pub async fn open_loop(
    rate_per_sec: u64,
    run: Duration,
    call: impl Fn() -> CallFuture + Send + 'static,
    halfway: impl FnOnce(),
) -> LoadRun {
    let total = (rate_per_sec as f64 * run.as_secs_f64()) as usize;
    let load = OpenLoop::start(rate_per_sec, crate::WAIT_LIMIT, run * 4, call);
    crate::wait_until("half of the calls started", || load.started() >= total / 2).await;
    halfway();
    crate::wait_until("every call started", || load.started() >= total).await;
    load.stop().await
}
