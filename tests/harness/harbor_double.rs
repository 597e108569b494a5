//! A Harbor core test double that behaves as `docs/harbor.md` describes core: `/v2/`
//! authorization (401 with a Bearer challenge built from `Host` when no credentials are sent,
//! 401 `Basic realm="harbor"` for a bad token *and* for a valid token without access), the
//! token service, the referrers endpoint (GET only; HEAD falls through to a 404) with Harbor's
//! quirks, manifests and blobs of proxy-cache projects pulled through from the upstream and
//! cached (a cached manifest with a `subject` becomes a local referrer: see
//! `crate::proxy_cache`), and the REST API the sidecar reads (systeminfo, projects, metadatas, registries with
//! the secret masked, project labels, ping, health). Every request it receives is recorded (see
//! `crate::seen`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::proxy_cache::{self, CachedManifest, ProxyCache, Pulled};
use crate::seen::Seen;
use crate::server::{Gate, TestServer};
use crate::users::User;

/// A project as Harbor stores it.
#[derive(Debug, Clone)]
pub struct DoubleProject {
    pub id: i64,
    pub name: String,
    /// The upstream registry of a proxy-cache project.
    pub registry_id: Option<i64>,
    pub public: bool,
    /// Extra metadata (`proxy_referrer_api`, `proxy_cache_filter_pattern` and
    /// `proxy_cache_filter_kind` on Harbor ≥ 2.16).
    pub metadata: BTreeMap<String, String>,
}

impl DoubleProject {
    #[must_use]
    pub fn proxy(id: i64, name: &str, registry_id: i64) -> Self {
        Self {
            id,
            name: name.into(),
            registry_id: Some(registry_id),
            public: false,
            metadata: BTreeMap::new(),
        }
    }

    #[must_use]
    pub fn local(id: i64, name: &str) -> Self {
        Self {
            id,
            name: name.into(),
            registry_id: None,
            public: false,
            metadata: BTreeMap::new(),
        }
    }
}

/// A label as Harbor stores it: global (`g`, no project) or of one project (`p`).
#[derive(Debug, Clone)]
pub struct DoubleLabel {
    pub id: i64,
    pub name: String,
    /// The project of a project label; `None` for a global one.
    pub project_id: Option<i64>,
}

/// A registry endpoint as Harbor stores it.
#[derive(Debug, Clone)]
pub struct DoubleRegistry {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub registry_type: String,
    pub insecure: bool,
}

/// A user or robot account.
#[derive(Debug, Clone)]
pub struct DoubleAccount {
    pub name: String,
    pub password: String,
    /// Projects it may pull from (besides public ones).
    pub projects: Vec<String>,
    /// Project read on every project and registry read (the sidecar's robot on ≥ 2.10).
    pub system_reader: bool,
    /// Projects where it has the project admin role (role 1); its role elsewhere in
    /// `projects` is developer (2).
    pub admin_of: Vec<String>,
    /// A system admin (`sysadmin_flag`): reads every project.
    pub sysadmin: bool,
}

impl DoubleAccount {
    /// Robot accounts are named `robot$…`: `users/current` answers 412 for them.
    fn is_robot(&self) -> bool {
        self.name.starts_with("robot$")
    }

    /// Its role in `project` (Harbor's `current_user_role_id`): 0 when it is no member.
    fn role_in(&self, project: &str) -> i64 {
        if self.admin_of.iter().any(|p| p == project) {
            1
        } else if self.projects.iter().any(|p| p == project) {
            2
        } else {
            0
        }
    }
}

/// How the double behaves.
#[derive(Debug, Clone)]
pub struct DoubleConfig {
    pub version: String,
    pub projects: Vec<DoubleProject>,
    pub registries: Vec<DoubleRegistry>,
    pub accounts: Vec<DoubleAccount>,
    /// Harbor 2.8–2.9: `application/json; charset=utf-8`, the artifact's size and the config
    /// media type in place of the referrer's own size and artifactType.
    pub legacy_2_8: bool,
    /// Whether `GET /api/v2.0/registries/{id}` is readable by a system reader (≥ 2.10).
    pub registries_api_readable: bool,
    pub labels: Vec<DoubleLabel>,
    /// Whether a system reader may list project labels (`label:list` on every project).
    pub labels_listable: bool,
}

impl Default for DoubleConfig {
    fn default() -> Self {
        Self {
            version: "v2.15.2-6e3ab7f4".into(),
            projects: Vec::new(),
            registries: Vec::new(),
            accounts: Vec::new(),
            legacy_2_8: false,
            registries_api_readable: true,
            labels: Vec::new(),
            labels_listable: true,
        }
    }
}

struct Access {
    account: Option<String>,
    projects: HashSet<String>,
}

#[derive(Default)]
struct State {
    /// Local referrers per `(repository, subject digest)`, as descriptors.
    referrers: HashMap<(String, String), Vec<Value>>,
    tokens: HashMap<String, Access>,
    issued: u64,
    /// What proxy-cache projects pulled through from their upstreams.
    cache: ProxyCache,
    /// Webhook policies as Harbor stores them (swagger `WebhookPolicy`), in creation order.
    webhook_policies: Vec<Value>,
    /// Where `PULL_ARTIFACT` events go (set by a test): a target's address and auth header.
    pull_webhook: Option<(String, String)>,
}

