//! The balancer setting that turns on client-side health checking.

use std::fmt;

/// Client-side health checking (gRFC A17): each endpoint's connection carries
/// a `grpc.health.v1.Health/Watch` stream for [`service`](Self::service), and
/// an endpoint that does not answer `SERVING` gets no new calls or streams.
/// See `docs/streams.md`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthCheck {
    /// The service name sent in the watch request. The empty string (the
    /// default) asks for the health of the whole server.
    pub service: String,
}

impl HealthCheck {
    /// Health checking of `service` (`""` for the whole server).
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
        }
    }

    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), HealthCheckError> {
        if self.service.chars().any(char::is_control) {
            return Err(HealthCheckError {
                field: "service",
                why: "must not contain control characters",
            });
        }
        Ok(())
    }
}

/// A [`HealthCheck`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckError {
    field: &'static str,
    why: &'static str,
}

impl HealthCheckError {
    /// The offending field, as `service`.
    pub fn field(&self) -> &str {
        self.field
    }
}

impl fmt::Display for HealthCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.why)
    }
}

impl std::error::Error for HealthCheckError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BalancerConfig;

    #[test]
    fn a_service_name_with_control_characters_is_refused_naming_the_field() {
        assert!(HealthCheck::new("helloworld.Greeter").validate().is_ok());
        assert!(HealthCheck::default().validate().is_ok());
        let config = BalancerConfig {
            health_check: Some(HealthCheck::new("greeter\n")),
            ..Default::default()
        };
        let e = config.validate().unwrap_err();
        assert_eq!(e.field(), "health_check.service");
        assert!(e.to_string().contains("control characters"), "{e}");
    }
}
