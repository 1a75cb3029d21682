//! Ending a stream at its max age, after the message in flight.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use bytes::Buf;
use http::{HeaderMap, HeaderValue};
use orca_lb_proto::{STREAM_ENDED_MAX_AGE, STREAM_ENDED_TRAILER};
use tokio::time::{Instant, Sleep};

/// How far a stream's max age is moved at random, either way: streams
/// opened together (after a restart, a scale-out) then end spread over a
/// fifth of the age instead of all at once.
pub(crate) const MAX_AGE_JITTER: f64 = 0.1;

/// The message of the UNAVAILABLE status a stream ends with at its max age.
pub(crate) const MAX_AGE_MESSAGE: &str = "stream max age reached";

/// Length of a gRPC message's prefix: a compression flag and a big-endian
/// `u32` length.
const PREFIX_LEN: usize = 5;

/// The max age of one stream: a timer, and where the response body stands
/// in its gRPC messages, so that the stream ends between two messages.
#[derive(Debug)]
pub(crate) struct StreamMaxAge {
    sleep: Pin<Box<Sleep>>,
    expired: bool,
    messages: MessageBoundary,
}

impl StreamMaxAge {
    /// A max age of `age` jittered by ±[`MAX_AGE_JITTER`], from `start`.
    pub(crate) fn new(age: Duration, start: Instant) -> Self {
        let jittered = age.mul_f64(jitter_factor(random_unit()));
        Self {
            sleep: Box::pin(tokio::time::sleep_until(start + jittered)),
            expired: false,
            messages: MessageBoundary::default(),
        }
    }

    /// When the stream reaches its max age.
    pub(crate) fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }

    /// Whether the age has passed; registers for a wake-up when it will.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.expired {
            self.expired = self.sleep.as_mut().poll(cx).is_ready();
        }
        self.expired
    }

    /// Whether the age has passed and no message is partly sent: the stream
    /// may end now.
    pub(crate) fn may_end(&mut self, cx: &mut Context<'_>) -> bool {
        self.poll_expired(cx) && self.messages.at_boundary()
    }

    /// Follows a data frame of the response body.
    pub(crate) fn sent<B: Buf>(&mut self, data: &B) {
        let mut slices = [std::io::IoSlice::new(&[]); 16];
        let n = data.chunks_vectored(&mut slices);
        let mut seen = 0;
        for s in &slices[..n] {
            self.messages.advance(s);
            seen += s.len();
        }
        // A buffer of more pieces than were listed: the rest is message body
        // or further messages whose bytes cannot be read without consuming
        // them; the boundary is lost, so the stream ends at its own end.
        if seen < data.remaining() {
            self.messages.lose();
        }
    }
}

/// The trailers a stream ends with at its max age: UNAVAILABLE, the message,
/// and [`STREAM_ENDED_TRAILER`].
pub(crate) fn max_age_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert(
        "grpc-status",
        HeaderValue::from(tonic::Code::Unavailable as i32),
    );
    trailers.insert("grpc-message", HeaderValue::from_static(MAX_AGE_MESSAGE));
    trailers.insert(
        STREAM_ENDED_TRAILER,
        HeaderValue::from_static(STREAM_ENDED_MAX_AGE),
    );
    trailers
}

/// `1 - JITTER + 2 JITTER u` for `u` in `[0, 1)`.
fn jitter_factor(u: f64) -> f64 {
    1.0 - MAX_AGE_JITTER + 2.0 * MAX_AGE_JITTER * u.clamp(0.0, 1.0)
}

/// A uniform draw in `[0, 1)` from the standard library's randomly keyed
/// hasher: no generator to share between streams, no lock.
fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(0u8);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Where a byte stream of length-prefixed gRPC messages stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct MessageBoundary {
    /// Prefix bytes of the next message read so far (0..5).
    prefix_read: usize,
    /// The length being read from the prefix.
    len: u32,
    /// Body bytes of the current message still to come.
    body_left: u64,
    /// The boundary cannot be followed any more.
    lost: bool,
}

impl MessageBoundary {
    fn at_boundary(&self) -> bool {
        !self.lost && self.prefix_read == 0 && self.body_left == 0
    }

    fn lose(&mut self) {
        self.lost = true;
    }

    fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.lost {
            if self.body_left > 0 {
                let take = (bytes.len() as u64).min(self.body_left);
                self.body_left -= take;
                bytes = &bytes[take as usize..];
                continue;
            }
            // Reading a prefix: byte 0 is the flag, 1..5 the length.
            if self.prefix_read > 0 {
                self.len = (self.len << 8) | u32::from(bytes[0]);
            } else {
                self.len = 0;
            }
            self.prefix_read += 1;
            bytes = &bytes[1..];
            if self.prefix_read == PREFIX_LEN {
                self.prefix_read = 0;
                self.body_left = u64::from(self.len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn boundaries_are_found_however_messages_are_cut() {
        let mut all = message(3);
        all.extend(message(0));
        all.extend(message(300));
        // Boundaries after byte 8, 13 and 318.
        let boundaries = [8, 13, 318];
        for cut in 1..all.len() {
            let mut b = MessageBoundary::default();
            b.advance(&all[..cut]);
            assert_eq!(b.at_boundary(), boundaries.contains(&cut), "cut at {cut}");
            b.advance(&all[cut..]);
            assert!(b.at_boundary(), "whole, cut at {cut}");
        }
        // Byte by byte.
        let mut b = MessageBoundary::default();
        for (i, byte) in all.iter().enumerate() {
            b.advance(std::slice::from_ref(byte));
            assert_eq!(b.at_boundary(), boundaries.contains(&(i + 1)), "byte {i}");
        }
    }

    #[test]
    fn a_lost_boundary_is_never_a_boundary() {
        let mut b = MessageBoundary::default();
        b.lose();
        b.advance(&message(1));
        assert!(!b.at_boundary());
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads() {
        assert!((jitter_factor(0.0) - 0.9).abs() < 1e-12);
        assert!((jitter_factor(0.999_999) - 1.1).abs() < 1e-5);
        let draws: Vec<f64> = (0..2_000).map(|_| jitter_factor(random_unit())).collect();
        assert!(draws.iter().all(|f| (0.9..1.1).contains(f)));
        // Both halves of the range are used.
        assert!(draws.iter().any(|&f| f < 0.95) && draws.iter().any(|&f| f > 1.05));
    }
}
