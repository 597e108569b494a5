//! What the Harbor core double's proxy-cache projects hold: manifests and blobs pulled through
//! from the project's upstream registry, kept with their digests, as Harbor's proxy cache
//! keeps them (`src/controller/proxy/`). A cached manifest with a `subject` becomes a local
//! referrer of that subject, as Harbor's `subject` middleware records it when core stores the
//! manifest through its own `/v2` API.
//!
//! Harbor stores what it pulled 20–200 s later, in the background; the double stores it at
//! once, so a test waits for the pull it caused, not for Harbor's timer. It keeps when each
//! manifest was stored (Harbor's `push_time`) and last pulled (`pull_time`), as its artifact
//! list shows them.

use std::collections::HashMap;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::upstreams::sha256_digest;

/// What clients accept, as Harbor's proxy asks its upstreams.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A manifest as cached: its media type and exact bytes.
#[derive(Debug, Clone)]
pub struct CachedManifest {
    pub media_type: String,
    pub bytes: Bytes,
}

impl CachedManifest {
    #[must_use]
    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }

    /// The digest of the manifest's `subject`, when it has one.
    #[must_use]
    pub fn subject(&self) -> Option<String> {
        let manifest: Value = serde_json::from_slice(&self.bytes).ok()?;
        manifest["subject"]["digest"].as_str().map(str::to_owned)
    }

    /// The descriptor core's referrers endpoint lists for it (Harbor ≥ 2.11): the manifest's
    /// media type, digest and size, its `artifactType` (else its config's media type) and its
    /// annotations.
    #[must_use]
    pub fn referrer_descriptor(&self) -> Value {
        let manifest: Value = serde_json::from_slice(&self.bytes).unwrap_or(Value::Null);
        let artifact_type = manifest["artifactType"]
            .as_str()
            .or_else(|| manifest["config"]["mediaType"].as_str());
        let mut descriptor = json!({
            "mediaType": self.media_type,
            "digest": self.digest(),
            "size": self.bytes.len(),
        });
        if let Some(artifact_type) = artifact_type {
            descriptor["artifactType"] = json!(artifact_type);
        }
        if manifest["annotations"].is_object() {
            descriptor["annotations"] = manifest["annotations"].clone();
        }
        descriptor
    }
}

/// The content one Harbor holds for its proxy-cache projects, per repository
/// (`<project>/<repo>`).
#[derive(Debug, Default)]
pub struct ProxyCache {
    manifests: HashMap<(String, String), CachedManifest>,
    tags: HashMap<(String, String), String>,
    blobs: HashMap<(String, String), Bytes>,
    /// When each manifest was stored and last pulled.
    times: HashMap<(String, String), ArtifactTimes>,
}

/// When an artifact was stored (`push_time`) and last pulled (`pull_time`, `None`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactTimes {
    pub pushed: SystemTime,
    pub pulled: Option<SystemTime>,
}

/// An artifact as Harbor lists it: a manifest that is no accessory (none with a `subject`).
#[derive(Debug, Clone)]
pub struct ListedArtifact {
    pub digest: String,
    pub manifest: CachedManifest,
    pub times: ArtifactTimes,
    /// Its tags, sorted.
    pub tags: Vec<String>,
}

impl ProxyCache {
    /// The cached manifest of `repository` at `reference` (a digest or a tag).
    #[must_use]
    pub fn manifest(&self, repository: &str, reference: &str) -> Option<CachedManifest> {
        let digest = if reference.contains(':') {
            reference.to_owned()
        } else {
            self.tags
                .get(&(repository.to_owned(), reference.to_owned()))?
                .clone()
        };
        self.manifests
            .get(&(repository.to_owned(), digest))
            .cloned()
    }

    /// Keeps `manifest` as `repository`'s content at `reference` (and at its digest), stored
    /// now if it is new.
    pub fn keep_manifest(&mut self, repository: &str, reference: &str, manifest: CachedManifest) {
        let digest = manifest.digest();
        self.times
            .entry((repository.to_owned(), digest.clone()))
            .or_insert(ArtifactTimes {
                pushed: SystemTime::now(),
                pulled: None,
            });
        if !reference.contains(':') {
            self.tags.insert(
                (repository.to_owned(), reference.to_owned()),
                digest.clone(),
            );
        }
        self.manifests
            .insert((repository.to_owned(), digest), manifest);
    }

