//! How the client reaches upstreams: rustls with the `ring` provider, the system's roots plus
//! an optional CA bundle, an unverified variant only for registries marked insecure, the
//! egress proxy from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, connect timeout, and redirects
//! followed by hand within one origin only.

use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument as _;
use url::Url;

use crate::budget::Reservation;
use crate::config::ClientConfig;
use crate::error::{ClientError, LimitKind, UpstreamError, redacted_url};
use crate::guard::same_origin;
use crate::observer::{RequestKind, RequestObserver, SPAN_TARGET};

/// Same-origin redirects followed for one request before giving up.
const MAX_REDIRECTS: usize = 5;

/// The two HTTP clients (verifying and, for insecure registries, not verifying) and what
/// every request shares.
pub(crate) struct Transport {
    verified: reqwest::Client,
    unverified: reqwest::Client,
    observer: Option<Arc<dyn RequestObserver>>,
}

impl Transport {
    pub(crate) fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let provider = tls_config::provider();
        let mut roots = tls_config::system_roots();
        if let Some(path) = &config.extra_ca_file {
            // The process's shared roots stay as they are: the bundle goes into a copy.
            tls_config::add_ca_bundle(Arc::make_mut(&mut roots), path)?;
        }
        let verified = tls_config::verifying_config(Arc::clone(&provider), roots)
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let unverified = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth();
        Ok(Self {
            verified: http_client(verified, config)?,
            unverified: http_client(unverified, config)?,
            observer: config.observer.clone(),
        })
    }

    /// Sends one request, following redirects that stay on the request's origin (headers,
    /// credentials included, go along: same origin, same audience). A redirect elsewhere is an
    /// error and nothing is sent there. The permit of `limiter` is held until the answer's
    /// body is read or dropped.
    pub(crate) async fn send(
        &self,
        call: Call<'_>,
        method: Method,
        url: Url,
        mut headers: HeaderMap,
    ) -> Result<Answer, UpstreamError> {
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "upstream request",
            registry = call.registry,
            kind = call.kind.as_str(),
            http.request.method = %method,
            http.response.status_code = tracing::field::Empty,
        );
        if let Some(observer) = &self.observer {
            for (name, value) in observer.trace_context(&span) {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(HeaderName::from_static(name), value);
                }
            }
        }
        let sent = self.send_following(call, method, url, headers);
        let answer = sent.instrument(span.clone()).await;
        if let Ok(answer) = &answer {
            span.record("http.response.status_code", answer.status().as_u16());
        }
        answer
    }

    async fn send_following(
        &self,
        call: Call<'_>,
        method: Method,
        url: Url,
        headers: HeaderMap,
    ) -> Result<Answer, UpstreamError> {
        let client = if call.insecure {
            &self.unverified
        } else {
            &self.verified
        };
        let mut target = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            // The semaphore is never closed, so acquiring only fails if it were.
            let permit = Arc::clone(call.limiter)
                .acquire_owned()
                .await
                .map_err(|_| UpstreamError::Config("registry limiter closed".into()))?;
            let started = Instant::now();
            let result = client
                .request(method.clone(), target.clone())
                .headers(headers.clone())
                .send()
                .await;
            if let Some(observer) = &self.observer {
                let status = result.as_ref().ok().map(|r| r.status().as_u16());
                observer.on_request(call.registry, call.kind, status, started.elapsed());
            }
            let response = result.map_err(|e| classify(&e, &target))?;
            if !is_followable_redirect(response.status()) {
                return Ok(Answer {
                    response,
                    url: target,
                    _permit: permit,
                });
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let next = target
                .join(&location)
                .map_err(|_| UpstreamError::Redirect {
                    location: redacted_url(&location),
                    reason: "Location is not a URL",
                })?;
            if !same_origin(&next, &url) {
                return Err(UpstreamError::Redirect {
                    location: redacted_url(next.as_str()),
                    reason: "another origin",
                });
            }
            target = next;
        }
        Err(UpstreamError::Redirect {
            location: redacted_url(target.as_str()),
            reason: "too many redirects",
        })
    }
}

/// Who a request is for: per-registry label, limiter and TLS mode.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub registry: &'a str,
    pub kind: RequestKind,
    pub insecure: bool,
    pub limiter: &'a Arc<Semaphore>,
}

/// An answer whose body has not been read yet; holds the registry's concurrency permit.
pub(crate) struct Answer {
    pub response: reqwest::Response,
    /// The URL that answered (after same-origin redirects): `Link`s resolve against it.
    pub url: Url,
    _permit: OwnedSemaphorePermit,
}

