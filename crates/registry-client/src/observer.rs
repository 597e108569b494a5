//! The metrics hook: one call per HTTP request sent upstream.

use std::time::Duration;

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
}
