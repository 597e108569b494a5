//! Typed failures of an upstream listing: which step failed, and whether it is the
//! registry's fault (counts against its breaker) or only this request's.

use std::time::Duration;

use url::Url;

use crate::budget::OverBudget;

/// Why a [`crate::RegistryClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The extra CA bundle could not be read, or holds no certificate.
    #[error(transparent)]
    CaBundle(#[from] tls_config::CaBundleError),
    /// rustls or reqwest refused the configuration.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

/// Why the token realm was not asked for a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The realm URL is not acceptable (plain HTTP, private address, unparsable).
    #[error("token realm {realm:?} refused: {reason}")]
    RealmRefused {
        /// The realm the upstream named, without user-info, query or fragment.
        realm: String,
        /// Why it was refused.
        reason: String,
    },
    /// The challenge could not be read, or names a scheme this client cannot answer.
    #[error("authentication challenge not usable: {0}")]
    Challenge(String),
    /// The token endpoint refused the request (401/403 and other 4xx).
    #[error("token endpoint refused the request with {status}")]
    TokenRefused {
        /// HTTP status of the token endpoint.
        status: u16,
    },
    /// The token endpoint failed (5xx).
    #[error("token endpoint failed with {status}")]
    TokenEndpoint {
        /// HTTP status of the token endpoint.
        status: u16,
    },
    /// The token answer is not JSON with a `token` or `access_token`.
    #[error("token answer not usable: {0}")]
    TokenAnswer(String),
    /// The registry still answered 401 (or 403) after authenticating once more.
    #[error("registry denied access with {status}")]
    Denied {
        /// HTTP status of the registry.
        status: u16,
    },
}

/// Which part of a listing a cap stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// One page of the referrers API (`max_page_bytes`).
    ReferrersPage,
    /// The fallback-tag index (`max_page_bytes`).
    FallbackIndex,
    /// A token endpoint's answer.
    TokenAnswer,
    /// A manifest read by digest.
    Manifest,
}

impl LimitKind {
    /// Label for logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReferrersPage => "referrers page",
            Self::FallbackIndex => "fallback index",
            Self::TokenAnswer => "token answer",
            Self::Manifest => "manifest",
        }
    }
}

/// Why an upstream listing failed. Each variant names the step that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made (refused, unreachable, DNS, connect timeout, reset).
    #[error("cannot connect to {origin}: {detail}")]
    Connect {
        /// `scheme://host:port` that was dialled.
        origin: String,
        /// What went wrong.
        detail: String,
    },
    /// The TLS handshake failed (unknown CA, wrong name, protocol).
    #[error("TLS with {origin} failed: {detail}")]
    Tls {
        /// `scheme://host:port` that was dialled.
        origin: String,
        /// What went wrong.
        detail: String,
    },
    /// The whole call (a listing, a manifest read) did not finish within `upstream.timeout`.
    #[error("upstream call did not finish within {0:?}")]
    Timeout(Duration),
    /// Authentication failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The referrers API answered a status that is neither a list nor "no API here".
    #[error("referrers API answered {status}")]
    Api {
        /// HTTP status.
        status: u16,
    },
    /// The fallback tag answered a status that is neither an index nor "no such tag".
    #[error("fallback tag answered {status}")]
    Fallback {
        /// HTTP status.
        status: u16,
    },
    /// A manifest `GET` answered a status other than `200`.
    #[error("manifest GET answered {status}")]
    Manifest {
        /// HTTP status.
        status: u16,
    },
    /// An answer claimed to be an index (or a token) and was not.
    #[error("{what} not usable: {reason}")]
    Decode {
        /// What was being read (`referrers page`, `fallback index`).
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A body was larger than its cap; nothing usable was read before it.
    #[error("{} larger than {limit} bytes", .kind.as_str())]
    Limit {
        /// What was being read.
        kind: LimitKind,
        /// The cap in bytes.
        limit: usize,
    },
    /// The process-wide upstream memory budget could not spare the bytes of a page.
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    /// `429 Too Many Requests`, or a `503` with a `Retry-After`.
    #[error("upstream rate limit (retry after {retry_after:?})")]
    RateLimited {
        /// From `Retry-After`, when the upstream sent one that could be read.
        retry_after: Option<Duration>,
    },
    /// A redirect to another origin (or too many of them); never followed.
    #[error("redirect to {location:?} not followed: {reason}")]
    Redirect {
        /// The `Location`, without user-info, query or fragment.
        location: String,
        /// Why it was not followed.
        reason: &'static str,
    },
    /// The registry cannot be used as configured (plain HTTP without `insecure`, bad name).
    #[error("registry not usable as configured: {0}")]
    Config(String),
}

