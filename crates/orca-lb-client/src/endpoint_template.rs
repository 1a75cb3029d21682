//! How a discovered address becomes a connection: every tonic `Endpoint`
//! setting (TLS, keepalive, windows, user agent, origin, timeouts, custom
//! connectors) applied to every endpoint from every discovery source.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};
use tower_service::Service;

use crate::BoxError;

type EndpointFn = dyn Fn(&Uri) -> Result<TonicEndpoint, BoxError> + Send + Sync;
type ChannelFn = dyn Fn(&Uri) -> Result<Channel, BoxError> + Send + Sync;

/// How the balancer connects to each address discovery announces.
///
/// Three forms, from the most common:
///
/// - [`EndpointTemplate::new`]: one tonic `Endpoint` whose URI names the
///   *service* (`https://greeter.example:443`) and whose settings (TLS and
///   mTLS, HTTP/2 keepalive and windows, user agent, origin, request
///   timeout, TCP keepalive and nodelay, connect timeout, ...) apply to every
///   connection. Each connection dials the discovered address (usually an
///   IP) but speaks to the template's URI: its scheme decides TLS, its host
///   is the TLS server name (unless `ClientTlsConfig::domain_name` says
///   otherwise) and, unless `origin` is set, the `:authority` of every call.
///   This is how gRPC clients reach a name resolved to many IPs.
/// - [`EndpointTemplate::from_fn`]: a function from the discovered address
///   (`http://10.0.0.7:50051`) to a tonic `Endpoint`, connected lazily. The
///   endpoint's own URI is dialled and decides TLS: an `https` scheme is
///   needed for TLS.
/// - [`EndpointTemplate::from_channel_fn`]: a function from the discovered
///   address to a ready `Channel`, for custom connectors
///   (`Endpoint::connect_with_connector_lazy`, e.g. Unix sockets). The
///   channel must be lazy: the balancer connects it on the first call.
///
/// In the first two forms, an `Endpoint` without a connect timeout gets
/// [`BalancerConfig::connect_timeout`](crate::BalancerConfig::connect_timeout).
/// The default, [`EndpointTemplate::plain`], is the discovered address as
/// is, without TLS, with that connect timeout and `TCP_NODELAY`.
///
/// A function that fails for an address (a static list's is tried when the
/// balancer is built, so the error comes from
/// [`Balancer::from_uris`](crate::Balancer::from_uris)) leaves that address
/// out with a warning naming it and the error; the endpoint is not added.
///
/// Every `Endpoint` setting carries over, except `local_address`, which
/// tonic does not expose: use [`from_channel_fn`](Self::from_channel_fn)
/// for it.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use orca_lb_client::{BalancerConfig, EndpointTemplate};
/// use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
///
/// // The two lines of the README's "TLS" section:
/// let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read("ca.pem")?)).domain_name("greeter.example");
/// let config = BalancerConfig::default().with_endpoint(EndpointTemplate::new(Endpoint::from_static("https://greeter.example").tls_config(tls)?));
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct EndpointTemplate {
    form: Form,
}

#[derive(Clone, Default)]
enum Form {
    #[default]
    Plain,
    Template(Box<TonicEndpoint>),
    EndpointFn(Arc<EndpointFn>),
    ChannelFn(Arc<ChannelFn>),
}

impl fmt::Debug for EndpointTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.form {
            Form::Plain => f.write_str("EndpointTemplate::Plain"),
            Form::Template(e) => f
                .debug_tuple("EndpointTemplate::Template")
                .field(e.uri())
                .finish(),
            Form::EndpointFn(_) => f.write_str("EndpointTemplate::EndpointFn(..)"),
            Form::ChannelFn(_) => f.write_str("EndpointTemplate::ChannelFn(..)"),
        }
    }
}

impl EndpointTemplate {
    /// Each discovered address as it is: no TLS, the configured connect
    /// timeout, `TCP_NODELAY`.
    pub fn plain() -> Self {
        Self::default()
    }

    /// Every connection takes `template`'s settings and speaks to its URI,
    /// dialling the discovered address.
    pub fn new(template: TonicEndpoint) -> Self {
        Self {
            form: Form::Template(Box::new(template)),
        }
    }

    /// Each connection is the `Endpoint` that `f` makes of the discovered
    /// address, connected lazily.
    pub fn from_fn<F, E>(f: F) -> Self
    where
        F: Fn(&Uri) -> Result<TonicEndpoint, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        Self {
            form: Form::EndpointFn(Arc::new(move |uri: &Uri| f(uri).map_err(Into::into))),
        }
    }

    /// Each connection is the lazy `Channel` that `f` makes of the discovered
    /// address, typically with `Endpoint::connect_with_connector_lazy`.
    pub fn from_channel_fn<F, E>(f: F) -> Self
    where
        F: Fn(&Uri) -> Result<Channel, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        Self {
            form: Form::ChannelFn(Arc::new(move |uri: &Uri| f(uri).map_err(Into::into))),
        }
    }

    /// A lazy connection to `addr`; `connect_timeout` applies where the
    /// endpoint sets none.
    pub(crate) fn connect_lazy(
        &self,
        addr: &Uri,
        connect_timeout: Duration,
    ) -> Result<Channel, BoxError> {
        let with_timeout = |e: TonicEndpoint| {
            if e.get_connect_timeout().is_some() {
                e
            } else {
                e.connect_timeout(connect_timeout)
            }
        };
        match &self.form {
            Form::Plain => Ok(TonicEndpoint::from(addr.clone())
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .connect_lazy()),
            Form::Template(template) => {
                let endpoint = with_timeout((**template).clone());
                let dial = DialAddress::new(addr.clone(), &endpoint);
                Ok(endpoint.connect_with_connector_lazy(dial))
            }
            Form::EndpointFn(f) => Ok(with_timeout(f(addr)?).connect_lazy()),
            Form::ChannelFn(f) => f(addr),
        }
    }
}

/// A connector that dials one fixed address with the template's TCP
/// settings, whatever URI the channel asks for (the template's).
#[derive(Clone)]
struct DialAddress {
    addr: Uri,
    http: HttpConnector,
}

impl DialAddress {
    fn new(addr: Uri, endpoint: &TonicEndpoint) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(endpoint.get_tcp_nodelay());
        http.set_keepalive(endpoint.get_tcp_keepalive());
        http.set_keepalive_interval(endpoint.get_tcp_keepalive_interval());
        http.set_keepalive_retries(endpoint.get_tcp_keepalive_retries());
        http.set_connect_timeout(endpoint.get_connect_timeout());
        Self { addr, http }
    }
}

impl Service<Uri> for DialAddress {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, _name: Uri) -> Self::Future {
        let connect = self.http.call(self.addr.clone());
        Box::pin(async move { connect.await.map_err(Into::into) })
    }
}
