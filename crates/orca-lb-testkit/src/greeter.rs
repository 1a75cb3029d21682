//! The greeter a test backend serves.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::ServiceTime;
use crate::pb::greeter_server::Greeter;
use crate::pb::{HelloReply, HelloRequest};

type Hook = Arc<dyn Fn(&Request<HelloRequest>) + Send + Sync>;
type WorkFactor = Arc<dyn Fn(&Request<HelloRequest>) -> f64 + Send + Sync>;

/// A [`Greeter`] with knobs for tests: a service time, an optional gate that
/// holds unary calls until the test opens it, a count of calls that entered
/// the handler, and a hook run on each unary request.
#[derive(Clone)]
pub struct TestGreeter {
    name: Arc<str>,
    service_time: Arc<Mutex<ServiceTime>>,
    entered: Arc<AtomicUsize>,
    entered_changed: Arc<Notify>,
    gate: Option<Arc<Semaphore>>,
    hook: Option<Hook>,
    work_factor: Option<WorkFactor>,
    failing: Arc<Mutex<Option<Code>>>,
}

impl std::fmt::Debug for TestGreeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGreeter")
            .field("name", &self.name)
            .field("service_time", &*self.service_time.lock())
            .field("entered", &self.entered())
            .field("gated", &self.gate.is_some())
            .finish()
    }
}

