//! The sidecar's configuration in tests: the service's own [`Settings`], so a renamed or
//! retyped key fails to compile here, written as the YAML file the binary reads.
//!
//! Tests change [`Settings`]' fields themselves (`s.cache.fresh_for = …`); [`Configure`] adds
//! the few changes that take more than one key or a conversion (the robot's credentials, the
//! Redis tier, a secret).

use std::net::{Ipv4Addr, SocketAddr};

use referrers_sidecar::config::{CacheBackend, LogFormat, LogSettings};
pub use referrers_sidecar::config::{RegistrySettings, Secret, Settings};
use serde_yaml_ng::Value;

use crate::users::User;

/// Listeners on free loopback ports; [`crate::Sidecar`] reads the ports from the logs.
const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// A sidecar's configuration: every key at the service's default, except the listeners (free
/// loopback ports) and the logs (JSON at `info`), which [`crate::Sidecar`] reads.
#[must_use]
pub fn loopback() -> Settings {
    Settings {
        listen: LOOPBACK,
        metrics_listen: LOOPBACK,
        log: LogSettings {
            format: LogFormat::Json,
            level: "info".into(),
        },
        ..Settings::default()
    }
}

/// [`loopback`] in front of Harbor core at `harbor_url`.
#[must_use]
pub fn for_core(harbor_url: &str) -> Settings {
    let mut settings = loopback();
    settings.harbor.url = harbor_url
        .parse()
        .unwrap_or_else(|e| panic!("Harbor's URL {harbor_url:?}: {e}"));
    settings
}

/// `registries.<alias>`: the registry Harbor names `harbor_registry`, reached at `host`, no
/// credentials.
#[must_use]
pub fn registry(harbor_registry: &str, host: &str) -> RegistrySettings {
    RegistrySettings {
        harbor_registry: harbor_registry.into(),
        host: host.into(),
        registry_type: None,
        url: None,
        insecure: false,
        username: None,
        password: None,
        password_file: None,
    }
}

/// Changes to [`Settings`] that take more than one key or a conversion.
pub trait Configure: Sized {
    /// `self`, changed by `adjust`.
    #[must_use]
    fn with(self, adjust: impl FnOnce(&mut Self)) -> Self;

    /// `harbor.username` and `harbor.password`: the sidecar's robot account.
    fn robot(&mut self, robot: User);

    /// `projects.enabled` (`*` enables every proxy-cache project).
    fn enable<S: AsRef<str>>(&mut self, projects: &[S]);

    /// `cache.backend: redis` with `cache.redis_url`.
    fn redis(&mut self, url: &str);

    /// `webhook.auth_header`: the `Authorization` Harbor's webhooks must carry.
    fn webhook_auth_header(&mut self, header: &str);
}

impl Configure for Settings {
    fn with(mut self, adjust: impl FnOnce(&mut Self)) -> Self {
        adjust(&mut self);
        self
    }

    fn robot(&mut self, robot: User) {
        self.harbor.username = Some(robot.name.into());
        self.harbor.password = Some(Secret::new(robot.password));
    }

    fn enable<S: AsRef<str>>(&mut self, projects: &[S]) {
        self.projects.enabled = projects.iter().map(|p| p.as_ref().to_owned()).collect();
    }

    fn redis(&mut self, url: &str) {
        self.cache.backend = CacheBackend::Redis;
        self.cache.redis_url = url
            .parse()
            .unwrap_or_else(|e| panic!("Redis URL {url:?}: {e}"));
    }

    fn webhook_auth_header(&mut self, header: &str) {
        self.webhook.auth_header = Some(Secret::new(header));
    }
}

/// The configuration file's text. Secrets serialize masked (as `check-config` shows them), so
/// their values are written in after serializing; a secret left masked fails here.
#[must_use]
pub fn to_yaml(settings: &Settings) -> String {
    let mut tree = serde_yaml_ng::to_value(settings).expect("settings as YAML");
    let secret = |value: &Option<Secret>| match value {
        Some(secret) => Value::from(secret.expose()),
        None => Value::Null,
    };
    tree["harbor"]["password"] = secret(&settings.harbor.password);
    tree["webhook"]["auth_header"] = secret(&settings.webhook.auth_header);
    for (alias, registry) in &settings.registries {
        tree["registries"][alias.as_str()]["password"] = secret(&registry.password);
    }
    if let Some(password) = settings.cache.redis_url.password() {
        let encoded = percent_encoding::utf8_percent_encode(
            password.expose(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let masked = tree["cache"]["redis_url"]
            .as_str()
            .expect("cache.redis_url")
            .to_owned();
        tree["cache"]["redis_url"] = masked.replacen(Secret::MASK, &encoded, 1).into();
    }
    let yaml = serde_yaml_ng::to_string(&tree).expect("configuration YAML");
    assert!(
        !yaml.contains(Secret::MASK),
        "a secret would be written masked; write its value in `to_yaml`:\n{yaml}"
    );
    yaml
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn round_trip(settings: &Settings) -> (String, Settings) {
        let yaml = to_yaml(settings);
        let read =
            Settings::from_yaml_with_env(&yaml, []).unwrap_or_else(|e| panic!("{e}:\n{yaml}"));
        (yaml, read)
    }

    #[test]
    fn the_service_reads_back_what_is_written() {
        let settings = for_core("http://127.0.0.1:9").with(|s| {
            s.robot(crate::users::ROBOT);
            s.enable(&["hub-proxy"]);
            s.redis("redis://:p%40ss+word@127.0.0.1:6390/10");
            s.webhook_auth_header("Bearer s3cret");
            s.cache.fresh_for = Duration::from_secs(2);
            s.cache.redis_timeout = Duration::from_millis(250);
            s.projects.label = None;
            s.registries.insert(
                "hub".into(),
                RegistrySettings {
                    username: Some("me".into()),
                    password: Some(Secret::new("hunter2")),
                    ..registry("hub", "registry-1.docker.io")
                },
            );
        });
        let (yaml, read) = round_trip(&settings);
        assert_eq!(read.to_masked_yaml(), settings.to_masked_yaml(), "{yaml}");
        let parsed: Value = serde_yaml_ng::from_str(&yaml).expect("YAML");
        assert_eq!(parsed["cache"]["fresh_for"], "2s");
        assert_eq!(parsed["cache"]["redis_timeout"], "250ms");
        assert_eq!(parsed["listen"], "127.0.0.1:0");
        assert_eq!(parsed["log"]["format"], "json");
        let exposed = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_owned());
        assert_eq!(
            exposed(&read.harbor.password).as_deref(),
            Some("robot-secret")
        );
        assert_eq!(
            exposed(&read.webhook.auth_header).as_deref(),
            Some("Bearer s3cret")
        );
        assert_eq!(
            exposed(&read.registries["hub"].password).as_deref(),
            Some("hunter2")
        );
        assert_eq!(
            read.cache.redis_url.password().map(Secret::expose),
            Some("p@ss+word")
        );
        assert_eq!(read.projects.label, None);
    }

    #[test]
    fn the_defaults_round_trip() {
        let settings = for_core("http://127.0.0.1:9");
        let (yaml, read) = round_trip(&settings);
        assert_eq!(read.to_masked_yaml(), settings.to_masked_yaml(), "{yaml}");
        assert_eq!(read.harbor.password, None);
    }
}
