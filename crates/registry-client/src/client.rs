//! [`RegistryClient`]: one per process; lists a subject's referrers on an upstream, API first,
//! fallback tag when the API is absent, and reads a referrer's manifest, within the configured
//! time, size and concurrency.

use std::sync::Arc;

use oci_referrers::{Digest, MANIFEST_MEDIA_TYPE, RepositoryName};
use reqwest::{Method, StatusCode};

use crate::auth::Auth;
use crate::config::ClientConfig;
use crate::error::{ClientError, LimitKind, UpstreamError};
use crate::fallback::read_fallback_tag;
use crate::listing::UpstreamReferrers;
use crate::observer::RequestKind;
use crate::referrers::{ApiOutcome, list_via_api};
use crate::registry::Registry;
use crate::session::{Session, Step, status_error};
use crate::state::{ApiAbsence, Limiters, RegistryKey};
use crate::transport::Transport;

/// The upstream client. Cheap to clone; clones share connections, tokens and memory.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    transport: Transport,
    auth: Auth,
    limiters: Limiters,
    api_absence: ApiAbsence,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Builds the HTTP clients (reading `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` now) and the
    /// shared state.
    ///
    /// # Errors
    ///
    /// [`ClientError`] when the CA bundle cannot be read or TLS cannot be set up.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let transport = Transport::new(&config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                auth: Auth::new(config.allow_private_realms),
                limiters: Limiters::new(config.max_concurrent_per_registry),
                api_absence: ApiAbsence::new(config.api_absent_ttl),
                config,
            }),
        })
    }

    /// The complete, unfiltered referrers list of `digest` in `repository` on `registry`.
    ///
    /// `previous` is what the caller has cached for this key: on Docker Hub the fallback tag
    /// is then checked with `HEAD` and read only when its digest changed.
    ///
    /// # Errors
    ///
    /// [`UpstreamError`], naming the step that failed; the whole call is bounded by
    /// `ClientConfig::timeout`.
    pub async fn list_referrers(
        &self,
        registry: &Registry,
        repository: &str,
        digest: &Digest,
        previous: Option<&UpstreamReferrers>,
    ) -> Result<UpstreamReferrers, UpstreamError> {
        let timeout = self.inner.config.timeout;
        tokio::time::timeout(timeout, self.list(registry, repository, digest, previous))
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))?
    }

    async fn list(
        &self,
        registry: &Registry,
        repository: &str,
        digest: &Digest,
        previous: Option<&UpstreamReferrers>,
    ) -> Result<UpstreamReferrers, UpstreamError> {
        let repository = usable(registry, repository)?;
        let inner = &*self.inner;
        let session = self.session(registry, &repository).await;
        if !inner
            .api_absence
            .is_absent(&session.key, repository.as_str())
        {
            match list_via_api(&session, digest).await? {
                ApiOutcome::Listed(list) => return Ok(list),
                ApiOutcome::Absent { remember: true } => {
                    inner
                        .api_absence
                        .remember(&session.key, repository.as_str())
                        .await;
                }
                ApiOutcome::Absent { remember: false } => {}
            }
        }
        read_fallback_tag(&session, digest, previous).await
    }

    /// The bytes of the image manifest `digest` in `repository` on `registry`, read only when
    /// they are at most `max_bytes`: a `GET` of `/v2/<repository>/manifests/<digest>` asking for
    /// an OCI image manifest. Whether the bytes are what `digest` names is the caller's to
    /// check. On Docker Hub this `GET` counts as a pull.
    ///
    /// # Errors
    ///
    /// [`UpstreamError`]: [`UpstreamError::Manifest`] for a status other than `200`,
    /// [`UpstreamError::Limit`] for a body over `max_bytes`; the whole call is bounded by
    /// `ClientConfig::timeout`.
    pub async fn get_manifest(
        &self,
        registry: &Registry,
        repository: &str,
        digest: &Digest,
        max_bytes: usize,
    ) -> Result<Vec<u8>, UpstreamError> {
        let timeout = self.inner.config.timeout;
        tokio::time::timeout(
            timeout,
            self.read_manifest(registry, repository, digest, max_bytes),
        )
        .await
        .map_err(|_| UpstreamError::Timeout(timeout))?
    }

    async fn read_manifest(
        &self,
        registry: &Registry,
        repository: &str,
        digest: &Digest,
        max_bytes: usize,
    ) -> Result<Vec<u8>, UpstreamError> {
        let repository = usable(registry, repository)?;
        let session = self.session(registry, &repository).await;
        let url = session.url(&format!("/v2/{repository}/manifests/{digest}"));
        let answer = session
            .send(RequestKind::Manifest, Method::GET, url, MANIFEST_MEDIA_TYPE)
            .await?;
        if answer.status() != StatusCode::OK {
            return Err(status_error(
                answer.status(),
                answer.headers(),
                Step::Manifest,
            ));
        }
        let mut reservation = self.inner.config.memory_budget.reservation();
        answer
            .read_reserved(max_bytes, LimitKind::Manifest, &mut reservation)
            .await
    }

    /// A conversation with `registry` about `repository`, with the registry's tokens and
    /// limiter.
    async fn session<'a>(
        &'a self,
        registry: &'a Registry,
        repository: &'a RepositoryName,
    ) -> Session<'a> {
        let inner = &*self.inner;
        let key = RegistryKey::of(registry);
        Session {
            transport: &inner.transport,
            auth: &inner.auth,
            config: &inner.config,
            registry,
            repository,
            limiter: inner.limiters.for_registry(&key).await,
            key,
        }
    }
}

/// `repository` parsed, on a registry whose scheme may be called: the name goes into a URL
/// path, so only the distribution grammar may (no `..`, `%2F`); plain http only for a
/// registry marked insecure.
fn usable(registry: &Registry, repository: &str) -> Result<RepositoryName, UpstreamError> {
    let repository: RepositoryName = repository
        .parse()
        .map_err(|e| UpstreamError::Config(format!("repository {repository:?}: {e}")))?;
    match registry.base_url.scheme() {
        "https" => Ok(repository),
        "http" if registry.insecure => Ok(repository),
        "http" => Err(UpstreamError::Config(
            "plain http registry not marked insecure".into(),
        )),
        other => Err(UpstreamError::Config(format!("scheme {other:?}"))),
    }
}
