//! The command line: `check-config` prints the effective configuration or names the bad key.

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
    // Every key the binary prints is documented in the example, and vice versa.
    let documented: Vec<String> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains(':'))
        .map(|l| l.trim().split(':').next().unwrap_or_default().to_owned())
        .collect();
    for line in stdout
        .lines()
        .filter(|l| l.contains(':') && !l.trim_start().starts_with('-'))
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
