//! `status` and `purge`: the operator API of a running sidecar from the command line (and what
//! `warm` shares with them), with the caller's Harbor credentials (`HARBOR_USERNAME`/`HARBOR_PASSWORD`, else a prompt). They need
//! no configuration file: one that loads only gives the default address.

use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use url::Url;

use crate::config::Settings;

/// The address when no configuration loads: the listener's default port on this machine.
const FALLBACK_URL: &str = "http://127.0.0.1:8080/";

/// How long one call to the sidecar may take (it asks Harbor in turn).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the operator commands take.
#[derive(clap::Args)]
pub struct Target {
    /// The Harbor project.
    #[arg(long)]
    pub(super) project: String,
    /// The sidecar's main listener, e.g. http://localhost:8080 through `kubectl port-forward`.
    /// Default: the `listen` address of the configuration (`--config`) when it loads, else
    /// http://127.0.0.1:8080.
    #[arg(long)]
    pub(super) url: Option<Url>,
    /// Print JSON instead of text (for scripts).
    #[arg(long)]
    pub(super) json: bool,
    /// Send the Harbor credentials over plain http:// to a host outside this machine and the
    /// cluster too.
    #[arg(long)]
    pub(super) insecure: bool,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    target: Target,
    /// Only this repository's lists, as named in Harbor without the project (`library/nginx`).
    #[arg(long)]
    repository: Option<String>,
    /// Only this subject's list (`sha256:…`) in `--repository`.
    #[arg(long, requires = "repository")]
    digest: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum CommandError {
    #[error("cannot read the Harbor credentials: {0}")]
    Credentials(std::io::Error),
    #[error("invalid sidecar URL: {0}")]
    Url(String),
    #[error(transparent)]
    PlainHttp(#[from] super::plain_http::PlainHttp),
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("cannot reach the sidecar at {url}: {source}")]
    Unreachable { url: Url, source: reqwest::Error },
    /// `request_id`: the id the sidecar's log holds the detail under; `retry_after`: when to
    /// try again, in seconds, for a call told to come back.
    #[error(
        "the sidecar answered {status}: {message}{}{}",
        retry_after.map_or_else(String::new, |seconds| format!(" (retry in {seconds} s)")),
        request_id.as_ref().map_or_else(String::new, |id| format!(" (request id {id})"))
    )]
    Refused {
        status: u16,
        message: String,
        retry_after: Option<u64>,
        request_id: Option<String>,
    },
    #[error("the sidecar sent an unreadable answer: {0}")]
    Invalid(String),
}

/// `referrers-sidecar status --project P`.
pub fn status(config: &Path, args: &StatusArgs) -> ExitCode {
    let target = &args.target;
    let answer = endpoint(config, target, "").and_then(|url| call(reqwest::Method::GET, url));
    finish(target.json, answer.map(|answer| describe_status(&answer)))
}

/// `referrers-sidecar purge --project P [--repository R [--digest D]]`.
pub fn purge(config: &Path, args: &PurgeArgs) -> ExitCode {
    let target = &args.target;
    let mut url = match endpoint(config, target, "/cache") {
        Ok(url) => url,
        Err(error) => return super::fail(&error),
    };
    {
        let mut query = url.query_pairs_mut();
        if let Some(repository) = &args.repository {
            query.append_pair("repository", repository);
        }
        if let Some(digest) = &args.digest {
            query.append_pair("digest", digest);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    finish(
        target.json,
        call(reqwest::Method::DELETE, url).map(|answer| Reported {
            text: describe_purge(&target.project, &answer.json),
            json: answer.raw,
        }),
    )
}

/// A purge's answer in words: how many lists, of what (a registry's lists are every project's
/// over it), and whether every replica dropped them.
fn describe_purge(project: &str, purge: &Value) -> String {
    let Some(registry) = purge["registry_id"].as_i64() else {
        return format!("{project} is no proxy-cache project: it has no cached lists");
    };
    let purged = purge["purged"].as_u64().unwrap_or(0);
    let lists = if purged == 1 { "list" } else { "lists" };
    let of = match (purge["repository"].as_str(), purge["digest"].as_str()) {
        (Some(repository), Some(digest)) => format!("{repository}@{digest} in "),
        (Some(repository), None) => format!("{repository} in "),
        _ => String::new(),
    };
    let reach = match purge["redis"].as_str() {
        Some("purged") => "on every replica",
        Some("unavailable") => {
            "on this replica only: Redis did not answer (purge again once it is back)"
        }
        _ => "on this replica only: there is no shared cache (send the purge to each replica)",
    };
    format!(
        "purged {purged} cached {lists} of {of}Harbor registry {registry}, for every project proxying it, {reach}"
    )
}

/// The sidecar's URL: `--url`, else the configuration's listener.
pub(super) fn sidecar_url(config: &Path, target: &Target) -> Result<Url, CommandError> {
    match &target.url {
        Some(url) => Ok(url.clone()),
        None => Url::parse(&default_url(config)).map_err(|e| CommandError::Url(e.to_string())),
    }
}

/// The operator API's URL for `target`'s project, with `tail` after it.
pub(super) fn endpoint(config: &Path, target: &Target, tail: &str) -> Result<Url, CommandError> {
    let base = sidecar_url(config, target)?;
    let path = format!(
        "{}/referrers-sidecar/v1/projects/{}{tail}",
        base.path().trim_end_matches('/'),
        utf8_percent_encode(&target.project, NON_ALPHANUMERIC)
    );
    let mut url = base;
    url.set_path(&path);
    url.set_query(None);
    super::plain_http::check(&url, "Harbor credentials", target.insecure)?;
    Ok(url)
}

/// The configuration's listener on this machine, else [`FALLBACK_URL`].
fn default_url(config: &Path) -> String {
    Settings::load(config).map_or_else(
        |_| FALLBACK_URL.to_owned(),
        |settings| listener_url(settings.listen),
    )
}

/// `http://<address>/`, with an all-interfaces address replaced by the loopback one.
fn listener_url(listen: SocketAddr) -> String {
    let ip = if listen.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        listen.ip()
    };
    format!("http://{}/", SocketAddr::new(ip, listen.port()))
}

/// A 200 answer: its JSON, and the bytes as they came (what `--json` prints).
pub(super) struct Answer {
    pub(super) json: Value,
    pub(super) raw: String,
}

/// What a command prints.
pub(super) struct Reported {
    pub(super) text: String,
    pub(super) json: String,
}

/// One call to the operator API with the caller's Harbor credentials.
fn call(method: reqwest::Method, url: Url) -> Result<Answer, CommandError> {
    let (username, password) = credentials().map_err(CommandError::Credentials)?;
    // One TLS provider for the process, as the service installs it (for an https --url).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    runtime.block_on(async {
        let request = client()?
            .request(method, url.clone())
            .basic_auth(&username, Some(&password));
        send(request, &url).await
    })
}

