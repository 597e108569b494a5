//! The command line: `check-config` prints the effective configuration or names the bad key;
//! `status` and `purge` ask a running sidecar, without a configuration file.

use std::process::Command;

use e2e::sidecar::binary;

fn check_config(yaml: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).expect("write");
    let output = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .expect("run check-config");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_example_configuration_is_valid_and_complete() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/config.example.yaml"
    ))
    .expect("example config");
    let (ok, stdout, stderr) = check_config(&example, &[]);
    assert!(ok, "{stderr}");
    let effective: serde_json::Value = serde_json::to_value(
        stdout
            .lines()
            .filter(|l| !l.starts_with(' ') && l.contains(':'))
            .map(|l| l.split(':').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>(),
    )
    .expect("keys");
    for section in [
        "listen",
        "metrics_listen",
        "harbor",
        "projects",
        "registries",
        "cache",
        "upstream",
        "response",
        "log",
    ] {
        assert!(
            effective
                .as_array()
                .is_some_and(|a| a.iter().any(|k| k == section)),
            "{section} missing from:\n{stdout}"
        );
    }
    // The worst case of a request's time, as comments after the configuration.
    assert!(
        stdout.contains(
            "\n# budget: every referrers request is answered within 8s (response.deadline)"
        ),
        "{stdout}"
    );
    // Every key the binary prints is documented in the example, and vice versa.
    let documented: Vec<String> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains(':'))
        .map(|l| l.trim().split(':').next().unwrap_or_default().to_owned())
        .collect();
    for line in stdout
        .lines()
        .filter(|l| l.contains(':') && !l.trim_start().starts_with('-') && !l.starts_with('#'))
    {
        let key = line.trim().split(':').next().unwrap_or_default();
        assert!(
            documented.iter().any(|d| d == key),
            "{key} is not in config.example.yaml"
        );
    }
}

#[test]
fn secrets_are_masked_and_environment_overrides_apply() {
    let yaml = "registries:\n  hub:\n    harbor_registry: hub\n    host: registry-1.docker.io\n    username: me\n";
    let (ok, stdout, stderr) = check_config(
        yaml,
        &[
            (
                "REFERRERS_SIDECAR__REGISTRIES__HUB__PASSWORD",
                "hunter2-secret",
            ),
            ("REFERRERS_SIDECAR__HARBOR__PASSWORD", "robot-secret"),
            (
                "REFERRERS_SIDECAR__CACHE__REDIS_URL",
                "redis://:redis-secret@h:6379/10",
            ),
            ("REFERRERS_SIDECAR__PROJECTS__ENABLED", "a-proxy,b-proxy"),
        ],
    );
    assert!(ok, "{stderr}");
    for secret in ["hunter2-secret", "robot-secret", "redis-secret"] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
    }
    assert!(stdout.contains("*****"));
    assert!(
        stdout.contains("- a-proxy") && stdout.contains("- b-proxy"),
        "{stdout}"
    );
    assert!(stdout.contains("redis://:*****@h:6379/10"), "{stdout}");
}

#[test]
fn invalid_configuration_exits_1_naming_the_key() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("cache:\n  fresh_for: tomorrow\n", &[], "cache.fresh_for"),
        ("upstream:\n  max_pagez: 3\n", &[], "max_pagez"),
        (
            "{}",
            &[("REFERRERS_SIDECAR__HARBOR__TIMEOUT", "0s")],
            "harbor.timeout",
        ),
        ("harbor: [\n", &[], "configuration"),
    ];
    for (yaml, env, key) in cases {
        let (ok, _, stderr) = check_config(yaml, env);
        assert!(!ok, "{yaml} must be refused");
        assert!(stderr.contains(key), "{yaml}: {stderr} should name {key}");
    }
    let missing = Command::new(binary())
        .args(["check-config", "--config", "/nonexistent/config.yaml"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/config.yaml"));
}

/// `referrers-sidecar <args>` as `user` (through `HARBOR_USERNAME`/`HARBOR_PASSWORD`, no
/// terminal), off the test's runtime: exit status, stdout, stderr.
async fn operator_command(args: &[&str], user: e2e::users::User) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(binary())
            .args(&args)
            .env("HARBOR_USERNAME", user.name)
            .env("HARBOR_PASSWORD", user.password)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the operator command");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("command thread")
}

#[tokio::test]
async fn status_and_purge_ask_a_running_sidecar_in_words_or_json() {
    use e2e::users::{ALICE, PAM};
    use e2e::world::{Mirror, World, ask};

    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .account(PAM.project_admin(&["hub-proxy"]))
        .start();
    let sidecar = world.sidecar();
    let path = world.subject_path("hub-proxy");
    assert_eq!(ask(&sidecar, &path).await.cache, "miss");
    let url = sidecar.url("");
    // No configuration file: the address comes from --url.
    let run = async |command: &[&str], user| {
        let mut args = vec![
            command[0],
            "--config",
            "/nonexistent/config.yaml",
            "--url",
            &url,
        ];
        args.extend(&command[1..]);
        operator_command(&args, user).await
    };

    let (ok, stdout, stderr) = run(&["status", "--project", "hub-proxy"], ALICE).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "hub-proxy: served (switch: config)\nregistry: upstream (docker-registry) {}/, Harbor id 1\nbreaker: closed; not rate-limited; lists cached in this replica: 1\n",
            world.mirror("hub-proxy").url()
        )
    );
    let (ok, stdout, _) = run(&["status", "--project", "hub-proxy", "--json"], ALICE).await;
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(status["registry"]["cached_lists"], 1, "{status}");

    let (ok, _, stderr) = run(&["purge", "--project", "hub-proxy"], ALICE).await;
    assert!(!ok, "a developer may not purge");
    assert!(stderr.contains("403"), "{stderr}");
    let wrong = e2e::users::User {
        password: "wrong",
        ..PAM
    };
    let (ok, _, stderr) = run(&["status", "--project", "hub-proxy"], wrong).await;
    assert!(!ok && stderr.contains("401"), "{stderr}");
    assert!(
        !stderr.contains("wrong"),
        "the password is never printed: {stderr}"
    );

    let (ok, stdout, stderr) = run(
        &[
            "purge",
            "--project",
            "hub-proxy",
            "--repository",
            "team/app",
        ],
        PAM,
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "purged 1 cached list of team/app in Harbor registry 1, for every project proxying it, on this replica only: there is no shared cache (send the purge to each replica)\n"
    );
    let (ok, stdout, _) = run(&["purge", "--project", "hub-proxy", "--json"], PAM).await;
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).expect("JSON"),
        serde_json::json!({"purged": 0, "registry_id": 1, "redis": "off"})
    );
    assert_eq!(ask(&sidecar, &path).await.cache, "miss", "purged");

    // Without --url: the listener of the configuration, when one loads.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("listen: \"[::]:{}\"\n", sidecar.port)).expect("write");
    let config = config.to_string_lossy();
    let (ok, stdout, stderr) = operator_command(
        &["status", "--config", &config, "--project", "library"],
        PAM,
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "library: not served (unknown_project: Harbor knows no such project)\n"
    );
}

#[tokio::test]
async fn credentials_never_go_over_plain_http_outside_the_machine_unless_told() {
    use e2e::users::ALICE;

    // Refused before any request: without the guard it would try to reach the host.
    let (ok, _, stderr) = operator_command(
        &[
            "status",
            "--project",
            "hub-proxy",
            "--url",
            "http://sidecar.example.com:8080",
        ],
        ALICE,
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("refusing to send Harbor credentials over plain http://"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--insecure"),
        "it says how to go on: {stderr}"
    );
}
