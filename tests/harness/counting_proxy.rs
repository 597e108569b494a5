//! A counting front for a real upstream registry: forwards every request unchanged and records
//! it, so a test can assert what reached the upstream (and that nothing did).

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

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
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CountingProxy {
    /// Fronts `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Self {
        let front = Arc::new(Front {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: crate::http_client(),
            seen: Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let data = web::Data::from(Arc::clone(&front));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(forward))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
                tx.send(server.handle()).expect("handle");
                server.await.expect("counting proxy");
            });
        });
        let handle = rx.recv().expect("handle");
        Self {
            port,
            front,
            handle,
            thread: Some(thread),
        }
    }

    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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
}

impl CountingProxy {
    /// Stops answering: the upstream looks down from here on.
    pub fn stop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false)))
            .join()
            .ok();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop();
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
