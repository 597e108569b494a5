//! A project's webhook policies (`/api/v2.0/projects/{project}/webhook/policies`), read and
//! written with the caller's own credentials: managing them takes a project admin. Shapes
//! follow Harbor's swagger `WebhookPolicy` and `WebhookTargetObject`.

use awc::http::{Method, header};
use serde::{Deserialize, Serialize};

use crate::api::{BasicAuth, CoreClient, project_path};
use crate::error::HarborError;

/// Policies read per page; a project has a handful.
const PAGE_SIZE: usize = 100;
/// Pages read at most.
const MAX_PAGES: usize = 10;

/// A webhook policy (swagger `WebhookPolicy`), with the fields a policy is made of; Harbor's
/// bookkeeping (`project_id`, `creator`, times) is left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub targets: Vec<WebhookTarget>,
    #[serde(default)]
    pub enabled: bool,
}

/// Where a policy sends its events (swagger `WebhookTargetObject`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTarget {
    /// `http` (or `slack`).
    #[serde(rename = "type")]
    pub notify_type: String,
    pub address: String,
    /// Sent verbatim as `Authorization`: a secret, never printed.
    #[serde(default)]
    pub auth_header: String,
    #[serde(default)]
    pub skip_cert_verify: bool,
    /// `Default` or `CloudEvents`; Harbor stores `Default` when none is given.
    #[serde(default)]
    pub payload_format: Option<String>,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("notify_type", &self.notify_type)
            .field("address", &self.address)
            .field("auth_header", &"*****")
            .field("skip_cert_verify", &self.skip_cert_verify)
            .field("payload_format", &self.payload_format)
            .finish()
    }
}

impl CoreClient {
    /// Every webhook policy of `project`, as `caller` may see them; `None` when Harbor does
    /// not know the project.
    pub async fn webhook_policies(
        &self,
        project: &str,
        caller: &BasicAuth,
    ) -> Result<Option<Vec<WebhookPolicy>>, HarborError> {
        let (project_path, by_name) = project_path(project);
        let what = format!("webhook policies of project {project}");
        let mut policies = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = format!("{project_path}/webhook/policies?page={page}&page_size={PAGE_SIZE}");
            let Some(listed) = self
                .get_json_as::<Vec<WebhookPolicy>>(&path, &what, by_name, Some(caller))
                .await?
            else {
                return Ok(None);
            };
            let last = listed.len() < PAGE_SIZE;
            policies.extend(listed);
            if last {
                break;
            }
        }
        Ok(Some(policies))
    }

    /// Creates `policy` in `project` (`201`).
    pub async fn create_webhook_policy(
        &self,
        project: &str,
        policy: &WebhookPolicy,
        caller: &BasicAuth,
    ) -> Result<(), HarborError> {
        let (project_path, by_name) = project_path(project);
        let path = format!("{project_path}/webhook/policies");
        let what = format!("a new webhook policy of project {project}");
        self.send_json_as(Method::POST, &path, &what, by_name, policy, caller)
            .await
    }

    /// Replaces the policy `id` of `project` with `policy` (`200`).
    pub async fn update_webhook_policy(
        &self,
        project: &str,
        id: i64,
        policy: &WebhookPolicy,
        caller: &BasicAuth,
    ) -> Result<(), HarborError> {
        let (project_path, by_name) = project_path(project);
        let path = format!("{project_path}/webhook/policies/{id}");
        let what = format!("webhook policy {id} of project {project}");
        self.send_json_as(Method::PUT, &path, &what, by_name, policy, caller)
            .await
    }

    /// `method path` with `body` as JSON, as `caller`; any 2xx is done.
    async fn send_json_as(
        &self,
        method: Method,
        path: &str,
        what: &str,
        resource_name: bool,
        body: &impl Serialize,
        caller: &BasicAuth,
    ) -> Result<(), HarborError> {
        let body = serde_json::to_vec(body).map_err(|e| HarborError::Invalid {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
        let mut request = self
            .connections
            .request(method, &self.url(path))
            .insert_header((header::ACCEPT, "application/json"))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::AUTHORIZATION, caller.header_value()));
        if resource_name {
            request = request.insert_header(("X-Is-Resource-Name", "true"));
        }
        self.bounded(async {
            let (response, _slot) = self
                .connections
                .send(request.send_body(body), std::future::ready(()))
                .await
                .map_err(|e| HarborError::from_send(&e))?;
            match response.status().as_u16() {
                200..=299 => Ok(()),
                401 => Err(HarborError::Unauthorized(what.to_owned())),
                403 => Err(HarborError::Forbidden(what.to_owned())),
                status => Err(HarborError::Status {
                    what: what.to_owned(),
                    status,
                }),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_as_harbor_lists_it_decodes_and_its_secret_is_not_printed() {
        let listed: Vec<WebhookPolicy> = serde_json::from_str(
            r#"[{"id":3,"name":"referrers-sidecar-warm","description":"","project_id":1,
                 "targets":[{"type":"http","address":"http://sidecar:8080/x","auth_header":"Bearer s3cret",
                             "skip_cert_verify":false,"payload_format":"Default"}],
                 "event_types":["PULL_ARTIFACT"],"creator":"pam",
                 "creation_time":"2026-01-01T00:00:00Z","update_time":"2026-01-01T00:00:00Z","enabled":true}]"#,
        )
        .unwrap();
        let policy = &listed[0];
        assert_eq!(policy.id, Some(3));
        assert_eq!(policy.event_types, ["PULL_ARTIFACT"]);
        assert_eq!(policy.targets[0].auth_header, "Bearer s3cret");
        assert!(!format!("{policy:?}").contains("s3cret"));
        let sent = serde_json::to_value(WebhookPolicy {
            id: None,
            ..policy.clone()
        })
        .unwrap();
        assert!(sent.get("id").is_none(), "{sent}");
        assert_eq!(sent["targets"][0]["type"], "http");
    }
}
