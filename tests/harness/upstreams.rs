//! Real upstream registries for tests: distribution (`docker-registry`, no referrers API;
//! anonymous, htpasswd or token auth) and `ferro-oci-server` (with the referrers API), each
//! on a free loopback port with its own storage, stopped on drop; and content pushed to them
//! over plain HTTP: an image, referrers with a `subject`, and the fallback-tag index.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::ports::start_on_free_port;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// A tool installed by `make setup`: `$REFERRERS_SIDECAR_TOOLS/bin`, then
/// `~/.cache/referrers-sidecar/tools/bin`, then `PATH`. Panics, saying to run `make setup`,
/// when it is not installed.
#[must_use]
pub fn tool(name: &str) -> PathBuf {
    installed(name).unwrap_or_else(|| panic!("{name} is not installed: run `make setup`"))
}

/// Where [`tool`] finds `name`, if it is installed.
#[must_use]
pub fn installed(name: &str) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("REFERRERS_SIDECAR_TOOLS") {
        candidates.push(PathBuf::from(dir).join("bin").join(name));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(
            PathBuf::from(home)
                .join(".cache/referrers-sidecar/tools/bin")
                .join(name),
        );
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(name)));
    }
    candidates.into_iter().find(|candidate| candidate.is_file())
}

/// The Python of the tools' venv (`make setup` installs oras-py and requests there).
#[must_use]
pub fn venv_python() -> PathBuf {
    std::env::var_os("REFERRERS_SIDECAR_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/referrers-sidecar/tools"))
        })
        .unwrap_or_default()
        .join("venv/bin/python")
}

/// `sha256:<hex>` of `bytes`.
#[must_use]
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A registry process, killed on drop.
pub struct Upstream {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Upstream {
    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The upstream's own temp dir (storage, config).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `GET /v2/` on the port gets any HTTP answer (200 or 401).
fn v2_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Debian's `docker-registry` (distribution 2.8): no referrers API.
pub struct DockerRegistry;

impl DockerRegistry {
    /// Anonymous access.
    #[must_use]
    pub fn start() -> Upstream {
        Self::start_with_auth(|_| String::new())
    }

    /// Behind htpasswd Basic auth for `user`/`password`.
    #[must_use]
    pub fn start_with_htpasswd(user: &str, password: &str) -> Upstream {
        let hash = bcrypt::hash(password, 4).expect("bcrypt");
        let line = format!("{user}:{hash}\n");
        Self::start_with_auth(move |dir| {
            let path = dir.join("htpasswd");
            std::fs::write(&path, &line).expect("write htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                path.display()
            )
        })
    }

    /// Behind token auth: tokens from `realm` for `service`, issued by `issuer`, signed by
    /// the key of the PEM certificate `root_cert_pem`.
    #[must_use]
    pub fn start_with_token_auth(
        realm: &str,
        service: &str,
        issuer: &str,
        root_cert_pem: &str,
    ) -> Upstream {
        let (realm, service, issuer, pem) = (
            realm.to_owned(),
            service.to_owned(),
            issuer.to_owned(),
            root_cert_pem.to_owned(),
        );
        Self::start_with_auth(move |dir| {
            let path = dir.join("token-root.pem");
            std::fs::write(&path, &pem).expect("write root cert");
            format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                path.display()
            )
        })
    }

    fn start_with_auth(auth: impl FnOnce(&Path) -> String) -> Upstream {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let auth = auth(dir.path());
        let config_path = dir.path().join("config.yml");
        let (child, port) = start_on_free_port(
            "docker-registry",
            |port| {
                let config = format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                    storage.display(),
                );
                std::fs::write(&config_path, config).expect("write registry config");
                Command::new(tool("docker-registry"))
                    .arg("serve")
                    .arg(&config_path)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start docker-registry")
            },
            v2_answers,
        );
        Upstream { child, port, dir }
    }
}

/// `ferro-oci-server`: the referrers API, no auth.
pub struct FerroOci;

impl FerroOci {
    #[must_use]
    pub fn start() -> Upstream {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let (child, port) = start_on_free_port(
            "ferro-oci-server",
            |port| {
                Command::new(tool("ferro-oci-server"))
                    // Always set: the default listens on every interface.
                    .env("FERRO_OCI_LISTEN", format!("127.0.0.1:{port}"))
                    .env("FERRO_OCI_STORAGE_DIR", &storage)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start ferro-oci-server")
            },
            v2_answers,
        );
        Upstream { child, port, dir }
    }
}

/// A manifest pushed: what a descriptor of it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub digest: String,
    pub size: usize,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub annotations: Value,
}

impl Pushed {
    /// The descriptor of this manifest, as a referrers list carries it.
    #[must_use]
    pub fn descriptor(&self) -> Value {
        let mut descriptor = json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        });
        if let Some(artifact_type) = &self.artifact_type {
            descriptor["artifactType"] = json!(artifact_type);
        }
        if !self.annotations.is_null() {
            descriptor["annotations"] = self.annotations.clone();
        }
        descriptor
    }
}

/// An image and two referrers to it, as [`Pusher::push_sample`] leaves them.
#[derive(Debug, Clone)]
pub struct Sample {
    pub subject: Pushed,
    pub referrers: Vec<Pushed>,
    /// Digest of the fallback index at tag `sha256-<hex>`, when one was pushed.
    pub fallback_index: Option<String>,
}

