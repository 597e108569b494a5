//! Authentication as Harbor core and Docker do it: the challenge from `GET /v2/`, bearer
//! tokens from the realm (with the bound credentials, else anonymous) cached per
//! (registry, scope) until shortly before they expire, or basic credentials.
//!
//! REF: <https://distribution.github.io/distribution/spec/auth/token/>

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::challenge::{Challenge, parse_challenge};
use crate::error::{AuthError, LimitKind, UpstreamError};
use crate::guard::check_realm;
use crate::observer::RequestKind;
use crate::rate_limit::retry_after;
use crate::registry::Credentials;
use crate::session::Session;
use crate::state::{lock, sweep};

/// Largest token answer read. Real tokens are a few KiB; a realm chosen by the upstream
/// must not make us buffer more.
pub const MAX_TOKEN_ANSWER_BYTES: usize = 256 * 1024;
/// Token lifetime when the realm gives none (the token spec's minimum).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are dropped this long before they expire (at most a quarter of their lifetime),
/// so a request never leaves with a token that expires on the way.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// Challenges per registry and tokens per (registry, scope); shared by all listings.
#[derive(Debug)]
pub(crate) struct Auth {
    allow_private_realms: bool,
    challenges: Mutex<HashMap<String, Challenge>>,
    tokens: Mutex<HashMap<(String, String), CachedToken>>,
}

#[derive(Debug, Clone)]
struct CachedToken {
    header: HeaderValue,
    usable_until: Instant,
}

/// The realm's answer. Docker's spec names `token`; OAuth2-minded realms send
/// `access_token`.
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl Auth {
    pub(crate) fn new(allow_private_realms: bool) -> Self {
        Self {
            allow_private_realms,
            challenges: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The `Authorization` for the session's registry and scope; `None` for anonymous.
    pub(crate) async fn authorization(
        &self,
        session: &Session<'_>,
    ) -> Result<Option<HeaderValue>, UpstreamError> {
        let key = session.registry_key();
        let known = lock(&self.challenges).get(&key).cloned();
        let challenge = match known {
            Some(challenge) => challenge,
            None => {
                let challenge = self.ping(session).await?;
                lock(&self.challenges).insert(key.clone(), challenge.clone());
                challenge
            }
        };
        let credentials = session.registry.bound_credentials();
        match challenge {
            Challenge::Anonymous => Ok(None),
            Challenge::Basic => Ok(credentials.map(basic_header).transpose()?),
            Challenge::Bearer { realm, service } => {
                let token_key = (key, session.scope());
                if let Some(token) = lock(&self.tokens).get(&token_key)
                    && token.usable_until > Instant::now()
                {
                    return Ok(Some(token.header.clone()));
                }
                let token = self
                    .fetch_token(session, &realm, service.as_deref(), credentials)
                    .await?;
                let header = token.header.clone();
                let mut tokens = lock(&self.tokens);
                sweep(&mut tokens, |token| token.usable_until > Instant::now());
                tokens.insert(token_key, token);
                Ok(Some(header))
            }
        }
    }

    /// A `401` brought a fresh challenge: use it, and forget the token that was refused.
    pub(crate) fn replace_challenge(&self, session: &Session<'_>, challenge: Challenge) {
        let key = session.registry_key();
        lock(&self.tokens).remove(&(key.clone(), session.scope()));
        let mut challenges = lock(&self.challenges);
        sweep(&mut challenges, |_| false);
        challenges.insert(key, challenge);
    }

    /// `GET /v2/` to learn how the registry authenticates.
    async fn ping(&self, session: &Session<'_>) -> Result<Challenge, UpstreamError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let answer = session
            .transport
            .send(
                session.call(RequestKind::Api),
                Method::GET,
                session.url("/v2/"),
                headers,
            )
            .await?;
        match answer.status().as_u16() {
            401 => Ok(parse_challenge(answer.headers())
                .map_err(AuthError::Challenge)?
                .unwrap_or(Challenge::Anonymous)),
            429 => Err(UpstreamError::RateLimited {
                retry_after: retry_after(answer.headers(), std::time::SystemTime::now()),
            }),
            status if status >= 500 => Err(UpstreamError::Api { status }),
            // 200, and registries whose /v2/ answers oddly: try without credentials, and
            // let a 401 on the real request bring the challenge.
            _ => Ok(Challenge::Anonymous),
        }
    }

    async fn fetch_token(
        &self,
        session: &Session<'_>,
        realm: &str,
        service: Option<&str>,
        credentials: Option<&Credentials>,
    ) -> Result<CachedToken, UpstreamError> {
        let refused = |reason: String| AuthError::RealmRefused {
            realm: realm.to_owned(),
            reason,
        };
        let mut url = Url::parse(realm).map_err(|e| refused(e.to_string()))?;
        check_realm(&url, session.registry.insecure, self.allow_private_realms)
            .await
            .map_err(refused)?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &session.scope());
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        // The realm is the one the bound host named in its own challenge, so the
        // credentials go only where that host sends them.
        if let Some(credentials) = credentials {
            headers.insert(AUTHORIZATION, basic_header(credentials)?);
        }
        let started = Instant::now();
        let answer = session
            .transport
            .send(session.call(RequestKind::Token), Method::GET, url, headers)
            .await?;
        let status = answer.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(UpstreamError::RateLimited {
                retry_after: retry_after(answer.headers(), std::time::SystemTime::now()),
            });
        }
        if status.is_server_error() {
            return Err(AuthError::TokenEndpoint {
                status: status.as_u16(),
            }
            .into());
        }
        if status != StatusCode::OK {
            return Err(AuthError::TokenRefused {
                status: status.as_u16(),
            }
            .into());
        }
        let body = answer
            .read_capped(MAX_TOKEN_ANSWER_BYTES, LimitKind::TokenAnswer)
            .await?;
        let parsed: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| AuthError::TokenAnswer(format!("not a token answer: {e}")))?;
        let token = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| AuthError::TokenAnswer("no token or access_token".into()))?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| AuthError::TokenAnswer("token is not a header value".into()))?;
        header.set_sensitive(true);
        let lifetime = parsed
            .expires_in
            .filter(|&seconds| seconds > 0)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let margin = TOKEN_EXPIRY_MARGIN.min(lifetime / 4);
        Ok(CachedToken {
            header,
            usable_until: started + lifetime - margin,
        })
    }
}

fn basic_header(credentials: &Credentials) -> Result<HeaderValue, UpstreamError> {
    let encoded = BASE64.encode(format!("{}:{}", credentials.username, credentials.password));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| UpstreamError::Config("credentials are not a header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}
