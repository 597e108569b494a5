//! Upstream traffic goes through the egress proxy of `HTTP_PROXY`/`HTTPS_PROXY`, except for
//! hosts in `NO_PROXY`. The environment is process-wide, so this binary holds one test that
//! sets it between scenarios, before each client is built (the client reads it then).

mod support;

use registry_client::{ClientConfig, ReferrersSource, RegistryClient, UpstreamError};
use serde_json::json;
use support::proxy::Proxy;
use support::*;

/// Reachable only through the proxy: `.test` never resolves (RFC 6761).
const PROXIED_HOST: &str = "registry.test";

fn set_proxy_env(proxy: &str, no_proxy: Option<&str>) {
    // SAFETY: this binary runs a single test, and nothing reads the environment while it
    // changes: clients are built after, on this thread.
    unsafe {
        for name in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "http_proxy",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            std::env::remove_var(name);
        }
        std::env::set_var("HTTP_PROXY", proxy);
        std::env::set_var("HTTPS_PROXY", proxy);
        if let Some(no_proxy) = no_proxy {
            std::env::set_var("NO_PROXY", no_proxy);
        }
    }
}

fn upstream_route(seen: &Seen) -> Reply {
    match seen.path() {
        "/v2/" => Reply::json(200, &json!({})),
        REFERRERS_PATH => Reply::index(&[descriptor('a', "sig")]),
        _ => Reply::status(404),
    }
}

#[tokio::test]
async fn upstream_traffic_goes_through_the_proxy_unless_no_proxy_says_otherwise() {
    let proxy = Proxy::start(&[PROXIED_HOST]).await;
    let plain = Origin::start(upstream_route);
    let ca = TestCa::new();
    let tls = Origin::start_tls(upstream_route, ca.server_config(&[PROXIED_HOST]));
    let config = || ClientConfig {
        extra_ca_file: Some(ca.ca_file.clone()),
        ..support::test_config()
    };

    set_proxy_env(&proxy.url(), None);
    let client = RegistryClient::new(config()).unwrap();

    // http: absolute-form requests to the proxy.
    let mut over_http = registry(&plain);
    over_http.base_url = format!("http://{PROXIED_HOST}:{}", plain.port)
        .parse()
        .unwrap();
    let list = client
        .list_referrers(&over_http, "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(list.source, ReferrersSource::Api);
    assert_eq!(digests(&list), [digest_of('a')]);
    let lines = proxy.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("GET http://{PROXIED_HOST}:{}/v2/", plain.port))),
        "{lines:?}"
    );

    // https: a CONNECT tunnel, TLS verified end to end with the configured CA.
    let mut over_https = registry(&tls);
    over_https.base_url = format!("https://{PROXIED_HOST}:{}", tls.port)
        .parse()
        .unwrap();
    over_https.insecure = false;
    let list = client
        .list_referrers(&over_https, "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('a')]);
    assert!(
        proxy
            .lines()
            .contains(&format!("CONNECT {PROXIED_HOST}:{} HTTP/1.1", tls.port)),
        "{:?}",
        proxy.lines()
    );

    // NO_PROXY by address: straight to 127.0.0.1, the proxy sees nothing new.
    set_proxy_env(&proxy.url(), Some("127.0.0.1"));
    let client = RegistryClient::new(config()).unwrap();
    let before = proxy.lines().len();
    let seen_before = plain.requests().len();
    let list = client
        .list_referrers(&registry(&plain), "team/app", &subject(), None)
        .await
        .unwrap();
    assert_eq!(digests(&list), [digest_of('a')]);
    assert_eq!(proxy.lines().len(), before);
    assert!(plain.requests().len() > seen_before);

    // NO_PROXY by name: the client dials registry.test itself, which cannot resolve.
    set_proxy_env(&proxy.url(), Some(&format!("localhost,{PROXIED_HOST}")));
    let client = RegistryClient::new(config()).unwrap();
    let error = client
        .list_referrers(&over_http, "team/app", &subject(), None)
        .await
        .unwrap_err();
    assert!(matches!(error, UpstreamError::Connect { .. }), "{error}");
    assert_eq!(proxy.lines().len(), before);
}
