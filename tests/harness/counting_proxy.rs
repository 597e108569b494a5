//! A counting front for a real upstream registry: forwards every request unchanged and records
//! it, so a test can assert what reached the upstream (and that nothing did); it can hold some
//! requests in flight, a registry slow to answer them, or rate-limit every request, as Docker
//! Hub does past its pull limit.

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};

use crate::seen::Seen;
use crate::server::{Gate, TestServer};

struct Front {
    upstream: String,
    client: reqwest::Client,
    /// Requests whose target contains this wait at `gate` before they are forwarded.
    held: Mutex<Option<String>>,
    gate: Gate,
    /// When set, every request gets `429` with this `Retry-After` instead of an answer.
    rate_limited: Mutex<Option<String>>,
}

pub struct CountingProxy {
    pub port: u16,
    front: Arc<Front>,
    server: TestServer,
}

impl CountingProxy {
    /// Fronts `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Self {
        let front = Arc::new(Front {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: crate::http_client(),
            held: Mutex::new(None),
            gate: Gate::default(),
            rate_limited: Mutex::new(None),
        });
        let data = web::Data::from(Arc::clone(&front));
        let server = TestServer::start(1, move |app| {
            app.app_data(data.clone()).default_service(web::to(forward));
        });
        Self {
            port: server.port,
            front,
            server,
        }
    }

    /// Holds requests whose target (path and query) contains `needle` from now on: they are
    /// seen, and forwarded only once [`release`](Self::release)d.
    pub fn hold(&self, needle: &str) {
        *self.front.held.lock().expect("held") = Some(needle.to_owned());
        self.front.gate.hold();
    }

    /// Forwards the held requests, and holds none from now on.
    pub fn release(&self) {
        *self.front.held.lock().expect("held") = None;
        self.front.gate.release();
    }

    #[must_use]
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every request forwarded so far.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        self.server.seen()
    }

    /// Requests whose target (path and query) contains `needle`.
    #[must_use]
    pub fn seen_with(&self, needle: &str) -> Vec<Seen> {
        self.server.seen_with(needle)
    }

    pub fn clear(&self) {
        self.server.clear_seen();
    }

    /// Answers every request from now on with `429 Too Many Requests` and `Retry-After:
    /// retry_after` (seconds), Docker Hub's error body, and forwards nothing.
    pub fn rate_limit(&self, retry_after: &str) {
        *self.front.rate_limited.lock().expect("rate limit") = Some(retry_after.to_owned());
    }

    /// Stops answering: the upstream looks down from here on.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

async fn forward(request: HttpRequest, body: web::Bytes, front: web::Data<Front>) -> HttpResponse {
    let rate_limited = front.rate_limited.lock().expect("rate limit").clone();
    if let Some(retry_after) = rate_limited {
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", retry_after))
            .content_type("application/json")
            .body(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#);
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let held = front
        .held
        .lock()
        .expect("held")
        .as_deref()
        .is_some_and(|needle| target.contains(needle));
    if held {
        front.gate.pass().await;
    }
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).expect("method");
    let mut outgoing = front
        .client
        .request(method, format!("{}{target}", front.upstream));
    for (name, value) in request.headers() {
        if !matches!(name.as_str(), "host" | "connection" | "content-length") {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = match outgoing.body(body.to_vec()).send().await {
        Ok(answer) => answer,
        Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
    };
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(answer.status().as_u16()).expect("status"),
    );
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            response.append_header((name.as_str(), value.as_bytes()));
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(bytes)
}
