//! How the sidecar connects to Harbor core: HTTP/1.1, optional internal TLS with its own CA,
//! connect timeout, no redirects, no decompression, no default headers; and what every relay
//! of core's messages shares: which headers belong to one connection, and which send failures
//! are timeouts.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use awc::error::{ConnectError, SendRequestError};
use awc::http::Method;
use awc::http::header::{self, HeaderMap, HeaderName};
use awc::{ClientRequest, ClientResponse, SendClientRequest};
use futures_util::Stream;
use tls_config::CaBundleError;
use tokio::sync::oneshot;

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
                roots
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

    /// The connections of one worker to core. Nothing bounds the whole exchange: core's head
    /// must come within `head_timeout` of the request's end, its body may take as long as it
    /// flows (long pulls and pushes are legitimate).
    #[must_use]
    pub fn connections(&self, head_timeout: Duration) -> CoreConnections {
        // The HTTP version first: it resets the TLS configuration to awc's default.
        let connector = awc::Connector::new()
            .max_http_version(awc::http::Version::HTTP_11)
            .rustls_0_23(Arc::clone(&self.tls))
            .timeout(self.connect_timeout);
        let client = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .no_default_headers()
            .disable_timeout()
            .finish();
        CoreConnections {
            client,
            head_timeout,
        }
    }
}

/// One worker's pool of connections to core (awc clients stay on their thread); clones share it.
#[derive(Clone)]
pub struct CoreConnections {
    client: awc::Client,
    head_timeout: Duration,
}

/// A request to core that got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("Harbor core sent no response head within {0:?}")]
    HeadTimeout(Duration),
    #[error("cannot send to Harbor core: {0}")]
    Failed(#[from] SendRequestError),
}

impl SendError {
    /// Whether the time ran out (connecting, or waiting for the head), as opposed to core
    /// being unreachable.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::HeadTimeout(_)
                | Self::Failed(
                    SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout)
                )
        )
    }
}

impl CoreConnections {
    /// A request to `url` on these connections, to send with [`Self::send`].
    #[must_use]
    pub fn request(&self, method: Method, url: &str) -> ClientRequest {
        self.client.request(method, url)
    }

    /// Waits for core's head: `sent` is awc's send of the request, `body_sent` resolves once
    /// the request's body has been sent (at once when there is none), and starts the clock.
    pub async fn send(
        &self,
        sent: SendClientRequest,
        body_sent: impl Future<Output = ()>,
    ) -> Result<ClientResponse, SendError> {
        let deadline = async {
            body_sent.await;
            tokio::time::sleep(self.head_timeout).await;
        };
        tokio::select! {
            response = sent => Ok(response?),
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
        assert!(SendError::Failed(SendRequestError::Connect(ConnectError::Timeout)).is_timeout());
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
