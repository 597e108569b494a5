//! Authentication as Harbor core and Docker do it: the challenge from `GET /v2/`, bearer
//! tokens from the realm (with the bound credentials, else anonymous) kept per (registry,
//! scope) until shortly before they expire, or basic credentials. When to authenticate, and
//! again after a `401`, is the session's decision; this module only asks and remembers.
//!
//! REF: <https://distribution.github.io/distribution/spec/auth/token/>

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use moka::Expiry;
use moka::future::Cache;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::challenge::{Challenge, parse_challenge};
use crate::error::{AuthError, LimitKind, UpstreamError, redacted_url};
use crate::guard::check_realm;
use crate::rate_limit::rate_limit;
use crate::registry::{Credentials, Registry};
use crate::state::{MAX_ENTRIES, RegistryKey};
use crate::transport::{Call, Transport};

/// Largest token answer read. Real tokens are a few KiB; a realm chosen by the upstream
/// must not make us buffer more.
pub const MAX_TOKEN_ANSWER_BYTES: usize = 256 * 1024;
/// Token lifetime when the realm gives none, or none that can be read (the token spec's
/// minimum).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest lifetime believed: a realm's `expires_in` is the upstream's word, and a huge one
/// must neither overflow a clock nor keep a token that was revoked long ago.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Tokens are dropped this long before they expire (at most a quarter of their lifetime),
/// so a request never leaves with a token that expires on the way.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// Tokens are kept per registry and scope.
type TokenKey = (RegistryKey, String);

/// Challenges per registry and tokens per (registry, scope); shared by all listings.
#[derive(Debug)]
pub(crate) struct Auth {
    allow_private_realms: bool,
    challenges: Cache<RegistryKey, Challenge>,
    tokens: Cache<TokenKey, Token>,
}

#[derive(Debug, Clone)]
struct Token {
    header: HeaderValue,
    usable_until: Instant,
}

/// Each token leaves the cache when it stops being usable.
struct UntilUnusable;

impl Expiry<TokenKey, Token> for UntilUnusable {
    fn expire_after_create(&self, _: &TokenKey, token: &Token, now: Instant) -> Option<Duration> {
        Some(token.usable_until.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &TokenKey,
        token: &Token,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(token.usable_until.saturating_duration_since(now))
    }
}

/// The realm's answer. Docker's spec names `token`; OAuth2-minded realms send
/// `access_token`. `expires_in` is read leniently: it comes from the upstream.
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    #[serde(default)]
    expires_in: serde_json::Value,
}

/// What a token is asked for: the realm and service of the registry's challenge, and the
/// scope of the request.
pub(crate) struct TokenRequest<'a> {
    pub registry: &'a Registry,
    pub realm: &'a str,
    pub service: Option<&'a str>,
    pub scope: &'a str,
}

impl Auth {
    pub(crate) fn new(allow_private_realms: bool) -> Self {
        Self {
            allow_private_realms,
            challenges: Cache::new(MAX_ENTRIES),
            tokens: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .expire_after(UntilUnusable)
                .build(),
        }
    }

    /// How the registry authenticates: remembered, else asked with `GET ping_url`.
    pub(crate) async fn challenge(
        &self,
        transport: &Transport,
        call: Call<'_>,
        key: &RegistryKey,
        ping_url: Url,
    ) -> Result<Challenge, UpstreamError> {
        if let Some(challenge) = self.challenges.get(key).await {
            return Ok(challenge);
        }
        let challenge = ping(transport, call, ping_url).await?;
        self.challenges.insert(key.clone(), challenge.clone()).await;
        Ok(challenge)
    }

    /// A bearer `Authorization` for the request's scope: remembered, else from the realm.
    pub(crate) async fn bearer(
        &self,
        transport: &Transport,
        call: Call<'_>,
        key: &RegistryKey,
        request: &TokenRequest<'_>,
    ) -> Result<HeaderValue, UpstreamError> {
        let token_key = (key.clone(), request.scope.to_owned());
        if let Some(token) = self.tokens.get(&token_key).await {
            return Ok(token.header);
        }
        let token = self.fetch_token(transport, call, request).await?;
        let header = token.header.clone();
        self.tokens.insert(token_key, token).await;
        Ok(header)
    }

    /// A `401` brought a fresh challenge: use it, and forget the token that was refused.
    pub(crate) async fn replace_challenge(
        &self,
        key: &RegistryKey,
        scope: &str,
        challenge: Challenge,
    ) {
        self.tokens
            .invalidate(&(key.clone(), scope.to_owned()))
            .await;
        self.challenges.insert(key.clone(), challenge).await;
    }

