//! Where a call is sent.

/// Where a call goes when its client sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// To one backend, by index, as a client's balancer picked it.
    Backend(u32),
    /// Into the central queue in front of every worker (the limit), which
    /// picks the backend when a worker takes the call.
    CentralQueue,
}