/// How an authorized referrers request fails, instead of its answer (a core in trouble).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreFault {
    /// The response head never comes.
    StallsBeforeItsHead,
    /// The head comes, with the length of a whole index, then a part of the body, then
    /// nothing more.
    StallsMidBody,
    /// This status, with an OCI error body.
    Status(u16),
    /// `200` with the index content type and a body that is not JSON.
    Garbage,
}

/// The body of [`CoreFault::Garbage`].
pub const CORE_GARBAGE: &str = "<html>core is having a bad day</html>";

struct Shared {
    config: Mutex<DoubleConfig>,
    state: Mutex<State>,
    /// Where authorized referrers requests wait (a stuck core).
    referrers_gate: Gate,
    /// What authorized referrers requests get instead of their answer.
    referrers_fault: Mutex<Option<CoreFault>>,
}

pub struct HarborDouble {
    pub port: u16,
    shared: Arc<Shared>,
    server: TestServer,
}

impl HarborDouble {
    pub fn start(config: DoubleConfig) -> Self {
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            state: Mutex::new(State::default()),
            referrers_gate: Gate::default(),
            referrers_fault: Mutex::new(None),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = TestServer::start(2, move |app| {
            app.app_data(data.clone())
                .route("/service/token", web::get().to(token))
                .route("/api/v2.0/ping", web::get().to(ping))
                .route("/api/v2.0/health", web::get().to(health))
                .route("/api/v2.0/systeminfo", web::get().to(systeminfo))
                .route(
                    "/api/v2.0/projects/{name}/metadatas/",
                    web::get().to(metadatas),
                )
                .route("/api/v2.0/projects/{name}", web::get().to(project))
                .route("/api/v2.0/registries/{id}", web::get().to(registry))
                .route("/api/v2.0/labels", web::get().to(labels))
                .route("/api/v2.0/users/current", web::get().to(current_user))
                .route(
                    "/api/v2.0/projects/{name}/webhook/policies",
                    web::get().to(list_webhook_policies),
                )
                .route(
                    "/api/v2.0/projects/{name}/webhook/policies",
                    web::post().to(create_webhook_policy),
                )
                .route(
                    "/api/v2.0/projects/{name}/webhook/policies/{id}",
                    web::put().to(update_webhook_policy),
                )
                .default_service(web::to(registry_v2));
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

    /// Sets the local referrers of `subject` in `repository` (`project/repo`).
    pub fn set_local_referrers(&self, repository: &str, subject: &str, descriptors: Vec<Value>) {
        self.shared
            .state
            .lock()
            .expect("state")
            .referrers
            .insert((repository.into(), subject.into()), descriptors);
    }

    /// A webhook policy sending `PULL_ARTIFACT` events (Harbor's default payload) to `url`,
    /// with `auth_header` as `Authorization`, for every manifest pulled from a proxy-cache
    /// project from now on.
    pub fn send_pull_webhooks(&self, url: &str, auth_header: &str) {
        self.shared.state.lock().expect("state").pull_webhook =
            Some((url.to_owned(), auth_header.to_owned()));
    }

    /// Adds a project label named `name` to the project `project`.
    pub fn add_project_label(&self, project: &str, name: &str) {
        let mut config = self.shared.config.lock().expect("config");
        let project_id = config
            .projects
            .iter()
            .find(|p| p.name == project)
            .unwrap_or_else(|| panic!("no project {project}"))
            .id;
        let id = config.labels.iter().map(|l| l.id).max().unwrap_or(0) + 1;
        config.labels.push(DoubleLabel {
            id,
            name: name.into(),
            project_id: Some(project_id),
        });
    }

    /// Removes every label named `name` (as a project admin deleting it in the UI).
    pub fn remove_label(&self, name: &str) {
        self.shared
            .config
            .lock()
            .expect("config")
            .labels
            .retain(|l| l.name != name);
    }

    /// Sets Harbor 2.16's repository allowlist of `project` (`proxy_cache_filter_pattern`, and
    /// `proxy_cache_filter_kind` when `kind` is given), as a project admin does in the UI.
    pub fn set_proxy_cache_filter(&self, project: &str, pattern: &str, kind: Option<&str>) {
        let mut config = self.shared.config.lock().expect("config");
        let found = config
            .projects
            .iter_mut()
            .find(|p| p.name == project)
            .unwrap_or_else(|| panic!("no project {project}"));
        found
            .metadata
            .insert("proxy_cache_filter_pattern".into(), pattern.into());
        if let Some(kind) = kind {
            found
                .metadata
                .insert("proxy_cache_filter_kind".into(), kind.into());
        }
    }

    /// The webhook policies of `project`, as Harbor lists them.
    #[must_use]
    pub fn webhook_policies(&self, project: &str) -> Vec<Value> {
        let config = self.shared.config.lock().expect("config");
        let Some(id) = config
            .projects
            .iter()
            .find(|p| p.name == project)
            .map(|p| p.id)
        else {
            return Vec::new();
        };
        self.shared
            .state
            .lock()
            .expect("state")
            .webhook_policies
            .iter()
            .filter(|p| p["project_id"] == id)
            .cloned()
            .collect()
    }

    /// Authorized referrers requests get no answer from now on, until the double stops (a
    /// stuck core).
    pub fn hold_referrers(&self) {
        self.shared.referrers_gate.hold();
    }

    /// Authorized referrers requests get `fault` from now on instead of their answer.
    pub fn fail_referrers(&self, fault: CoreFault) {
        if fault == CoreFault::StallsBeforeItsHead {
            self.hold_referrers();
        }
        *self.shared.referrers_fault.lock().expect("fault") = Some(fault);
    }

    /// Changes the behaviour while running.
    pub fn configure(&self, change: impl FnOnce(&mut DoubleConfig)) {
        change(&mut self.shared.config.lock().expect("config"));
    }

    /// Every request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<Seen> {
        self.server.seen()
    }

    /// Requests received whose path starts with `prefix`.
    #[must_use]
    pub fn requests_to(&self, prefix: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// Runs the token dance a client does: `scope` is `repository:<name>:pull`.
    pub async fn token(&self, account: Option<User>, scope: &str) -> String {
        let mut request = crate::http_client().get(format!(
            "{}/service/token?service=harbor-registry&scope={scope}",
            self.url()
        ));
        if let Some(user) = account {
            request = request.basic_auth(user.name, Some(user.password));
        }
        let answer: Value = request
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token json");
        answer["token"].as_str().expect("token").to_owned()
    }
}

/// An answer of core's `/v2/` API: JSON with the distribution API version header.
fn v2_response(status: u16) -> actix_web::HttpResponseBuilder {
    let mut builder =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
    builder
        .insert_header(("Docker-Distribution-Api-Version", "registry/2.0"))
        .content_type("application/json; charset=utf-8");
    builder
}

fn error_body(code: &str, message: &str) -> String {
    json!({"errors": [{"code": code, "message": message}]}).to_string()
}

fn basic_credentials(request: &HttpRequest) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn account<'a>(config: &'a DoubleConfig, request: &HttpRequest) -> Option<&'a DoubleAccount> {
    let (user, password) = basic_credentials(request)?;
    config
        .accounts
        .iter()
        .find(|a| a.name == user && a.password == password)
}

fn may_pull(config: &DoubleConfig, account: Option<&DoubleAccount>, project: &str) -> bool {
    let Some(found) = config.projects.iter().find(|p| p.name == project) else {
        return false;
    };
    found.public
        || account.is_some_and(|a| a.system_reader || a.projects.iter().any(|p| p == project))
}

/// `GET /service/token?service=harbor-registry&scope=repository:<p>/<r>:pull`.
async fn token(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let has_credentials = request.headers().contains_key(header::AUTHORIZATION);
    let account = account(&config, &request);
    if has_credentials && account.is_none() {
        return HttpResponse::Unauthorized()
            .content_type("application/json; charset=utf-8")
            .body(error_body("UNAUTHORIZED", "authentication required"));
    }
    let mut granted = HashSet::new();
    for pair in request.query_string().split('&') {
        let Some(scope) = pair.strip_prefix("scope=") else {
            continue;
        };
        let scope = percent_encoding::percent_decode_str(scope).decode_utf8_lossy();
        if let Some(repository) = scope
            .strip_prefix("repository:")
            .and_then(|s| s.strip_suffix(":pull"))
        {
            let project = repository.split('/').next().unwrap_or_default();
            if may_pull(&config, account, project) {
                granted.insert(project.to_owned());
            }
        }
    }
    let mut state = shared.state.lock().expect("state");
    state.issued += 1;
    let token = format!("double-token-{}", state.issued);
    state.tokens.insert(
        token.clone(),
        Access {
            account: account.map(|a| a.name.clone()),
            projects: granted,
        },
    );
    HttpResponse::Ok().json(json!({
        "token": token,
        "expires_in": 1800,
        "issued_at": "2026-01-01T00:00:00Z",
    }))
}

/// Everything under `/v2/` (and anything else): authorization first, then the referrers API.
async fn registry_v2(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/v2/") else {
        return HttpResponse::NotFound().finish();
    };
    let config = shared.config.lock().expect("config").clone();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("core")
        .to_owned();
    let scheme = request
        .headers()
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http")
        .to_owned();
    let (name, tail) = split_repository(rest);
    let project = name.split('/').next().unwrap_or_default().to_owned();

    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let Some(authorization) = authorization else {
        let scope = if name.is_empty() {
            String::new()
        } else {
            format!(",scope=\"repository:{name}:pull\"")
        };
        return v2_response(401)
            .insert_header((
                header::WWW_AUTHENTICATE,
                format!(
                    "Bearer realm=\"{scheme}://{host}/service/token\",service=\"harbor-registry\"{scope}"
                ),
            ))
            .body(error_body("UNAUTHORIZED", "unauthorized to access repository"));
    };
    if name.is_empty() {
        // `GET /v2/` with credentials: the API version check.
        return v2_response(200).body("{}");
    }
    let allowed = if let Some(token) = authorization.strip_prefix("Bearer ") {
        let state = shared.state.lock().expect("state");
        state.tokens.get(token.trim()).is_some_and(|access| {
            access.projects.contains(&project) && {
                // A token's account must still exist.
                access
                    .account
                    .as_ref()
                    .is_none_or(|a| config.accounts.iter().any(|c| &c.name == a))
            }
        })
    } else {
        let account = account(&config, &request);
        account.is_some() && may_pull(&config, account, &project)
    };
    if !allowed {
        return v2_response(401)
            .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"harbor\""))
            .body(error_body(
                "UNAUTHORIZED",
                "unauthorized to access repository",
            ));
    }

    let method = request.method().clone();
    match tail {
        Tail::Referrers(subject) if method == actix_web::http::Method::GET => {
            shared.referrers_gate.pass().await;
            let fault = *shared.referrers_fault.lock().expect("fault");
            match fault {
                Some(fault) => faulty_referrers(fault),
                None => referrers(&request, &shared, &config, name, subject),
            }
        }
        Tail::Content(kind, reference)
            if method == actix_web::http::Method::GET
                || method == actix_web::http::Method::HEAD =>
        {
            match upstream_of(&config, &project) {
                Some(upstream) => {
                    let head = method == actix_web::http::Method::HEAD;
                    let pull = Pull {
                        upstream: &upstream,
                        repository: name,
                        project: &project,
                        kind,
                        reference,
                    };
                    pull_through(&shared, &pull, head).await
                }
                None => v2_response(404).body(error_body("NOT_FOUND", "not found")),
            }
        }
        // Core's router knows referrers for GET only: HEAD falls to the registry, which 404s.
        _ => v2_response(404).body(error_body("NOT_FOUND", "not found")),
    }
}

