//! `referrers-sidecar webhook-setup --project P`: the webhook policy Harbor needs to warm the
//! cache, created through Harbor's API (the double) with a project admin's credentials, found
//! and left or brought up to date by a second run, refused to anyone else.

use std::process::Command;

use e2e::harbor_webhook::PATH;
use e2e::sidecar::binary;
use e2e::users::{ALICE, PAM, User};
use e2e::world::{Mirror, World};
use referrers_sidecar::webhook::project_header;
use serde_json::Value;

const SECRET: &str = "Bearer webhook-s3cret";

/// A world whose `hub-proxy` has PAM as its project admin and ALICE as a developer.
async fn world() -> World {
    World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .harbor(|harbor| harbor.accounts.push(PAM.project_admin(&["hub-proxy"])))
        .start()
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `webhook-setup` as `user` with the configuration `config` (YAML; none: no file) and
/// `args`.
fn webhook_setup(user: User, config: Option<&str>, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yaml");
    if let Some(config) = config {
        std::fs::write(&path, config).expect("write config");
    }
    let output = Command::new(binary())
        .arg("webhook-setup")
        .arg("--config")
        .arg(&path)
        .args(args)
        .env("HARBOR_USERNAME", user.name)
        .env("HARBOR_PASSWORD", user.password)
        .env_remove("REFERRERS_SIDECAR_URL_FOR_HARBOR")
        .output()
        .expect("run webhook-setup");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The sidecar's configuration inside its pod: Harbor's URL and the webhook's secret.
fn config(world: &World, secret: &str) -> Option<String> {
    Some(format!(
        "harbor:\n  url: {}\nwebhook:\n  auth_header: \"{secret}\"\n",
        world.harbor.url()
    ))
}

#[tokio::test]
async fn a_project_admin_creates_the_policy_and_a_second_run_finds_it() {
    let world = world().await;
    let args = [
        "--project",
        "hub-proxy",
        "--url-for-harbor",
        "http://sidecar.harbor.svc:8080",
    ];

    let created = webhook_setup(PAM, config(&world, SECRET).as_deref(), &args);
    assert!(created.success, "{}", created.stderr);
    assert!(created.stdout.contains("created"), "{}", created.stdout);
    assert!(
        !created.stdout.contains("s3cret"),
        "the secret is never printed"
    );
    let policies = world.harbor.webhook_policies("hub-proxy");
    assert_eq!(policies.len(), 1, "{policies:?}");
    let policy = &policies[0];
    assert_eq!(policy["name"], "referrers-sidecar-warm");
    assert_eq!(policy["enabled"], true);
    assert_eq!(policy["event_types"], serde_json::json!(["PULL_ARTIFACT"]));
    let target = &policy["targets"][0];
    assert_eq!(target["type"], "http");
    assert_eq!(
        target["address"],
        format!("http://sidecar.harbor.svc:8080{PATH}")
    );
    // The project's own header, derived from the master secret, which stays with the sidecar.
    assert_eq!(target["auth_header"], project_header(SECRET, "hub-proxy"));
    assert_ne!(target["auth_header"], SECRET);
    assert_eq!(target["payload_format"], "Default");

    let again = webhook_setup(PAM, config(&world, SECRET).as_deref(), &args);
    assert!(again.success, "{}", again.stderr);
    assert!(again.stdout.contains("up to date"), "{}", again.stdout);

    // A new secret in the configuration: the same policy, updated.
    let rotated = webhook_setup(PAM, config(&world, "Bearer rotated").as_deref(), &args);
    assert!(rotated.success, "{}", rotated.stderr);
    assert!(rotated.stdout.contains("updated"), "{}", rotated.stdout);
    let policies: Vec<Value> = world.harbor.webhook_policies("hub-proxy");
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0]["id"], policy["id"]);
    assert_eq!(
        policies[0]["targets"][0]["auth_header"],
        project_header("Bearer rotated", "hub-proxy")
    );
}

#[tokio::test]
async fn without_a_configuration_the_flags_say_where_harbor_is_and_the_secret() {
    let world = world().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("auth-header");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret");
    let harbor_url = world.harbor.url();
    let secret_path = secret_file.to_str().expect("path");

    let missing = webhook_setup(PAM, None, &["--project", "hub-proxy"]);
    assert!(!missing.success);
    assert!(
        missing.stderr.contains("--harbor-url"),
        "{}",
        missing.stderr
    );

    let run = webhook_setup(
        PAM,
        None,
        &[
            "--project",
            "hub-proxy",
            "--harbor-url",
            &harbor_url,
            "--auth-header-file",
            secret_path,
        ],
    );
    assert!(run.success, "{}", run.stderr);
    let policies = world.harbor.webhook_policies("hub-proxy");
    let target = &policies[0]["targets"][0];
    assert_eq!(target["auth_header"], project_header(SECRET, "hub-proxy"));
    assert_eq!(
        target["address"],
        format!("http://referrers-sidecar:8080{PATH}"),
        "the docker compose service by default"
    );
}

#[tokio::test]
async fn a_developer_a_wrong_password_and_an_unknown_project_are_refused() {
    let world = world().await;
    let config = config(&world, SECRET);
    let config = config.as_deref();
    let args = ["--project", "hub-proxy"];

    let developer = webhook_setup(ALICE, config, &args);
    assert!(!developer.success);
    assert!(
        developer.stderr.contains("project admin"),
        "{}",
        developer.stderr
    );

    let wrong = User {
        password: "not-pams",
        ..PAM
    };
    let refused = webhook_setup(wrong, config, &args);
    assert!(!refused.success);
    assert!(refused.stderr.contains("refused"), "{}", refused.stderr);

    let unknown = webhook_setup(PAM, config, &["--project", "nowhere"]);
    assert!(!unknown.success);
    assert!(
        unknown.stderr.contains("no project nowhere"),
        "{}",
        unknown.stderr
    );

    assert!(world.harbor.webhook_policies("hub-proxy").is_empty());
}