/// The operator commands' HTTP client: each call bounded, no redirect followed.
pub(super) fn client() -> Result<reqwest::Client, CommandError> {
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(CommandError::Client)
}

/// Sends `request` (to `url`): its 200 answer, or why not (the API's error, with when to
/// retry and the request's id).
pub(super) async fn send(
    request: reqwest::RequestBuilder,
    url: &Url,
) -> Result<Answer, CommandError> {
    let unreachable = |source| CommandError::Unreachable {
        url: url.clone(),
        source,
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.trim().parse().ok());
    let raw = response.text().await.map_err(unreachable)?;
    let json: Value = serde_json::from_str(&raw).map_err(|e| {
        CommandError::Invalid(format!(
            "{status}: {e}: {}",
            raw.chars().take(200).collect::<String>()
        ))
    })?;
    if status != 200 {
        let error = &json["errors"][0];
        return Err(CommandError::Refused {
            status,
            message: error["message"].as_str().unwrap_or("no message").to_owned(),
            retry_after,
            request_id: error["request_id"].as_str().map(str::to_owned),
        });
    }
    Ok(Answer { json, raw })
}

/// `HARBOR_USERNAME` and `HARBOR_PASSWORD`, else asked on the terminal (the password without
/// echo).
pub(super) fn credentials() -> std::io::Result<(String, String)> {
    let username = match std::env::var("HARBOR_USERNAME") {
        Ok(name) if !name.is_empty() => name,
        _ => {
            eprint!("Harbor username: ");
            std::io::stderr().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_owned()
        }
    };
    let password = match std::env::var("HARBOR_PASSWORD") {
        Ok(password) => password,
        Err(_) => rpassword::prompt_password(format!("Harbor password for {username}: "))?,
    };
    Ok((username, password))
}

/// Prints the report (text or JSON) or the failure; the exit code says which.
fn finish(json: bool, result: Result<Reported, CommandError>) -> ExitCode {
    match result {
        Ok(report) if json => {
            println!("{}", report.json.trim_end());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!("{}", report.text);
            ExitCode::SUCCESS
        }
        Err(error) => super::fail(&error),
    }
}

/// A status answer in words.
pub(super) fn describe_status(answer: &Answer) -> Reported {
    let status = &answer.json;
    let text = |key: &str| status[key].as_str().unwrap_or("?");
    let mut lines = Vec::new();
    if status["served"].as_bool() == Some(true) {
        lines.push(format!(
            "{}: served (switch: {})",
            text("project"),
            text("switch")
        ));
    } else {
        let reason = text("reason");
        lines.push(format!(
            "{}: not served ({reason}: {})",
            text("project"),
            explain(reason)
        ));
    }
    let registry = &status["registry"];
    if registry.is_object() {
        let field = |key: &str| registry[key].as_str().unwrap_or("?");
        if registry["name"].is_string() {
            lines.push(format!(
                "registry: {} ({}) {}, Harbor id {}",
                field("name"),
                field("type"),
                field("url"),
                registry["id"]
            ));
        } else {
            lines.push(format!(
                "registry: Harbor id {}, facts unavailable (the sidecar's log says why)",
                registry["id"]
            ));
        }
        if let Some(state) = registry["state"].as_str().filter(|state| *state != "ok") {
            lines.push(format!("upstream: {state}"));
        }
        let rest = match registry["rate_limited_for_seconds"].as_u64() {
            Some(0) | None => "not rate-limited".to_owned(),
            Some(seconds) => format!("rate-limited for {seconds} s more"),
        };
        lines.push(format!(
            "breaker: {}; {rest}; lists cached in this replica: {}",
            field("breaker"),
            registry["cached_lists"]
        ));
    }
    Reported {
        text: lines.join("\n"),
        json: answer.raw.clone(),
    }
}

