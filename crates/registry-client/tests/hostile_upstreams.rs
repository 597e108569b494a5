//! Upstreams that misbehave, spec-following but hostile or broken: each case asserts what
//! the client returns and that nothing reached an origin it must not reach.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use registry_client::{
    AuthError, Credentials, LimitKind, MemoryBudget, OverBudget, ReferrersSource, RegistryKind,
    UpstreamError,
};
use serde_json::json;
use support::*;

fn credentials_for(origin: &Origin) -> Option<Credentials> {
    Some(Credentials {
        username: "robot".into(),
        password: "pa55".into(),
        bound_host: format!("127.0.0.1:{}", origin.port),
    })
}

/// `Basic cm9ib3Q6cGE1NQ==` is `robot:pa55`.
const ROBOT_BASIC: &str = "Basic cm9ib3Q6cGE1NQ==";

/// A registry whose `/v2/` and referrers want `Bearer <token>` from `realm`.
fn bearer_registry(realm: String, token: &'static str) -> Origin {
    Origin::start(move |seen| {
        let challenge = format!(r#"Bearer realm="{realm}",service="test-registry""#);
        if seen.authorization.as_deref() != Some(&format!("Bearer {token}")) {
            return Reply::status(401).header("WWW-Authenticate", &challenge);
        }
        match seen.path() {
            "/v2/" => Reply::json(200, &json!({})),
            REFERRERS_PATH => Reply::index(&[descriptor('a', "sig")]),
            _ => Reply::status(404),
        }
    })
}

#[tokio::test]
async fn bearer_token_from_a_realm_on_another_origin_is_fetched_once_and_reused() {
    let token_server = Origin::start(|seen| {
        if seen.authorization.as_deref() == Some(ROBOT_BASIC) {
            Reply::json(200, &json!({"token": "t0k3n", "expires_in": 300}))
        } else {
            Reply::status(401)
        }
    });
    let upstream = bearer_registry(format!("{}/token", token_server.url()), "t0k3n");
    let mut registry = registry(&upstream);
    registry.credentials = credentials_for(&upstream);
    let client = client();
    for _ in 0..2 {
        let list = client
            .list_referrers(&registry, "team/app", &subject(), None)
            .await
            .unwrap();
        assert_eq!(list.source, ReferrersSource::Api);
        assert_eq!(digests(&list), [digest_of('a')]);
    }
    let token_requests = token_server.requests();
    assert_eq!(token_requests.len(), 1, "token cached: {token_requests:?}");
    let query = token_requests[0].query();
    assert!(query.contains("service=test-registry"), "{query}");
    assert!(
        query.contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{query}"
    );
    // The credentials went to the realm only; the registry saw nothing but the token.
    assert!(
        upstream
            .requests()
            .iter()
            .all(|s| s.authorization.as_deref() != Some(ROBOT_BASIC))
    );
}

#[tokio::test]
async fn anonymous_token_with_access_token_and_no_expiry() {
    let token_server = Origin::start(|_| Reply::json(200, &json!({"access_token": "anon"})));
    let upstream = bearer_registry(format!("{}/token", token_server.url()), "anon");
    let list = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('a')]);
    assert!(token_server.requests()[0].authorization.is_none());
}

#[tokio::test]
async fn an_expired_token_is_fetched_again() {
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&issued);
    let token_server = Origin::start(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Reply::json(200, &json!({"token": "short", "expires_in": 1}))
    });
    let upstream = bearer_registry(format!("{}/token", token_server.url()), "short");
    let client = client();
    let registry = registry(&upstream);
    client
        .list_referrers(&registry, "team/app", &subject(), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client
        .list_referrers(&registry, "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}

/// A realm that issues `tok-<username>` (`tok-anonymous` without credentials).
fn per_user_token_server() -> Origin {
    use base64::Engine as _;
    Origin::start(|seen| {
        let user = seen
            .authorization
            .as_deref()
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
            })
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|pair| pair.split_once(':').map(|(user, _)| user.to_owned()))
            .unwrap_or_else(|| "anonymous".into());
        Reply::json(
            200,
            &json!({"token": format!("tok-{user}"), "expires_in": 300}),
        )
    })
}

