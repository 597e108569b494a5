//! `webhook-setup`: creates in a Harbor project the webhook policy that tells the sidecar about
//! pulls (`PULL_ARTIFACT`, with the project's own auth header, derived from
//! `webhook.auth_header`, which never leaves the sidecar), through Harbor's API with the
//! caller's own credentials (a project admin's); run again, it updates the policy (a policy
//! carrying the master secret, as earlier versions wrote it, is rewritten) or says it is up to
//! date.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use harbor_client::webhook_policy::{WebhookPolicy, WebhookTarget};
use harbor_client::{BasicAuth, CoreClient, CoreTransport, HarborError};
use url::Url;

use crate::config::Settings;
use crate::http::webhook::PATH;
use crate::webhook::project_header;

/// The policy's name in the project: how a later run finds it.
pub const POLICY_NAME: &str = "referrers-sidecar-warm";

/// Bounds each call to Harbor's API.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Harbor project (a proxy-cache project the sidecar serves).
    #[arg(long)]
    project: String,
    /// The sidecar as Harbor's job service reaches it; the webhook's path is added.
    #[arg(
        long,
        env = "REFERRERS_SIDECAR_URL_FOR_HARBOR",
        default_value = "http://referrers-sidecar:8080"
    )]
    url_for_harbor: Url,
    /// Harbor's URL (its API). Default: `harbor.url` of the configuration.
    #[arg(long)]
    harbor_url: Option<Url>,
    /// A file holding the sidecar's master webhook secret, from which the project's auth
    /// header is derived. Default: `webhook.auth_header` of the configuration.
    #[arg(long)]
    auth_header_file: Option<PathBuf>,
    /// Send the Harbor credentials to Harbor's API, and have Harbor send the project's auth
    /// header to the sidecar, over plain http:// outside this machine and the cluster too.
    #[arg(long)]
    insecure: bool,
}

#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("no Harbor URL: give --harbor-url, or a configuration with harbor.url ({0})")]
    NoHarborUrl(String),
    #[error(
        "no auth header: give --auth-header-file, or a configuration with webhook.auth_header ({0})"
    )]
    NoAuthHeader(String),
    #[error("cannot read {path}: {source}")]
    AuthHeaderFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the Harbor credentials from the terminal: {0}")]
    Credentials(std::io::Error),
    #[error(transparent)]
    PlainHttp(#[from] super::plain_http::PlainHttp),
    #[error(transparent)]
    Transport(#[from] harbor_client::TransportError),
    #[error("Harbor refused the credentials of {0}")]
    Refused(String),
    #[error(
        "{user} may not manage the webhooks of project {project}: a project admin's credentials are needed"
    )]
    NotAdmin { user: String, project: String },
    #[error("Harbor has no project {0}")]
    NoProject(String),
    #[error(transparent)]
    Harbor(HarborError),
}

/// What a run does to the project's policies.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Create,
    Update(i64),
    UpToDate,
}

/// The policy named [`POLICY_NAME`] among `existing`: created when absent, updated when it
/// differs from `wanted`.
fn plan(existing: &[WebhookPolicy], wanted: &WebhookPolicy) -> Plan {
    match existing.iter().find(|p| p.name == wanted.name) {
        None => Plan::Create,
        Some(found)
            if WebhookPolicy {
                id: None,
                ..found.clone()
            } == *wanted =>
        {
            Plan::UpToDate
        }
        // A policy listed without an id cannot be updated: creating it again is Harbor's to
        // refuse (a name is unique in a project).
        Some(found) => found.id.map_or(Plan::Create, Plan::Update),
    }
}

/// The policy: pulls, to the sidecar at `address`, with `auth_header`.
fn wanted_policy(address: String, auth_header: String) -> WebhookPolicy {
    WebhookPolicy {
        id: None,
        name: POLICY_NAME.into(),
        description: "Pulled artifacts warm referrers-sidecar's cache of upstream referrers."
            .into(),
        event_types: vec!["PULL_ARTIFACT".into()],
        targets: vec![WebhookTarget {
            notify_type: "http".into(),
            address,
            auth_header,
            skip_cert_verify: false,
            payload_format: Some("Default".into()),
        }],
        enabled: true,
    }
}

/// The webhook's address under the sidecar's `base` URL.
fn webhook_address(base: &Url) -> String {
    let base = base.as_str().trim_end_matches('/');
    if base.ends_with(PATH) {
        base.to_owned()
    } else {
        format!("{base}{PATH}")
    }
}

pub fn run(args: &Args, config: &Path) -> ExitCode {
    match setup(args, config) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(error) => super::fail(&error),
    }
}

