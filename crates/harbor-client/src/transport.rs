//! How the sidecar connects to Harbor core: HTTP/1.1, optional internal TLS with its own CA,
//! connect timeout, `TCP_NODELAY`, no redirects, no decompression, no default headers; and what every relay
//! of core's messages shares: which headers belong to one connection, and which send failures
//! are timeouts.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_service::Service;
use actix_tls::connect::{ConnectInfo, Connection, ConnectorService};
use awc::error::{ConnectError, SendRequestError};
use awc::http::header::{self, HeaderMap, HeaderName};
use awc::http::{Method, Uri};
use awc::{ClientRequest, ClientResponse, SendClientRequest};
use futures_util::Stream;
use futures_util::future::LocalBoxFuture;
use tls_config::CaBundleError;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// What a connection to core needs; cheap to clone into every worker.
#[derive(Debug, Clone)]
pub struct CoreTransport {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("Harbor {0}")]
    CaBundle(#[from] CaBundleError),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

impl CoreTransport {
    /// Trusts `ca_file` when given (Harbor's internal TLS), else the system's roots.
    pub fn new(ca_file: Option<&Path>, connect_timeout: Duration) -> Result<Self, TransportError> {
        let roots = match ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                tls_config::add_ca_bundle(&mut roots, path)?;
                Arc::new(roots)
            }
            // Core is usually plain HTTP; unreadable system certificates are not fatal.
            None => tls_config::system_roots(),
        };
        let tls = tls_config::verifying_config(tls_config::provider(), roots)
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        Ok(Self {
            tls: Arc::new(tls),
            connect_timeout,
        })
    }

    /// The connections of one worker to core: at most `size`, idle ones kept for reuse. A
    /// request waits at most the connect timeout for one of them (then [`SendError::NoConnection`]).
    /// Nothing bounds the whole exchange: core's head must come within `head_timeout` of the
    /// request's end, its body may take as long as it flows (long pulls and pushes are
    /// legitimate).
    #[must_use]
    pub fn connections(&self, size: usize, head_timeout: Duration) -> CoreConnections {
        let size = size.max(1);
        // The HTTP version first: it resets the TLS configuration to awc's default.
        let connector = awc::Connector::new()
            .connector(NoDelay::default())
            .max_http_version(awc::http::Version::HTTP_11)
            .rustls_0_23(Arc::clone(&self.tls))
            .timeout(self.connect_timeout)
            .limit(size);
        let client = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .no_default_headers()
            .disable_timeout()
            .finish();
        CoreConnections {
            client,
            // awc's own pool waits without bound for a free connection; this one, as large,
            // is where a request waits instead, for at most the connect timeout.
            slots: Arc::new(Semaphore::new(size)),
            connect_timeout: self.connect_timeout,
            head_timeout,
        }
    }
}

/// actix-tls's TCP connector (name resolution, then connect), with `TCP_NODELAY` set on every
/// connection to core: a request written in more than one piece (a head, then a streamed body)
/// must not wait for core's delayed ACK of the first before the rest is sent.
#[derive(Clone, Default)]
struct NoDelay {
    tcp: ConnectorService,
}

impl Service<ConnectInfo<Uri>> for NoDelay {
    type Response = Connection<Uri, TcpStream>;
    type Error = actix_tls::connect::ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    // actix-tls's connector is always ready.
    actix_service::always_ready!();

    fn call(&self, target: ConnectInfo<Uri>) -> Self::Future {
        let connecting = self.tcp.call(target);
        Box::pin(async move {
            let connection = connecting.await?;
            // Only latency is at stake: a socket that refuses the option still works.
            if let Err(error) = connection.io_ref().set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY on a connection to core");
            }
            Ok(connection)
        })
    }
}

/// One worker's pool of connections to core (awc clients stay on their thread); clones share it.
#[derive(Clone)]
pub struct CoreConnections {
    client: awc::Client,
    slots: Arc<Semaphore>,
    connect_timeout: Duration,
    head_timeout: Duration,
}

/// A request to core that got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Every connection of the pool stayed busy, or a new one could not be made, for the
    /// connect timeout.
    #[error("no connection to Harbor core within {0:?}")]
    NoConnection(Duration),
    #[error("Harbor core sent no response head within {0:?}")]
    HeadTimeout(Duration),
    #[error("cannot send to Harbor core: {0}")]
    Failed(SendRequestError),
}

impl SendError {
    /// Whether core took too long to answer, as opposed to being unreachable or out of
    /// connections.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::HeadTimeout(_) | Self::Failed(SendRequestError::Timeout)
        )
    }
}

/// A connection of the pool, held until dropped: while a response's body is read from core.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    /// `body`, holding this connection until it is dropped.
    pub fn hold<S>(self, body: S) -> Held<S> {
        Held { body, _slot: self }
    }
}

/// See [`Slot::hold`].
pub struct Held<S> {
    // Dropped first: awc puts the connection back before the slot is freed.
    body: S,
    _slot: Slot,
}

impl<S: Stream + Unpin> Stream for Held<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

impl CoreConnections {
    /// A request to `url` on these connections, to send with [`Self::send`].
    #[must_use]
    pub fn request(&self, method: Method, url: &str) -> ClientRequest {
        self.client.request(method, url)
    }