impl Answer {
    pub(crate) fn status(&self) -> StatusCode {
        self.response.status()
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// Reads the body, never holding more than `cap` bytes: a `Content-Length` over the cap
    /// is refused before reading, and a body that keeps coming is cut at the cap.
    pub(crate) async fn read_capped(
        self,
        cap: usize,
        kind: LimitKind,
    ) -> Result<Vec<u8>, UpstreamError> {
        self.read(cap, kind, None).await
    }

    /// [`Answer::read_capped`], with every byte taken from `reservation` before it is read:
    /// a declared `Content-Length` at once, a body of unknown length chunk by chunk.
    pub(crate) async fn read_reserved(
        self,
        cap: usize,
        kind: LimitKind,
        reservation: &mut Reservation,
    ) -> Result<Vec<u8>, UpstreamError> {
        self.read(cap, kind, Some(reservation)).await
    }

    async fn read(
        mut self,
        cap: usize,
        kind: LimitKind,
        mut reservation: Option<&mut Reservation>,
    ) -> Result<Vec<u8>, UpstreamError> {
        let too_large = UpstreamError::Limit { kind, limit: cap };
        let declared = self.response.content_length();
        if declared.is_some_and(|len| len > cap as u64) {
            return Err(too_large);
        }
        // Under the cap, so it fits a usize.
        let declared = declared.map_or(0, |len| usize::try_from(len).unwrap_or(cap));
        if let Some(reservation) = reservation.as_deref_mut() {
            reservation.grow(declared)?;
        }
        let mut reserved = declared;
        // Sized once when the length is known, so the buffer never doubles past what was
        // reserved.
        let mut body = Vec::with_capacity(declared);
        while let Some(chunk) = self
            .response
            .chunk()
            .await
            .map_err(|e| classify(&e, &self.url))?
        {
            let len = body.len().saturating_add(chunk.len());
            if len > cap {
                return Err(too_large);
            }
            if len > reserved
                && let Some(reservation) = reservation.as_deref_mut()
            {
                reservation.grow(len - reserved)?;
                reserved = len;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn is_followable_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn http_client(
    tls: rustls::ClientConfig,
    config: &ClientConfig,
) -> Result<reqwest::Client, ClientError> {
    let mut tls = tls;
    // A preconfigured rustls config gets no ALPN from reqwest; offer h2 like it would.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .user_agent(config.user_agent.as_str())
        .build()
        .map_err(|e| ClientError::Setup(e.to_string()))
}

/// Maps a reqwest failure to the step it belongs to. The text names what failed and the
/// causes below reqwest, never reqwest's own message, which repeats the whole URL.
fn classify(error: &reqwest::Error, url: &Url) -> UpstreamError {
    let origin = url.origin().ascii_serialization();
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "body not read"
    } else {
        "request failed"
    };
    let mut detail = what.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    if is_tls_error(error) {
        UpstreamError::Tls { origin, detail }
    } else {
        // Connect errors, connect timeouts, resets and truncated bodies all say the same:
        // the registry could not be talked to.
        UpstreamError::Connect { origin, detail }
    }
}

fn is_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(cause) = current {
        if cause.is::<rustls::Error>() {
            return true;
        }
        // `io::Error::source` skips the error it wraps, so look inside by hand.
        if let Some(inner) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && (inner.is::<rustls::Error>() || is_tls_error(inner))
        {
            return true;
        }
        current = cause.source();
    }
    false
}

/// Accepts any server certificate, still checking the handshake signatures; used only for
/// registries Harbor marks insecure.
#[derive(Debug)]
struct AnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_names_the_origin_and_never_the_url_or_its_user_info() {
        let transport = Transport::new(&ClientConfig::for_tests()).unwrap();
        let limiter = Arc::new(Semaphore::new(1));
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url: Url = format!("http://robot:s3cret@127.0.0.1:{port}/v2/?sig=hidden")
            .parse()
            .unwrap();
        let call = Call {
            registry: "r",
            kind: RequestKind::Api,
            insecure: true,
            limiter: &limiter,
        };
        let error = transport
            .send(call, Method::GET, url, HeaderMap::new())
            .await
            .err()
            .unwrap();
        let text = error.to_string();
        assert!(matches!(error, UpstreamError::Connect { .. }), "{text}");
        assert!(text.contains(&format!("http://127.0.0.1:{port}")), "{text}");
        for secret in ["robot", "s3cret", "sig", "hidden", "/v2/"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
