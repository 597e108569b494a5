//! Harbor's REST API (`/api/v2.0`) as the sidecar's robot account sees it: systeminfo, project
//! (with its repository allowlist) and registry facts. JSON shapes follow Harbor's swagger (`Project`, `Registry`,
//! `GeneralInfo`); only the fields the sidecar reads are typed, the rest is ignored.

use awc::http::header::HeaderMap;
use awc::http::{Method, header};
use base64::Engine;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;
use url::Url;

use crate::error::HarborError;
use crate::repository_filter::{FILTER_KIND_KEY, FILTER_PATTERN_KEY, RepositoryFilter};
use crate::transport::CoreConnections;

/// Largest API answer read (a project or registry object is a few KiB).
const API_BODY_LIMIT: usize = 1024 * 1024;

/// Username and password for Harbor's API; the password is never printed.
#[derive(Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"*****")
            .finish()
    }
}

impl BasicAuth {
    pub(crate) fn header_value(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// `GET /api/v2.0/systeminfo` (swagger `GeneralInfo`).
#[derive(Debug, Clone, Deserialize)]
pub struct SystemInfo {
    /// `v2.15.2-abcdef`; only for authenticated callers.
    #[serde(default)]
    pub harbor_version: Option<String>,
}

impl SystemInfo {
    /// `(major, minor)` of `harbor_version`, when it is there and readable.
    #[must_use]
    pub fn version(&self) -> Option<(u32, u32)> {
        let text = self.harbor_version.as_deref()?.trim_start_matches('v');
        let mut parts = text.split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }
}

/// `GET /api/v2.0/projects/{name}` (swagger `Project`).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "ProjectJson")]
pub struct Project {
    pub project_id: i64,
    pub name: String,
    /// The upstream registry of a proxy-cache project; 0 or absent otherwise.
    pub registry_id: Option<i64>,
    /// Project metadata: all string values in Harbor (`public`, `proxy_speed_kb`, …).
    pub metadata: BTreeMap<String, String>,
    /// Harbor ≥ 2.16's repository allowlist, compiled once from the metadata.
    pub repository_filter: RepositoryFilter,
}

/// The project as Harbor sends it, before the allowlist is compiled.
#[derive(Deserialize)]
struct ProjectJson {
    project_id: i64,
    name: String,
    #[serde(default)]
    registry_id: Option<i64>,
    #[serde(default, deserialize_with = "string_map")]
    metadata: BTreeMap<String, String>,
}

impl From<ProjectJson> for Project {
    fn from(json: ProjectJson) -> Self {
        Self::new(json.project_id, json.name, json.registry_id, json.metadata)
    }
}

impl Project {
    /// A project with its metadata; the allowlist is read from it.
    #[must_use]
    pub fn new(
        project_id: i64,
        name: String,
        registry_id: Option<i64>,
        metadata: BTreeMap<String, String>,
    ) -> Self {
        let repository_filter = RepositoryFilter::from_metadata(
            metadata.get(FILTER_PATTERN_KEY).map(String::as_str),
            metadata.get(FILTER_KIND_KEY).map(String::as_str),
        );
        Self {
            project_id,
            name,
            registry_id,
            metadata,
            repository_filter,
        }
    }

    /// The Harbor registry id of a proxy-cache project.
    #[must_use]
    pub fn proxy_registry_id(&self) -> Option<i64> {
        self.registry_id.filter(|id| *id > 0)
    }

    /// Harbor ≥ 2.16 merges upstream referrers itself when this metadata is on.
    #[must_use]
    pub fn harbor_merges_referrers(&self) -> bool {
        self.metadata
            .get("proxy_referrer_api")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// `GET /api/v2.0/registries/{id}` (swagger `Registry`). The credential is not read: Harbor
/// masks its secret.
#[derive(Debug, Clone, Deserialize)]
pub struct RegistryInfo {
    pub id: i64,
    pub name: String,
    pub url: String,
    #[serde(rename = "type")]
    pub registry_type: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub status: Option<String>,
    /// PEM CA for this registry's endpoint (Harbor ≥ 2.13).
    #[serde(default)]
    pub ca_certificate: Option<String>,
}

/// `GET /api/v2.0/labels` (swagger `Label`): only what telling labels apart needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub project_id: Option<i64>,
}

/// Labels asked for per page (Harbor's largest page).
const LABELS_PAGE_SIZE: usize = 100;

/// Pages of a project's labels read at most: a bound on what one project costs per TTL.
const MAX_LABEL_PAGES: usize = 10;

/// Metadata values are strings in Harbor; tolerate scalars of other types, drop the rest.
fn string_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(deserializer)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::String(s) => Some((key, s)),
            serde_json::Value::Bool(b) => Some((key, b.to_string())),
            serde_json::Value::Number(n) => Some((key, n.to_string())),
            _ => None,
        })
        .collect())
}

/// One per worker, on that worker's connections to core.
pub struct CoreClient {
    pub(crate) connections: CoreConnections,
    pub(crate) base: Url,
    pub(crate) credentials: Option<BasicAuth>,
    timeout: Duration,
}