/// A registry that takes any token of `per_user_token_server`.
fn any_token_registry(realm: String) -> Origin {
    Origin::start(move |seen| {
        let challenge = format!(r#"Bearer realm="{realm}",service="test-registry""#);
        if !seen
            .authorization
            .as_deref()
            .is_some_and(|value| value.starts_with("Bearer tok-"))
        {
            return Reply::status(401).header("WWW-Authenticate", &challenge);
        }
        match seen.path() {
            "/v2/" => Reply::json(200, &json!({})),
            REFERRERS_PATH => Reply::index(&[descriptor('a', "sig")]),
            _ => Reply::status(404),
        }
    })
}

fn tokens_seen(upstream: &Origin) -> Vec<String> {
    upstream
        .requests()
        .into_iter()
        .filter(|seen| seen.path() == REFERRERS_PATH)
        .filter_map(|seen| seen.authorization)
        .collect()
}

#[tokio::test]
async fn registries_with_one_display_name_never_share_a_token() {
    let token_server = per_user_token_server();
    let realm = format!("{}/token", token_server.url());
    let first = any_token_registry(realm.clone());
    let second = any_token_registry(realm);
    let as_user = |origin: &Origin, username: &str| {
        let mut registry = registry(origin);
        registry.name = "shared".into();
        registry.credentials = Some(Credentials {
            username: username.into(),
            password: "pa55".into(),
            bound_host: format!("127.0.0.1:{}", origin.port),
        });
        registry
    };
    let anonymous_second = {
        let mut registry = registry(&second);
        registry.name = "shared".into();
        registry
    };
    let client = client();
    for registry in [
        as_user(&first, "alice"),
        as_user(&first, "bob"),
        as_user(&second, "alice"),
        anonymous_second,
        as_user(&first, "alice"),
    ] {
        client
            .list_referrers(&registry, "team/app", &subject(), None)
            .await
            .unwrap();
    }
    assert_eq!(
        tokens_seen(&first),
        ["Bearer tok-alice", "Bearer tok-bob", "Bearer tok-alice"]
    );
    assert_eq!(
        tokens_seen(&second),
        ["Bearer tok-alice", "Bearer tok-anonymous"]
    );
    // One token per (origin, user); alice's first token was used again, not fetched again.
    assert_eq!(token_server.requests().len(), 4);
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_and_the_registry_sees_no_request() {
    let token_server = Origin::start(|_| Reply::status(403));
    let upstream = bearer_registry(format!("{}/token", token_server.url()), "never");
    let error = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        UpstreamError::Auth(AuthError::TokenRefused { status: 403 })
    );
    assert!(!error.counts_against_breaker());
    assert_eq!(upstream.count("/v2/team"), 0);
}

#[tokio::test]
async fn a_registry_that_refuses_a_fresh_token_is_denied_after_one_retry() {
    let token_server = Origin::start(|_| Reply::json(200, &json!({"token": "useless"})));
    let upstream = bearer_registry(format!("{}/token", token_server.url()), "the-right-one");
    let error = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        UpstreamError::Auth(AuthError::Denied { status: 401 })
    );
    assert_eq!(upstream.count(REFERRERS_PATH), 2, "one retry, no more");
    assert_eq!(token_server.requests().len(), 2);
}

#[tokio::test]
async fn realms_on_link_local_or_loopback_are_refused_unless_allowed() {
    let token_server = Origin::start(|_| Reply::json(200, &json!({"token": "t"})));
    for realm in [
        "http://169.254.169.254/latest/meta-data".to_owned(),
        format!("{}/token", token_server.url()),
    ] {
        let upstream = bearer_registry(realm.clone(), "t");
        let mut registry = registry(&upstream);
        registry.credentials = credentials_for(&upstream);
        let error = client_with(|c| c.allow_private_realms = false)
            .list_referrers(&registry, "team/app", &subject(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, UpstreamError::Auth(AuthError::RealmRefused { .. })),
            "{realm}: {error}"
        );
        assert_eq!(upstream.count("/v2/team"), 0);
    }
    assert!(token_server.requests().is_empty());
}

