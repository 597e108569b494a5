//! Harbor's webhook payload, in its default form and as a CloudEvent, parsed once into what the
//! sidecar acts on: which artifacts were pulled, by repository and digest.
//!
//! Default (`{"type":"PULL_ARTIFACT","occur_at":…,"operator":…,"event_data":{…}}`) and
//! CloudEvents (`{"specversion":"1.0","type":"harbor.artifact.pulled",…,"data":{…}}`) carry the
//! same `event_data`: `resources` (`digest`, `tag`, `resource_url`) and `repository`
//! (`namespace` is the project, `repo_full_name` is `<project>/<repository>`).
//!
//! REF: Harbor `src/pkg/notifier/model/event.go`, `src/pkg/notifier/formats/` (2.8 → 2.15).

use oci_referrers::{Digest, RepositoryName};
use serde::Deserialize;
use serde_json::Value;

use crate::outcome::WebhookEvent;

/// The event types the sidecar tells apart (the `type` label of its metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An artifact was pulled (through a proxy-cache project: from the upstream or the cache).
    PullArtifact,
    /// Any other event: acknowledged, nothing done.
    Other,
}

impl EventKind {
    /// From the default payload's `type` or the CloudEvent's `type`.
    fn of(event_type: &str, cloud_event: bool) -> Self {
        let pull = if cloud_event {
            "harbor.artifact.pulled"
        } else {
            "PULL_ARTIFACT"
        };
        if event_type == pull {
            Self::PullArtifact
        } else {
            Self::Other
        }
    }
}

/// One pulled artifact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pulled {
    /// `<project>/<repository>`, as Harbor stores it (Docker Hub's single names under
    /// `library/`).
    pub name: RepositoryName,
    pub digest: Digest,
}

/// A webhook event as the sidecar understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarborEvent {
    pub kind: EventKind,
    /// The artifacts of a `PullArtifact` event; empty for other kinds.
    pub pulled: Vec<Pulled>,
}

/// Why a payload is refused (400).
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a Harbor webhook payload: {0}")]
    Json(serde_json::Error),
    #[error("a pull event's data: {0}")]
    Data(serde_json::Error),
    #[error("a pull event without a repository")]
    NoRepository,
    #[error("repository {name:?}: {error}")]
    Repository {
        name: String,
        error: oci_referrers::NameError,
    },
    #[error("a pull event names no valid digest")]
    NoDigest,
}

/// What both forms share at the top: the event's type, and its data under `event_data`
/// (default) or `data` (CloudEvents, told apart by `specversion`). The data of other events
/// (replication, scans, quotas) is left unread.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    event_type: String,
    specversion: Option<String>,
    event_data: Option<Value>,
    data: Option<Value>,
}

#[derive(Deserialize)]
struct EventData {
    #[serde(default)]
    resources: Vec<Resource>,
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Resource {
    digest: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    repo_full_name: Option<String>,
}

impl EventError {
    /// How a refused event is counted: `unknown` when its type could not be read.
    #[must_use]
    pub fn event(&self) -> WebhookEvent {
        match self {
            Self::Json(_) => WebhookEvent::UnknownInvalid,
            _ => WebhookEvent::PullInvalid,
        }
    }
}

impl HarborEvent {
    /// Parses a payload in either form.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let envelope: Envelope = serde_json::from_slice(body).map_err(EventError::Json)?;
        let cloud_event = envelope.specversion.is_some();
        let kind = EventKind::of(&envelope.event_type, cloud_event);
        if kind != EventKind::PullArtifact {
            return Ok(Self {
                kind,
                pulled: Vec::new(),
            });
        }
        let data = if cloud_event {
            envelope.data
        } else {
            envelope.event_data
        };
        let data: EventData =
            serde_json::from_value(data.unwrap_or(Value::Null)).map_err(EventError::Data)?;
        let repository = data.repository.ok_or(EventError::NoRepository)?;
        let full_name = repository
            .repo_full_name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{}/{}", repository.namespace, repository.name));
        let name: RepositoryName = full_name.parse().map_err(|error| EventError::Repository {
            name: full_name.clone(),
            error,
        })?;
        if name.repository().is_none() {
            return Err(EventError::NoRepository);
        }
        let mut pulled: Vec<Pulled> = Vec::new();
        for digest in data
            .resources
            .into_iter()
            .filter_map(|r| r.digest?.parse::<Digest>().ok())
        {
            let artifact = Pulled {
                name: name.clone(),
                digest,
            };
            if !pulled.contains(&artifact) {
                pulled.push(artifact);
            }
        }
        if pulled.is_empty() {
            return Err(EventError::NoDigest);
        }
        Ok(Self { kind, pulled })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DIGEST: &str = "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c";

