//! What a client sees for malformed referrers requests, and that valid ones reach core.

use e2e::config::{Configure, for_core};
use e2e::metrics::{self, Outcome, StatusClass};
use e2e::{Sidecar, StandinCore};

fn digest() -> String {
    format!("sha256:{}", "ab".repeat(32))
}

async fn get(sidecar: &Sidecar, path: &str) -> (u16, serde_json::Value) {
    let response = e2e::get(&sidecar.url(path)).await;
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    (status, response.json().await.expect("json body"))
}

#[tokio::test]
async fn malformed_requests_get_oci_errors_and_never_reach_core() {
    let core = StandinCore::start();
    let sidecar = Sidecar::start(&for_core(&core.url()).with(|s| s.response.max_page_size = 50));
    let d = digest();
    let cases = [
        (format!("/v2/Proxy/nginx/referrers/{d}"), "NAME_INVALID"),
        (format!("/v2/proxy%2Fnginx/referrers/{d}"), "NAME_INVALID"),
        (format!("/v2/proxy//nginx/referrers/{d}"), "NAME_INVALID"),
        (
            "/v2/proxy/nginx/referrers/sha256:1234".to_owned(),
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/proxy/nginx/referrers/sha256:{}", "AB".repeat(32)),
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/proxy/nginx/referrers/{d}?n=0"),
            "PAGINATION_NUMBER_INVALID",
        ),
        (
            format!("/v2/proxy/nginx/referrers/{d}?n=51"),
            "PAGINATION_NUMBER_INVALID",
        ),
        (
            format!("/v2/proxy/nginx/referrers/{d}?n=-1"),
            "PAGINATION_NUMBER_INVALID",
        ),
        (
            format!("/v2/proxy/nginx/referrers/{d}?last=nope"),
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/proxy/nginx/referrers/{d}?artifactType=%FF%FE"),
            "UNSUPPORTED",
        ),
    ];
    for (path, code) in &cases {
        let (status, body) = get(&sidecar, path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["errors"][0]["code"], *code, "{path}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Dot segments and odd bytes, sent as they are: a clear 400, never a crash or core.
    let junk: [&[u8]; 7] = [
        b"proxy/../nginx",
        b"proxy/./nginx",
        b"proxy/%2E%2E/nginx",
        b"proxy/%00",
        b"proxy/%ZZ",
        b"proxy/a;b",
        b"proxy/%",
    ];
    for name in junk {
        let mut target = b"/v2/".to_vec();
        target.extend_from_slice(name);
        target.extend_from_slice(format!("/referrers/{d}").as_bytes());
        let response = e2e::raw_get(sidecar.port, &target);
        let shown = String::from_utf8_lossy(&target);
        assert_eq!(response.status, 400, "{shown}: {}", response.head);
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
        assert_eq!(body["errors"][0]["code"], "NAME_INVALID", "{shown}: {body}");
    }
    // Bytes that are not even a valid request target are refused by the HTTP parser itself.
    let mut target = b"/v2/proxy/\xF0\x9F\x98\x80/referrers/".to_vec();
    target.extend_from_slice(d.as_bytes());
    assert_eq!(e2e::raw_get(sidecar.port, &target).status, 400);
    assert!(
        e2e::get(&sidecar.url("/healthz"))
            .await
            .status()
            .is_success()
    );

    let metrics = sidecar.metrics().await;
    let invalid = format!("{} ", metrics::requests(Outcome::Invalid));
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&invalid))
        .and_then(|v| v.parse().ok())
        .expect("invalid counter");
    assert_eq!(counted, (cases.len() + junk.len()) as u64, "{metrics}");
    assert!(
        metrics.contains(&format!("{} 0", metrics::passthrough(StatusClass::Success))),
        "no malformed request may reach core: {metrics}"
    );
}

#[tokio::test]
async fn a_valid_request_reaches_core_with_its_raw_query() {
    let core = StandinCore::start();
    let sidecar = Sidecar::start(&for_core(&core.url()));
    let d = digest();
    let path = format!(
        "/v2/proxy/library/nginx/referrers/{d}?artifactType=application/vnd.cncf.notary.signature%2Bjson&ns=docker.io"
    );
    let response = e2e::get(&sidecar.url(&path)).await;
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.expect("json");
    assert_eq!(echo["target"], path);
    // The all-zero digest (oras-go's probe) is a valid request.
    let zero = format!("/v2/proxy/nginx/referrers/sha256:{}", "0".repeat(64));
    assert_eq!(e2e::get(&sidecar.url(&zero)).await.status(), 200);
}
