//! A core that sends its response head and then stalls mid-body: every call ends with
//! `Timeout` within the client's timeout, instead of waiting for a body that never comes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use awc::http::header::HeaderMap;
use harbor_client::{CoreClient, CoreTransport, HarborError};
use oci_referrers::{Digest, RepositoryName};
use url::Url;

/// Accepts every connection, reads the request head, answers `200` with a `Content-Length` it
/// never fulfils, and keeps the connection open.
fn stalling_core(content_type: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n{{\"schemaVersion\":2,"
            );
            let _ = stream.write_all(answer.as_bytes());
            let _ = stream.flush();
            held.push(stream);
        }
    });
    port
}

fn client(port: u16, timeout: Duration) -> CoreClient {
    let transport = CoreTransport::new(None, Duration::from_secs(2)).expect("transport");
    let base = Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
    CoreClient::new(transport.connections(1, timeout), base, timeout, None)
}

/// Generous: the calls below have a 300 ms timeout; without one they never end.
const NEVER: Duration = Duration::from_secs(20);

#[actix_rt::test]
async fn referrers_from_a_core_that_stalls_mid_body_time_out() {
    let port = stalling_core("application/vnd.oci.image.index.v1+json");
    let core = client(port, Duration::from_millis(300));
    let name: RepositoryName = "proxy/app".parse().expect("name");
    let digest: Digest = format!("sha256:{}", "a".repeat(64))
        .parse()
        .expect("digest");
    let listed = tokio::time::timeout(
        NEVER,
        core.local_referrers(&name, &digest, &HeaderMap::new(), "request-1"),
    )
    .await
    .expect("the call ends on its own");
    assert!(matches!(listed, Err(HarborError::Timeout)), "{listed:?}");
}

#[actix_rt::test]
async fn api_answers_from_a_core_that_stalls_mid_body_time_out() {
    let port = stalling_core("application/json");
    let core = client(port, Duration::from_millis(300));
    let project = tokio::time::timeout(NEVER, core.project("proxy"))
        .await
        .expect("the call ends on its own");
    assert!(matches!(project, Err(HarborError::Timeout)), "{project:?}");
    let registry = tokio::time::timeout(NEVER, core.registry(1))
        .await
        .expect("the call ends on its own");
    assert!(
        matches!(registry, Err(HarborError::Timeout)),
        "{registry:?}"
    );
}