fn setup(args: &Args, config: &Path) -> Result<String, SetupError> {
    // Inside the sidecar's pod the configuration knows Harbor and the secret; elsewhere the
    // flags say them.
    let settings = Settings::load(config);
    let why_not = |settings: &Result<Settings, _>| match settings {
        Ok(_) => "it has none".to_owned(),
        Err(error) => format!("{error}"),
    };
    let (harbor_url, ca_file) = match (&args.harbor_url, &settings) {
        (Some(url), _) => (url.clone(), None),
        (None, Ok(settings)) => (settings.harbor.url.clone(), settings.harbor.ca_file.clone()),
        (None, Err(_)) => return Err(SetupError::NoHarborUrl(why_not(&settings))),
    };
    let auth_header = match (&args.auth_header_file, &settings) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|source| SetupError::AuthHeaderFile {
                path: path.clone(),
                source,
            })?,
        (None, Ok(settings)) if settings.webhook.auth_header.is_some() => settings
            .webhook
            .auth_header
            .as_ref()
            .map(|secret| secret.expose().to_owned())
            .unwrap_or_default(),
        (None, _) => return Err(SetupError::NoAuthHeader(why_not(&settings))),
    };
    super::plain_http::check(&harbor_url, "Harbor credentials", args.insecure)?;
    super::plain_http::check(
        &args.url_for_harbor,
        "the project's webhook auth header",
        args.insecure,
    )?;
    let (username, password) = super::operator::credentials().map_err(SetupError::Credentials)?;
    let caller = BasicAuth { username, password };
    // The master secret stays with the sidecar: the policy gets this project's own header.
    let wanted = wanted_policy(
        webhook_address(&args.url_for_harbor),
        project_header(&auth_header, &args.project),
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    actix_web::rt::System::new().block_on(async {
        let transport = CoreTransport::new(ca_file.as_deref(), TIMEOUT)?;
        let core = CoreClient::new(transport.connections(1, TIMEOUT), harbor_url, TIMEOUT, None);
        apply(&core, &args.project, &wanted, &caller).await
    })
}

async fn apply(
    core: &CoreClient,
    project: &str,
    wanted: &WebhookPolicy,
    caller: &BasicAuth,
) -> Result<String, SetupError> {
    let refused = |error: HarborError| match error {
        HarborError::Unauthorized(_) => SetupError::Refused(caller.username.clone()),
        HarborError::Forbidden(_) => SetupError::NotAdmin {
            user: caller.username.clone(),
            project: project.to_owned(),
        },
        other => SetupError::Harbor(other),
    };
    let existing = core
        .webhook_policies(project, caller)
        .await
        .map_err(refused)?
        .ok_or_else(|| SetupError::NoProject(project.to_owned()))?;
    let done = match plan(&existing, wanted) {
        Plan::Create => {
            core.create_webhook_policy(project, wanted, caller)
                .await
                .map_err(refused)?;
            "created"
        }
        Plan::Update(id) => {
            core.update_webhook_policy(project, id, wanted, caller)
                .await
                .map_err(refused)?;
            "updated"
        }
        Plan::UpToDate => "up to date",
    };
    let address = wanted
        .targets
        .first()
        .map_or("", |target| target.address.as_str());
    Ok(format!(
        "webhook policy {POLICY_NAME:?} in project {project} {done}: PULL_ARTIFACT to {address}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> WebhookPolicy {
        wanted_policy(
            webhook_address(&"http://sidecar.harbor.svc:8080".parse().unwrap()),
            "Bearer s3cret".into(),
        )
    }

    #[test]
    fn the_webhook_path_is_added_once() {
        let address = |url: &str| webhook_address(&url.parse().unwrap());
        assert_eq!(
            address("http://sidecar:8080"),
            "http://sidecar:8080/referrers-sidecar/v1/webhooks/harbor"
        );
        assert_eq!(
            address("http://sidecar:8080/referrers-sidecar/v1/webhooks/harbor"),
            "http://sidecar:8080/referrers-sidecar/v1/webhooks/harbor"
        );
    }

    #[test]
    fn a_policy_is_created_updated_or_left_as_it_is() {
        let wanted = wanted();
        let other = WebhookPolicy {
            id: Some(1),
            name: "slack".into(),
            ..wanted.clone()
        };
        assert_eq!(plan(&[], &wanted), Plan::Create);
        assert_eq!(plan(std::slice::from_ref(&other), &wanted), Plan::Create);

        let same = WebhookPolicy {
            id: Some(7),
            ..wanted.clone()
        };
        assert_eq!(
            plan(&[other.clone(), same.clone()], &wanted),
            Plan::UpToDate
        );

        let mut old_secret = same.clone();
        old_secret.targets[0].auth_header = "Bearer old".into();
        let disabled = WebhookPolicy {
            enabled: false,
            ..same.clone()
        };
        let more_events = WebhookPolicy {
            event_types: vec!["PULL_ARTIFACT".into(), "PUSH_ARTIFACT".into()],
            ..same
        };
        for differing in [old_secret, disabled, more_events] {
            assert_eq!(plan(&[other.clone(), differing], &wanted), Plan::Update(7));
        }
    }
}
