//! Loading, defaults, overrides, secrets and validation, as an operator meets them.

use std::time::Duration;

use registry_client::RegistryType;

use super::*;

fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Settings::from_yaml_with_env(yaml, env)
}

#[test]
fn empty_file_gives_every_default() {
    let s = load("{}", &[]).unwrap();
    assert_eq!(s.listen.to_string(), "[::]:8080");
    assert_eq!(s.metrics_listen.to_string(), "[::]:8001");
    assert_eq!(s.harbor.url.as_str(), "http://harbor-core:8080/");
    assert_eq!(
        s.cache.redis_url.to_string(),
        "redis://harbor-redis:6379/10"
    );
    assert_eq!(s.harbor.timeout, Duration::from_secs(10));
    assert_eq!(s.harbor.connect_timeout, Duration::from_secs(2));
    assert_eq!(s.harbor.project_info_ttl, Duration::from_secs(30));
    assert_eq!(s.projects.enabled, vec!["dockerhub-proxy"]);
    assert_eq!(s.projects.label.as_deref(), Some("referrers-proxy"));
    assert_eq!(s.cache.backend, CacheBackend::Memory);
    assert_eq!(s.cache.redis_timeout, Duration::from_millis(250));
    assert_eq!(s.cache.keep_stale_for, Duration::from_secs(7 * 86400));
    assert_eq!(s.cache.max_entry_bytes, 1_048_576);
    assert_eq!(s.cache.memory_max_bytes, 67_108_864);
    assert_eq!(s.upstream.max_page_bytes, 4_194_304);
    assert_eq!(s.upstream.memory_budget_bytes, 67_108_864);
    assert_eq!(s.upstream.api_absent_ttl, Duration::from_secs(3600));
    assert_eq!(s.response.max_page_size, 1000);
    assert_eq!(s.log.format, LogFormat::Json);
    assert!(
        s.upstream
            .effective_user_agent()
            .starts_with("referrers-sidecar/")
    );
}

