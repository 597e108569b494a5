//! No output shows a secret, whatever bytes it holds: for arbitrary passwords, percent-encoded
//! or written raw into a URL's user info, and in every secret key, neither `check-config` (of
//! a valid or an invalid file), nor the start error, nor `/readyz`, nor the logs of a running
//! sidecar that uses them against a real Redis contain any part of them.
//!
//! Each password is four random alphanumeric markers with arbitrary bytes between them:
//! `M0 b1 M1 b2 M2 b3 M3`. A marker is never escaped (in YAML, JSON or a URL), and a masking
//! that stops at the wrong delimiter leaves a prefix or a suffix of the password that holds
//! one, so "no marker in the output" catches a whole leak and a partial one alike.

use std::process::Command;

use e2e::Sidecar;
use e2e::config::{Configure, Secret, loopback, registry};
use e2e::redis::{RedisClient, RedisServer, Reply};
use e2e::sidecar::binary;
use e2e::wait::blocking;
use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_yaml_ng::Value;

#[derive(Debug, Clone)]
struct Password {
    bytes: Vec<u8>,
    markers: Vec<String>,
}

impl Password {
    /// The password as a configuration file can hold it (YAML is text: invalid UTF-8 becomes
    /// U+FFFD, which still leaves every marker in place).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Every byte percent-encoded, as a URL's user info carries an arbitrary password.
    fn encoded(&self) -> String {
        percent_encode(&self.bytes, NON_ALPHANUMERIC).to_string()
    }

    /// [`text`](Self::text) percent-encoded: what a Redis URL may carry (its credentials must
    /// be UTF-8 once decoded).
    fn encoded_text(&self) -> String {
        percent_encode(self.text().as_bytes(), NON_ALPHANUMERIC).to_string()
    }

    /// The markers of the password that `output` shows.
    fn shown_in(&self, output: &str) -> Vec<String> {
        self.markers
            .iter()
            .filter(|marker| output.contains(marker.as_str()))
            .cloned()
            .collect()
    }
}

fn password() -> impl Strategy<Value = Password> {
    let marker = "[a-zA-Z0-9]{12}";
    let between = prop::collection::vec(any::<u8>(), 0..12);
    (
        marker,
        between.clone(),
        marker,
        between.clone(),
        marker,
        between,
        marker,
    )
        .prop_map(|(m0, b1, m1, b2, m2, b3, m3)| {
            let mut bytes = m0.clone().into_bytes();
            for (between, marker) in [(b1, &m1), (b2, &m2), (b3, &m3)] {
                bytes.extend(between);
                bytes.extend(marker.as_bytes());
            }
            Password {
                bytes,
                markers: vec![m0, m1, m2, m3],
            }
        })
}