fn faulty_referrers(fault: CoreFault) -> HttpResponse {
    match fault {
        // Held at the gate until the double stops.
        CoreFault::StallsBeforeItsHead => v2_response(500).finish(),
        CoreFault::StallsMidBody => {
            let part = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#;
            let first = futures_util::stream::once(async move {
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(part.as_bytes()))
            });
            let body = first.chain(futures_util::stream::pending());
            v2_response(200)
                .content_type("application/vnd.oci.image.index.v1+json")
                .body(actix_web::body::SizedStream::new(
                    part.len() as u64 + 1024,
                    Box::pin(body),
                ))
        }
        CoreFault::Status(status) => v2_response(status).body(error_body("UNKNOWN", "core failed")),
        CoreFault::Garbage => v2_response(200)
            .content_type("application/vnd.oci.image.index.v1+json")
            .body(CORE_GARBAGE),
    }
}

enum Tail<'a> {
    Referrers(&'a str),
    /// `manifests` or `blobs`, and the tag or digest.
    Content(&'static str, &'a str),
    Other,
}

fn split_repository(rest: &str) -> (&str, Tail<'_>) {
    if let Some((name, subject)) = rest.rsplit_once("/referrers/") {
        return (name, Tail::Referrers(subject));
    }
    for kind in ["manifests", "blobs"] {
        if let Some((name, reference)) = rest.split_once(&format!("/{kind}/")) {
            return (name, Tail::Content(kind, reference));
        }
    }
    if let Some((name, _)) = rest.split_once("/tags/") {
        return (name, Tail::Other);
    }
    (rest.trim_end_matches('/'), Tail::Other)
}