#[tokio::test]
async fn a_plain_http_realm_is_refused_for_a_registry_not_marked_insecure() {
    // The registry itself must be https then; an http one is refused before any request.
    let upstream = Origin::start(|_| Reply::status(200));
    let mut registry = registry(&upstream);
    registry.insecure = false;
    let error = client()
        .list_referrers(&registry, "team/app", &subject(), None)
        .await
        .unwrap_err();
    assert_eq!(error.step(), "config");
    assert!(upstream.requests().is_empty());
}

/// A registry that serves pages: `page` query → (descriptors, Link header).
fn paged_registry(
    pages: impl Fn(&str, &str) -> (Vec<serde_json::Value>, Option<String>) + Send + Sync + 'static,
) -> Origin {
    Origin::start(move |seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        REFERRERS_PATH => {
            let (descriptors, link) = pages(seen.query(), &seen.target);
            let reply = Reply::index(&descriptors);
            match link {
                Some(link) => reply.header("Link", &link),
                None => reply,
            }
        }
        _ => Reply::status(404),
    })
}

#[tokio::test]
async fn pages_are_followed_through_relative_and_absolute_links_and_deduplicated() {
    let self_url = Arc::new(std::sync::OnceLock::<String>::new());
    let url = Arc::clone(&self_url);
    let upstream = paged_registry(move |query, _| match query {
        "" => (
            vec![descriptor('a', "sig"), descriptor('b', "sbom")],
            Some(format!("<{REFERRERS_PATH}?page=2>; rel=\"next\"")),
        ),
        "page=2" => (
            vec![descriptor('b', "sbom"), descriptor('c', "vex")],
            Some(format!(
                "<{}{REFERRERS_PATH}?page=3>; rel=next",
                url.get().unwrap()
            )),
        ),
        _ => (vec![descriptor('d', "att")], None),
    });
    self_url.set(upstream.url()).unwrap();
    let list = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(
        digests(&list),
        [
            digest_of('a'),
            digest_of('b'),
            digest_of('c'),
            digest_of('d')
        ]
    );
    assert!(!list.truncated);
    assert_eq!(upstream.count(REFERRERS_PATH), 3);
    // Unfiltered: no artifactType ever sent.
    assert!(
        upstream
            .requests()
            .iter()
            .all(|s| !s.query().contains("artifactType"))
    );
}

#[tokio::test]
async fn a_link_to_another_origin_is_not_followed() {
    let elsewhere = Origin::start(|_| Reply::index(&[descriptor('e', "evil")]));
    let next = format!("<{}{REFERRERS_PATH}?page=2>; rel=\"next\"", elsewhere.url());
    let upstream = paged_registry(move |_, _| (vec![descriptor('a', "sig")], Some(next.clone())));
    let list = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('a')]);
    assert!(list.truncated);
    assert!(elsewhere.requests().is_empty());
}

#[tokio::test]
async fn a_link_loop_stops() {
    let upstream = paged_registry(|query, _| match query {
        "" => (
            vec![descriptor('a', "sig")],
            Some(format!("<{REFERRERS_PATH}?page=2>; rel=\"next\"")),
        ),
        _ => (
            vec![descriptor('b', "sig")],
            Some(format!("<{REFERRERS_PATH}>; rel=\"next\"")),
        ),
    });
    let list = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('a'), digest_of('b')]);
    assert!(list.truncated);
    assert_eq!(upstream.count(REFERRERS_PATH), 2);
}

