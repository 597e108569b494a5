//! Connections to Harbor core: failures reach the caller as OCI errors with fixed messages, and
//! core's head has a deadline while its streamed body does not.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use e2e::Sidecar;
use e2e::config::SidecarConfig;

const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// What the core stand-in does with each request it reads.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Reads, never writes: the head never comes.
    Silent,
    /// `200` whose head comes at once and whose body comes in `chunks` pieces of `chunk` bytes,
    /// `pause` apart.
    Trickle {
        chunks: usize,
        chunk: usize,
        pause: Duration,
    },
}

/// A core stand-in on raw TCP, so the test sees every connection the sidecar opens.
struct Core {
    port: u16,
}

impl Core {
    fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Ends with the test process; each connection's thread ends when the sidecar closes it.
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                std::thread::spawn(move || serve(stream, behaviour));
            }
        });
        Self { port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Serves one connection: one answer per request head read, until the peer closes it.
fn serve(mut stream: TcpStream, behaviour: Behaviour) {
    let mut pending = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let Ok(read) = stream.read(&mut buffer) else {
            return;
        };
        if read == 0 {
            return;
        }
        pending.extend_from_slice(&buffer[..read]);
        // Requests sent here carry no body: a head ends each one.
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            if answer(&mut stream, behaviour).is_err() {
                return;
            }
        }
    }
}

fn answer(stream: &mut TcpStream, behaviour: Behaviour) -> std::io::Result<()> {
    match behaviour {
        Behaviour::Silent => Ok(()),
        Behaviour::Trickle {
            chunks,
            chunk,
            pause,
        } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                chunks * chunk
            );
            stream.write_all(head.as_bytes())?;
            stream.flush()?;
            for _ in 0..chunks {
                std::thread::sleep(pause);
                stream.write_all(&vec![b'x'; chunk])?;
                stream.flush()?;
            }
            Ok(())
        }
    }
}

/// A port nothing listens on.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

async fn oci_error(response: reqwest::Response) -> (String, String) {
    let text = response.text().await.expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("OCI error body");
    let entry = &body["errors"][0];
    (
        entry["code"].as_str().expect("code").to_owned(),
        entry["message"].as_str().expect("message").to_owned(),
    )
}

#[tokio::test]
async fn core_down_answers_a_fixed_message_without_the_client_error_text() {
    let core_url = closed_port_url();
    let sidecar = Sidecar::start(&SidecarConfig::new(&core_url));
    for path in [
        "/v2/p/r/manifests/latest".to_owned(),
        format!("/v2/p/r/referrers/{DIGEST}"),
    ] {
        let response = e2e::get(&sidecar.url(&path)).await;
        assert_eq!(response.status(), 502, "{path}");
        let (code, message) = oci_error(response).await;
        assert_eq!(code, "UNAVAILABLE", "{path}");
        assert_eq!(message, "Harbor core is unreachable", "{path}");
    }
    assert!(
        sidecar
            .logs()
            .iter()
            .any(|line| line.contains("127.0.0.1") && line.contains("Harbor core")),
        "the detail is logged: {:?}",
        sidecar.logs()
    );
}

#[tokio::test]
async fn a_core_that_never_sends_its_head_gets_504_after_harbor_timeout() {
    let core = Core::start(Behaviour::Silent);
    let timeout = Duration::from_secs(1);
    let sidecar = Sidecar::start(&SidecarConfig::new(&core.url()).harbor_timeout(timeout));
    let started = Instant::now();
    let response = e2e::get(&sidecar.url("/v2/p/r/manifests/latest")).await;
    assert_eq!(response.status(), 504);
    let (code, message) = oci_error(response).await;
    assert_eq!(code, "UNAVAILABLE");
    assert_eq!(message, "Harbor core did not answer in time");
    assert!(
        started.elapsed() < 20 * timeout,
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_keeps_flowing_passes_whole_though_it_outlasts_harbor_timeout() {
    let (chunks, chunk) = (12, 1024);
    // 12 pauses of 250 ms: the body takes three times `harbor.timeout`.
    let core = Core::start(Behaviour::Trickle {
        chunks,
        chunk,
        pause: Duration::from_millis(250),
    });
    let sidecar =
        Sidecar::start(&SidecarConfig::new(&core.url()).harbor_timeout(Duration::from_secs(1)));
    let response = e2e::get(&sidecar.url("/v2/p/r/blobs/sha256:abc")).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("the whole body");
    assert_eq!(body.len(), chunks * chunk);
    assert!(body.iter().all(|b| *b == b'x'));
}