/// Pushes content over plain HTTP (monolithic blob uploads, manifests by tag or digest).
pub struct Pusher {
    client: reqwest::Client,
    base: String,
    authorization: Option<String>,
}

impl Pusher {
    /// Anonymous pushes to `base` (`http://127.0.0.1:<port>`).
    #[must_use]
    pub fn new(base: &str) -> Self {
        Self {
            client: crate::http_client(),
            base: base.trim_end_matches('/').to_owned(),
            authorization: None,
        }
    }

    /// Sends `authorization` (a whole header value: `Basic …`, `Bearer …`) on every request.
    #[must_use]
    pub fn with_authorization(mut self, authorization: &str) -> Self {
        self.authorization = Some(authorization.to_owned());
        self
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, url);
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// Uploads `bytes` as a blob of `repository` (POST then PUT); returns its digest.
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let started = self
            .request(
                reqwest::Method::POST,
                &format!("{}/v2/{repository}/blobs/uploads/", self.base),
            )
            .header("Content-Length", "0")
            .send()
            .await
            .expect("start blob upload");
        assert_eq!(started.status().as_u16(), 202, "blob upload start");
        let location = started
            .headers()
            .get("Location")
            .and_then(|l| l.to_str().ok())
            .expect("upload Location")
            .to_owned();
        let location = reqwest::Url::parse(&format!("{}/", self.base))
            .and_then(|base| base.join(&location))
            .expect("upload URL");
        let separator = if location.query().is_some() { '&' } else { '?' };
        let finished = self
            .request(
                reqwest::Method::PUT,
                &format!("{location}{separator}digest={}", digest.replace(':', "%3A")),
            )
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("finish blob upload");
        assert_eq!(finished.status().as_u16(), 201, "blob upload finish");
        digest
    }

    /// Puts a manifest at `reference` (tag or digest); returns its digest.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let response = self
            .request(
                reqwest::Method::PUT,
                &format!("{}/v2/{repository}/manifests/{reference}", self.base),
            )
            .header("Content-Type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("put manifest");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 201, "manifest put: {body}");
        sha256_digest(bytes)
    }

    /// A small image manifest (empty config, one layer of `content`), tagged `tag`.
    pub async fn push_image(&self, repository: &str, tag: &str, content: &[u8]) -> Pushed {
        let config = self.push_blob(repository, b"{}").await;
        let layer = self.push_blob(repository, content).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": 2},
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer, "size": content.len()}],
        });
        let bytes = serde_json::to_vec(&manifest).expect("manifest JSON");
        let digest = self
            .push_manifest(repository, tag, MANIFEST_MEDIA_TYPE, &bytes)
            .await;
        Pushed {
            digest,
            size: bytes.len(),
            media_type: MANIFEST_MEDIA_TYPE.into(),
            artifact_type: None,
            annotations: Value::Null,
        }
    }

    /// An artifact manifest with `subject`, `artifactType` and `annotations`, pushed by
    /// digest.
    pub async fn push_referrer(
        &self,
        repository: &str,
        subject: &Pushed,
        artifact_type: &str,
        annotations: Value,
    ) -> Pushed {
        let config = self.push_blob(repository, b"{}").await;
        let payload = format!("{artifact_type} of {}", subject.digest);
        let layer = self.push_blob(repository, payload.as_bytes()).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": 2},
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer, "size": payload.len()}],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            },
            "annotations": annotations,
        });
        let bytes = serde_json::to_vec(&manifest).expect("manifest JSON");
        let digest = sha256_digest(&bytes);
        self.push_manifest(repository, &digest, MANIFEST_MEDIA_TYPE, &bytes)
            .await;
        Pushed {
            digest,
            size: bytes.len(),
            media_type: MANIFEST_MEDIA_TYPE.into(),
            artifact_type: Some(artifact_type.into()),
            annotations,
        }
    }

    /// The referrers tag schema: an index of `referrers` at tag `sha256-<hex>` of `subject`.
    pub async fn push_fallback_index(
        &self,
        repository: &str,
        subject: &Pushed,
        referrers: &[Pushed],
    ) -> String {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": referrers.iter().map(Pushed::descriptor).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&index).expect("index JSON");
        let tag = subject.digest.replacen(':', "-", 1);
        self.push_manifest(repository, &tag, INDEX_MEDIA_TYPE, &bytes)
            .await
    }

    /// An image tagged `v1` with a signature and an SBOM referring to it (distinct
    /// `artifactType`s and annotations); with `fallback_tag`, also the fallback index.
    pub async fn push_sample(&self, repository: &str, fallback_tag: bool) -> Sample {
        let subject = self.push_image(repository, "v1", b"layer of v1").await;
        let signature = self
            .push_referrer(
                repository,
                &subject,
                "application/vnd.dev.cosign.artifact.sig.v1+json",
                json!({"dev.sigstore.cosign/signer": "tests", "org.opencontainers.image.created": "2026-01-01T00:00:00Z"}),
            )
            .await;
        let sbom = self
            .push_referrer(
                repository,
                &subject,
                "application/spdx+json",
                json!({"org.example.sbom.format": "spdx"}),
            )
            .await;
        let referrers = vec![signature, sbom];
        let fallback_index = if fallback_tag {
            Some(
                self.push_fallback_index(repository, &subject, &referrers)
                    .await,
            )
        } else {
            None
        };
        Sample {
            subject,
            referrers,
            fallback_index,
        }
    }
}