#[tokio::test]
async fn more_pages_than_max_pages_is_truncated() {
    let fills = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
    let upstream = paged_registry(move |query, _| {
        let page: usize = query
            .strip_prefix("page=")
            .map_or(0, |p| p.parse().unwrap());
        (
            vec![descriptor(fills[page % fills.len()], "sig")],
            Some(format!(
                "<{REFERRERS_PATH}?page={}>; rel=\"next\"",
                page + 1
            )),
        )
    });
    let list = client_with(|c| c.max_pages = 3)
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(list.descriptors.len(), 3);
    assert!(list.truncated);
    assert_eq!(upstream.count(REFERRERS_PATH), 3);
}

/// A registry whose referrers endpoint answers `api` and whose fallback tag holds one
/// referrer.
fn registry_without_api(api: impl Fn() -> Reply + Send + Sync + 'static) -> Origin {
    Origin::start(move |seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        REFERRERS_PATH => api(),
        TAG_PATH => Reply::index(&[descriptor('f', "sig")]),
        _ => Reply::status(404),
    })
}

#[tokio::test]
async fn api_absent_answers_lead_to_the_fallback_tag_and_are_remembered() {
    type Answer = (&'static str, fn() -> Reply);
    let absent_answers: Vec<Answer> = vec![
        ("404 text", || {
            Reply::text(404, "text/plain", "404 page not found")
        }),
        ("405", || Reply::status(405)),
        ("400", || Reply::status(400)),
        ("501", || Reply::status(501)),
        ("200 HTML", || {
            Reply::text(
                200,
                "text/html; charset=utf-8",
                "<html>Please log in</html>",
            )
        }),
        ("200 manifest", || {
            Reply::json(200, &json!({"schemaVersion": 2})).header("Content-Type", MANIFEST)
        }),
    ];
    for (name, answer) in absent_answers {
        let upstream = registry_without_api(answer);
        let client = client();
        for _ in 0..2 {
            let list = client
                .list_referrers(&registry(&upstream), "team/app", &subject(), None)
                .await
                .unwrap();
            assert_eq!(list.source, ReferrersSource::FallbackTag, "{name}");
            assert_eq!(digests(&list), [digest_of('f')], "{name}");
        }
        assert_eq!(
            upstream.count(REFERRERS_PATH),
            1,
            "{name}: absence remembered"
        );
    }
}

#[tokio::test]
async fn name_unknown_is_not_remembered_as_a_missing_api() {
    let upstream = Origin::start(|seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        REFERRERS_PATH => Reply::json(
            404,
            &json!({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}),
        ),
        _ => Reply::json(404, &json!({"errors": [{"code": "NAME_UNKNOWN"}]})),
    });
    let client = client();
    for _ in 0..2 {
        let list = client
            .list_referrers(&registry(&upstream), "team/app", &subject(), None)
            .await
            .unwrap();
        assert_eq!(list, registry_client::UpstreamReferrers::none());
    }
    assert_eq!(upstream.count(REFERRERS_PATH), 2);
}

#[tokio::test]
async fn a_first_page_over_the_byte_cap_is_a_limit_error_and_a_later_one_truncates() {
    let big: Vec<_> = ('0'..='9')
        .chain('a'..='f')
        .map(|c| descriptor(c, "sig"))
        .collect();
    let upstream = paged_registry(move |query, _| match query {
        "" => (big.clone(), None),
        _ => unreachable!(),
    });
    let error = client_with(|c| c.max_page_bytes = 1024)
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        UpstreamError::Limit {
            kind: LimitKind::ReferrersPage,
            limit: 1024
        }
    );

    let big: Vec<_> = ('0'..='9')
        .chain('a'..='f')
        .map(|c| descriptor(c, "sig"))
        .collect();
    let upstream = paged_registry(move |query, _| match query {
        "" => (
            vec![descriptor('a', "sig")],
            Some(format!("<{REFERRERS_PATH}?page=2>; rel=\"next\"")),
        ),
        _ => (big.clone(), None),
    });
    let list = client_with(|c| c.max_page_bytes = 1024)
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('a')]);
    assert!(list.truncated);
}

