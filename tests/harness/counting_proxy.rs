//! A counting front for a real upstream registry: forwards every request unchanged and records
//! it, so a test can assert what reached the upstream (and that nothing did).

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};

use crate::server::TestServer;

/// One request seen by the front.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Raw path and query.
    pub target: String,
    pub authorization: Option<String>,
}

struct Front {
    upstream: String,
    client: reqwest::Client,
    seen: Mutex<Vec<Seen>>,
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
            seen: Mutex::new(Vec::new()),
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

    #[must_use]
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every request forwarded so far.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        self.front.seen.lock().expect("seen").clone()
    }

    /// Requests whose path contains `needle`.
    #[must_use]
    pub fn seen_with(&self, needle: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.target.contains(needle))
            .collect()
    }

    pub fn clear(&self) {
        self.front.seen.lock().expect("seen").clear();
    }

    /// Stops answering: the upstream looks down from here on.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

async fn forward(request: HttpRequest, body: web::Bytes, front: web::Data<Front>) -> HttpResponse {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    front.seen.lock().expect("seen").push(Seen {
        method: request.method().to_string(),
        target: target.clone(),
        authorization: request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
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
