//! Shared harness for the end-to-end suite: start the sidecar binary and the stand-ins it
//! talks to on free loopback ports, and stop them at the end.

pub mod clients;
pub mod config;
pub mod counting_proxy;
pub mod harbor_double;
pub mod harbor_webhook;
pub mod metrics;
pub mod nginx;
pub mod otlp;
pub mod ports;
pub mod proxy_cache;
pub mod redis;
pub mod scripted_upstream;
pub mod seen;
pub mod server;
pub mod sidecar;
pub mod standin_core;
pub mod upstreams;
pub mod users;
pub mod wait;
pub mod world;

pub use sidecar::Sidecar;
pub use standin_core::StandinCore;

/// The value of `series` (`name{labels}` as exported) in a Prometheus text exposition.
#[must_use]
pub fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{series} not exported:\n{metrics}"))
}

/// An HTTP client for tests: no redirects followed, no decompression, so responses are seen as
/// a client on the wire sees them.
#[must_use]
pub fn http_client() -> reqwest::Client {
    // reqwest is built without a default TLS provider (the service picks `ring`); tests talk
    // plain HTTP on loopback, but the builder still wants a provider installed.
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .build()
        .expect("HTTP client")
}

/// `GET url` with [`http_client`].
pub async fn get(url: &str) -> reqwest::Response {
    http_client().get(url).send().await.expect("GET request")
}

/// A response read off the wire by [`raw_get`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// `GET target` with the target sent byte for byte: HTTP client libraries normalise `..`,
/// percent-encode odd bytes and so on, which would hide what the sidecar does with them.
pub fn raw_get(port: u16, target: &[u8]) -> RawResponse {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(&request).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    RawResponse {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}