impl TestGreeter {
    /// A greeter that answers as `name`, at once.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            service_time: Arc::new(Mutex::new(ServiceTime::default())),
            entered: Arc::default(),
            entered_changed: Arc::default(),
            gate: None,
            hook: None,
            work_factor: None,
            failing: Arc::default(),
        }
    }

    /// Draws each unary call's work from `service_time` (unless the request
    /// asks for `work_ms`).
    pub fn with_service_time(self, service_time: ServiceTime) -> Self {
        *self.service_time.lock() = service_time;
        self
    }

    /// Holds every unary call in the handler until [`open_gate`](Self::open_gate).
    pub fn gated(mut self) -> Self {
        self.gate = Some(Arc::new(Semaphore::new(0)));
        self
    }

    /// Runs `hook` on every unary request, before replying.
    pub fn with_hook(
        mut self,
        hook: impl Fn(&Request<HelloRequest>) + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Multiplies each unary call's drawn service time by what `factor`
    /// returns for its request, called once the call is served (after any
    /// gate, not when failing): e.g. a cache model, whose hits are cheaper.
    pub fn with_work_factor(
        mut self,
        factor: impl Fn(&Request<HelloRequest>) -> f64 + Send + Sync + 'static,
    ) -> Self {
        self.work_factor = Some(Arc::new(factor));
        self
    }

    /// Changes the service time from now on (e.g. to slow a backend down).
    pub fn set_service_time(&self, service_time: ServiceTime) {
        *self.service_time.lock() = service_time;
    }

    /// Makes every unary call fail at once with `code` (after any gate), or
    /// heals the greeter with `None`: a fast-failing backend.
    pub fn set_failing(&self, code: Option<Code>) {
        *self.failing.lock() = code;
    }

    /// Lets `n` gated calls through.
    pub fn open_gate(&self, n: usize) {
        if let Some(gate) = &self.gate {
            gate.add_permits(n);
        }
    }

    /// Unary calls that have entered the handler so far.
    pub fn entered(&self) -> usize {
        self.entered.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` unary calls have entered the handler.
    pub async fn wait_entered(&self, n: usize) {
        loop {
            let changed = self.entered_changed.notified();
            if self.entered() >= n {
                return;
            }
            changed.await;
        }
    }

    fn reply(&self, name: &str) -> HelloReply {
        HelloReply {
            message: format!("hello, {name}"),
            backend: self.name.to_string(),
        }
    }

    async fn work(&self, work_ms: u32, factor: f64) {
        let d = if work_ms > 0 {
            Duration::from_millis(u64::from(work_ms))
        } else {
            let st = *self.service_time.lock();
            st.sample(&mut rand::rng())
        };
        let d = if factor == 1.0 { d } else { d.mul_f64(factor) };
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

/// A work factor as the greeter applies it: from 0 to 1,000; anything not
/// finite counts as 1 (the drawn time as it is).
fn work_factor(f: f64) -> f64 {
    if f.is_finite() {
        f.clamp(0.0, 1e3)
    } else {
        1.0
    }
}

fn failure(code: u32) -> Option<Status> {
    (code != 0).then(|| {
        Status::new(
            Code::from(i32::try_from(code).unwrap_or(2)),
            "failure requested by the caller",
        )
    })
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

#[tonic::async_trait]
impl Greeter for TestGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.entered_changed.notify_waiters();
        if let Some(hook) = &self.hook {
            hook(&request);
        }
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate never closes").forget();
        }
        let failing = *self.failing.lock();
        if let Some(code) = failing {
            return Err(Status::new(code, "this backend is failing"));
        }
        let factor = self
            .work_factor
            .as_ref()
            .map_or(1.0, |f| work_factor(f(&request)));
        let req = request.into_inner();
        self.work(req.work_ms, factor).await;
        if let Some(status) = failure(req.fail_with_code) {
            return Err(status);
        }
        Ok(Response::new(self.reply(&req.name)))
    }

    type SayHelloStreamStream = ReplyStream;

    /// Sends `count` replies, then fails with `fail_with_code` if set. With
    /// `count == 0` it sends one reply and holds the stream open until the
    /// client goes away.
    async fn say_hello_stream(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let req = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let this = self.clone();
        tokio::spawn(async move {
            let n = req.count.max(1);
            for _ in 0..n {
                this.work(req.work_ms, 1.0).await;
                if tx.send(Ok(this.reply(&req.name))).await.is_err() {
                    return;
                }
            }
            if req.count == 0 {
                tx.closed().await;
                return;
            }
            if let Some(status) = failure(req.fail_with_code) {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn collect_hellos(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        let mut stream = request.into_inner();
        let mut names = Vec::new();
        while let Some(req) = stream.next().await {
            let req = req?;
            if let Some(status) = failure(req.fail_with_code) {
                return Err(status);
            }
            names.push(req.name);
        }
        Ok(Response::new(self.reply(&names.join(", "))))
    }

    type ChatStream = ReplyStream;

    /// One reply per request, until the client closes its side. A request
    /// with `fail_with_code` ends the stream with that status.
    async fn chat(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let mut stream = request.into_inner();
        let this = self.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(req) = stream.next().await {
                let (reply, last) = match req {
                    Ok(req) => match failure(req.fail_with_code) {
                        Some(status) => (Err(status), true),
                        None => {
                            this.work(req.work_ms, 1.0).await;
                            (Ok(this.reply(&req.name)), false)
                        }
                    },
                    Err(status) => (Err(status), true),
                };
                if tx.send(reply).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceTime;

    fn named(name: &str) -> Request<HelloRequest> {
        Request::new(HelloRequest {
            name: name.into(),
            ..Default::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_work_factor_scales_the_service_time_and_garbage_counts_as_one() {
        let greeter = TestGreeter::new("a")
            .with_service_time(ServiceTime::Fixed(Duration::from_millis(100)))
            .with_work_factor(
                |r: &Request<HelloRequest>| match r.get_ref().name.as_str() {
                    "hit" => 0.5,
                    "nan" => f64::NAN,
                    "inf" => f64::INFINITY,
                    "negative" => -3.0,
                    _ => 1.0,
                },
            );
        for (name, expected_ms) in [
            ("hit", 50),
            ("miss", 100),
            ("nan", 100),
            ("inf", 100),
            ("negative", 0),
        ] {
            let start = tokio::time::Instant::now();
            greeter.say_hello(named(name)).await.expect("reply");
            assert_eq!(
                start.elapsed(),
                Duration::from_millis(expected_ms),
                "{name}"
            );
        }
    }
}
