//! A small spec-following upstream registry whose behaviour a test sets: it serves a subject's
//! referrers through the referrers API in pages of one descriptor linked by `Link rel="next"`,
//! or answers every request with a given status. Counts what it is asked.

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::Sidecar;
use crate::harbor_double::HarborDouble;
use crate::proxy_world::{ROBOT, hub_proxy_harbor};
use crate::server::TestServer;

#[derive(Default)]
struct Script {
    /// Descriptors served for every subject, one per page.
    descriptors: Vec<Value>,
    /// When set, every request gets this status and no list.
    failing_status: Option<u16>,
    referrers_requests: usize,
    requests: usize,
    /// Each referrers page takes this long (a slow upstream).
    delay: std::time::Duration,
}

pub struct ScriptedUpstream {
    pub port: u16,
    script: Arc<Mutex<Script>>,
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
        let script = Arc::new(Mutex::new(Script {
            descriptors,
            ..Script::default()
        }));
        let data = web::Data::from(Arc::clone(&script));
        let server = TestServer::start(2, move |app| {
            app.app_data(data.clone()).default_service(web::to(answer));
        });
        Self {
            port: server.port,
            script,
            server,
        }
    }

    #[must_use]
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every request gets `status` from now on (`None`: serve the list again).
    pub fn fail_with(&self, status: Option<u16>) {
        self.script.lock().expect("script").failing_status = status;
    }

    /// Each referrers page takes `delay` from now on.
    pub fn slow_down(&self, delay: std::time::Duration) {
        self.script.lock().expect("script").delay = delay;
    }

    /// Requests of any kind received so far.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.script.lock().expect("script").requests
    }

    /// Referrers API requests (pages) received so far.
    #[must_use]
    pub fn referrers_requests(&self) -> usize {
        self.script.lock().expect("script").referrers_requests
    }
}

async fn answer(request: HttpRequest, script: web::Data<Mutex<Script>>) -> HttpResponse {
    let path = request.uri().path().to_owned();
    let delay = script.lock().expect("script").delay;
    if path.contains("/referrers/") && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut script = script.lock().expect("script");
    script.requests += 1;
    let is_referrers = path.contains("/referrers/");
    if is_referrers {
        script.referrers_requests += 1;
    }
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

/// Harbor (the double) with one proxy-cache project, `hub-proxy`, over `upstream`, and a
/// sidecar for it with `extra` configuration.
#[must_use]
pub fn scripted_world(upstream: &ScriptedUpstream, extra: &str) -> (HarborDouble, Sidecar) {
    let harbor = hub_proxy_harbor("scripted", &upstream.url());
    let sidecar = sidecar_for(&harbor, extra);
    (harbor, sidecar)
}

/// Another sidecar (replica) in front of `harbor`, with `extra` configuration.
#[must_use]
pub fn sidecar_for(harbor: &HarborDouble, extra: &str) -> Sidecar {
    Sidecar::start(&format!(
        "harbor:\n  url: {}\n  username: {}\n  password: {}\nprojects:\n  enabled: [hub-proxy]\n{extra}",
        harbor.url(),
        ROBOT.0,
        ROBOT.1,
    ))
}