/// The upstream registry's URL of a proxy-cache project.
fn upstream_of(config: &DoubleConfig, project: &str) -> Option<String> {
    let registry_id = config
        .projects
        .iter()
        .find(|p| p.name == project)?
        .registry_id?;
    config
        .registries
        .iter()
        .find(|r| r.id == registry_id)
        .map(|r| r.url.clone())
}

/// One manifest or blob asked of a proxy-cache project.
struct Pull<'a> {
    upstream: &'a str,
    /// `<project>/<repo>`, as Harbor stores it.
    repository: &'a str,
    project: &'a str,
    kind: &'static str,
    reference: &'a str,
}

impl Pull<'_> {
    /// The repository on the upstream: the name without `<project>/`.
    fn upstream_repository(&self) -> &str {
        self.repository
            .strip_prefix(self.project)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(self.repository)
    }
}

/// Harbor's proxy cache (`src/server/middleware/repoproxy`): a digest cached locally is served
/// locally; anything else is pulled from the upstream (a `HEAD` only asked of it), served and
/// cached; when the upstream fails, what is cached is served.
async fn pull_through(shared: &Shared, pull: &Pull<'_>, head: bool) -> HttpResponse {
    let by_digest = pull.reference.contains(':');
    let cached = || {
        let state = shared.state.lock().expect("state");
        if pull.kind == "manifests" {
            state
                .cache
                .manifest(pull.repository, pull.reference)
                .map(|m| (m.media_type.clone(), m.bytes))
        } else {
            state
                .cache
                .blob(pull.repository, pull.reference)
                .map(|b| ("application/octet-stream".to_owned(), b))
        }
    };
    if by_digest && let Some((media_type, bytes)) = cached() {
        if !head && pull.kind == "manifests" {
            notify_pull(shared, pull, &bytes);
        }
        return content(&media_type, bytes);
    }
    let upstream_repository = pull.upstream_repository();
    match proxy_cache::pull(
        pull.upstream,
        upstream_repository,
        pull.kind,
        pull.reference,
    )
    .await
    {
        // Harbor asks the upstream's HEAD and caches nothing; the double reads the content to
        // answer with its length and digest.
        Pulled::Manifest(manifest) if head => content(&manifest.media_type, manifest.bytes),
        Pulled::Blob(bytes) if head => content("application/octet-stream", bytes),
        Pulled::Manifest(manifest) => {
            let (media_type, bytes) = (manifest.media_type.clone(), manifest.bytes.clone());
            keep_manifest(shared, pull.repository, pull.reference, manifest);
            notify_pull(shared, pull, &bytes);
            content(&media_type, bytes)
        }
        Pulled::Blob(bytes) => {
            shared.state.lock().expect("state").cache.keep_blob(
                pull.repository,
                pull.reference,
                bytes.clone(),
            );
            content("application/octet-stream", bytes)
        }
        Pulled::Status(404) => unknown(pull.kind),
        Pulled::Status(_) | Pulled::Unreachable => {
            cached().map_or_else(|| unknown(pull.kind), |(t, b)| content(&t, b))
        }
    }
}

