//! A small spec-following upstream registry whose behaviour a test sets: it serves a subject's
//! referrers through the referrers API in pages of one descriptor linked by `Link rel="next"`,
//! or answers every request with a given status, and holds referrers requests on demand.

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::server::{Gate, TestServer};

#[derive(Default)]
struct Script {
    /// Descriptors served for every subject, one per page.
    descriptors: Vec<Value>,
    /// When set, every request gets this status and no list.
    failing_status: Option<u16>,
}

struct Shared {
    script: Mutex<Script>,
    /// Referrers requests wait here (a fetch held in flight).
    gate: Gate,
}

pub struct ScriptedUpstream {
    pub port: u16,
    shared: Arc<Shared>,
    server: TestServer,
}

impl ScriptedUpstream {
    /// Serves `count` referrers per subject, one per page.
    pub fn start(count: usize) -> Self {
        let descriptors = (0..count)
            .map(|i| {
                json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{:064x}", i + 0xabc0),
                    "size": 100 + i,
                    "artifactType": "application/vnd.example.page+json",
                })
            })
            .collect();
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                descriptors,
                ..Script::default()
            }),
            gate: Gate::default(),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = TestServer::start(2, move |app| {
            app.app_data(data.clone()).default_service(web::to(answer));
        });
        Self {
            port: server.port,
            shared,
            server,
        }
    }

    #[must_use]
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every request gets `status` from now on (`None`: serve the list again).
    pub fn fail_with(&self, status: Option<u16>) {
        self.shared.script.lock().expect("script").failing_status = status;
    }

    /// Referrers requests are held, unanswered, from now on until [`release`](Self::release).
    pub fn hold(&self) {
        self.shared.gate.hold();
    }

    /// Answers the held referrers requests, and every later one at once.
    pub fn release(&self) {
        self.shared.gate.release();
    }

    /// Requests of any kind received so far (held ones included).
    #[must_use]
    pub fn requests(&self) -> usize {
        self.server.seen().len()
    }

    /// Referrers API requests (pages) received so far (held ones included).
    #[must_use]
    pub fn referrers_requests(&self) -> usize {
        self.server.seen_with("/referrers/").len()
    }
}

async fn answer(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let path = request.uri().path().to_owned();
    let is_referrers = path.contains("/referrers/");
    if is_referrers {
        shared.gate.pass().await;
    }
    let script = shared.script.lock().expect("script");
    if let Some(status) = script.failing_status {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
            .finish();
    }
    if path == "/v2/" {
        return HttpResponse::Ok().json(json!({}));
    }
    if !is_referrers {
        return HttpResponse::NotFound().finish();
    }
    let page: usize = request
        .query_string()
        .split('&')
        .find_map(|p| p.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let manifests: Vec<Value> = script.descriptors.get(page).cloned().into_iter().collect();
    let mut response = HttpResponse::Ok();
    response.content_type("application/vnd.oci.image.index.v1+json");
    if page + 1 < script.descriptors.len() {
        response.insert_header(("Link", format!("<{path}?page={}>; rel=\"next\"", page + 1)));
    }
    response.body(
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        })
        .to_string(),
    )
}