#[test]
fn environment_overrides_nested_keys_lists_and_registry_maps() {
    let yaml = r#"
registries:
  dockerhub:
    harbor_registry: dockerhub
    host: registry-1.docker.io
    username: someone
    password: from-file
"#;
    let s = load(
        yaml,
        &[
            (
                "REFERRERS_SIDECAR__HARBOR__URL",
                "https://core.example:8443",
            ),
            ("REFERRERS_SIDECAR__PROJECTS__ENABLED", "a-proxy,b-proxy"),
            ("REFERRERS_SIDECAR__CACHE__FRESH_FOR", "2m"),
            (
                "REFERRERS_SIDECAR__REGISTRIES__DOCKERHUB__PASSWORD",
                "from-env",
            ),
            ("REFERRERS_SIDECAR__REGISTRIES__GHCR__HARBOR_REGISTRY", "7"),
            ("REFERRERS_SIDECAR__REGISTRIES__GHCR__HOST", "ghcr.io"),
            ("REFERRERS_SIDECAR__REGISTRIES__GHCR__USERNAME", "u"),
            ("REFERRERS_SIDECAR__REGISTRIES__GHCR__PASSWORD", "0123"),
            ("REFERRERS_SIDECAR__UPSTREAM__MAX_PAGES", "7"),
            ("REFERRERS_SIDECAR__UPSTREAM__ALLOW_PRIVATE_REALMS", "true"),
            ("OTHER__HARBOR__URL", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(s.harbor.url.as_str(), "https://core.example:8443/");
    assert_eq!(s.projects.enabled, vec!["a-proxy", "b-proxy"]);
    assert_eq!(s.cache.fresh_for, Duration::from_secs(120));
    assert_eq!(
        s.registries["dockerhub"]
            .password
            .as_ref()
            .unwrap()
            .expose(),
        "from-env"
    );
    assert_eq!(s.registries["ghcr"].host, "ghcr.io");
    assert_eq!(s.registries["ghcr"].harbor_registry, "7");
    assert_eq!(
        s.registries["ghcr"].password.as_ref().unwrap().expose(),
        "0123"
    );
    assert_eq!(s.upstream.max_pages, 7);
    assert!(s.upstream.allow_private_realms);
    let single = load("{}", &[("REFERRERS_SIDECAR__PROJECTS__ENABLED", "123")]).unwrap();
    assert_eq!(single.projects.enabled, vec!["123"]);
}

#[test]
fn secrets_are_read_from_files_and_masked_when_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret-value\n").unwrap();
    let yaml = format!(
        "harbor:\n  password_file: {}\nregistries:\n  hub:\n    harbor_registry: hub\n    host: registry-1.docker.io\n    username: u\n    password: inline-secret\n",
        file.display()
    );
    let s = load(&yaml, &[]).unwrap();
    assert_eq!(s.harbor.password.as_ref().unwrap().expose(), "s3cret-value");
    let printed = s.to_masked_yaml();
    assert!(!printed.contains("s3cret-value"), "{printed}");
    assert!(!printed.contains("inline-secret"), "{printed}");
    assert!(printed.contains(Secret::MASK));
    assert!(!format!("{s:?}").contains("s3cret-value"));
}

#[test]
fn the_webhook_secret_is_off_by_default_read_from_its_file_and_masked() {
    let s = load("{}", &[]).unwrap();
    assert!(s.webhook.auth_header.is_none());
    assert_eq!(s.webhook.queue_size, 1024);
    assert_eq!(
        (s.operator.purges_per_minute, s.operator.status_per_minute),
        (6, 60)
    );
    assert_eq!(
        (
            s.operator.warm_per_minute,
            s.operator.warm_queue_per_project
        ),
        (60, 8)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth-header");
    std::fs::write(&file, "Bearer from-a-file\n").unwrap();
    let s = load(
        &format!("webhook:\n  auth_header_file: {}\n", file.display()),
        &[],
    )
    .unwrap();
    let header = s.webhook.auth_header.as_ref().unwrap();
    assert_eq!(header.expose(), "Bearer from-a-file");
    assert!(!s.to_masked_yaml().contains("from-a-file"));
}

#[test]
fn a_missing_explicit_secret_file_names_the_key() {
    let err = load("harbor:\n  password_file: /nonexistent/pw\n", &[]).unwrap_err();
    assert!(err.to_string().contains("harbor.password_file"), "{err}");
    // The default location is optional: the chart mounts it only when a secret exists.
    assert!(load("{}", &[]).unwrap().harbor.password.is_none());
}

#[test]
fn a_null_label_turns_the_label_switch_off() {
    let s = load("projects:\n  label: null\n", &[]).unwrap();
    assert_eq!(s.projects.label, None);
    let named = load("projects:\n  label: mirror-referrers\n", &[]).unwrap();
    assert_eq!(named.projects.label.as_deref(), Some("mirror-referrers"));
}

#[test]
fn storing_in_harbor_is_opted_into_by_label_unless_turned_off() {
    let defaults = load("{}", &[]).unwrap();
    assert!(defaults.projects.store_in_harbor.is_empty());
    assert_eq!(
        defaults.projects.store_label.as_deref(),
        Some("referrers-proxy-store")
    );
    assert!(defaults.projects.may_store_in_harbor());
    assert_eq!(defaults.store.pulls_per_hour, 5);
    assert_eq!(defaults.store.max_artifact_bytes, 8 * 1024 * 1024);
    assert_eq!(defaults.store.max_per_subject, 32);
    assert_eq!(defaults.store.parsed_artifact_types().len(), 6);
    let off = load("projects:\n  store_label: null\n", &[]).unwrap();
    assert!(!off.projects.may_store_in_harbor());

    let listed = load(
        "{}",
        &[
            ("REFERRERS_SIDECAR__PROJECTS__STORE_IN_HARBOR", "hub, ghcr"),
            (
                "REFERRERS_SIDECAR__STORE__ARTIFACT_TYPES",
                "application/vnd.cncf.notary.signature",
            ),
        ],
    )
    .unwrap();
    assert!(listed.projects.may_store_in_harbor());
    assert!(listed.projects.stores_in_harbor("ghcr"));
    assert!(!listed.projects.stores_in_harbor("quay"));
    assert_eq!(listed.store.parsed_artifact_types().len(), 1);

    let labelled = load("projects:\n  store_label: referrers-proxy-store\n", &[]).unwrap();
    assert!(labelled.projects.may_store_in_harbor());
    let every = load("projects:\n  store_in_harbor: ['*']\n", &[]).unwrap();
    assert!(every.projects.stores_in_harbor("anything"));
}

#[test]
fn a_url_key_carrying_credentials_is_refused_and_named_masked() {
    for (yaml, key) in [
        ("harbor:\n  url: http://robot:s3cret@core\n", "harbor.url"),
        (
            "registries:\n  hub:\n    harbor_registry: hub\n    host: r.example\n    url: https://me:s3cret@r.example\n",
            "registries.hub.url",
        ),
    ] {
        let error = load(yaml, &[]).expect_err(yaml).to_string();
        assert!(error.contains(key), "{error}");
        assert!(error.contains("must not carry credentials"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
    // The URL parser's own error quotes its input: a URL that does not parse is named masked.
    let error = load("harbor:\n  url: 'http://robot:s3cret@[core'\n", &[])
        .expect_err("no URL")
        .to_string();
    assert!(
        error.contains("not a URL") && !error.contains("s3cret"),
        "{error}"
    );
}

#[test]
fn bad_values_name_the_key() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("cache:\n  fresh_for: soon\n", &[], "cache.fresh_for"),
        ("cache:\n  backend: memcached\n", &[], "cache.backend"),
        ("harbor:\n  url: ftp://core\n", &[], "harbor.url"),
        ("listen: 8080\n", &[], "listen"),
        (
            "response:\n  max_page_size: 0\n",
            &[],
            "response.max_page_size",
        ),
        ("projects:\n  enabled: ['*', a]\n", &[], "projects.enabled"),
        (
            "projects:\n  enabled: [Bad_Name]\n",
            &[],
            "projects.enabled",
        ),
        ("projects:\n  label: ' '\n", &[], "projects.label"),
        ("cache:\n  redis_url: http://x\n", &[], "cache.redis_url"),
        ("cache:\n  namespace: 'a:b'\n", &[], "cache.namespace"),
        ("cache:\n  namespace: ''\n", &[], "cache.namespace"),
        ("log:\n  level: 'info,=='\n", &[], "log.level"),
        ("trace:\n  enabled: true\n", &[], "trace.otlp_endpoint"),
        ("trace:\n  sample_rate: 1.5\n", &[], "trace.sample_rate"),
        ("trace:\n  service_name: ' '\n", &[], "trace.service_name"),
        (
            "trace:\n  otlp_endpoint: grpc://collector:4317\n",
            &[],
            "trace.otlp_endpoint",
        ),
        (
            "{}",
            &[("REFERRERS_SIDECAR__UPSTREAM__MAX_PAGES", "many")],
            "max_pages",
        ),
        (
            "registries:\n  hub:\n    harbor_registry: hub\n",
            &[],
            "registries.hub",
        ),
        (
            "registries:\n  hub:\n    harbor_registry: hub\n    host: 'a/b'\n",
            &[],
            "registries.hub.host",
        ),
        (
            "upstream:\n  memory_budget_bytes: 0\n",
            &[],
            "upstream.memory_budget_bytes",
        ),
        ("harbor:\n  urll: http://x\n", &[], "urll"),
        ("webhook:\n  queue_size: 0\n", &[], "webhook.queue_size"),
        ("webhook:\n  auth_header: ' '\n", &[], "webhook.auth_header"),
        (
            "webhook:\n  auth_header: \"Bearer a\\nb\"\n",
            &[],
            "webhook.auth_header",
        ),
        (
            "webhook:\n  auth_header_file: /nonexistent/secret\n",
            &[],
            "webhook.auth_header_file",
        ),
        (
            "projects:\n  store_in_harbor: ['*', a]\n",
            &[],
            "projects.store_in_harbor",
        ),
        (
            "projects:\n  store_label: ''\n",
            &[],
            "projects.store_label",
        ),
        (
            "store:\n  artifact_types: ['text/plain; charset=utf-8']\n",
            &[],
            "store.artifact_types",
        ),
        ("store:\n  pulls_per_hour: 0\n", &[], "store.pulls_per_hour"),
        (
            "store:\n  max_artifact_bytes: 0\n",
            &[],
            "store.max_artifact_bytes",
        ),
        (
            "store:\n  max_per_subject: 0\n",
            &[],
            "store.max_per_subject",
        ),
        ("store:\n  queue_size: 0\n", &[], "store.queue_size"),
        (
            "operator:\n  purges_per_minute: 0\n",
            &[],
            "operator.purges_per_minute",
        ),
        (
            "operator:\n  status_per_minute: 0\n",
            &[],
            "operator.status_per_minute",
        ),
        (
            "operator:\n  warm_per_minute: 0\n",
            &[],
            "operator.warm_per_minute",
        ),
        (
            "operator:\n  warm_queue_per_project: 1001\n",
            &[],
            "operator.warm_queue_per_project",
        ),
    ];
    for (yaml, env, key) in cases {
        let err = load(yaml, env).expect_err(yaml).to_string();
        assert!(err.contains(key), "{yaml:?}: {err:?} should name {key}");
    }
}

#[test]
fn every_registry_type_the_client_reaches_is_accepted_and_unknown_ones_are_listed() {
    let entry = |registry_type: &str| {
        format!(
            "registries:\n  up:\n    harbor_registry: up\n    host: up.example\n    type: {registry_type}\n    url: https://up.example\n"
        )
    };
    for (name, registry_type) in [
        ("google-gar", RegistryType::GoogleGar),
        ("dtr", RegistryType::Dtr),
    ] {
        let s = load(&entry(name), &[]).expect(name);
        assert_eq!(s.registries["up"].registry_type, Some(registry_type));
        assert!(s.warnings().iter().all(|w| !w.contains("registries.up")));
        assert!(s.to_masked_yaml().contains(&format!("type: {name}")));
    }
    let err = load(&entry("new-cloud"), &[]).unwrap_err().to_string();
    assert!(err.contains("registries.up.type"), "{err}");
    for valid in RegistryType::names() {
        assert!(err.contains(valid), "{err} should list {valid}");
    }
    let ecr = load(&entry("aws-ecr"), &[]).unwrap();
    assert!(
        ecr.warnings()
            .iter()
            .any(|w| w.contains("registries.up.type aws-ecr is not supported"))
    );
}

#[test]
fn a_redis_db_harbor_uses_gets_a_warning() {
    let s = load(
        "cache:\n  backend: redis\n  redis_url: redis+sentinel://:pw@h1,h2/mymaster/1\n",
        &[],
    )
    .unwrap();
    assert_eq!(s.cache.redis_url.db(), 1);
    assert!(s.warnings().iter().any(|w| w.contains("DB 1")));
    assert!(!s.to_masked_yaml().contains("pw@"));
    assert!(
        load("{}", &[])
            .unwrap()
            .warnings()
            .iter()
            .all(|w| !w.contains("DB"))
    );
}

#[test]
fn every_duration_has_an_upper_bound_named_in_the_error() {
    for (key, value) in [
        ("HARBOR__TIMEOUT", "1h"),
        ("HARBOR__CONNECT_TIMEOUT", "2m"),
        ("HARBOR__PROJECT_INFO_TTL", "2d"),
        ("CACHE__REDIS_TIMEOUT", "2m"),
        ("CACHE__FRESH_FOR", "31d"),
        ("CACHE__KEEP_STALE_FOR", "400d"),
        ("CACHE__KEEP_EMPTY_FOR", "31d"),
        ("CACHE__LOCK_TTL", "1h"),
        ("UPSTREAM__TIMEOUT", "1h"),
        ("UPSTREAM__CONNECT_TIMEOUT", "2m"),
        ("UPSTREAM__API_ABSENT_TTL", "31d"),
        ("UPSTREAM__BREAKER_COOLDOWN", "2d"),
    ] {
        let variable = format!("REFERRERS_SIDECAR__{key}");
        let err = load("{}", &[(&variable, value)])
            .expect_err(key)
            .to_string();
        let named = key.to_ascii_lowercase().replace("__", ".");
        assert!(
            err.contains(&format!("`{named}`")),
            "{err} should name {named}"
        );
        assert!(err.contains("longer than"), "{err}");
    }
    for key in [
        "HARBOR__TIMEOUT",
        "CACHE__LOCK_TTL",
        "UPSTREAM__CONNECT_TIMEOUT",
    ] {
        let variable = format!("REFERRERS_SIDECAR__{key}");
        let err = load("{}", &[(&variable, "0s")]).expect_err(key).to_string();
        assert!(err.contains("longer than zero"), "{err}");
    }
}

#[test]
fn the_replaced_store_pulls_per_minute_is_accepted_never_read_and_warned_about() {
    let settings = load("store:\n  pulls_per_minute: 60\n", &[]).expect("an older key starts");
    assert_eq!(
        settings.store.pulls_per_hour,
        super::DEFAULT_STORE_PULLS_PER_HOUR
    );
    assert!(
        settings
            .warnings()
            .iter()
            .any(|w| w.starts_with("store.pulls_per_minute (60) is no longer read")),
        "{:?}",
        settings.warnings()
    );
    assert!(!settings.to_masked_yaml().contains("pulls_per_minute"));
}

#[test]
fn the_budget_summary_gives_cores_and_the_upstreams_worst_case_within_the_deadline() {
    let settings = load(
        "response:\n  deadline: 2500ms\nharbor:\n  timeout: 1s\nupstream:\n  timeout: 10s\n",
        &[],
    )
    .unwrap();
    let summary = settings.budget_summary();
    assert!(summary[0].contains("within 2s 500ms"), "{summary:?}");
    assert!(summary[1].contains("up to 1s of it"), "{summary:?}");
    assert!(
        summary[2].contains("up to 2s 500ms (upstream.timeout 10s"),
        "{summary:?}"
    );
}