    /// Notes a pull of `repository`'s manifest `digest` now.
    pub fn pulled(&mut self, repository: &str, digest: &str) {
        if let Some(times) = self
            .times
            .get_mut(&(repository.to_owned(), digest.to_owned()))
        {
            times.pulled = Some(SystemTime::now());
        }
    }

    /// Sets when `repository`'s manifest `digest` was stored and last pulled.
    pub fn set_times(&mut self, repository: &str, digest: &str, times: ArtifactTimes) {
        self.times
            .insert((repository.to_owned(), digest.to_owned()), times);
    }

    /// The repositories (`<project>/<repo>`) of `project` holding an artifact, sorted.
    #[must_use]
    pub fn repositories(&self, project: &str) -> Vec<String> {
        let prefix = format!("{project}/");
        let mut names: Vec<String> = self
            .artifacts_in(|repository| repository.starts_with(&prefix))
            .map(|((repository, _), _)| repository.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The artifacts of `repository`, oldest first (then by digest), as Harbor lists them.
    #[must_use]
    pub fn artifacts(&self, repository: &str) -> Vec<ListedArtifact> {
        let mut listed: Vec<ListedArtifact> = self
            .artifacts_in(|name| name == repository)
            .map(|((_, digest), manifest)| {
                let mut tags: Vec<String> = self
                    .tags
                    .iter()
                    .filter(|((name, _), tagged)| name == repository && *tagged == digest)
                    .map(|((_, tag), _)| tag.clone())
                    .collect();
                tags.sort();
                ListedArtifact {
                    digest: digest.clone(),
                    manifest: manifest.clone(),
                    times: self.times[&(repository.to_owned(), digest.clone())],
                    tags,
                }
            })
            .collect();
        listed.sort_by(|a, b| (a.times.pushed, &a.digest).cmp(&(b.times.pushed, &b.digest)));
        listed
    }

    /// The manifests that are no accessory, of the repositories `names` takes.
    fn artifacts_in(
        &self,
        names: impl Fn(&str) -> bool,
    ) -> impl Iterator<Item = (&(String, String), &CachedManifest)> {
        self.manifests
            .iter()
            .filter(move |((repository, _), manifest)| {
                names(repository) && manifest.subject().is_none()
            })
    }

    #[must_use]
    pub fn blob(&self, repository: &str, digest: &str) -> Option<Bytes> {
        self.blobs
            .get(&(repository.to_owned(), digest.to_owned()))
            .cloned()
    }

    pub fn keep_blob(&mut self, repository: &str, digest: &str, bytes: Bytes) {
        self.blobs
            .insert((repository.to_owned(), digest.to_owned()), bytes);
    }
}

/// What the upstream answered to a pull through.
pub enum Pulled {
    Manifest(CachedManifest),
    Blob(Bytes),
    /// The upstream does not have it (or answered otherwise): its status.
    Status(u16),
    /// The upstream could not be reached.
    Unreachable,
}

/// `GET <upstream>/v2/<repository>/{manifests|blobs}/<reference>`, anonymously; a digest
/// that does not match the bytes is refused, as Harbor's client refuses it.
pub async fn pull(upstream: &str, repository: &str, kind: &str, reference: &str) -> Pulled {
    let url = format!(
        "{}/v2/{repository}/{kind}/{reference}",
        upstream.trim_end_matches('/')
    );
    let response = match crate::http_client()
        .get(&url)
        .header("Accept", MANIFEST_ACCEPT)
        .send()
        .await
    {
        Ok(response) => response,
        Err(_) => return Pulled::Unreachable,
    };
    let status = response.status().as_u16();
    if status != 200 {
        return Pulled::Status(status);
    }
    let media_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Ok(bytes) = response.bytes().await else {
        return Pulled::Unreachable;
    };
    if reference.contains(':') && sha256_digest(&bytes) != reference {
        return Pulled::Status(502);
    }
    if kind == "blobs" {
        Pulled::Blob(bytes)
    } else {
        Pulled::Manifest(CachedManifest { media_type, bytes })
    }
}
