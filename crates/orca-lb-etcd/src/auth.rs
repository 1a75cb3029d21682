//! The token a client sends with each request when etcd has authentication
//! enabled: fetched with the user and password, fetched again when etcd no
//! longer accepts it (expired, or lost in a restart).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::RwLock;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::client_options::EtcdCredentials;
use crate::error::EtcdError;
use crate::pb::etcdserverpb::{AuthenticateRequest, auth_client::AuthClient};

/// The metadata key etcd reads the token from.
pub(crate) const TOKEN_KEY: &str = "token";

/// A token, and which one it is: a request that fails with token `n` asks
/// for a token newer than `n`, so concurrent failures authenticate once.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) generation: u64,
    pub(crate) value: AsciiMetadataValue,
}

/// One client's (and its clones') authentication state.
#[derive(Debug)]
pub(crate) struct Auth {
    credentials: EtcdCredentials,
    client: AuthClient<Channel>,
    current: RwLock<Option<Token>>,
    /// Held while authenticating, so that one request does it for all.
    refreshing: tokio::sync::Mutex<()>,
    authentications: AtomicU64,
}

impl Auth {
    pub(crate) fn new(credentials: EtcdCredentials, channel: Channel) -> Self {
        Self {
            credentials,
            client: AuthClient::new(channel),
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            authentications: AtomicU64::new(0),
        }
    }

    /// The user.
    pub(crate) fn user(&self) -> &str {
        &self.credentials.user
    }

    /// Successful authentications so far.
    pub(crate) fn authentications(&self) -> u64 {
        self.authentications.load(Relaxed)
    }

    /// The current token, authenticating first if there is none.
    pub(crate) async fn token(&self, timeout: Duration) -> Result<Token, EtcdError> {
        if let Some(token) = self.current.read().clone() {
            return Ok(token);
        }
        self.refresh(None, timeout).await
    }

    /// A token newer than `rejected` (the one etcd refused; `None`: none
    /// yet), authenticating unless another request already did.
    pub(crate) async fn refresh(
        &self,
        rejected: Option<u64>,
        timeout: Duration,
    ) -> Result<Token, EtcdError> {
        let _guard = self.refreshing.lock().await;
        if let Some(token) = self.current.read().clone()
            && rejected.is_none_or(|r| token.generation > r)
        {
            return Ok(token);
        }
        let value = self.authenticate(timeout).await?;
        let mut current = self.current.write();
        let generation = current.as_ref().map_or(1, |t| t.generation + 1);
        let token = Token { generation, value };
        *current = Some(token.clone());
        self.authentications.fetch_add(1, Relaxed);
        Ok(token)
    }

    async fn authenticate(&self, timeout: Duration) -> Result<AsciiMetadataValue, EtcdError> {
        let op = "authenticate";
        let request = AuthenticateRequest {
            name: self.credentials.user.clone(),
            password: self.credentials.password.clone(),
        };
        let response =
            match tokio::time::timeout(timeout, self.client.clone().authenticate(request)).await {
                Err(_) => return Err(EtcdError::Timeout { op, after: timeout }),
                Ok(Ok(r)) => r.into_inner(),
                Ok(Err(status)) => {
                    return Err(match status.code() {
                        // Wrong user or password, or authentication
                        // disabled: etcd's answer, not a lost connection.
                        tonic::Code::InvalidArgument
                        | tonic::Code::FailedPrecondition
                        | tonic::Code::PermissionDenied
                        | tonic::Code::Unauthenticated => EtcdError::AuthFailed {
                            user: self.credentials.user.clone(),
                            why: status
                                .message()
                                .trim_start_matches("etcdserver: ")
                                .to_string(),
                        },
                        _ => EtcdError::status(op)(status),
                    });
                }
            };
        AsciiMetadataValue::try_from(response.token.as_str()).map_err(|_| EtcdError::AuthFailed {
            user: self.credentials.user.clone(),
            why: "etcd answered with a token that is not valid metadata".to_string(),
        })
    }
}

/// Whether etcd refused a request because of its token (expired, unknown
/// after a restart, or from an older auth store revision): worth one new
/// token and one retry.
pub(crate) fn token_rejected(status: &tonic::Status) -> bool {
    let message = status.message();
    match status.code() {
        tonic::Code::Unauthenticated => true,
        tonic::Code::InvalidArgument | tonic::Code::PermissionDenied => {
            message.contains("invalid auth token")
                || message.contains("revision of auth store is old")
                || message.contains("user name is empty")
        }
        _ => false,
    }
}

/// Whether a watch was refused at creation because of its token: etcd
/// cancels it as "permission denied" when the stream's token is not valid.
pub(crate) fn watch_token_rejected(reason: &str) -> bool {
    reason.contains("permission denied") || reason.contains("invalid auth token")
}