impl CoreClient {
    /// `timeout` bounds each whole call to core: the response head and every byte of the body,
    /// every page of a paged answer. A caller with a tighter deadline drops the call's future.
    #[must_use]
    pub fn new(
        connections: CoreConnections,
        base: Url,
        timeout: Duration,
        credentials: Option<BasicAuth>,
    ) -> Self {
        Self {
            connections,
            base,
            credentials,
            timeout,
        }
    }

    /// Runs one whole call to core within `timeout`: awc's own timeout ends at the response
    /// head, and a core that stalls mid-body must not hold a request (or every request queued
    /// behind a shared load) for ever.
    pub(crate) async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, HarborError>>,
    ) -> Result<T, HarborError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(HarborError::Timeout))
    }

    /// Core's URL for `path` (which starts with `/`), under any path prefix of the base URL.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    pub async fn system_info(&self) -> Result<SystemInfo, HarborError> {
        self.get_json("/api/v2.0/systeminfo", "systeminfo", false)
            .await?
            .ok_or_else(|| HarborError::Status {
                what: "systeminfo".into(),
                status: 404,
            })
    }

    /// The project named `name`; `None` when Harbor says it does not exist.
    pub async fn project(&self, name: &str) -> Result<Option<Project>, HarborError> {
        let (path, by_name) = project_path(name);
        self.get_json(&path, &format!("project {name}"), by_name)
            .await
    }

    /// The registry with `id`; `Forbidden` when the robot may not read registries (< 2.10).
    pub async fn registry(&self, id: i64) -> Result<Option<RegistryInfo>, HarborError> {
        let path = format!("/api/v2.0/registries/{id}");
        self.get_json(&path, &format!("registry {id}"), false).await
    }

    /// The names of the project labels of the project with id `project_id`, read with one
    /// unfiltered listing (Harbor's `name` filter is fuzzy, so one listing answers every
    /// switch); at most `MAX_LABEL_PAGES` pages, the rest logged and left unread. Needs
    /// `label:list` on the project.
    pub async fn project_label_names(
        &self,
        project_id: i64,
    ) -> Result<HashSet<String>, HarborError> {
        let what = format!("labels of project {project_id}");
        let mut names = HashSet::new();
        for page in 1..=MAX_LABEL_PAGES {
            let path = format!(
                "/api/v2.0/labels?scope=p&project_id={project_id}&page={page}&page_size={LABELS_PAGE_SIZE}"
            );
            let labels: Vec<Label> = self
                .get_json(&path, &what, false)
                .await?
                .unwrap_or_default();
            let last = labels.len() < LABELS_PAGE_SIZE;
            names.extend(project_label_names(labels, project_id));
            if last {
                return Ok(names);
            }
        }
        tracing::warn!(
            project_id,
            "the project has over {} labels; the rest are not read",
            LABELS_PAGE_SIZE * MAX_LABEL_PAGES
        );
        Ok(names)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
        resource_name: bool,
    ) -> Result<Option<T>, HarborError> {
        self.get_json_as(path, what, resource_name, self.credentials.as_ref())
            .await
    }

    /// `GET path` on Harbor's API as `credentials` (none: anonymously): `None` on a 404.
    pub(crate) async fn get_json_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
        resource_name: bool,
        credentials: Option<&BasicAuth>,
    ) -> Result<Option<T>, HarborError> {
        Ok(self
            .get_json_with_headers(path, what, resource_name, credentials, API_BODY_LIMIT)
            .await?
            .map(|(answer, _)| answer))
    }

    /// `GET path` as [`get_json_as`](Self::get_json_as) does, reading at most `limit` bytes,
    /// with the answer's headers (a listing's `X-Total-Count` and `Link`).
    pub(crate) async fn get_json_with_headers<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
        resource_name: bool,
        credentials: Option<&BasicAuth>,
        limit: usize,
    ) -> Result<Option<(T, HeaderMap)>, HarborError> {
        self.bounded(self.get_json_unbounded(path, what, resource_name, credentials, limit))
            .await
    }

    async fn get_json_unbounded<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
        resource_name: bool,
        credentials: Option<&BasicAuth>,
        limit: usize,
    ) -> Result<Option<(T, HeaderMap)>, HarborError> {
        let mut request = self
            .connections
            .request(Method::GET, &self.url(path))
            .insert_header((header::ACCEPT, "application/json"));
        if let Some(credentials) = credentials {
            request = request.insert_header((header::AUTHORIZATION, credentials.header_value()));
        }
        if resource_name {
            request = request.insert_header(("X-Is-Resource-Name", "true"));
        }
        let (mut response, _slot) = self
            .connections
            .send(request.send(), std::future::ready(()))
            .await
            .map_err(|e| HarborError::from_send(&e))?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            404 => return Ok(None),
            401 => return Err(HarborError::Unauthorized(what.to_owned())),
            403 => return Err(HarborError::Forbidden(what.to_owned())),
            _ => {
                return Err(HarborError::Status {
                    what: what.to_owned(),
                    status,
                });
            }
        }
        let body = response.body().limit(limit).await.map_err(|e| match e {
            awc::error::PayloadError::Overflow => HarborError::TooLarge {
                what: what.to_owned(),
                limit,
            },
            other => HarborError::Unreachable(other.to_string()),
        })?;
        let headers = response.headers().clone();
        serde_json::from_slice(&body)
            .map(|answer| Some((answer, headers)))
            .map_err(|e| HarborError::Invalid {
                what: what.to_owned(),
                reason: e.to_string(),
            })
    }
}