#[tokio::test]
async fn a_listing_the_memory_budget_cannot_hold_is_refused_and_gives_the_budget_back() {
    let pages = || {
        paged_registry(|query, _| match query {
            "" => (
                vec![descriptor('a', "sig")],
                Some(format!("<{REFERRERS_PATH}?page=2>; rel=\"next\"")),
            ),
            _ => (vec![descriptor('b', "sig")], None),
        })
    };
    // Both pages fit a budget of 64 KiB; then the budget is all back.
    let roomy = MemoryBudget::new(64 * 1024);
    let budget = roomy.clone();
    let upstream = pages();
    let list = client_with(move |c| c.memory_budget = budget)
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('a'), digest_of('b')]);
    assert_eq!(roomy.in_use(), 0);

    // Another listing holds all but a few bytes: the first page is refused.
    let tight = MemoryBudget::new(64 * 1024);
    let mut holder = tight.reservation();
    holder.grow(64 * 1024 - 16).unwrap();
    let budget = tight.clone();
    let upstream = pages();
    let error = client_with(move |c| c.memory_budget = budget)
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        UpstreamError::OverBudget(OverBudget { limit: 64 * 1024 })
    );
    assert!(!error.counts_against_breaker());
    drop(holder);
    assert_eq!(tight.in_use(), 0);
}

#[tokio::test]
async fn a_body_that_never_ends_is_refused_by_the_budget_before_the_cap() {
    let upstream = Origin::start(|seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        _ => Reply::status(200)
            .header("Content-Type", INDEX)
            .with_body(Body::Endless),
    });
    let budget = MemoryBudget::new(64 * 1024);
    let shared = budget.clone();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        client_with(move |c| {
            c.max_page_bytes = 256 * 1024;
            c.memory_budget = shared;
        })
        .list_referrers(&registry(&upstream), "team/app", &subject(), None),
    )
    .await
    .expect("bounded");
    assert_eq!(
        outcome.unwrap_err(),
        UpstreamError::OverBudget(OverBudget { limit: 64 * 1024 })
    );
    assert_eq!(budget.in_use(), 0);
}

#[tokio::test]
async fn a_body_that_never_ends_is_cut_at_the_cap() {
    let upstream = Origin::start(|seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        _ => Reply::status(200)
            .header("Content-Type", INDEX)
            .with_body(Body::Endless),
    });
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        client_with(|c| c.max_page_bytes = 256 * 1024).list_referrers(
            &registry(&upstream),
            "team/app",
            &subject(),
            None,
        ),
    )
    .await
    .expect("bounded");
    assert_eq!(
        outcome.unwrap_err(),
        UpstreamError::Limit {
            kind: LimitKind::ReferrersPage,
            limit: 256 * 1024
        }
    );
}

#[tokio::test]
async fn a_slow_upstream_past_the_timeout_is_a_timeout() {
    let upstream = Origin::start(|seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        _ => Reply::index(&[]).with_body(Body::After(Duration::from_secs(30), b"{}".to_vec())),
    });
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        client_with(|c| c.timeout = Duration::from_secs(1)).list_referrers(
            &registry(&upstream),
            "team/app",
            &subject(),
            None,
        ),
    )
    .await
    .expect("the listing is bounded by its own timeout");
    let error = outcome.unwrap_err();
    assert_eq!(error, UpstreamError::Timeout(Duration::from_secs(1)));
    assert!(error.counts_against_breaker());
}

