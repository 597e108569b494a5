//! How the sidecar connects to Harbor core: HTTP/1.1, optional internal TLS with its own CA,
//! connect timeout, no redirects, no decompression, no default headers; and what every relay
//! of core's messages shares: which headers belong to one connection, and which send failures
//! are timeouts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use awc::error::{ConnectError, SendRequestError};
use awc::http::header::{self, HeaderMap, HeaderName};
use tls_config::CaBundleError;

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

    /// A client for core. `timeout` bounds a whole request where one makes sense (API calls);
    /// streamed pass-through has none, only the connect timeout.
    #[must_use]
    pub fn client(&self, timeout: Option<Duration>) -> awc::Client {
        let connector = awc::Connector::new()
            .timeout(self.connect_timeout)
            .rustls_0_23(Arc::clone(&self.tls))
            .max_http_version(awc::http::Version::HTTP_11);
        let builder = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .no_default_headers();
        match timeout {
            Some(timeout) => builder.timeout(timeout).finish(),
            None => builder.disable_timeout().finish(),
        }
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

/// Whether a failed send to core ran out of time (connecting or waiting for the answer), as
/// opposed to core being unreachable.
#[must_use]
pub fn is_timeout(error: &SendRequestError) -> bool {
    matches!(
        error,
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout)
    )
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
        assert!(is_timeout(&SendRequestError::Timeout));
        assert!(is_timeout(&SendRequestError::Connect(
            ConnectError::Timeout
        )));
        assert!(!is_timeout(&SendRequestError::Connect(
            ConnectError::Disconnected
        )));
        assert!(!is_timeout(&SendRequestError::Url(
            awc::error::InvalidUrl::MissingScheme
        )));
    }
}