/// The API path of the project named `name`, and whether Harbor must be told it is a name: an
/// all-digit name would be read as a project id.
pub(crate) fn project_path(name: &str) -> (String, bool) {
    let path = format!(
        "/api/v2.0/projects/{}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    );
    (path, name.bytes().all(|b| b.is_ascii_digit()))
}

/// The names of the labels in `labels` that are project labels of project `project_id`: a
/// global label (or another project's) of the same name is not the project's switch.
fn project_label_names(labels: Vec<Label>, project_id: i64) -> impl Iterator<Item = String> {
    labels
        .into_iter()
        .filter(move |label| {
            label.scope.as_deref().is_none_or(|scope| scope == "p")
                && label.project_id.is_none_or(|id| id == project_id)
        })
        .map(|label| label.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_shapes_from_harbor_decode() {
        let proxy: Project = serde_json::from_str(
            r#"{"project_id":3,"name":"hub","registry_id":1,"repo_count":0,
                "metadata":{"public":"true","proxy_speed_kb":"-1","proxy_referrer_api":"true"},
                "cve_allowlist":{"items":[]}}"#,
        )
        .unwrap();
        assert_eq!(proxy.proxy_registry_id(), Some(1));
        assert!(proxy.harbor_merges_referrers());
        let plain: Project =
            serde_json::from_str(r#"{"project_id":1,"name":"library","metadata":null}"#).unwrap();
        assert_eq!(plain.proxy_registry_id(), None);
        assert!(!plain.harbor_merges_referrers());
        let zero: Project =
            serde_json::from_str(r#"{"project_id":1,"name":"x","registry_id":0}"#).unwrap();
        assert_eq!(zero.proxy_registry_id(), None);
        assert!(zero.repository_filter.allows("any/thing"));
    }

    #[test]
    fn the_allowlist_is_read_from_harbor_216_metadata() {
        let project: Project = serde_json::from_str(
            r#"{"project_id":3,"name":"hub","registry_id":1,
                "metadata":{"public":"false","proxy_cache_filter_pattern":"^library/(nginx|redis)$",
                            "proxy_cache_filter_kind":"regex"}}"#,
        )
        .unwrap();
        assert!(project.repository_filter.allows("library/redis"));
        assert!(!project.repository_filter.allows("library/alpine"));
        let glob: Project = serde_json::from_str(
            r#"{"project_id":3,"name":"hub","registry_id":1,
                "metadata":{"proxy_cache_filter_pattern":"team/*"}}"#,
        )
        .unwrap();
        assert!(glob.repository_filter.allows("team/app"));
        assert!(!glob.repository_filter.allows("other/app"));
    }

    #[test]
    fn versions_are_read_from_harbor_version() {
        let info = |v: &str| SystemInfo {
            harbor_version: Some(v.into()),
        };
        assert_eq!(info("v2.15.2-6e3ab7f4").version(), Some((2, 15)));
        assert_eq!(info("v2.8.0").version(), Some((2, 8)));
        assert_eq!(info("dev").version(), None);
    }

    #[test]
    fn only_the_projects_own_labels_are_listed_by_exact_name() {
        let labels: Vec<Label> = serde_json::from_str(
            r##"[{"id":1,"name":"referrers-proxy-old","scope":"p","project_id":7,"color":"#fff"},
                {"id":2,"name":"Referrers-Proxy","scope":"p","project_id":7},
                {"id":3,"name":"referrers-proxy-store","scope":"g","project_id":0},
                {"id":4,"name":"referrers-proxy","scope":"p","project_id":8},
                {"id":5,"name":"referrers-proxy","scope":"p","project_id":7,
                 "creation_time":"2026-01-01T00:00:00Z","update_time":"2026-01-01T00:00:00Z"}]"##,
        )
        .unwrap();
        let names: HashSet<String> = project_label_names(labels, 7).collect();
        // A switch is looked up by exact name; a global label is not the project's switch.
        assert!(names.contains("referrers-proxy"));
        assert!(!names.contains("referrers-proxy-store"), "{names:?}");
        assert_eq!(
            names,
            HashSet::from(
                ["referrers-proxy-old", "Referrers-Proxy", "referrers-proxy"].map(String::from)
            )
        );
    }

    #[test]
    fn credentials_are_masked_in_debug() {
        let auth = BasicAuth {
            username: "robot$x".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert_eq!(auth.header_value(), "Basic cm9ib3QkeDpodW50ZXIy");
    }
}
