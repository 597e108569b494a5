//! The metrics and tracing hook: one call per HTTP request sent upstream, and the headers each
//! one carries of the caller's trace.

use std::time::Duration;

/// The target of the span each request sent upstream runs in (`upstream request`, with the
/// registry, the request's kind and the answer's status): off in logs, for traces.
pub const SPAN_TARGET: &str = "registry_client::trace";

/// What an upstream request was for; a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// The registry's API: `/v2/` probes and the referrers API.
    Api,
    /// The fallback tag (`HEAD`/`GET /v2/<repo>/manifests/<alg>-<hex>`).
    Tag,
    /// A manifest by digest (`GET /v2/<repo>/manifests/<digest>`).
    Manifest,
    /// A token endpoint.
    Token,
}

impl RequestKind {
    /// `api`, `tag`, `manifest` or `token`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Tag => "tag",
            Self::Manifest => "manifest",
            Self::Token => "token",
        }
    }
}

/// Told about every HTTP request made upstream, including redirects followed and token
/// requests. `status` is `None` when no answer came (connect error, TLS, timeout).
pub trait RequestObserver: Send + Sync {
    /// One request finished (its headers arrived) or failed.
    fn on_request(&self, registry: &str, kind: RequestKind, status: Option<u16>, elapsed: Duration);

    /// Headers of a trace context the request made in `span` carries (a W3C `traceparent`);
    /// none by default.
    fn trace_context(&self, span: &tracing::Span) -> Vec<(&'static str, String)> {
        let _ = span;
        Vec::new()
    }
}
