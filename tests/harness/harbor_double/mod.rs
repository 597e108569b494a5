//! A Harbor core test double that behaves as `docs/harbor.md` describes core, one file per
//! surface:
//!
//! - `v2`: `/v2/` authorization (401 with a Bearer challenge built from `Host` when no
//!   credentials are sent, 401 `Basic realm="harbor"` for a bad token *and* for a valid token
//!   without access), the token service, and the referrers endpoint (GET only; HEAD falls
//!   through to a 404) with Harbor's quirks;
//! - `proxy`: manifests and blobs of proxy-cache projects pulled through from the upstream
//!   and cached (a cached manifest with a `subject` becomes a local referrer: see
//!   `crate::proxy_cache`);
//! - `api`: the REST API the sidecar reads (systeminfo, projects, metadatas, registries with
//!   the secret masked, project labels, ping, health);
//! - `artifacts`: a project's repositories and their artifacts, listed page by page, as the
//!   warm command reads them;
//! - `webhooks`: webhook policies, and the `PULL_ARTIFACT` events a policy sends;
//! - `sbom`: Harbor's SBOM generation, a referrer stored in Harbor only.
//!
//! This file holds what they share: the double's configuration and state, the accounts, and
//! [`HarborDouble`] itself. Every request it receives is recorded (see `crate::seen`).

mod api;
mod artifacts;
mod proxy;
mod sbom;
mod v2;
mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use base64::Engine;
use serde_json::{Value, json};

use crate::proxy_cache::{ArtifactTimes, ProxyCache};
use crate::seen::Seen;
use crate::server::{Gate, TestServer};
use crate::users::User;

pub use api::{label_json, project_json, registry_json, user_json};
pub use sbom::HARBOR_SBOM;

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
                .configure(api::routes)
                .configure(artifacts::routes)
                .configure(webhooks::routes)
                .configure(v2::routes);
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

    /// Stores `manifest` in `repository` at its digest, as core stores what its own `/v2`
    /// API is given; one with a `subject` becomes a local referrer of that subject.
    fn store_manifest(&self, repository: &str, manifest: crate::proxy_cache::CachedManifest) {
        let digest = manifest.digest();
        proxy::keep_manifest(&self.shared, repository, &digest, manifest);
    }

    /// Stores `bytes` as a blob of `repository`.
    fn store_blob(&self, repository: &str, bytes: bytes::Bytes) {
        let digest = crate::upstreams::sha256_digest(&bytes);
        let mut state = self.shared.state.lock().expect("state");
        state.cache.keep_blob(repository, &digest, bytes);
    }

    /// A webhook policy sending `PULL_ARTIFACT` events (Harbor's default payload) to `url`,
    /// with `auth_header` as `Authorization`, for every manifest pulled from a proxy-cache
    /// project from now on.
    pub fn send_pull_webhooks(&self, url: &str, auth_header: &str) {
        self.shared.state.lock().expect("state").pull_webhook =
            Some((url.to_owned(), auth_header.to_owned()));
    }

    /// Sets when the artifact `digest` of `repository` (`project/repo`) was stored and last
    /// pulled, as Harbor's artifact list shows them.
    pub fn set_artifact_times(&self, repository: &str, digest: &str, times: ArtifactTimes) {
        self.shared
            .state
            .lock()
            .expect("state")
            .cache
            .set_times(repository, digest, times);
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

    /// Authorized referrers requests get no answer from now on, until released or the double
    /// stops (a stuck core).
    pub fn hold_referrers(&self) {
        self.shared.referrers_gate.hold();
    }

    /// Held referrers requests get their answers, and later ones do not wait.
    pub fn release_referrers(&self) {
        self.shared.referrers_gate.release();
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

    /// Pulls the manifest `reference` of `repository` (`project/repo`) as `user`, with a token
    /// as a client gets it: through a proxy-cache project, Harbor pulls it from the upstream
    /// and caches it.
    pub async fn pull_manifest(
        &self,
        user: User,
        repository: &str,
        reference: &str,
    ) -> reqwest::Response {
        let token = self
            .token(Some(user), &format!("repository:{repository}:pull"))
            .await;
        crate::http_client()
            .get(format!(
                "{}/v2/{repository}/manifests/{reference}",
                self.url()
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("manifest pull from core")
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

/// An error body as core's `/v2/` and REST API write it.
fn error_body(code: &str, message: &str) -> String {
    json!({"errors": [{"code": code, "message": message}]}).to_string()
}

/// The user and password of a `Basic` `Authorization`.
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

/// The account whose basic credentials `request` carries.
fn account<'a>(config: &'a DoubleConfig, request: &HttpRequest) -> Option<&'a DoubleAccount> {
    let (user, password) = basic_credentials(request)?;
    config
        .accounts
        .iter()
        .find(|a| a.name == user && a.password == password)
}

/// Whether `account` (or anyone, for a public project) may pull from `project`.
fn may_pull(config: &DoubleConfig, account: Option<&DoubleAccount>, project: &str) -> bool {
    let Some(found) = config.projects.iter().find(|p| p.name == project) else {
        return false;
    };
    found.public
        || account.is_some_and(|a| a.system_reader || a.projects.iter().any(|p| p == project))
}
