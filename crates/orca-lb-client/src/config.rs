//! Configuration of the balancer.

use std::fmt;
use std::time::Duration;

use orca_lb_core::{
    AffinityConfig, AffinityKey, CircuitBreakerConfig, EjectionBudget, LocalityConfig, RetryBudget,
    ScoreConfig,
};
use orca_lb_proto::StreamingMethods;
use tonic::Code;

use crate::{EndpointTemplate, HealthCheck};

/// Everything a [`Balancer`](crate::Balancer) can be tuned with.
///
/// Defaults are explained in `docs/balancing.md`. Start from
/// [`default`](Self::default) and change what differs with the `with_*`
/// setters (or by assigning the public fields); settings may be added in
/// later releases without breaking code written this way.
///
/// ```
/// use std::time::Duration;
/// use orca_lb_client::BalancerConfig;
///
/// let config = BalancerConfig::default()
///     .with_target("greeter")
///     .with_oob_interval(Duration::from_secs(1));
/// assert!(config.validate().is_ok());
/// assert_eq!(config.oob_interval, Some(Duration::from_secs(1)));
///
/// let mut config = config.with_oob_interval(None);
/// config.connect_timeout = Duration::ZERO;
/// assert_eq!(config.validate().unwrap_err().field(), "connect_timeout");
///
/// // A unary pick compares 8 random endpoints by default; 2 is the power of
/// // two choices, and outside 2..=8 is refused.
/// use orca_lb_core::ScoreConfig;
/// let pair = BalancerConfig::default().with_score(ScoreConfig::default().with_choices(2));
/// assert!(pair.validate().is_ok());
/// let bad = BalancerConfig::default().with_score(ScoreConfig::default().with_choices(16));
/// assert_eq!(bad.validate().unwrap_err().field(), "score.choices");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BalancerConfig {
    /// A name for the balanced service, used in errors, logs and metrics
    /// labels. Default: `"default"`.
    pub target: String,
    /// How the score smooths and weighs signals, and how many random
    /// endpoints a unary pick compares ([`ScoreConfig::choices`]).
    pub score: ScoreConfig,
    /// When an endpoint is ejected and how it comes back.
    pub breaker: CircuitBreakerConfig,
    /// How many endpoints may be ejected at once, and when to ignore ejections.
    pub ejection: EjectionBudget,
    /// Methods that stream: picked by stream count rather than completion time.
    pub streaming: StreamingMethods,
    /// gRPC status codes that count against an endpoint. Default: UNKNOWN,
    /// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
    /// Application errors (NOT_FOUND, INVALID_ARGUMENT, ...) say nothing
    /// about the endpoint's health.
    pub failure_codes: Vec<Code>,
    /// Subscribe to each endpoint's out-of-band ORCA stream at this period,
    /// in addition to per-call trailers. Default: off.
    pub oob_interval: Option<Duration>,
    /// The largest out-of-band report accepted, bytes. A larger one ends
    /// the subscription (it is counted as an invalid report, and the
    /// subscription is retried with backoff). Default: 64 KiB (a full report
    /// with a few hundred named metrics is a few KiB).
    pub oob_max_message_size: usize,
    /// Out-of-band reports that arrive sooner than this after the last one
    /// taken in are dropped and counted (`oob_reports_dropped`): a backend
    /// that streams reports faster than asked must not cost the client more
    /// than this rate. Default: 100 ms.
    pub oob_min_spacing: Duration,
    /// Timeout for establishing a connection to an endpoint, where
    /// [`endpoint`](Self::endpoint) sets none. Default: 1 s.
    pub connect_timeout: Duration,
    /// How each discovered address is connected to: TLS, mTLS and every other
    /// tonic `Endpoint` setting. Default: [`EndpointTemplate::plain`].
    pub endpoint: EndpointTemplate,
    /// How many calls that never reached a server may be sent once more, to
    /// another endpoint (transparent re-pick; see `docs/balancing.md`).
    /// Default: 10 % of the calls over 10 s, at least 10 per window.
    /// [`RetryBudget::off`] turns re-picks off. A re-picked call goes with
    /// what is left of its `grpc-timeout`; one whose timeout has run out
    /// ends with DEADLINE_EXCEEDED instead (see `docs/reliability.md`).
    pub transparent_retry: RetryBudget,
    /// How many times one unary call may be handed back by a busy
    /// `orca-lb-server` and sent to another endpoint. A call is offered
    /// (the `orca-lb-may-hand-back` header) when the balancer knows more than
    /// one endpoint, the call has no affinity key, and its request body is
    /// complete when the call is made and at most 64 KiB, as a generated
    /// client's unary request is; the balancer keeps the body to send it
    /// again. A server with every worker slot taken and calls already
    /// waiting answers an offered call at once, unserved, and the balancer
    /// picks another endpoint for it, passing over that one: among many
    /// clients, a call that lands where others just sent theirs gets a
    /// second choice instead of waiting (see `docs/balancing.md`). The last
    /// attempt is not offered, so a call is served somewhere. Servers that
    /// do not know the header ignore it. Hand-backs are not charged to
    /// `transparent_retry`: the server did no work. A call handed on goes
    /// with what is left of its `grpc-timeout`, or, with nothing left, ends
    /// with DEADLINE_EXCEEDED. 0 turns it off. Default: 1.
    pub hand_backs: u32,
    /// How long `poll_ready` waits for discovery's first endpoint when the
    /// balancer knows none, before letting the call fail with UNAVAILABLE.
    /// Default: 1 s.
    pub discovery_wait: Duration,
    /// How often breaker deadlines, fleet medians, gauges and windows are
    /// updated, on a background task. Default: 50 ms.
    pub maintenance_interval: Duration,
    /// The first invalid load report of an endpoint is logged; later ones
    /// are counted and summarised in one line per endpoint at most this
    /// often. Default: 60 s.
    pub report_log_interval: Duration,
    /// Client-side health checking: a `grpc.health.v1.Health/Watch` stream
    /// per endpoint for this service; endpoints that do not answer `SERVING`
    /// get no new calls or streams. Default: off.
    pub health_check: Option<HealthCheck>,
    /// Locality: prefer endpoints in this client's own zone while that
    /// zone's load stays under a threshold, and spill calls over to other
    /// zones beyond it (see `docs/balancing.md`). Endpoints get their zone
    /// from discovery ([`Change::InsertInZone`](crate::Change::InsertInZone));
    /// one without a zone counts as another zone's. Default: off.
    pub locality: Option<LocalityConfig>,
    /// Session affinity: calls with the same key (from a request metadata
    /// entry, or a [`CallKey`](crate::CallKey) the application sets) go to
    /// the same endpoint while its load stays under `1 + epsilon` times the
    /// average, and to the next endpoints on a consistent-hash ring beyond
    /// it (see `docs/affinity.md`). Calls without a key are picked as
    /// usual. Default: off.
    pub affinity: Option<AffinityConfig>,
}