    /// Takes a connection and waits for core's head: `sent` is awc's send of the request,
    /// `body_sent` resolves once the request's body has been sent (at once when there is
    /// none), and starts the head's clock. The [`Slot`] must live as long as the body is read.
    pub async fn send(
        &self,
        sent: SendClientRequest,
        body_sent: impl Future<Output = ()>,
    ) -> Result<(ClientResponse, Slot), SendError> {
        let no_connection = || SendError::NoConnection(self.connect_timeout);
        // The semaphore is never closed: an error is the wait running out.
        let acquire = Arc::clone(&self.slots).acquire_owned();
        let Ok(Ok(slot)) = tokio::time::timeout(self.connect_timeout, acquire).await else {
            return Err(no_connection());
        };
        let deadline = async {
            body_sent.await;
            tokio::time::sleep(self.head_timeout).await;
        };
        tokio::select! {
            response = sent => match response {
                Ok(response) => Ok((response, Slot { _permit: slot })),
                Err(SendRequestError::Connect(ConnectError::Timeout)) => Err(no_connection()),
                Err(error) => Err(SendError::Failed(error)),
            },
            () = deadline => Err(SendError::HeadTimeout(self.head_timeout)),
        }
    }
}

/// `stream` as a request body that tells when it has been sent: the future resolves when the
/// stream ends, fails, or is dropped.
pub fn signal_end<S>(stream: S) -> (SignalEnd<S>, impl Future<Output = ()>) {
    let (ended, on_end) = oneshot::channel();
    let body = SignalEnd {
        stream,
        ended: Some(ended),
    };
    (body, async {
        // A dropped sender ends the wait just as a sent signal does.
        let _ = on_end.await;
    })
}

/// See [`signal_end`].
pub struct SignalEnd<S> {
    stream: S,
    ended: Option<oneshot::Sender<()>>,
}

impl<S, T, E> Stream for SignalEnd<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
{
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(Pin::new(&mut self.stream).poll_next(cx));
        if matches!(item, None | Some(Err(_)))
            && let Some(ended) = self.ended.take()
        {
            let _ = ended.send(());
        }
        Poll::Ready(item)
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the proxy
/// authentication pair, which is addressed to a proxy and never to core or the client.
pub const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// Non-standard connection headers still sent by old clients and proxies.
const LEGACY_HOP_BY_HOP: &[&str] = &["keep-alive", "proxy-connection"];

/// Copies every end-to-end header of `from` into `to`: hop-by-hop headers and those the
/// `Connection` header names are dropped, repeated headers keep every value.
///
/// REF: <https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1>
pub fn copy_end_to_end_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let named_by_connection: Vec<String> = from
        .get_all(header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect();
    for (name, value) in from {
        let skip = HOP_BY_HOP.contains(name)
            || LEGACY_HOP_BY_HOP.contains(&name.as_str())
            || named_by_connection.iter().any(|n| n == name.as_str());
        if !skip {
            to.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use awc::http::header::HeaderValue;

    use super::*;

    #[actix_rt::test]
    async fn connections_to_core_are_made_with_tcp_nodelay() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let connection = NoDelay::default()
            .call(ConnectInfo::new(uri))
            .await
            .unwrap();
        assert!(connection.io_ref().nodelay().unwrap());
        // What actix-tls gives without the wrapper: Nagle's algorithm on.
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let plain = ConnectorService::default()
            .call(ConnectInfo::new(uri))
            .await
            .unwrap();
        assert!(!plain.io_ref().nodelay().unwrap());
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_stay_behind() {
        let mut from = HeaderMap::new();
        for (name, value) in [
            ("connection", "close, X-Private"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic cHJveHk="),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("www-authenticate", "Bearer realm=\"r\""),
            ("link", "<a>; rel=\"next\""),
            ("link", "<b>; rel=\"prev\""),
        ] {
            from.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let mut to = HeaderMap::new();
        copy_end_to_end_headers(&from, &mut to);
        let mut names: Vec<&str> = to.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["link", "www-authenticate"]);
        assert_eq!(to.get_all("link").count(), 2);
    }

    #[test]
    fn only_timeouts_are_timeouts() {
        assert!(SendError::HeadTimeout(Duration::from_secs(1)).is_timeout());
        assert!(SendError::Failed(SendRequestError::Timeout).is_timeout());
        assert!(!SendError::NoConnection(Duration::from_secs(1)).is_timeout());
        assert!(
            !SendError::Failed(SendRequestError::Connect(ConnectError::Disconnected)).is_timeout()
        );
    }

    #[actix_rt::test]
    async fn the_end_of_a_body_is_signalled_once_it_is_read_or_dropped() {
        use futures_util::{FutureExt, StreamExt};
        let chunks = futures_util::stream::iter([Ok::<_, ()>(1), Ok(2)]);
        let (mut body, ended) = signal_end(chunks);
        let mut ended = std::pin::pin!(ended);
        assert_eq!(body.next().await, Some(Ok(1)));
        assert!(ended.as_mut().now_or_never().is_none());
        assert_eq!(body.next().await, Some(Ok(2)));
        assert_eq!(body.next().await, None);
        assert!(ended.as_mut().now_or_never().is_some());

        let (body, ended) = signal_end(futures_util::stream::empty::<Result<u8, ()>>());
        drop(body);
        ended.await;
    }
}
