//! The open-loop load: calls sent on a fixed schedule, whatever the earlier
//! ones are doing, and their outcomes counted by status code.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use orca_lb_client::Balancer;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use tokio::time::Instant;
use tonic::Code;

/// Each call's deadline, sent to the server; the client gives up on a call
/// at twice this and counts it as DEADLINE_EXCEEDED.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A call sent this much after its planned time counts as late: the client
/// did not keep up with the schedule.
const LATE: Duration = Duration::from_millis(100);

/// gRPC's status codes, 0 (OK) to 16.
const CODES: usize = 17;

/// What the load did so far.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    sent: AtomicU64,
    late: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    by_code: [AtomicU64; CODES],
}

impl Tally {
    /// Calls sent.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Relaxed)
    }

    /// Calls sent more than [`LATE`] after their planned time.
    pub(crate) fn late(&self) -> u64 {
        self.late.load(Relaxed)
    }

    /// Calls sent and not yet answered.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    /// The most calls in flight at once.
    pub(crate) fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Relaxed)
    }

    /// The most calls in flight at once since the last call of this.
    pub(crate) fn take_peak_in_flight(&self) -> u64 {
        self.peak_in_flight.swap(self.in_flight(), Relaxed)
    }

    /// Calls that ended with `code`.
    pub(crate) fn count(&self, code: Code) -> u64 {
        self.by_code[code as usize].load(Relaxed)
    }

    /// Calls that ended other than OK, by code, the codes seen only.
    pub(crate) fn failed(&self) -> Vec<(Code, u64)> {
        (1..CODES as i32)
            .map(Code::from_i32)
            .map(|c| (c, self.count(c)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    fn on_sent(&self, late: bool) {
        self.sent.fetch_add(1, Relaxed);
        self.late.fetch_add(u64::from(late), Relaxed);
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Relaxed);
        self.peak_in_flight.fetch_max(now, Relaxed);
    }

    fn on_done(&self, code: Code) {
        self.by_code[code as usize].fetch_add(1, Relaxed);
        self.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Sends `rate` unary calls a second through `balancer` from `start` for
/// `duration`, call `i` at `start + i / rate`, each on its own task. Returns
/// once the last call is sent; [`Tally::in_flight`] says when all are
/// answered.
pub(crate) async fn drive(
    balancer: Balancer,
    rate: f64,
    start: Instant,
    duration: Duration,
    tally: Arc<Tally>,
) {
    let client = GreeterClient::new(balancer);
    let calls = (rate * duration.as_secs_f64()).floor() as u64;
    for i in 0..calls {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        tally.on_sent(Instant::now().saturating_duration_since(due) > LATE);
        let mut client = client.clone();
        let tally = tally.clone();
        tokio::spawn(async move {
            let mut request = tonic::Request::new(HelloRequest {
                name: "soak".into(),
                ..Default::default()
            });
            request.set_timeout(CALL_TIMEOUT);
            let code = match tokio::time::timeout(2 * CALL_TIMEOUT, client.say_hello(request)).await
            {
                Ok(Ok(_)) => Code::Ok,
                Ok(Err(status)) => status.code(),
                Err(_) => Code::DeadlineExceeded,
            };
            tally.on_done(code);
        });
    }
}

/// Waits until every call sent is answered, at most `bound`. Whether they
/// all were.
pub(crate) async fn drained(tally: &Tally, bound: Duration) -> bool {
    let until = Instant::now() + bound;
    while tally.in_flight() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tally.in_flight() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_by_code() {
        let t = Tally::default();
        t.on_sent(false);
        t.on_sent(true);
        t.on_sent(false);
        assert_eq!(
            (t.sent(), t.late(), t.in_flight(), t.max_in_flight()),
            (3, 1, 3, 3)
        );
        t.on_done(Code::Ok);
        t.on_done(Code::Internal);
        t.on_done(Code::Internal);
        assert_eq!(t.count(Code::Ok), 1);
        assert_eq!(t.failed(), vec![(Code::Internal, 2)]);
        assert_eq!((t.in_flight(), t.max_in_flight()), (0, 3));
    }
}
