//! One listing's conversation with one registry about one repository: URLs on the
//! registry's origin, authorized requests with one re-authentication on `401`, and the
//! mapping of unexpected statuses to typed errors.

use std::sync::Arc;

use oci_referrers::RepositoryName;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;
use url::Url;

use crate::auth::{Auth, TokenRequest, basic_header};
use crate::challenge::{Challenge, parse_challenge};
use crate::config::ClientConfig;
use crate::error::{AuthError, UpstreamError};
use crate::observer::RequestKind;
use crate::rate_limit::rate_limit;
use crate::registry::Registry;
use crate::state::RegistryKey;
use crate::transport::{Answer, Call, Transport};

/// Which step an unexpected status belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    Api,
    Fallback,
    Manifest,
}

pub(crate) struct Session<'a> {
    pub transport: &'a Transport,
    pub auth: &'a Auth,
    pub config: &'a ClientConfig,
    pub registry: &'a Registry,
    pub repository: &'a RepositoryName,
    /// Whose tokens, challenges and limiter this session uses.
    pub key: RegistryKey,
    pub limiter: Arc<Semaphore>,
}

impl Session<'_> {
    fn call(&self, kind: RequestKind) -> Call<'_> {
        Call {
            registry: &self.registry.name,
            kind,
            insecure: self.registry.insecure,
            limiter: &self.limiter,
        }
    }

    /// `path` on the registry's origin (any path or query of the stored URL is dropped:
    /// the distribution API lives at `/v2/`).
    pub(crate) fn url(&self, path: &str) -> Url {
        let mut url = self.registry.base_url.clone();
        url.set_path(path);
        url.set_query(None);
        url.set_fragment(None);
        url
    }

    /// `repository:<repo>:pull`.
    fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    /// Sends an authorized request; on a `401` reads the fresh challenge, authenticates
    /// once more and retries once. A second `401` is [`AuthError::Denied`].
    pub(crate) async fn send(
        &self,
        kind: RequestKind,
        method: Method,
        url: Url,
        accept: &'static str,
    ) -> Result<Answer, UpstreamError> {
        let mut retried = false;
        loop {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT, HeaderValue::from_static(accept));
            if let Some(authorization) = self.authorization().await? {
                headers.insert(AUTHORIZATION, authorization);
            }
            let answer = self
                .transport
                .send(self.call(kind), method.clone(), url.clone(), headers)
                .await?;
            if answer.status() != StatusCode::UNAUTHORIZED {
                return Ok(answer);
            }
            if retried {
                return Err(AuthError::Denied { status: 401 }.into());
            }
            retried = true;
            let challenge = parse_challenge(answer.headers())
                .map_err(AuthError::Challenge)?
                .ok_or(AuthError::Denied { status: 401 })?;
            self.auth
                .replace_challenge(&self.key, &self.scope(), challenge)
                .await;
        }
    }

    /// The `Authorization` the registry's challenge asks for; `None` for anonymous.
    async fn authorization(&self) -> Result<Option<HeaderValue>, UpstreamError> {
        let challenge = self
            .auth
            .challenge(
                self.transport,
                self.call(RequestKind::Api),
                &self.key,
                self.url("/v2/"),
            )
            .await?;
        match challenge {
            Challenge::Anonymous => Ok(None),
            Challenge::Basic => self
                .registry
                .bound_credentials()
                .map(basic_header)
                .transpose(),
            Challenge::Bearer { realm, service } => {
                let request = TokenRequest {
                    registry: self.registry,
                    realm: &realm,
                    service: service.as_deref(),
                    scope: &self.scope(),
                };
                let header = self
                    .auth
                    .bearer(
                        self.transport,
                        self.call(RequestKind::Token),
                        &self.key,
                        &request,
                    )
                    .await?;
                Ok(Some(header))
            }
        }
    }
}

/// The typed error for a status that is neither success nor an expected "absent".
pub(crate) fn status_error(status: StatusCode, headers: &HeaderMap, step: Step) -> UpstreamError {
    if let Some(limited) = rate_limit(status, headers) {
        return limited;
    }
    match status.as_u16() {
        401 | 403 => AuthError::Denied {
            status: status.as_u16(),
        }
        .into(),
        status => match step {
            Step::Api => UpstreamError::Api { status },
            Step::Fallback => UpstreamError::Fallback { status },
            Step::Manifest => UpstreamError::Manifest { status },
        },
    }
}

/// Whether `headers` say the body is an OCI image index.
pub(crate) fn has_index_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(oci_referrers::is_index_content_type)
}
