//! Upstreams over TLS: trusted through the configured CA bundle, refused without it, and
//! unverified only for registries Harbor marks insecure.

mod support;

use registry_client::{ClientConfig, ReferrersSource, RegistryClient, UpstreamError};
use serde_json::json;
use support::*;

fn tls_upstream(ca: &TestCa) -> Origin {
    Origin::start_tls(
        |seen| match seen.path() {
            "/v2/" => Reply::json(200, &json!({})),
            REFERRERS_PATH => Reply::index(&[descriptor('a', "sig")]),
            _ => Reply::status(404),
        },
        ca.server_config(&["127.0.0.1", "localhost"]),
    )
}

fn https_registry(origin: &Origin, insecure: bool) -> registry_client::Registry {
    let mut registry = registry(origin);
    registry.base_url = format!("https://127.0.0.1:{}", origin.port)
        .parse()
        .unwrap();
    registry.insecure = insecure;
    registry
}

#[tokio::test]
async fn a_registry_signed_by_the_configured_ca_is_trusted() {
    let ca = TestCa::new();
    let upstream = tls_upstream(&ca);
    let client = RegistryClient::new(ClientConfig {
        extra_ca_file: Some(ca.ca_file.clone()),
        ..support::test_config()
    })
    .unwrap();
    let list = client
        .list_referrers(
            &https_registry(&upstream, false),
            "team/app",
            &subject(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(list.source, ReferrersSource::Api);
    assert_eq!(digests(&list), [digest_of('a')]);
}

#[tokio::test]
async fn an_unknown_ca_is_a_tls_error_and_nothing_is_sent() {
    let ca = TestCa::new();
    let upstream = tls_upstream(&ca);
    let error = client()
        .list_referrers(
            &https_registry(&upstream, false),
            "team/app",
            &subject(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, UpstreamError::Tls { .. }), "{error}");
    assert!(!error.counts_against_breaker());
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn an_insecure_registry_is_read_without_verifying_its_certificate() {
    let ca = TestCa::new();
    let upstream = tls_upstream(&ca);
    let list = client()
        .list_referrers(
            &https_registry(&upstream, true),
            "team/app",
            &subject(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('a')]);
}

#[test]
fn an_unreadable_ca_bundle_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for path in [dir.path().join("missing.pem"), empty] {
        let error = RegistryClient::new(ClientConfig {
            extra_ca_file: Some(path),
            ..support::test_config()
        })
        .unwrap_err();
        assert!(error.to_string().contains("CA bundle"), "{error}");
    }
}

/// An insecure registry over TLS whose challenge names `realm`.
fn insecure_bearer_registry(ca: &TestCa, realm: String) -> Origin {
    Origin::start_tls(
        move |seen| {
            if seen.authorization.as_deref() != Some("Bearer t") {
                let challenge = format!(r#"Bearer realm="{realm}",service="s""#);
                return Reply::status(401).header("WWW-Authenticate", &challenge);
            }
            match seen.path() {
                "/v2/" => Reply::json(200, &json!({})),
                REFERRERS_PATH => Reply::index(&[descriptor('a', "sig")]),
                _ => Reply::status(404),
            }
        },
        ca.server_config(&["127.0.0.1", "localhost"]),
    )
}

#[tokio::test]
async fn a_token_realm_is_unverified_only_on_the_insecure_registry_s_own_host() {
    // Neither certificate is signed by a CA the client trusts.
    let ca = TestCa::new();
    let realm = Origin::start_tls(
        |_| Reply::json(200, &json!({"token": "t"})),
        ca.server_config(&["127.0.0.1", "localhost"]),
    );
    let same_host =
        insecure_bearer_registry(&ca, format!("https://127.0.0.1:{}/token", realm.port));
    let list = client()
        .list_referrers(
            &https_registry(&same_host, true),
            "team/app",
            &subject(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('a')]);
    assert_eq!(realm.requests().len(), 1);

    let other_host =
        insecure_bearer_registry(&ca, format!("https://localhost:{}/token", realm.port));
    let error = client()
        .list_referrers(
            &https_registry(&other_host, true),
            "team/app",
            &subject(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, UpstreamError::Tls { .. }), "{error}");
    assert_eq!(
        realm.requests().len(),
        1,
        "no token asked over unverified TLS"
    );
    assert_eq!(other_host.count(REFERRERS_PATH), 0);
}
