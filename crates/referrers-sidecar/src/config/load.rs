//! Loading: the YAML file, then `REFERRERS_SIDECAR__…` environment overrides, then `*_file`
//! secrets, then validation.

use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, DEFAULT_HARBOR_PASSWORD_FILE, Secret, Settings};

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "REFERRERS_SIDECAR";
/// Separator between key segments in those variables (`REFERRERS_SIDECAR__HARBOR__URL`).
pub const ENV_SEPARATOR: &str = "__";

impl Settings {
    /// Reads `path` (YAML), applies `REFERRERS_SIDECAR__…` overrides from the process
    /// environment, reads secret files and validates the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly (tests).
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml_with_env(&text, env)
    }

    /// Builds the settings from YAML text and environment overrides.
    pub fn from_yaml_with_env(
        yaml: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let overrides: config::Map<String, String> = env
            .into_iter()
            .filter(|(key, _)| key.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
            .collect();
        // Values stay strings (no `try_parsing`: it would turn a password "0123" into 123);
        // typed keys convert on deserialization, and lists accept a comma-separated string.
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .source(Some(overrides));
        let mut settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
            .add_source(environment)
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        settings.resolve_secret_files()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Replaces every `*_file` with the secret it holds, so the rest of the service sees one
    /// value. An inline value wins over a file.
    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        if self.harbor.password.is_none()
            && let Some(path) = &self.harbor.password_file
        {
            let optional = path == Path::new(DEFAULT_HARBOR_PASSWORD_FILE);
            self.harbor.password = read_secret_file("harbor.password_file", path, optional)?;
        }
        if self.webhook.auth_header.is_none()
            && let Some(path) = &self.webhook.auth_header_file
        {
            self.webhook.auth_header = read_secret_file("webhook.auth_header_file", path, false)?;
        }
        for (alias, registry) in &mut self.registries {
            if registry.password.is_none()
                && let Some(path) = &registry.password_file
            {
                let key = format!("registries.{alias}.password_file");
                registry.password = read_secret_file(&key, path, false)?;
            }
        }
        Ok(())
    }

    /// The effective configuration as YAML, secrets masked.
    #[must_use]
    pub fn to_masked_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

fn read_secret_file(key: &str, path: &Path, optional: bool) -> Result<Option<Secret>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Secret::new(text.trim_end_matches(['\r', '\n'])))),
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::invalid(
            key,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// A YAML list, or a comma-separated string as environment variables give it.
pub(super) fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(list) => list,
        ListOrString::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}