/// Harbor's `PULL_ARTIFACT` webhook for a manifest `GET`, when a policy is set: sent in the
/// background, as Harbor's job service does; a target that fails is not retried.
fn notify_pull(shared: &Shared, pull: &Pull<'_>, bytes: &[u8]) {
    let Some((url, auth_header)) = shared.state.lock().expect("state").pull_webhook.clone() else {
        return;
    };
    let tag = if pull.reference.contains(':') {
        ""
    } else {
        pull.reference
    };
    let event = crate::harbor_webhook::artifact_event(
        crate::harbor_webhook::Format::Default,
        "PULL_ARTIFACT",
        pull.repository,
        &crate::upstreams::sha256_digest(bytes),
        tag,
    );
    actix_rt::spawn(async move {
        let _ = crate::http_client()
            .post(url)
            .header("Content-Type", "application/json")
            .header("Authorization", auth_header)
            .body(event.to_string())
            .send()
            .await;
    });
}

/// Caches a pulled manifest; one with a `subject` becomes a local referrer of that subject
/// (Harbor's accessory record, listed by core's referrers endpoint).
fn keep_manifest(shared: &Shared, repository: &str, reference: &str, manifest: CachedManifest) {
    let mut state = shared.state.lock().expect("state");
    if let Some(subject) = manifest.subject() {
        let descriptor = manifest.referrer_descriptor();
        let listed = state
            .referrers
            .entry((repository.to_owned(), subject))
            .or_default();
        if !listed.iter().any(|d| d["digest"] == descriptor["digest"]) {
            listed.push(descriptor);
        }
    }
    state.cache.keep_manifest(repository, reference, manifest);
}

/// Content with its digest; a `HEAD` gets the same head without the body (actix leaves it out
/// and keeps its length).
fn content(media_type: &str, bytes: bytes::Bytes) -> HttpResponse {
    let digest = crate::upstreams::sha256_digest(&bytes);
    v2_response(200)
        .insert_header(("Docker-Content-Digest", digest))
        .insert_header(("Content-Type", media_type.to_owned()))
        .body(bytes)
}

fn unknown(kind: &str) -> HttpResponse {
    let code = if kind == "manifests" {
        "MANIFEST_UNKNOWN"
    } else {
        "BLOB_UNKNOWN"
    };
    v2_response(404).body(error_body(code, "not found"))
}

fn referrers(
    request: &HttpRequest,
    shared: &Shared,
    config: &DoubleConfig,
    name: &str,
    subject: &str,
) -> HttpResponse {
    if !subject.starts_with("sha256:") || subject.len() != 71 {
        return v2_response(400).body(error_body("DIGEST_INVALID", "invalid digest"));
    }
    let all = shared
        .state
        .lock()
        .expect("state")
        .referrers
        .get(&(name.to_owned(), subject.to_owned()))
        .cloned()
        .unwrap_or_default();
    let total = all.len();
    let filters: Vec<String> = request
        .query_string()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("artifactType="))
        .map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|v| !v.is_empty())
        .collect();
    let mut manifests: Vec<Value> = all
        .into_iter()
        .filter(|d| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|f| d["artifactType"].as_str() == Some(f.as_str()))
        })
        .collect();
    if config.legacy_2_8 {
        for descriptor in &mut manifests {
            // 2.8–2.10 report the artifact's size and its config media type.
            let size = descriptor["size"].as_u64().unwrap_or_default();
            descriptor["size"] = json!(size + 1000);
            descriptor["artifactType"] = json!("application/vnd.oci.image.config.v1+json");
        }
    }
    let mut response = HttpResponse::Ok();
    response
        .insert_header(("Docker-Distribution-Api-Version", "registry/2.0"))
        .insert_header(("X-Total-Count", total.to_string()));
    if config.legacy_2_8 {
        response.content_type("application/json; charset=utf-8");
    } else {
        response.content_type("application/vnd.oci.image.index.v1+json");
    }
    if !filters.is_empty() {
        response.insert_header(("OCI-Filters-Applied", "artifactType"));
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

async fn ping() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("Pong")
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "healthy",
        "components": [{"name": "core", "status": "healthy"}],
    }))
}

