//! Logging set-up and the per-request span (carrying the caller's `X-Request-Id` when sent).

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogFormat, LogSettings};

/// The header that carries a request's id across Harbor's components.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Installs the global subscriber: JSON or text lines on stderr, one line per finished request.
/// Safe to call more than once (later calls keep the first subscriber).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The request's id: the caller's `X-Request-Id` when it is a sane token, else a new one.
#[must_use]
pub fn request_id(request: &ServiceRequest) -> String {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The id chosen for a request, kept in its extensions for the handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The id of `request` (as its span carries it).
#[must_use]
pub fn request_id_of(request: &actix_web::HttpRequest) -> String {
    use actix_web::HttpMessage;
    request
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |id| id.0.clone())
}

/// Root span of every request: method, target, status and the request id.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        use actix_web::HttpMessage;
        let request_id = request_id(request);
        request
            .extensions_mut()
            .insert(RequestId(request_id.clone()));
        tracing::info_span!(
            "request",
            http.method = %request.method(),
            // The path only: a query may carry secrets (an OIDC callback's code, say).
            http.target = %request.uri().path(),
            http.client_ip = %request.connection_info().realip_remote_addr().unwrap_or(""),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
            request_id = %request_id,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