    fn event_data(full_name: &str) -> Value {
        json!({
            "resources": [{
                "digest": DIGEST,
                "tag": "latest",
                "resource_url": format!("harbor.example.com/{full_name}:latest"),
            }],
            "repository": {
                "date_created": 1_677_053_165,
                "name": "library/nginx",
                "namespace": "hub-proxy",
                "repo_full_name": full_name,
                "repo_type": "private",
            },
        })
    }

    fn parse(value: &Value) -> Result<HarborEvent, EventError> {
        HarborEvent::parse(value.to_string().as_bytes())
    }

    fn pulled(full_name: &str) -> HarborEvent {
        HarborEvent {
            kind: EventKind::PullArtifact,
            pulled: vec![Pulled {
                name: full_name.parse().unwrap(),
                digest: DIGEST.parse().unwrap(),
            }],
        }
    }

    #[test]
    fn a_pull_in_the_default_form() {
        let payload = json!({
            "type": "PULL_ARTIFACT",
            "occur_at": 1_678_082_303,
            "operator": "alice",
            "event_data": event_data("hub-proxy/library/nginx"),
        });
        assert_eq!(parse(&payload).unwrap(), pulled("hub-proxy/library/nginx"));
    }

    #[test]
    fn a_pull_as_a_cloud_event() {
        let payload = json!({
            "specversion": "1.0",
            "requestid": "2eedfab8-61d3-4f3c-8ec3-8f82d1ec4c84",
            "id": "4b2f89a6-548d-4c12-9993-a1f5790b97d2",
            "source": "/projects/1/webhook/policies/3",
            "type": "harbor.artifact.pulled",
            "datacontenttype": "application/json",
            "time": "2023-03-06T06:08:43Z",
            "data": event_data("hub-proxy/library/nginx"),
            "operator": "alice",
        });
        assert_eq!(parse(&payload).unwrap(), pulled("hub-proxy/library/nginx"));
    }

    #[test]
    fn the_full_name_is_built_from_namespace_and_name_when_absent() {
        let mut data = event_data("");
        data["repository"]
            .as_object_mut()
            .unwrap()
            .remove("repo_full_name");
        let payload =
            json!({"type": "PULL_ARTIFACT", "occur_at": 1, "operator": "", "event_data": data});
        assert_eq!(parse(&payload).unwrap(), pulled("hub-proxy/library/nginx"));
    }

    #[test]
    fn other_events_are_recognised_and_their_data_left_unread() {
        for payload in [
            json!({"type": "PUSH_ARTIFACT", "occur_at": 1, "operator": "a", "event_data": event_data("p/r")}),
            json!({"type": "REPLICATION", "occur_at": 1, "operator": "a", "event_data": {"replication": {"harbor_hostname": "h"}}}),
            json!({"specversion": "1.0", "type": "harbor.scan.completed", "data": {"resources": "odd"}}),
            // The default form's name under CloudEvents is not a pull.
            json!({"specversion": "1.0", "type": "PULL_ARTIFACT", "data": event_data("p/r")}),
        ] {
            let event = parse(&payload).unwrap();
            assert_eq!(event.kind, EventKind::Other, "{payload}");
            assert!(event.pulled.is_empty());
        }
    }

    #[test]
    fn unusable_pull_events_are_refused() {
        let pull = |data: Value| json!({"type": "PULL_ARTIFACT", "occur_at": 1, "operator": "a", "event_data": data});
        let mut no_digest = event_data("p/r");
        no_digest["resources"][0]["digest"] = json!("sha256:short");
        let cases = [
            (json!({"occur_at": 1}), "type"),
            (pull(Value::Null), "a pull event's data"),
            (pull(json!({"resources": []})), "without a repository"),
            (pull(event_data("p")), "without a repository"),
            (pull(event_data("P/r")), "repository"),
            (pull(no_digest), "no valid digest"),
        ];
        for (payload, expected) in cases {
            let error = parse(&payload).unwrap_err();
            let counted = if expected == "type" {
                WebhookEvent::UnknownInvalid
            } else {
                WebhookEvent::PullInvalid
            };
            assert_eq!(error.event(), counted, "{payload}");
            let error = error.to_string();
            assert!(error.contains(expected), "{payload}: {error}");
        }
        let error = HarborEvent::parse(b"not json").unwrap_err();
        assert_eq!(error.event(), WebhookEvent::UnknownInvalid);
    }
}
