//! Reading `WWW-Authenticate`: which auth scheme a registry wants and where its token realm is.
//!
//! REF: <https://distribution.github.io/distribution/spec/auth/token/>
//! REF: <https://www.rfc-editor.org/rfc/rfc9110#section-11.6.1>

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

/// What a registry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No challenge (a `/v2/` that answered 200): send nothing.
    Anonymous,
    /// `Basic`: send the bound credentials on every request.
    Basic,
    /// `Bearer realm=…,service=…`: get a token from the realm.
    Bearer {
        /// Where tokens come from, as the upstream wrote it (checked before use).
        realm: String,
        /// `service` parameter, passed back to the realm.
        service: Option<String>,
    },
}

/// The challenge of a response's `WWW-Authenticate` headers. `Bearer` is preferred over
/// `Basic` when both are offered; `Ok(None)` when there is no header at all.
///
/// # Errors
///
/// A reason when the header cannot be parsed, a `Bearer` challenge has no realm, or only
/// schemes this client cannot answer are offered.
pub fn parse_challenge(headers: &HeaderMap) -> Result<Option<Challenge>, String> {
    let mut saw_header = false;
    let mut basic = false;
    let mut offered = Vec::new();
    for value in headers.get_all(WWW_AUTHENTICATE) {
        saw_header = true;
        let text = value
            .to_str()
            .map_err(|_| "WWW-Authenticate is not visible ASCII".to_owned())?;
        let challenges =
            http_auth::parse_challenges(text).map_err(|e| format!("WWW-Authenticate: {e}"))?;
        for challenge in challenges {
            if challenge.scheme.eq_ignore_ascii_case("bearer") {
                let param = |name: &str| {
                    challenge
                        .params
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(name))
                        .map(|(_, value)| value.to_unescaped())
                };
                let realm = param("realm")
                    .filter(|realm| !realm.is_empty())
                    .ok_or_else(|| "Bearer challenge without realm".to_owned())?;
                return Ok(Some(Challenge::Bearer {
                    realm,
                    service: param("service"),
                }));
            }
            if challenge.scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            } else {
                offered.push(challenge.scheme.to_owned());
            }
        }
    }
    if basic {
        Ok(Some(Challenge::Basic))
    } else if saw_header {
        Err(format!("unsupported auth schemes {offered:?}"))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(WWW_AUTHENTICATE, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn docker_hub_bearer() {
        let parsed = parse_challenge(&headers(&[
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        ]))
        .unwrap();
        assert_eq!(
            parsed,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
    }

    #[test]
    fn bearer_wins_over_basic_in_any_order() {
        for values in [
            vec![r#"Basic realm="x""#, r#"Bearer realm="https://a/t""#],
            vec![r#"Basic realm="x", Bearer realm="https://a/t""#],
        ] {
            assert!(matches!(
                parse_challenge(&headers(&values)).unwrap(),
                Some(Challenge::Bearer { .. })
            ));
        }
    }

    #[test]
    fn basic_none_and_broken() {
        assert_eq!(
            parse_challenge(&headers(&[r#"Basic realm="Registry Realm""#])).unwrap(),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge(&HeaderMap::new()).unwrap(), None);
        assert!(parse_challenge(&headers(&[r#"Bearer service="s""#])).is_err());
        assert!(parse_challenge(&headers(&[r#"Negotiate realm="x""#])).is_err());
        assert!(parse_challenge(&headers(&["Bearer realm=\"unterminated"])).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// `text` as the content of a quoted string (RFC 9110 §5.6.4).
        fn quoted(text: &str) -> String {
            text.replace('\\', "\\\\").replace('"', "\\\"")
        }

        proptest! {
            /// Any realm and service, quoted as registries write them, read back as sent.
            #[test]
            fn a_bearer_challenge_reads_back_as_written(
                scheme in prop::sample::select(vec!["Bearer", "bearer", "BEARER"]),
                realm in "[ -~]{1,60}",
                service in prop::option::of("[ -~]{0,30}"),
                scope in prop::option::of("[ -~]{0,30}"),
            ) {
                let mut value = format!("{scheme} realm=\"{}\"", quoted(&realm));
                if let Some(service) = &service {
                    value.push_str(&format!(",service=\"{}\"", quoted(service)));
                }
                if let Some(scope) = &scope {
                    value.push_str(&format!(",scope=\"{}\"", quoted(scope)));
                }
                prop_assert_eq!(
                    parse_challenge(&headers(&[&value])),
                    Ok(Some(Challenge::Bearer { realm, service }))
                );
            }

            /// Whatever a header says, it is read as a scheme it names or refused: never no
            /// challenge, never a Bearer without a realm.
            #[test]
            fn any_header_is_a_scheme_it_names_or_an_error(value in "[ -~]{0,80}") {
                let named = value.to_ascii_lowercase();
                match parse_challenge(&headers(&[&value])) {
                    Ok(Some(Challenge::Bearer { realm, .. })) => {
                        prop_assert!(!realm.is_empty());
                        prop_assert!(named.contains("bearer") && named.contains("realm"));
                    }
                    Ok(Some(Challenge::Basic)) => prop_assert!(named.contains("basic")),
                    Ok(other) => prop_assert!(false, "{value:?} read as {other:?}"),
                    Err(_) => {}
                }
            }
        }
    }
}