// === setters of BalancerConfig ===

impl BalancerConfig {
    /// Sets [`target`](Self::target).
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    /// Sets [`score`](Self::score).
    #[must_use]
    pub fn with_score(mut self, score: ScoreConfig) -> Self {
        self.score = score;
        self
    }

    /// Sets [`breaker`](Self::breaker).
    #[must_use]
    pub fn with_breaker(mut self, breaker: CircuitBreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Sets [`ejection`](Self::ejection).
    #[must_use]
    pub fn with_ejection(mut self, ejection: EjectionBudget) -> Self {
        self.ejection = ejection;
        self
    }

    /// Sets [`streaming`](Self::streaming).
    #[must_use]
    pub fn with_streaming(mut self, streaming: StreamingMethods) -> Self {
        self.streaming = streaming;
        self
    }

    /// Sets [`failure_codes`](Self::failure_codes).
    #[must_use]
    pub fn with_failure_codes(mut self, failure_codes: Vec<Code>) -> Self {
        self.failure_codes = failure_codes;
        self
    }

    /// Sets [`oob_interval`](Self::oob_interval).
    #[must_use]
    pub fn with_oob_interval(mut self, oob_interval: impl Into<Option<Duration>>) -> Self {
        self.oob_interval = oob_interval.into();
        self
    }

    /// Sets [`oob_max_message_size`](Self::oob_max_message_size).
    #[must_use]
    pub fn with_oob_max_message_size(mut self, oob_max_message_size: usize) -> Self {
        self.oob_max_message_size = oob_max_message_size;
        self
    }

    /// Sets [`oob_min_spacing`](Self::oob_min_spacing).
    #[must_use]
    pub fn with_oob_min_spacing(mut self, oob_min_spacing: Duration) -> Self {
        self.oob_min_spacing = oob_min_spacing;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Sets [`endpoint`](Self::endpoint).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: EndpointTemplate) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Sets [`transparent_retry`](Self::transparent_retry).
    #[must_use]
    pub fn with_transparent_retry(mut self, transparent_retry: RetryBudget) -> Self {
        self.transparent_retry = transparent_retry;
        self
    }

    /// Sets [`hand_backs`](Self::hand_backs).
    #[must_use]
    pub fn with_hand_backs(mut self, hand_backs: u32) -> Self {
        self.hand_backs = hand_backs;
        self
    }

    /// Sets [`discovery_wait`](Self::discovery_wait).
    #[must_use]
    pub fn with_discovery_wait(mut self, discovery_wait: Duration) -> Self {
        self.discovery_wait = discovery_wait;
        self
    }

    /// Sets [`maintenance_interval`](Self::maintenance_interval).
    #[must_use]
    pub fn with_maintenance_interval(mut self, maintenance_interval: Duration) -> Self {
        self.maintenance_interval = maintenance_interval;
        self
    }

    /// Sets [`report_log_interval`](Self::report_log_interval).
    #[must_use]
    pub fn with_report_log_interval(mut self, report_log_interval: Duration) -> Self {
        self.report_log_interval = report_log_interval;
        self
    }

    /// Sets [`health_check`](Self::health_check).
    #[must_use]
    pub fn with_health_check(mut self, health_check: impl Into<Option<HealthCheck>>) -> Self {
        self.health_check = health_check.into();
        self
    }

    /// Sets [`locality`](Self::locality).
    ///
    /// ```
    /// use orca_lb_client::{BalancerConfig, LocalityConfig, Zone};
    ///
    /// let zone = Zone::new("us-east-1a").unwrap();
    /// let config = BalancerConfig::default()
    ///     .with_locality(LocalityConfig::new(zone).with_threshold(0.7));
    /// assert!(config.validate().is_ok());
    /// assert_eq!(config.locality.unwrap().local_zone.as_str(), "us-east-1a");
    /// ```
    #[must_use]
    pub fn with_locality(mut self, locality: impl Into<Option<LocalityConfig>>) -> Self {
        self.locality = locality.into();
        self
    }
}

impl BalancerConfig {
    /// Sets [`affinity`](Self::affinity).
    ///
    /// ```
    /// use orca_lb_client::{AffinityConfig, BalancerConfig};
    ///
    /// let config = BalancerConfig::default()
    ///     .with_affinity(AffinityConfig::metadata("x-user-id").with_epsilon(0.5));
    /// assert!(config.validate().is_ok());
    ///
    /// let bad = BalancerConfig::default().with_affinity(AffinityConfig::metadata("X User"));
    /// assert_eq!(bad.validate().unwrap_err().field(), "affinity.key");
    /// ```
    #[must_use]
    pub fn with_affinity(mut self, affinity: impl Into<Option<AffinityConfig>>) -> Self {
        self.affinity = affinity.into();
        self
    }
}

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            target: "default".to_string(),
            score: ScoreConfig::default(),
            breaker: CircuitBreakerConfig::default(),
            ejection: EjectionBudget::default(),
            streaming: StreamingMethods::new(),
            failure_codes: vec![
                Code::Unknown,
                Code::DeadlineExceeded,
                Code::ResourceExhausted,
                Code::Internal,
                Code::Unavailable,
                Code::DataLoss,
            ],
            oob_interval: None,
            oob_max_message_size: 64 * 1024,
            oob_min_spacing: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(1),
            endpoint: EndpointTemplate::plain(),
            transparent_retry: RetryBudget::default(),
            hand_backs: 1,
            maintenance_interval: Duration::from_millis(50),
            discovery_wait: Duration::from_secs(1),
            report_log_interval: Duration::from_secs(60),
            health_check: None,
            locality: None,
            affinity: None,
        }
    }
}

