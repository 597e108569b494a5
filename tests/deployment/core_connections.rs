//! Connections to Harbor core: failures reach the caller as OCI errors with fixed messages;
//! core's head has a deadline while its streamed body does not; a full pool answers 503 rather
//! than queue; idle connections are kept for the next request.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::Sidecar;
use e2e::config::{Configure, for_core};

const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// What the core stand-in does with each request it reads.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Reads, never writes: the head never comes.
    Silent,
    /// `200` with a two-byte body, connection kept alive.
    Answer,
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
    accepted: Arc<AtomicUsize>,
}

impl Core {
    fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        // Ends with the test process; each connection's thread ends when the sidecar closes it.
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(stream, behaviour));
            }
        });
        Self { port, accepted }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
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
        Behaviour::Answer => {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")?;
            stream.flush()
        }
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

/// The sidecar's workers and connections to core per worker, as it logs them at start.
fn pool_layout(sidecar: &Sidecar) -> (usize, usize) {
    let logs = sidecar.logs();
    let line = logs
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["message"] == "connections to Harbor core pooled per worker")
        .expect("the pool is logged at start");
    let field = |name: &str| line[name].as_u64().expect("a count") as usize;
    (field("workers"), field("core_connections_per_worker"))
}

/// `GET url` on a connection of its own, so that requests spread over the sidecar's workers.
async fn get_on_new_connection(url: &str) -> reqwest::Response {
    e2e::http_client().get(url).send().await.expect("request")
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
    let sidecar = Sidecar::start(&for_core(&core_url));
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
    let sidecar = Sidecar::start(&for_core(&core.url()).with(|s| s.harbor.timeout = timeout));
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
        Sidecar::start(&for_core(&core.url()).with(|s| s.harbor.timeout = Duration::from_secs(1)));
    let response = e2e::get(&sidecar.url("/v2/p/r/blobs/sha256:abc")).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("the whole body");
    assert_eq!(body.len(), chunks * chunk);
    assert!(body.iter().all(|b| *b == b'x'));
}

#[tokio::test]
async fn a_full_pool_answers_503_with_retry_after_instead_of_queueing() {
    let core = Core::start(Behaviour::Silent);
    let connect_timeout = Duration::from_secs(1);
    let sidecar = Sidecar::start(&for_core(&core.url()).with(|s| {
        s.harbor.max_connections = 1;
        s.harbor.connect_timeout = connect_timeout;
        // Held requests keep their connection long after the others were answered.
        s.harbor.timeout = Duration::from_secs(120);
    }));
    let (workers, per_worker) = pool_layout(&sidecar);
    let capacity = workers * per_worker;
    let sent = capacity + 2;
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..sent {
        let url = sidecar.url("/v2/p/r/manifests/latest");
        requests.spawn(async move { get_on_new_connection(&url).await });
    }
    // At most `capacity` requests hold a connection; every other one is answered at once.
    for _ in 0..sent - capacity {
        let response = requests
            .join_next()
            .await
            .expect("a request")
            .expect("no panic");
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let (code, message) = oci_error(response).await;
        assert_eq!(code, "UNAVAILABLE");
        assert_eq!(message, "Harbor core is busy, retry shortly");
        assert!(
            started.elapsed() < 30 * connect_timeout,
            "answered after {:?}",
            started.elapsed()
        );
    }
    // Plus one: the sidecar reads Harbor's version once at start, on a connection of its own.
    assert!(
        core.accepted() <= capacity + 1,
        "{} connections to core for a pool of {capacity}",
        core.accepted()
    );
    requests.abort_all();
}

#[tokio::test]
async fn a_burst_of_sequential_requests_reuses_kept_alive_connections() {
    let core = Core::start(Behaviour::Answer);
    let sidecar = Sidecar::start(&for_core(&core.url()));
    let (workers, _) = pool_layout(&sidecar);
    let burst = 40;
    for _ in 0..burst {
        let response = get_on_new_connection(&sidecar.url("/v2/p/r/manifests/latest")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), "ok");
    }
    // One request at a time: each worker needs one connection, and keeps it; plus the one
    // Harbor's version is read on at start.
    assert!(
        core.accepted() <= workers + 1,
        "{} connections to core for {burst} requests over {workers} workers",
        core.accepted()
    );
}