    async fn fetch_token(
        &self,
        transport: &Transport,
        call: Call<'_>,
        request: &TokenRequest<'_>,
    ) -> Result<Token, UpstreamError> {
        let refused = |reason: String| AuthError::RealmRefused {
            realm: redacted_url(request.realm),
            reason,
        };
        let mut url = Url::parse(request.realm).map_err(|e| refused(e.to_string()))?;
        let registry = request.registry;
        check_realm(&url, registry.insecure, self.allow_private_realms)
            .await
            .map_err(refused)?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = request.service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", request.scope);
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        // The realm is the one the bound host named in its own challenge, so the
        // credentials go only where that host sends them.
        if let Some(credentials) = registry.bound_credentials() {
            headers.insert(AUTHORIZATION, basic_header(credentials)?);
        }
        // `insecure` is Harbor's word about the registry's own host; a realm elsewhere gets
        // its certificate checked.
        let call = Call {
            insecure: call.insecure && url.host() == registry.base_url.host(),
            ..call
        };
        let started = Instant::now();
        let answer = transport.send(call, Method::GET, url, headers).await?;
        let status = answer.status();
        if let Some(limited) = rate_limit(status, answer.headers()) {
            return Err(limited);
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
        let (header, usable) = read_token_answer(&body)?;
        Ok(Token {
            header,
            usable_until: started + usable,
        })
    }
}

/// The `Authorization` header of a realm's answer, and for how long it may be used.
fn read_token_answer(body: &[u8]) -> Result<(HeaderValue, Duration), AuthError> {
    let parsed: TokenAnswer = serde_json::from_slice(body)
        .map_err(|e| AuthError::TokenAnswer(format!("not a token answer: {e}")))?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| AuthError::TokenAnswer("no token or access_token".into()))?;
    let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| AuthError::TokenAnswer("token is not a header value".into()))?;
    header.set_sensitive(true);
    Ok((header, usable_for(token_lifetime(&parsed.expires_in))))
}

/// `GET /v2/` to learn how the registry authenticates.
async fn ping(transport: &Transport, call: Call<'_>, url: Url) -> Result<Challenge, UpstreamError> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let answer = transport.send(call, Method::GET, url, headers).await?;
    if let Some(limited) = rate_limit(answer.status(), answer.headers()) {
        return Err(limited);
    }
    match answer.status().as_u16() {
        401 => Ok(parse_challenge(answer.headers())
            .map_err(AuthError::Challenge)?
            .unwrap_or(Challenge::Anonymous)),
        status if status >= 500 => Err(UpstreamError::Api { status }),
        // 200, and registries whose /v2/ answers oddly: try without credentials, and
        // let a 401 on the real request bring the challenge.
        _ => Ok(Challenge::Anonymous),
    }
}

