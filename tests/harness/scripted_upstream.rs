//! A small spec-following upstream registry whose behaviour a test sets: it serves a subject's
//! referrers through the referrers API in pages of one descriptor linked by `Link rel="next"`,
//! or answers every request with a given status. Counts what it is asked.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::Sidecar;
use crate::harbor_double::{
    DoubleAccount, DoubleConfig, DoubleProject, DoubleRegistry, HarborDouble,
};
use crate::proxy_world::{ALICE, ROBOT};

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
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
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
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let data = web::Data::from(Arc::clone(&script));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(answer))
                })
                .workers(2)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
                tx.send(server.handle()).expect("handle");
                server.await.expect("scripted upstream");
            });
        });
        let handle = rx.recv().expect("handle");
        Self {
            port,
            script,
            handle,
            thread: Some(thread),
        }
    }

    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false)))
            .join()
            .ok();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
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
    let harbor = HarborDouble::start(DoubleConfig {
        projects: vec![DoubleProject::proxy(1, "hub-proxy", 1)],
        registries: vec![DoubleRegistry {
            id: 1,
            name: "scripted".into(),
            url: upstream.url(),
            registry_type: "docker-registry".into(),
            insecure: true,
        }],
        accounts: vec![
            DoubleAccount {
                name: ROBOT.0.into(),
                password: ROBOT.1.into(),
                projects: vec![],
                system_reader: true,
            },
            DoubleAccount {
                name: ALICE.0.into(),
                password: ALICE.1.into(),
                projects: vec!["hub-proxy".into()],
                system_reader: false,
            },
        ],
        ..DoubleConfig::default()
    });
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