#[tokio::test]
async fn a_cross_origin_redirect_is_not_followed_and_credentials_stay_home() {
    let elsewhere = Origin::start(|_| Reply::index(&[descriptor('e', "evil")]));
    let target = format!("{}{REFERRERS_PATH}", elsewhere.url());
    let upstream = Origin::start(move |seen| {
        if seen.authorization.as_deref() != Some(ROBOT_BASIC) {
            return Reply::status(401).header("WWW-Authenticate", r#"Basic realm="r""#);
        }
        match seen.path() {
            "/v2/" => Reply::json(200, &json!({})),
            _ => Reply::status(302).header("Location", &target),
        }
    });
    let mut registry = registry(&upstream);
    registry.credentials = credentials_for(&upstream);
    let error = client()
        .list_referrers(&registry, "team/app", &subject(), None)
        .await
        .unwrap_err();
    assert!(matches!(error, UpstreamError::Redirect { .. }), "{error}");
    assert!(elsewhere.requests().is_empty());
}

#[tokio::test]
async fn a_same_origin_redirect_is_followed() {
    let upstream = Origin::start(|seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        REFERRERS_PATH => Reply::status(307).header("Location", "/moved/referrers"),
        "/moved/referrers" => Reply::index(&[descriptor('c', "sig")]),
        _ => Reply::status(404),
    });
    let list = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('c')]);
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let upstream = Origin::start(|seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        _ => Reply::status(429).header("Retry-After", "120"),
    });
    let error = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        UpstreamError::RateLimited {
            retry_after: Some(Duration::from_secs(120))
        }
    );
    assert!(!error.counts_against_breaker());
}

#[tokio::test]
async fn server_errors_count_against_the_breaker() {
    let upstream = Origin::start(|seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        REFERRERS_PATH => Reply::status(503),
        _ => Reply::status(500),
    });
    let error = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap_err();
    assert_eq!(error, UpstreamError::Api { status: 503 });
    assert!(error.counts_against_breaker());
    // No fallback on a 5xx: the API exists and is unwell.
    assert_eq!(upstream.count(TAG_PATH), 0);
}

#[tokio::test]
async fn invalid_descriptors_are_dropped_and_counted() {
    let upstream = Origin::start(|seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        _ => Reply::index(&[
            descriptor('a', "sig"),
            json!({"mediaType": MANIFEST, "digest": "sha256:nothex", "size": 1}),
            json!("not a descriptor"),
        ]),
    });
    let list = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('a')]);
    assert_eq!(list.rejected, 2);
}

#[tokio::test]
async fn garbage_with_the_index_type_is_a_decode_error() {
    let upstream = Origin::start(|seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        _ => Reply::text(200, INDEX, "<html>not json</html>"),
    });
    let error = client()
        .list_referrers(&registry(&upstream), "team/app", &subject(), None)
        .await
        .unwrap_err();
    assert_eq!(error.step(), "decode");
}

#[tokio::test]
async fn docker_hub_heads_the_fallback_tag_and_gets_only_when_it_changed() {
    let version = Arc::new(AtomicUsize::new(0));
    let current = Arc::clone(&version);
    let upstream = Origin::start(move |seen| match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        REFERRERS_PATH => Reply::text(404, "text/plain", "404 page not found"),
        TAG_PATH => {
            let fill = if current.load(Ordering::SeqCst) == 0 {
                'a'
            } else {
                'b'
            };
            let reply = Reply::index(&[descriptor(fill, "sig")]);
            let support::Body::Bytes(bytes) = &reply.body else {
                unreachable!()
            };
            let digest = e2e::upstreams::sha256_digest(bytes);
            let reply = reply.header("Docker-Content-Digest", &digest);
            if seen.method == "HEAD" {
                reply.body(Vec::new())
            } else {
                reply
            }
        }
        _ => Reply::status(404),
    });
    let mut registry = registry(&upstream);
    registry.kind = RegistryKind::DockerHub;
    let client = client();
    let first = client
        .list_referrers(&registry, "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(digests(&first), [digest_of('a')]);
    let gets = |origin: &Origin| {
        origin
            .requests()
            .iter()
            .filter(|s| s.path() == TAG_PATH && s.method == "GET")
            .count()
    };
    assert_eq!(gets(&upstream), 1);

    let unchanged = client
        .list_referrers(&registry, "team/app", &subject(), Some(&first))
        .await
        .unwrap();
    assert_eq!(unchanged, first);
    assert_eq!(gets(&upstream), 1, "unchanged tag: HEAD only");

    version.store(1, Ordering::SeqCst);
    let changed = client
        .list_referrers(&registry, "team/app", &subject(), Some(&first))
        .await
        .unwrap();
    assert_eq!(digests(&changed), [digest_of('b')]);
    assert_eq!(gets(&upstream), 2);
}