fn api_unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .content_type("application/json")
        .body(error_body("UNAUTHORIZED", "unauthorized"))
}

/// `GET /api/v2.0/systeminfo`: the version only for authenticated callers.
async fn systeminfo(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let authenticated = account(&config, &request).is_some();
    if request.headers().contains_key(header::AUTHORIZATION) && !authenticated {
        return api_unauthorized();
    }
    let mut info = json!({
        "auth_mode": "db_auth",
        "primary_auth_mode": false,
        "self_registration": false,
        "has_ca_root": false,
        "read_only": false,
        "registry_storage_provider_name": "filesystem",
        "banner_message": "",
        "current_time": "2026-01-01T00:00:00Z",
    });
    if authenticated {
        info["harbor_version"] = json!(config.version);
        info["external_url"] = json!("https://harbor.example.com");
        info["registry_url"] = json!("harbor.example.com");
        info["project_creation_restriction"] = json!("everyone");
    }
    HttpResponse::Ok().json(info)
}

/// The project named (or, for an all-digit name without `X-Is-Resource-Name`, numbered) so.
fn find_project<'a>(
    config: &'a DoubleConfig,
    request: &HttpRequest,
    key: &str,
) -> Option<&'a DoubleProject> {
    let by_name = request
        .headers()
        .get("X-Is-Resource-Name")
        .is_some_and(|v| v == "true");
    if !by_name && key.bytes().all(|b| b.is_ascii_digit()) {
        let id: i64 = key.parse().ok()?;
        return config.projects.iter().find(|p| p.id == id);
    }
    config.projects.iter().find(|p| p.name == key)
}

/// `GET /api/v2.0/projects/{name}` (swagger `Project`).
async fn project(
    request: HttpRequest,
    shared: web::Data<Shared>,
    name: web::Path<String>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let account = account(&config, &request);
    if request.headers().contains_key(header::AUTHORIZATION) && account.is_none() {
        return api_unauthorized();
    }
    let Some(found) = find_project(&config, &request, &name) else {
        return HttpResponse::NotFound()
            .json(json!({"errors":[{"code":"NOT_FOUND","message":"project not found"}]}));
    };
    let role = account.map_or(0, |a| a.role_in(&found.name));
    let readable =
        found.public || role > 0 || account.is_some_and(|a| a.system_reader || a.sysadmin);
    if !readable {
        return if account.is_some() {
            HttpResponse::Forbidden()
                .json(json!({"errors":[{"code":"FORBIDDEN","message":"forbidden"}]}))
        } else {
            api_unauthorized()
        };
    }
    let mut answer = project_json(found);
    if account.is_some() {
        // The caller's roles, as Harbor adds them for an authenticated caller.
        answer["current_user_role_id"] = json!(role);
        answer["current_user_role_ids"] = if role > 0 { json!([role]) } else { Value::Null };
    }
    HttpResponse::Ok().json(answer)
}

/// `GET /api/v2.0/users/current` (swagger `UserResp`): 401 without good credentials, 412 for
/// a robot account (no user).
async fn current_user(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let Some(account) = account(&config, &request) else {
        return api_unauthorized();
    };
    if account.is_robot() {
        return HttpResponse::PreconditionFailed().json(
            json!({"errors":[{"code":"PRECONDITION","message":"the current user is not a user"}]}),
        );
    }
    HttpResponse::Ok().json(user_json(account))
}

/// A user in the shape of Harbor's swagger `UserResp`.
#[must_use]
pub fn user_json(account: &DoubleAccount) -> Value {
    json!({
        "user_id": 3,
        "username": account.name,
        "email": format!("{}@example.com", account.name),
        "realname": account.name,
        "comment": "",
        "sysadmin_flag": account.sysadmin,
        "admin_role_in_auth": false,
        "creation_time": "2026-01-01T00:00:00.000Z",
        "update_time": "2026-01-01T00:00:00.000Z",
    })
}

fn project_metadata(project: &DoubleProject) -> Value {
    let mut metadata = serde_json::Map::new();
    metadata.insert("public".into(), json!(project.public.to_string()));
    if project.registry_id.is_some() {
        metadata.insert("proxy_speed_kb".into(), json!("-1"));
    }
    for (key, value) in &project.metadata {
        metadata.insert(key.clone(), json!(value));
    }
    Value::Object(metadata)
}

/// A project in the shape of Harbor's swagger `Project`.
#[must_use]
pub fn project_json(project: &DoubleProject) -> Value {
    let mut value = json!({
        "project_id": project.id,
        "owner_id": 1,
        "name": project.name,
        "creation_time": "2026-01-01T00:00:00.000Z",
        "update_time": "2026-01-01T00:00:00.000Z",
        "deleted": false,
        "owner_name": "admin",
        "togglable": true,
        "current_user_role_ids": null,
        "repo_count": 0,
        "metadata": project_metadata(project),
        "cve_allowlist": {
            "id": 0, "project_id": project.id, "items": [],
            "creation_time": "0001-01-01T00:00:00.000Z",
            "update_time": "0001-01-01T00:00:00.000Z"
        },
    });
    if let Some(id) = project.registry_id {
        value["registry_id"] = json!(id);
    }
    value
}