impl UpstreamError {
    /// The step that failed, for logs and metric labels.
    #[must_use]
    pub fn step(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Tls { .. } => "tls",
            Self::Timeout(_) => "timeout",
            Self::Auth(_) => "auth",
            Self::Api { .. } => "api",
            Self::Fallback { .. } => "fallback",
            Self::Manifest { .. } => "manifest",
            Self::Decode { .. } => "decode",
            Self::Limit { .. } => "limit",
            Self::OverBudget(_) => "budget",
            Self::RateLimited { .. } => "rate-limited",
            Self::Redirect { .. } => "redirect",
            Self::Config(_) => "config",
        }
    }

    /// Whether this failure says the registry itself is unwell: connect errors, timeouts and
    /// 5xx. One repository's 4xx, a hostile answer or a cap must never cut off a registry.
    #[must_use]
    pub fn counts_against_breaker(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout(_) => true,
            Self::Api { status } | Self::Fallback { status } | Self::Manifest { status } => {
                *status >= 500
            }
            Self::Auth(AuthError::TokenEndpoint { status }) => *status >= 500,
            _ => false,
        }
    }
}

/// A URL the upstream chose, fit for an error text: without user-info, query and fragment,
/// which may carry credentials or signatures; text that is no http(s) URL is not repeated.
pub(crate) fn redacted_url(text: &str) -> String {
    let Some(mut url) = Url::parse(text.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
    else {
        return "(not an http URL)".to_owned();
    };
    // http(s) URLs always have a host, so neither can fail.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_error_texts_carry_no_secrets() {
        assert_eq!(
            redacted_url("https://user:pa55@auth.example/token?sig=abc#frag"),
            "https://auth.example/token"
        );
        assert_eq!(
            redacted_url(" http://127.0.0.1:5000/v2/ "),
            "http://127.0.0.1:5000/v2/"
        );
        for hidden in [
            "user:pa55@auth",
            "//user:pa55@auth/x",
            "ftp://user:pa55@auth/",
        ] {
            assert_eq!(redacted_url(hidden), "(not an http URL)");
        }
        let error = UpstreamError::Redirect {
            location: redacted_url("https://u:secret@s3.example/blob?X-Amz-Signature=s"),
            reason: "another origin",
        };
        let text = error.to_string();
        assert!(
            !text.contains("secret") && !text.contains("Signature"),
            "{text}"
        );
    }

    #[test]
    fn only_connect_timeout_and_5xx_count_against_the_breaker() {
        let counted = [
            UpstreamError::Connect {
                origin: "https://r".into(),
                detail: "refused".into(),
            },
            UpstreamError::Timeout(Duration::from_secs(1)),
            UpstreamError::Api { status: 503 },
            UpstreamError::Fallback { status: 500 },
            UpstreamError::Manifest { status: 502 },
            UpstreamError::Auth(AuthError::TokenEndpoint { status: 502 }),
        ];
        for error in counted {
            assert!(error.counts_against_breaker(), "{error}");
        }
        let not_counted = [
            UpstreamError::Api { status: 403 },
            UpstreamError::Fallback { status: 401 },
            UpstreamError::Manifest { status: 404 },
            UpstreamError::RateLimited { retry_after: None },
            UpstreamError::OverBudget(OverBudget { limit: 1 }),
            UpstreamError::Auth(AuthError::TokenRefused { status: 401 }),
            UpstreamError::Limit {
                kind: LimitKind::ReferrersPage,
                limit: 1,
            },
            UpstreamError::Tls {
                origin: "https://r".into(),
                detail: "unknown issuer".into(),
            },
        ];
        for error in not_counted {
            assert!(!error.counts_against_breaker(), "{error}");
        }
    }
}