/// `referrers-sidecar <args> --config <yaml>`: exit success, stdout and stderr together.
fn run(args: &[&str], yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let output = Command::new(binary())
        .args(args)
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run referrers-sidecar");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A valid configuration holding `password` in every secret key and, percent-encoded, in the
/// Redis URL of `redis`.
fn valid(password: &Password, redis: &RedisServer) -> String {
    let settings = loopback().with(|s| {
        s.robot(e2e::users::ROBOT);
        s.harbor.password = Some(Secret::new(password.text()));
        // A header value is visible ASCII: the password goes in encoded.
        s.webhook_auth_header(&format!("Bearer {}", password.encoded()));
        s.registries.insert(
            "hub".into(),
            e2e::config::RegistrySettings {
                username: Some("me".into()),
                password: Some(Secret::new(password.text())),
                ..registry("hub", "registry-1.docker.io")
            },
        );
    });
    let mut tree: Value = serde_yaml_ng::from_str(&e2e::config::to_yaml(&settings)).expect("YAML");
    tree["cache"]["backend"] = "redis".into();
    tree["cache"]["redis_url"] = format!(
        "redis://:{}@127.0.0.1:{}/10",
        password.encoded_text(),
        redis.port()
    )
    .into();
    serde_yaml_ng::to_string(&tree).expect("YAML")
}

/// Configurations the sidecar must refuse or mask, each with the password somewhere a URL
/// parser may stumble on it: raw in the Redis URL's user info, raw and encoded in a registry
/// URL and in Harbor's URL.
fn url_forms(password: &Password) -> Vec<String> {
    let raw = password.text();
    let encoded = password.encoded();
    let mut forms = Vec::new();
    for (key, url) in [
        ("redis_url", format!("redis://:{raw}@127.0.0.1:6390/10")),
        ("redis_url", format!("redis://:{encoded}@127.0.0.1:6390/10")),
        (
            "redis_url",
            format!("redis+sentinel://:{raw}@127.0.0.1:26379/mymaster/10"),
        ),
        ("registry", format!("https://me:{raw}@registry.example/")),
        (
            "registry",
            format!("https://me:{encoded}@registry.example/"),
        ),
        ("harbor", format!("http://robot:{raw}@harbor-core:8080")),
        ("harbor", format!("http://robot:{encoded}@harbor-core:8080")),
    ] {
        let mut tree: Value =
            serde_yaml_ng::from_str(&e2e::config::to_yaml(&loopback())).expect("YAML");
        match key {
            "redis_url" => {
                tree["cache"]["backend"] = "redis".into();
                tree["cache"]["redis_url"] = url.into();
            }
            "registry" => {
                let mut hub = serde_yaml_ng::Mapping::new();
                hub.insert("harbor_registry".into(), "hub".into());
                hub.insert("host".into(), "registry.example".into());
                hub.insert("type".into(), "docker-registry".into());
                hub.insert("url".into(), url.into());
                tree["registries"] = Value::Mapping(
                    [(Value::from("hub"), Value::Mapping(hub))]
                        .into_iter()
                        .collect(),
                );
            }
            _ => tree["harbor"]["url"] = url.into(),
        }
        forms.push(serde_yaml_ng::to_string(&tree).expect("YAML"));
    }
    forms
}

/// Starts the sidecar on `yaml` (whose Redis refuses the password), reads `/readyz`, waits
/// until the refusal is logged, stops it: `/readyz`'s body and every log line.
fn serve(yaml: &str) -> String {
    let settings = referrers_sidecar::config::Settings::from_yaml_with_env(yaml, [])
        .expect("the valid configuration loads");
    let mut sidecar = Sidecar::start(&settings);
    let readyz = e2e::raw_get(sidecar.port, b"/readyz");
    assert_eq!(readyz.status, 200);
    let readyz = String::from_utf8_lossy(&readyz.body).into_owned();
    assert!(readyz.contains(Secret::MASK), "{readyz}");
    blocking("Redis's refusal logged", || {
        sidecar
            .logs()
            .iter()
            .any(|line| line.contains("Password authentication failed"))
    });
    sidecar.terminate();
    sidecar.wait_exit();
    format!("{readyz}\n{}", sidecar.logs().join("\n"))
}

#[test]
fn no_output_shows_any_part_of_a_password() {
    // A Redis that requires another password: the sidecar's AUTH is refused, and logged.
    let redis = RedisServer::start();
    let set: &[&[u8]] = &[b"CONFIG", b"SET", b"requirepass", b"another-password"];
    assert_eq!(
        RedisClient::sentinel(redis.port()).command(set),
        Reply::Simple("OK".into())
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&password(), |password| {
            let yaml = valid(&password, &redis);
            let (ok, checked) = run(&["check-config"], &yaml);
            prop_assert!(ok, "{checked}");
            prop_assert!(
                password.shown_in(&checked).is_empty(),
                "check-config:\n{checked}"
            );
            for form in url_forms(&password) {
                for args in [&["check-config"][..], &[]] {
                    let (_, output) = if args.is_empty() {
                        // Serving an invalid file fails at start: its error is checked; a
                        // file that loads is served below, not here.
                        match referrers_sidecar::config::Settings::from_yaml_with_env(&form, []) {
                            Ok(_) => continue,
                            Err(_) => run(args, &form),
                        }
                    } else {
                        run(args, &form)
                    };
                    prop_assert!(
                        password.shown_in(&output).is_empty(),
                        "{args:?} on\n{form}\nshows it:\n{output}"
                    );
                }
            }
            let served = serve(&yaml);
            prop_assert!(
                password.shown_in(&served).is_empty(),
                "readyz or logs:\n{served}"
            );
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
}