/// The lifetime a realm gives its token in `expires_in`: seconds as a number or a string
/// (fractions cut off), at most [`MAX_TOKEN_LIFETIME`]; anything else, or under a second,
/// means [`DEFAULT_TOKEN_LIFETIME`].
fn token_lifetime(expires_in: &serde_json::Value) -> Duration {
    let seconds = match expires_in {
        serde_json::Value::Number(number) => number.as_f64(),
        serde_json::Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    match seconds {
        // Capped as a float first, so no value (infinity included) reaches the conversion
        // out of range; NaN fails the comparison.
        Some(seconds) if seconds >= 1.0 => {
            Duration::from_secs(seconds.min(MAX_TOKEN_LIFETIME.as_secs_f64()) as u64)
        }
        _ => DEFAULT_TOKEN_LIFETIME,
    }
}

/// How long a token of `lifetime` is used: less a margin, so it never expires on the way.
fn usable_for(lifetime: Duration) -> Duration {
    lifetime - TOKEN_EXPIRY_MARGIN.min(lifetime / 4)
}

pub(crate) fn basic_header(credentials: &Credentials) -> Result<HeaderValue, UpstreamError> {
    let encoded = BASE64.encode(format!("{}:{}", credentials.username, credentials.password));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| UpstreamError::Config("credentials are not a header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hostile_expires_in_values_are_clamped_or_defaulted() {
        let day = MAX_TOKEN_LIFETIME;
        let default = DEFAULT_TOKEN_LIFETIME;
        for (expires_in, lifetime) in [
            (json!(300), Duration::from_secs(300)),
            (json!(u64::MAX), day),
            (json!(86_401), day),
            (json!(1e300), day),
            (json!(f64::MAX), day),
            (json!(299.9), Duration::from_secs(299)),
            (json!("300"), Duration::from_secs(300)),
            (json!(" 18446744073709551615 "), day),
            (json!("99999999999999999999999"), day),
            (json!("inf"), day),
            (json!("NaN"), default),
            (json!("soon"), default),
            (json!(-5), default),
            (json!(i64::MIN), default),
            (json!(-1e300), default),
            (json!(0.5), default),
            (json!(0), default),
            (json!(null), default),
            (json!(true), default),
            (json!([300]), default),
            (json!({"seconds": 300}), default),
        ] {
            assert_eq!(token_lifetime(&expires_in), lifetime, "{expires_in}");
        }
    }

    #[test]
    fn a_token_answer_with_any_expires_in_is_read() {
        for body in [
            r#"{"token":"t","expires_in":18446744073709551615}"#,
            r#"{"token":"t","expires_in":1.7976931348623157e308}"#,
            r#"{"token":"t","expires_in":-1}"#,
            r#"{"token":"t","expires_in":"forever"}"#,
            r#"{"token":"t"}"#,
        ] {
            let (_, usable) = read_token_answer(body.as_bytes()).expect(body);
            assert!(usable <= MAX_TOKEN_LIFETIME, "{body}");
            assert!(Instant::now().checked_add(usable).is_some(), "{body}");
        }
    }

    #[test]
    fn tokens_are_used_until_shortly_before_they_expire() {
        assert_eq!(
            usable_for(Duration::from_secs(300)),
            Duration::from_secs(270)
        );
        assert_eq!(usable_for(Duration::from_secs(4)), Duration::from_secs(3));
        assert_eq!(usable_for(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_token_expires_when_it_stops_being_usable() {
        let now = Instant::now();
        let key = (
            RegistryKey::of(&Registry {
                name: "r".into(),
                base_url: "https://r.example".parse().unwrap(),
                kind: crate::registry::RegistryKind::Distribution,
                insecure: false,
                credentials: None,
            }),
            "repository:a:pull".to_owned(),
        );
        let token = Token {
            header: HeaderValue::from_static("Bearer t"),
            usable_until: now + Duration::from_secs(90),
        };
        assert_eq!(
            UntilUnusable.expire_after_create(&key, &token, now),
            Some(Duration::from_secs(90))
        );
        // A token replaced by a fresh one lives as long as the fresh one, not the old.
        assert_eq!(
            UntilUnusable.expire_after_update(
                &key,
                &token,
                now + Duration::from_secs(30),
                Some(Duration::from_secs(1))
            ),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            UntilUnusable.expire_after_create(&key, &token, now + Duration::from_secs(100)),
            Some(Duration::ZERO)
        );
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{Value, json};

        use super::*;

        /// Any JSON value, nested a little.
        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "\\PC{0,24}".prop_map(Value::from),
            ];
            leaf.prop_recursive(2, 8, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                        .prop_map(|map| Value::Object(map.into_iter().collect())),
                ]
            })
        }

        fn lifetime_of(seconds: u64) -> Duration {
            if seconds == 0 {
                DEFAULT_TOKEN_LIFETIME
            } else {
                Duration::from_secs(seconds).min(MAX_TOKEN_LIFETIME)
            }
        }

        proptest! {
            /// A token under either name, with any whole `expires_in`, reads back as sent with
            /// that lifetime, capped.
            #[test]
            fn a_token_answer_reads_back(
                token in "[A-Za-z0-9._~+/=-]{1,200}",
                name in prop::sample::select(vec!["token", "access_token"]),
                seconds in any::<u64>(),
            ) {
                let body = json!({ name: token, "expires_in": seconds }).to_string();
                let (header, usable) = read_token_answer(body.as_bytes()).unwrap();
                prop_assert_eq!(header.to_str().unwrap(), format!("Bearer {token}"));
                prop_assert!(header.is_sensitive());
                prop_assert_eq!(usable, usable_for(lifetime_of(seconds)));
            }

            /// Whatever `expires_in` is — huge, negative, fractional, a string, an object — the
            /// token is used for at most a day, and the time it is used until exists.
            #[test]
            fn any_expires_in_is_clamped(expires_in in json_value()) {
                let body = json!({ "token": "t", "expires_in": expires_in }).to_string();
                let (_, usable) = read_token_answer(body.as_bytes()).unwrap();
                prop_assert!(usable > Duration::ZERO);
                prop_assert!(usable <= MAX_TOKEN_LIFETIME);
                prop_assert!(Instant::now().checked_add(usable).is_some());
            }

            /// An answer without a usable token, whatever else it holds, is refused.
            #[test]
            fn an_answer_without_a_token_is_refused(
                others in prop::collection::btree_map("[a-z_]{1,12}", json_value(), 0..4),
                empty in prop::sample::select(vec![None, Some("token"), Some("access_token")]),
            ) {
                let mut answer: serde_json::Map<String, Value> = others
                    .into_iter()
                    .filter(|(key, _)| key != "token" && key != "access_token")
                    .collect();
                if let Some(name) = empty {
                    answer.insert(name.into(), json!(""));
                }
                let body = Value::Object(answer).to_string();
                prop_assert!(matches!(
                    read_token_answer(body.as_bytes()),
                    Err(AuthError::TokenAnswer(_))
                ));
            }

            /// Arbitrary bytes are a token answer only when they are JSON naming a non-empty
            /// token.
            #[test]
            fn arbitrary_bytes_are_a_token_only_when_they_name_one(
                body in prop::collection::vec(any::<u8>(), 0..256),
            ) {
                if let Ok((header, _)) = read_token_answer(&body) {
                    let answer: Value = serde_json::from_slice(&body).unwrap();
                    let token = ["token", "access_token"]
                        .iter()
                        .filter_map(|name| answer[name].as_str())
                        .find(|token| !token.is_empty())
                        .unwrap();
                    prop_assert_eq!(header.to_str().unwrap(), format!("Bearer {token}"));
                }
            }
        }
    }
}
