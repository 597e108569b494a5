//! Harbor's proxy cache: manifests and blobs of proxy-cache projects pulled through from the
//! upstream and cached.

use actix_web::HttpResponse;

use super::v2::v2_response;
use super::webhooks::notify_pull;
use super::{DoubleConfig, Shared, error_body};
use crate::proxy_cache::{self, CachedManifest, Pulled};

/// The upstream registry's URL of a proxy-cache project.
pub(super) fn upstream_of(config: &DoubleConfig, project: &str) -> Option<String> {
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
pub(super) struct Pull<'a> {
    pub(super) upstream: &'a str,
    /// `<project>/<repo>`, as Harbor stores it.
    pub(super) repository: &'a str,
    pub(super) project: &'a str,
    pub(super) kind: &'static str,
    pub(super) reference: &'a str,
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
pub(super) async fn pull_through(shared: &Shared, pull: &Pull<'_>, head: bool) -> HttpResponse {
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
            note_pull(shared, pull.repository, &bytes);
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
            note_pull(shared, pull.repository, &bytes);
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

/// Notes a pull of the manifest `bytes` of `repository` (its `pull_time`).
fn note_pull(shared: &Shared, repository: &str, bytes: &[u8]) {
    let digest = crate::upstreams::sha256_digest(bytes);
    shared
        .state
        .lock()
        .expect("state")
        .cache
        .pulled(repository, &digest);
}

/// Caches a pulled manifest; one with a `subject` becomes a local referrer of that subject
/// (Harbor's accessory record, listed by core's referrers endpoint).
pub(super) fn keep_manifest(
    shared: &Shared,
    repository: &str,
    reference: &str,
    manifest: CachedManifest,
) {
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
