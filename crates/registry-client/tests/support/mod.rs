//! Spec-following test upstreams of our own, for what real registries cannot be made to do:
//! each [`Origin`] is an HTTP server on its own loopback port that answers with whatever the
//! test's route says and records every request it gets, so a test can prove that nothing
//! reached an origin it must not reach.

#![allow(dead_code, unused_imports)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::Bytes;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use registry_client::{ClientConfig, MemoryBudget, Registry, RegistryClient, RegistryKind};
use serde_json::{Value, json};

pub mod jwt;
pub mod proxy;
pub mod tls;

pub use tls::TestCa;

pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub authorization: Option<String>,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub enum Body {
    Bytes(Vec<u8>),
    /// Keeps sending bytes for as long as the client reads.
    Endless,
    /// Answers only after this long.
    After(Duration, Vec<u8>),
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    pub fn text(status: u16, content_type: &str, body: &str) -> Self {
        Self::status(status)
            .header("Content-Type", content_type)
            .body(body.as_bytes().to_vec())
    }

    pub fn json(status: u16, value: &Value) -> Self {
        Self::status(status)
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(value).unwrap())
    }

    /// `200` with an OCI index of `descriptors`.
    pub fn index(descriptors: &[Value]) -> Self {
        let body = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": descriptors});
        Self::status(200)
            .header("Content-Type", INDEX)
            .body(serde_json::to_vec(&body).unwrap())
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Body::Bytes(body);
        self
    }

    pub fn with_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
}

type Route = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A test upstream on `127.0.0.1:<port>`.
pub struct Origin {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    handle: ServerHandle,
}

impl Origin {
    pub fn start(route: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        Self::serve(route, None)
    }

    /// The same over TLS with `tls` (see [`TestCa`]).
    pub fn start_tls(
        route: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
        tls: rustls::ServerConfig,
    ) -> Self {
        Self::serve(route, Some(tls))
    }

    fn serve(
        route: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
        tls: Option<rustls::ServerConfig>,
    ) -> Self {
        let route: Route = Arc::new(route);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let recorder = Arc::clone(&seen);
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let route = Arc::clone(&route);
                    let recorder = Arc::clone(&recorder);
                    App::new().default_service(web::to(move |request: HttpRequest| {
                        let route = Arc::clone(&route);
                        let recorder = Arc::clone(&recorder);
                        async move { answer(&request, &route, &recorder).await }
                    }))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0);
                let server = match tls {
                    Some(tls) => server.bind_rustls_0_23(("127.0.0.1", 0), tls),
                    None => server.bind(("127.0.0.1", 0)),
                }
                .expect("bind test origin");
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).expect("report port");
                let _ = server.await;
            });
        });
        let (port, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("origin started");
        Self { port, seen, handle }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|s| s.path().starts_with(prefix))
            .count()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false)));
    }
}

async fn answer(request: &HttpRequest, route: &Route, recorder: &Mutex<Vec<Seen>>) -> HttpResponse {
    let seen = Seen {
        method: request.method().to_string(),
        target: request
            .uri()
            .path_and_query()
            .map_or_else(String::new, |pq| pq.as_str().to_owned()),
        authorization: request
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    recorder.lock().unwrap().push(seen.clone());
    let reply = route(&seen);
    let mut response =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in &reply.headers {
        response.append_header((name.as_str(), value.as_str()));
    }
    match reply.body {
        Body::Bytes(bytes) => response.body(bytes),
        Body::After(delay, bytes) => {
            actix_rt::time::sleep(delay).await;
            response.body(bytes)
        }
        Body::Endless => {
            let chunk = Bytes::from(vec![b' '; 16 * 1024]);
            response.streaming(futures_util::stream::repeat_with(move || {
                Ok::<_, actix_web::Error>(chunk.clone())
            }))
        }
    }
}

/// A descriptor of a manifest with this digest suffix character.
pub fn descriptor(fill: char, artifact_type: &str) -> Value {
    json!({
        "mediaType": MANIFEST,
        "digest": format!("sha256:{}", fill.to_string().repeat(64)),
        "size": 100,
        "artifactType": artifact_type,
        "annotations": {"test": fill.to_string()},
    })
}

pub const SUBJECT: &str = "sha256:5555555555555555555555555555555555555555555555555555555555555555";
pub const REFERRERS_PATH: &str = "/v2/team/app/referrers/sha256:5555555555555555555555555555555555555555555555555555555555555555";
pub const TAG_PATH: &str = "/v2/team/app/manifests/sha256-5555555555555555555555555555555555555555555555555555555555555555";

pub fn subject() -> oci_referrers::Digest {
    SUBJECT.parse().unwrap()
}

/// A plain-HTTP registry at `origin`, marked insecure as Harbor would.
pub fn registry(origin: &Origin) -> Registry {
    Registry {
        name: "test".into(),
        base_url: origin.url().parse().unwrap(),
        kind: RegistryKind::Distribution,
        insecure: true,
        credentials: None,
    }
}

/// The service's default bounds (its `upstream.*` keys), for tests.
pub fn test_config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(3),
        max_pages: 100,
        max_page_bytes: 4 * 1024 * 1024,
        memory_budget: MemoryBudget::new(64 * 1024 * 1024),
        max_concurrent_per_registry: 16,
        api_absent_ttl: Duration::from_secs(3600),
        allow_private_realms: false,
        user_agent: "registry-client-tests".into(),
        extra_ca_file: None,
        observer: None,
    }
}

/// A client for loopback upstreams (which are private addresses by definition).
pub fn client_with(adjust: impl FnOnce(&mut ClientConfig)) -> RegistryClient {
    let mut config = ClientConfig {
        allow_private_realms: true,
        timeout: Duration::from_secs(20),
        ..test_config()
    };
    adjust(&mut config);
    RegistryClient::new(config).unwrap()
}

pub fn client() -> RegistryClient {
    client_with(|_| {})
}

pub fn digests(list: &registry_client::UpstreamReferrers) -> Vec<String> {
    list.descriptors
        .iter()
        .map(|d| d.digest.to_string())
        .collect()
}

pub fn digest_of(fill: char) -> String {
    format!("sha256:{}", fill.to_string().repeat(64))
}
