//! Requests the sidecar does not answer itself reach core unchanged, and core's answers reach
//! the client unchanged, streamed both ways.

use e2e::config::for_core;
use e2e::metrics::{self, StatusClass};
use e2e::standin_core::{Checksum, GZIP_BYTES, pattern_checksum, pattern_stream};
use e2e::wait::eventually;
use e2e::{Sidecar, StandinCore};
use futures_util::StreamExt;

const MIB: u64 = 1024 * 1024;

fn sidecar_for(core: &StandinCore) -> Sidecar {
    Sidecar::start(&for_core(&core.url()))
}

fn client() -> reqwest::Client {
    e2e::http_client()
}

#[tokio::test]
async fn method_raw_target_and_headers_reach_core_unchanged() {
    let core = StandinCore::start();
    let sidecar = sidecar_for(&core);
    let response = client()
        .delete(sidecar.url("/v2/p/r/manifests/sha256:abc?ns=docker.io&x=a%2Bb+c"))
        .header("Host", "harbor.example.com")
        .header("Authorization", "Bearer the-token")
        .header("X-Forwarded-Proto", "https")
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .header("Connection", "keep-alive, x-client-private")
        .header("X-Client-Private", "must not pass")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-core"], "standin");
    let echo: serde_json::Value = response.json().await.expect("json");
    assert_eq!(echo["method"], "DELETE");
    assert_eq!(
        echo["target"],
        "/v2/p/r/manifests/sha256:abc?ns=docker.io&x=a%2Bb+c"
    );
    assert_eq!(echo["version"], "HTTP/1.1");
    let headers = &echo["headers"];
    assert_eq!(headers["host"][0], "harbor.example.com");
    assert_eq!(headers["authorization"][0], "Bearer the-token");
    assert_eq!(headers["x-forwarded-proto"][0], "https");
    assert_eq!(headers["accept"].as_array().map(Vec::len), Some(2));
    assert!(headers.get("x-client-private").is_none());
    assert!(
        headers.get("user-agent").is_none(),
        "the sidecar must not add headers: {headers}"
    );
    assert_eq!(echo["body_bytes"], 0);
}

#[tokio::test]
async fn redirects_are_passed_back_not_followed_and_bodies_not_decoded() {
    let core = StandinCore::start();
    let sidecar = sidecar_for(&core);
    let redirect = client()
        .get(sidecar.url("/redirect"))
        .send()
        .await
        .expect("request");
    assert_eq!(redirect.status(), 307);
    assert_eq!(
        redirect.headers()["location"],
        "http://127.0.0.1:9/elsewhere"
    );

    let gzip = client()
        .get(sidecar.url("/gzip"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("request");
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    assert_eq!(gzip.bytes().await.expect("body").as_ref(), GZIP_BYTES);
}

#[tokio::test]
async fn head_keeps_core_content_length_without_a_body() {
    let core = StandinCore::start();
    let sidecar = sidecar_for(&core);
    let response = client()
        .head(sidecar.url("/download/12345"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], "12345");
}

/// 100 MB each way through the sidecar while its resident memory stays far below that.
#[tokio::test]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    const SIZE: u64 = 100 * MIB;
    let core = StandinCore::start();
    let sidecar = sidecar_for(&core);
    let client = client();
    let (whole, chunked_size) = (pattern_checksum(SIZE), 3 * MIB + 7);
    let chunked_sum = pattern_checksum(chunked_size);

    let upload = client
        .put(sidecar.url("/upload"))
        .header("Content-Length", SIZE.to_string())
        .body(reqwest::Body::wrap_stream(pattern_stream(SIZE)))
        .send()
        .await
        .expect("upload");
    assert_eq!(upload.status(), 201);
    let received: serde_json::Value = upload.json().await.expect("json");
    assert_eq!(received["bytes"], SIZE);
    assert_eq!(received["checksum"], whole.0);
    assert_eq!(received["headers"]["content-length"][0], SIZE.to_string());

    // Without a length the client sends chunks; core must still get every byte.
    let chunked = client
        .post(sidecar.url("/upload"))
        .body(reqwest::Body::wrap_stream(pattern_stream(chunked_size)))
        .send()
        .await
        .expect("chunked upload");
    let received: serde_json::Value = chunked.json().await.expect("json");
    assert_eq!(received["bytes"], chunked_size);
    assert_eq!(received["checksum"], chunked_sum.0);

    let download = client
        .get(sidecar.url(&format!("/download/{SIZE}")))
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-length"], SIZE.to_string());
    let mut stream = download.bytes_stream();
    let mut bytes = 0u64;
    let mut sum = Checksum::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        bytes += chunk.len() as u64;
        sum.update(&chunk);
    }
    assert_eq!(bytes, SIZE);
    assert_eq!(sum, whole);

    let peak = sidecar.peak_rss_bytes();
    assert!(
        peak < 40 * MIB,
        "peak resident memory {} MiB: bodies must be streamed, not buffered",
        peak / MIB
    );
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(&format!("{} 3", metrics::passthrough(StatusClass::Success))),
        "{metrics}"
    );
}

#[tokio::test]
async fn core_down_gives_an_oci_502() {
    let core = StandinCore::start();
    let url = core.url();
    drop(core);
    let sidecar = Sidecar::start(&for_core(&url));
    let response = client()
        .get(sidecar.url("/v2/"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let core = StandinCore::start();
    let mut sidecar = sidecar_for(&core);
    // Core holds its answer until the sidecar has begun to stop.
    core.hold_slow();
    let url = sidecar.url("/slow");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    eventually("the request reaches core", async || {
        !core.seen_with("/slow").is_empty()
    })
    .await;
    sidecar.terminate();
    eventually("the sidecar begins to stop", async || {
        sidecar
            .logs()
            .iter()
            .any(|line| line.contains("stopping: in-flight requests may finish"))
    })
    .await;
    core.release_slow();
    let response = in_flight.await.expect("join").expect("in-flight request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "slow answer");
    let status = sidecar.wait_exit();
    assert!(status.success(), "exit status {status}");
}
