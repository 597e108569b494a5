//! Answers go out gzip-compressed to a caller that accepts it (every Go client, Python's
//! requests, `curl --compressed`), the same bytes once inflated as the identity answer, with
//! `Vary: Accept-Encoding`; `HEAD` gets the same headers; a caller that does not ask gets
//! identity.

use std::process::Command;

use e2e::upstreams::venv_python;
use e2e::users::ALICE;
use e2e::world::{Mirror, World, referrers_path};
use flate2::read::GzDecoder;
use serde_json::json;
use std::io::Read as _;

/// Referrers pushed upstream besides the sample's: a page of several KiB.
const MORE: usize = 30;

#[tokio::test]
async fn a_page_is_sent_gzip_compressed_to_a_caller_that_accepts_it() {
    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .start();
    let mirror = world.mirror("hub-proxy");
    let pusher = e2e::upstreams::Pusher::new(&mirror.url());
    for i in 0..MORE {
        pusher
            .push_referrer(
                &mirror.repository,
                &mirror.sample.subject,
                "application/vnd.example.sbom",
                json!({"org.example.index": i.to_string()}),
            )
            .await;
    }
    let sidecar = world.sidecar();
    let path = referrers_path("hub-proxy/team/app", &mirror.sample.subject.digest);
    let get = |encoding: Option<&'static str>, method: reqwest::Method| {
        let mut request = e2e::http_client()
            .request(method, sidecar.url(&path))
            .basic_auth(ALICE.name, Some(ALICE.password));
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        request.send()
    };

    let identity = get(None, reqwest::Method::GET).await.expect("identity");
    assert_eq!(identity.status(), 200);
    assert!(identity.headers().get("content-encoding").is_none());
    assert_eq!(identity.headers()["vary"], "Accept-Encoding");
    let identity = identity.bytes().await.expect("body");
    let index: serde_json::Value = serde_json::from_slice(&identity).expect("an index");
    assert_eq!(
        index["manifests"].as_array().map(Vec::len),
        Some(mirror.sample.referrers.len() + MORE + 1),
        "the upstream's referrers and Harbor's own"
    );

    for _ in 0..2 {
        // The first written, the second from the memo: both inflate to the identity bytes.
        let compressed = get(Some("gzip, deflate"), reqwest::Method::GET)
            .await
            .expect("gzip");
        assert_eq!(compressed.status(), 200);
        assert_eq!(compressed.headers()["content-encoding"], "gzip");
        assert_eq!(compressed.headers()["vary"], "Accept-Encoding");
        let compressed = compressed.bytes().await.expect("body");
        assert!(
            compressed.len() * 2 < identity.len(),
            "{} bytes gzip for {} identity",
            compressed.len(),
            identity.len()
        );
        let mut inflated = Vec::new();
        GzDecoder::new(&compressed[..])
            .read_to_end(&mut inflated)
            .expect("gzip");
        assert_eq!(inflated, identity);
    }

    let head = get(Some("gzip"), reqwest::Method::HEAD)
        .await
        .expect("head");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-encoding"], "gzip");
    assert_eq!(head.headers()["vary"], "Accept-Encoding");
    let refused = get(Some("gzip;q=0, identity"), reqwest::Method::GET)
        .await
        .expect("q=0");
    assert!(refused.headers().get("content-encoding").is_none());

    // curl, as operators try it.
    let curl = Command::new("curl")
        .args(["-sS", "--compressed", "-u"])
        .arg(format!("{}:{}", ALICE.name, ALICE.password))
        .arg(sidecar.url(&path))
        .output()
        .expect("curl (installed by make setup)");
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert_eq!(
        curl.stdout, identity,
        "curl --compressed reads the same list"
    );

    // Python's requests (the client the suite's oras-py tests use) decompresses it too.
    let python = Command::new(venv_python())
        .args([
            "-c",
            "import sys, requests; r = requests.get(sys.argv[1], auth=(sys.argv[2], sys.argv[3])); \
             print(r.headers.get('content-encoding')); sys.stdout.flush(); sys.stdout.buffer.write(r.content)",
        ])
        .arg(sidecar.url(&path))
        .args([ALICE.name, ALICE.password])
        .output()
        .expect("the tools' Python (make setup)");
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let (encoding, body) = python.stdout.split_at(
        python
            .stdout
            .iter()
            .position(|b| *b == b'\n')
            .expect("line")
            + 1,
    );
    assert_eq!(encoding, b"gzip\n", "requests asked for gzip and got it");
    assert_eq!(body, &identity[..], "requests reads the same list");
}