/// What a reason code means, for people.
fn explain(reason: &str) -> &'static str {
    match reason {
        "not_enabled" => "neither projects.enabled nor the project label switches it on",
        "not_proxy_cache" => "not a proxy-cache project: every referrer it has is local",
        "harbor_merges" => "Harbor merges upstream referrers itself (proxy_referrer_api)",
        "unknown_project" => "Harbor knows no such project",
        "facts_unavailable" => {
            "the sidecar's robot account cannot read the project from Harbor (see the sidecar's logs)"
        }
        _ => "see docs/operations.md",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_address_is_the_listener_on_this_machine() {
        let url = |listen: &str| listener_url(listen.parse().unwrap());
        assert_eq!(url("[::]:8080"), "http://127.0.0.1:8080/");
        assert_eq!(url("0.0.0.0:9000"), "http://127.0.0.1:9000/");
        assert_eq!(url("10.0.0.5:8080"), "http://10.0.0.5:8080/");
        assert_eq!(url("[::1]:8080"), "http://[::1]:8080/");
        assert_eq!(
            default_url(Path::new("/nonexistent/config.yaml")),
            FALLBACK_URL
        );
    }

    #[test]
    fn endpoints_keep_a_path_prefix_and_encode_the_project() {
        let target = Target {
            project: "hub proxy".into(),
            url: Some("https://harbor.example/sidecar/?x=1".parse().unwrap()),
            json: false,
            insecure: false,
        };
        assert_eq!(
            endpoint(Path::new("/nonexistent"), &target, "/cache")
                .unwrap()
                .as_str(),
            "https://harbor.example/sidecar/referrers-sidecar/v1/projects/hub%20proxy/cache"
        );
    }

    #[test]
    fn a_purge_reads_as_a_sentence_naming_what_it_dropped_and_where() {
        let cases = [
            (
                serde_json::json!({"purged": 3, "registry_id": 1, "redis": "purged"}),
                "purged 3 cached lists of Harbor registry 1, for every project proxying it, on every replica",
            ),
            (
                serde_json::json!({"purged": 1, "registry_id": 2, "repository": "library/nginx",
                    "redis": "unavailable"}),
                "purged 1 cached list of library/nginx in Harbor registry 2, for every project proxying it, on this replica only: Redis did not answer (purge again once it is back)",
            ),
            (
                serde_json::json!({"purged": 0, "registry_id": 2, "repository": "team/app",
                    "digest": "sha256:ab", "redis": "off"}),
                "purged 0 cached lists of team/app@sha256:ab in Harbor registry 2, for every project proxying it, on this replica only: there is no shared cache (send the purge to each replica)",
            ),
            (
                serde_json::json!({"purged": 0}),
                "lib is no proxy-cache project: it has no cached lists",
            ),
        ];
        for (answer, text) in cases {
            let project = if answer.get("registry_id").is_some() {
                "hub"
            } else {
                "lib"
            };
            assert_eq!(describe_purge(project, &answer), text, "{answer}");
        }
    }

    #[test]
    fn a_status_reads_as_a_sentence() {
        let served = Answer {
            json: serde_json::json!({"project": "hub", "served": true, "switch": "label",
                "registry": {"id": 1, "name": "dockerhub", "type": "docker-hub",
                    "url": "https://hub.docker.com/", "breaker": "open",
                    "rate_limited_for_seconds": 42, "cached_lists": 3}}),
            raw: String::new(),
        };
        assert_eq!(
            describe_status(&served).text,
            "hub: served (switch: label)\nregistry: dockerhub (docker-hub) https://hub.docker.com/, Harbor id 1\nbreaker: open; rate-limited for 42 s more; lists cached in this replica: 3"
        );
        let unreachable = Answer {
            json: serde_json::json!({"project": "hub", "served": true, "switch": "config",
                "registry": {"id": 2, "state": "unreachable", "breaker": "closed",
                    "rate_limited_for_seconds": 0, "cached_lists": 0}}),
            raw: String::new(),
        };
        assert_eq!(
            describe_status(&unreachable).text,
            "hub: served (switch: config)\nregistry: Harbor id 2, facts unavailable (the sidecar's log says why)\nupstream: unreachable\nbreaker: closed; not rate-limited; lists cached in this replica: 0"
        );
        let local = Answer {
            json: serde_json::json!({"project": "lib", "served": false, "reason": "not_proxy_cache"}),
            raw: String::new(),
        };
        assert_eq!(
            describe_status(&local).text,
            "lib: not served (not_proxy_cache: not a proxy-cache project: every referrer it has is local)"
        );
    }
}
