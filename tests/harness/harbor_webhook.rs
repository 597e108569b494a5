//! Harbor's webhook calls as its job service makes them: an artifact event in Harbor's default
//! payload or as a CloudEvent, POSTed with the policy's auth header as `Authorization`
//! (shapes from Harbor's `src/pkg/notifier/model/event.go` and `src/pkg/notifier/formats/`).

use serde_json::{Value, json};

use crate::Sidecar;

/// Where the sidecar receives Harbor's webhooks.
pub const PATH: &str = "/referrers-sidecar/v1/webhooks/harbor";

/// The payload format of a webhook policy's target (`payload_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Default,
    CloudEvents,
}

impl Format {
    /// The `Content-Type` Harbor sends with it.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Default => "application/json",
            Self::CloudEvents => "application/cloudevents+json",
        }
    }
}

/// The CloudEvents type of a Harbor event type.
fn cloud_event_type(event_type: &str) -> String {
    let suffix = match event_type {
        "PULL_ARTIFACT" => "artifact.pulled",
        "PUSH_ARTIFACT" => "artifact.pushed",
        "DELETE_ARTIFACT" => "artifact.deleted",
        "QUOTA_EXCEED" => "quota.exceeded",
        "QUOTA_WARNING" => "quota.warned",
        "REPLICATION" => "replication.status.changed",
        "SCANNING_FAILED" => "scan.failed",
        "SCANNING_COMPLETED" => "scan.completed",
        "SCANNING_STOPPED" => "scan.stopped",
        "TAG_RETENTION" => "tag_retention.finished",
        other => panic!("no CloudEvents type for {other}"),
    };
    format!("harbor.{suffix}")
}

/// Harbor's payload of an artifact event (`PULL_ARTIFACT`, `PUSH_ARTIFACT`, …) about
/// `digest` in `repository` (`<project>/<name>`), pulled by `tag`.
#[must_use]
pub fn artifact_event(
    format: Format,
    event_type: &str,
    repository: &str,
    digest: &str,
    tag: &str,
) -> Value {
    let (project, name) = repository.split_once('/').expect("<project>/<name>");
    let data = json!({
        "resources": [{
            "digest": digest,
            "tag": tag,
            "resource_url": format!("harbor.example.com/{repository}:{tag}"),
        }],
        "repository": {
            "date_created": 1_767_225_600,
            "name": name,
            "namespace": project,
            "repo_full_name": repository,
            "repo_type": "private",
        },
    });
    match format {
        Format::Default => json!({
            "type": event_type,
            "occur_at": 1_767_225_600,
            "operator": "alice",
            "event_data": data,
        }),
        Format::CloudEvents => json!({
            "specversion": "1.0",
            "requestid": "2eedfab8-61d3-4f3c-8ec3-8f82d1ec4c84",
            "id": "4b2f89a6-548d-4c12-9993-a1f5790b97d2",
            "source": "/projects/1/webhook/policies/1",
            "type": cloud_event_type(event_type),
            "datacontenttype": "application/json",
            "time": "2026-01-01T00:00:00Z",
            "data": data,
            "operator": "alice",
        }),
    }
}

/// POSTs `body` to `url` as Harbor does: `auth_header` (the policy's) as `Authorization`.
pub async fn send(
    url: &str,
    auth_header: Option<&str>,
    format: Format,
    body: &[u8],
) -> reqwest::Response {
    let mut request = crate::http_client()
        .post(url)
        .header("Content-Type", format.content_type())
        .body(body.to_vec());
    if let Some(header) = auth_header {
        request = request.header("Authorization", header);
    }
    request.send().await.expect("webhook request")
}

/// [`send`]s `payload` to `sidecar`'s webhook endpoint; the status it answered.
pub async fn post(
    sidecar: &Sidecar,
    auth_header: Option<&str>,
    format: Format,
    payload: &Value,
) -> u16 {
    send(
        &sidecar.url(PATH),
        auth_header,
        format,
        payload.to_string().as_bytes(),
    )
    .await
    .status()
    .as_u16()
}