/// A [`BalancerConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: String,
    why: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, why: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            why: why.to_string(),
        }
    }

    /// The offending field, as `breaker.consecutive_errors`.
    pub fn field(&self) -> &str {
        &self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid balancer config: {}: {}", self.field, self.why)
    }
}

impl std::error::Error for ConfigError {}

impl BalancerConfig {
    /// Checks every field, naming the first that is wrong and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.target.is_empty() {
            return Err(ConfigError::new("target", "must not be empty"));
        }
        self.score
            .validate()
            .map_err(|e| ConfigError::new(format!("score.{}", e.field()), e))?;
        self.breaker
            .validate()
            .map_err(|e| ConfigError::new(format!("breaker.{}", e.field()), e))?;
        self.ejection
            .validate()
            .map_err(|e| ConfigError::new(format!("ejection.{}", e.field()), e))?;
        self.transparent_retry
            .validate()
            .map_err(|e| ConfigError::new(format!("transparent_retry.{}", e.field()), e))?;
        if let Some(h) = &self.health_check {
            h.validate()
                .map_err(|e| ConfigError::new(format!("health_check.{}", e.field()), e))?;
        }
        if let Some(l) = &self.locality {
            l.validate()
                .map_err(|e| ConfigError::new(format!("locality.{}", e.field()), e))?;
        }
        if let Some(a) = &self.affinity {
            a.validate()
                .map_err(|e| ConfigError::new(format!("affinity.{}", e.field()), e))?;
            if let AffinityKey::Metadata(name) = &a.key
                && (http::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || name.bytes().any(|b| b.is_ascii_uppercase()))
            {
                return Err(ConfigError::new(
                    "affinity.key",
                    format!("{name:?} is not a lowercase metadata name"),
                ));
            }
        }
        if self.failure_codes.contains(&Code::Ok) {
            return Err(ConfigError::new("failure_codes", "must not contain OK"));
        }
        if let Some(d) = self.oob_interval
            && d.is_zero()
        {
            return Err(ConfigError::new(
                "oob_interval",
                "must be greater than zero",
            ));
        }
        if self.oob_max_message_size == 0 {
            return Err(ConfigError::new(
                "oob_max_message_size",
                "must be greater than zero",
            ));
        }
        for (field, d) in [
            ("connect_timeout", self.connect_timeout),
            ("maintenance_interval", self.maintenance_interval),
            ("report_log_interval", self.report_log_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(field, "must be greater than zero"));
            }
        }
        Ok(())
    }
}