/// `GET /api/v2.0/projects/{name}/metadatas/`: the raw map.
async fn metadatas(
    request: HttpRequest,
    shared: web::Data<Shared>,
    name: web::Path<String>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    match find_project(&config, &request, &name) {
        Some(found) if account(&config, &request).is_some() || found.public => {
            HttpResponse::Ok().json(project_metadata(found))
        }
        Some(_) => api_unauthorized(),
        None => HttpResponse::NotFound().finish(),
    }
}

/// `GET /api/v2.0/registries/{id}` (swagger `Registry`), secret masked; needs registry read.
async fn registry(
    request: HttpRequest,
    shared: web::Data<Shared>,
    id: web::Path<i64>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let Some(account) = account(&config, &request) else {
        return api_unauthorized();
    };
    if !(account.system_reader && config.registries_api_readable) {
        return HttpResponse::Forbidden()
            .json(json!({"errors":[{"code":"FORBIDDEN","message":"forbidden"}]}));
    }
    match config.registries.iter().find(|r| r.id == *id) {
        Some(found) => HttpResponse::Ok().json(registry_json(found)),
        None => HttpResponse::NotFound()
            .json(json!({"errors":[{"code":"NOT_FOUND","message":"registry not found"}]})),
    }
}

/// A registry in the shape of Harbor's swagger `Registry`.
#[must_use]
pub fn registry_json(registry: &DoubleRegistry) -> Value {
    json!({
        "id": registry.id,
        "name": registry.name,
        "url": registry.url,
        "type": registry.registry_type,
        "insecure": registry.insecure,
        "description": "",
        "status": "healthy",
        "credential": {"type": "basic", "access_key": "someone", "access_secret": "*****"},
        "creation_time": "2026-01-01T00:00:00.000Z",
        "update_time": "2026-01-01T00:00:00.000Z",
    })
}

/// The query's value of `key`, percent-decoded.
fn query_value(request: &HttpRequest, key: &str) -> Option<String> {
    request.query_string().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn bad_request(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"errors":[{"code":"BAD_REQUEST","message":message}]}))
}

/// `GET /api/v2.0/labels?scope=g|p[&project_id=<n>][&name=<fuzzy>][&page=][&page_size=]`
/// (swagger `Label` list): `name` matches as a substring, `project_id` must be a number for
/// `scope=p`, pages of `page_size` (at most 100) with `X-Total-Count`; listing a project's
/// labels needs `label:list` on it.
async fn labels(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let account = account(&config, &request);
    if request.headers().contains_key(header::AUTHORIZATION) && account.is_none() {
        return api_unauthorized();
    }
    let number = |key: &str, default: i64| match query_value(&request, key) {
        None => Ok(default),
        Some(v) => v.parse::<i64>().map_err(|_| format!("invalid {key}: {v}")),
    };
    let (page, page_size) = match (number("page", 1), number("page_size", 10)) {
        (Ok(page), Ok(size)) if page >= 1 && (1..=100).contains(&size) => (page, size),
        (Err(message), _) | (_, Err(message)) => return bad_request(&message),
        _ => return bad_request("invalid page or page_size"),
    };
    let project_id = match query_value(&request, "scope").as_deref() {
        Some("g") => None,
        Some("p") => match number("project_id", 0) {
            Ok(id) if id > 0 => Some(id),
            Ok(_) => return bad_request("must provide a valid project ID when scope is p"),
            Err(message) => return bad_request(&message),
        },
        _ => return bad_request("invalid scope"),
    };
    if let Some(id) = project_id {
        let Some(project) = config.projects.iter().find(|p| p.id == id) else {
            return HttpResponse::NotFound()
                .json(json!({"errors":[{"code":"NOT_FOUND","message":"project not found"}]}));
        };
        let Some(account) = account else {
            return api_unauthorized();
        };
        let may_list = (account.system_reader && config.labels_listable)
            || account.projects.contains(&project.name);
        if !may_list {
            return HttpResponse::Forbidden()
                .json(json!({"errors":[{"code":"FORBIDDEN","message":"forbidden"}]}));
        }
    }
    let name = query_value(&request, "name").unwrap_or_default();
    let matching: Vec<&DoubleLabel> = config
        .labels
        .iter()
        .filter(|l| l.project_id == project_id && l.name.contains(&name))
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(usize::try_from((page - 1) * page_size).unwrap_or(usize::MAX))
        .take(usize::try_from(page_size).unwrap_or(0))
        .map(label_json)
        .collect();
    HttpResponse::Ok()
        .insert_header(("X-Total-Count", total.to_string()))
        .json(page)
}

/// A label in the shape of Harbor's swagger `Label`.
#[must_use]
pub fn label_json(label: &DoubleLabel) -> Value {
    json!({
        "id": label.id,
        "name": label.name,
        "description": "",
        "color": "#0095D3",
        "scope": if label.project_id.is_some() { "p" } else { "g" },
        "project_id": label.project_id.unwrap_or(0),
        "creation_time": "2026-01-01T00:00:00.000Z",
        "update_time": "2026-01-01T00:00:00.000Z",
    })
}

/// The id of project `name` if the caller may manage its webhook policies (a project admin
/// or a system admin), else the status Harbor answers: 401 without good credentials, 404 for
/// an unknown project, 403 for anyone else.
fn webhook_policy_project(
    request: &HttpRequest,
    config: &DoubleConfig,
    name: &str,
) -> Result<i64, u16> {
    let account = account(config, request).ok_or(401_u16)?;
    let found = find_project(config, request, name).ok_or(404_u16)?;
    if account.role_in(&found.name) == 1 || account.sysadmin {
        Ok(found.id)
    } else {
        Err(403)
    }
}

/// Harbor's API error answer with `status`.
fn api_error(status: u16) -> HttpResponse {
    let code = match status {
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        409 => "CONFLICT",
        _ => "BAD_REQUEST",
    };
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .json(json!({"errors":[{"code": code, "message": code.to_lowercase()}]}))
}

/// A posted policy as Harbor validates and stores it: targets and event types required, an
/// `http` target's payload format `Default` when none is given; `None` when Harbor refuses it.
fn stored_policy(body: &Value, id: i64, project_id: i64, creator: &str) -> Option<Value> {
    let event_types = body["event_types"].as_array().filter(|t| !t.is_empty())?;
    let mut targets = body["targets"]
        .as_array()
        .filter(|t| !t.is_empty())?
        .clone();
    for target in &mut targets {
        if target["type"] != "http" {
            return None;
        }
        if target["payload_format"].as_str().is_none_or(str::is_empty) {
            target["payload_format"] = json!("Default");
        }
    }
    Some(json!({
        "id": id,
        "name": body["name"].as_str().unwrap_or_default(),
        "description": body["description"].as_str().unwrap_or_default(),
        "project_id": project_id,
        "targets": targets,
        "event_types": event_types,
        "creator": creator,
        "creation_time": "2026-01-01T00:00:00.000Z",
        "update_time": "2026-01-01T00:00:00.000Z",
        "enabled": body["enabled"].as_bool().unwrap_or(false),
    }))
}

/// `GET /api/v2.0/projects/{name}/webhook/policies` (paged, `X-Total-Count`).
async fn list_webhook_policies(
    request: HttpRequest,
    shared: web::Data<Shared>,
    name: web::Path<String>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let project_id = match webhook_policy_project(&request, &config, &name) {
        Ok(id) => id,
        Err(status) => return api_error(status),
    };
    let query: HashMap<String, String> =
        web::Query::<HashMap<String, String>>::from_query(request.query_string())
            .map(web::Query::into_inner)
            .unwrap_or_default();
    let number = |key: &str, default: usize| {
        query
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (page, page_size) = (number("page", 1).max(1), number("page_size", 10));
    let state = shared.state.lock().expect("state");
    let all: Vec<&Value> = state
        .webhook_policies
        .iter()
        .filter(|p| p["project_id"] == project_id)
        .collect();
    let listed: Vec<&Value> = all
        .iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .copied()
        .collect();
    HttpResponse::Ok()
        .insert_header(("X-Total-Count", all.len().to_string()))
        .json(listed)
}

/// `POST /api/v2.0/projects/{name}/webhook/policies`: `201` with `Location`; a name the
/// project already has is a `409`.
async fn create_webhook_policy(
    request: HttpRequest,
    shared: web::Data<Shared>,
    name: web::Path<String>,
    body: web::Json<Value>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let project_id = match webhook_policy_project(&request, &config, &name) {
        Ok(id) => id,
        Err(status) => return api_error(status),
    };
    let creator = basic_credentials(&request)
        .map(|(user, _)| user)
        .unwrap_or_default();
    let mut state = shared.state.lock().expect("state");
    let taken = state
        .webhook_policies
        .iter()
        .any(|p| p["project_id"] == project_id && p["name"] == body["name"]);
    if taken {
        return api_error(409);
    }
    let id = state.webhook_policies.len() as i64 + 1;
    let Some(policy) = stored_policy(&body, id, project_id, &creator) else {
        return api_error(400);
    };
    state.webhook_policies.push(policy);
    HttpResponse::Created()
        .insert_header((header::LOCATION, format!("{}/{id}", request.path())))
        .finish()
}

/// `PUT /api/v2.0/projects/{name}/webhook/policies/{id}`: the whole policy replaced.
async fn update_webhook_policy(
    request: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<(String, i64)>,
    body: web::Json<Value>,
) -> HttpResponse {
    let (name, id) = path.into_inner();
    let config = shared.config.lock().expect("config").clone();
    let project_id = match webhook_policy_project(&request, &config, &name) {
        Ok(id) => id,
        Err(status) => return api_error(status),
    };
    let mut state = shared.state.lock().expect("state");
    let Some(stored) = state
        .webhook_policies
        .iter_mut()
        .find(|p| p["id"] == id && p["project_id"] == project_id)
    else {
        return api_error(404);
    };
    let creator = stored["creator"].as_str().unwrap_or_default().to_owned();
    let Some(policy) = stored_policy(&body, id, project_id, &creator) else {
        return api_error(400);
    };
    *stored = policy;
    HttpResponse::Ok().finish()
}
