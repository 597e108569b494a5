//! The alert rules (`deploy/prometheus/rules.yaml`) and the Grafana dashboard
//! (`deploy/grafana/referrers-sidecar.json`) only name metrics a running sidecar exports, and
//! only label values it exports for the labels it initialises at start; every alert has a
//! summary, a description and a runbook that is a section of `docs/operations.md`.
//!
//! PromQL syntax and the alerts' behaviour are checked by promtool
//! (`scripts/check-observability.sh`); this checks the names against the binary.

use std::collections::{BTreeMap, BTreeSet};

use e2e::Sidecar;
use e2e::config::{Configure, for_core, registry};
use e2e::metrics;

const RULES: &str = include_str!("../../deploy/prometheus/rules.yaml");
const DASHBOARD: &str = include_str!("../../deploy/grafana/referrers-sidecar.json");
const OPERATIONS: &str = include_str!("../../docs/operations.md");

/// Metric names the files may use: ours, and the process collector's.
const PREFIXES: &[&str] = &["harbor_referrers_", "process_"];

/// Labels whose values exist from the start (the service initialises every value of its
/// outcome enums), so a selector on one of them can be checked against a fresh sidecar. `registry` depends on the
/// configuration, `le` on the buckets, `job` and `instance` on Prometheus.
const INITIALISED_LABELS: &[&str] = &[
    "outcome",
    "result",
    "tier",
    "kind",
    "status_class",
    "target",
];

// ------------------------------------------------------------------------- the expressions

/// Every PromQL expression of the rules file, named by its alert.
fn rule_expressions() -> Vec<(String, String)> {
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(RULES).expect("rules.yaml is YAML");
    let mut out = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or_else(|| rule["record"].as_str())
                .expect("alert or record name");
            let expr = rule["expr"].as_str().expect("expr");
            out.push((format!("rules.yaml {name}"), expr.to_owned()));
        }
    }
    out
}

/// Every `expr` of the dashboard (panels, nested rows) and every variable query.
fn dashboard_expressions() -> Vec<(String, String)> {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let mut out = Vec::new();
    collect_exprs(&dashboard["panels"], "", &mut out);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if let Some(query) = variable["definition"].as_str() {
            let name = variable["name"].as_str().unwrap_or("?");
            out.push((format!("dashboard variable ${name}"), query.to_owned()));
        }
    }
    out
}

fn collect_exprs(value: &serde_json::Value, title: &str, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            let title = map.get("title").and_then(|t| t.as_str()).unwrap_or(title);
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("expr", serde_json::Value::String(expr)) => {
                        out.push((format!("dashboard panel \"{title}\""), expr.clone()));
                    }
                    _ => collect_exprs(inner, title, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_exprs(item, title, out);
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------------- a small PromQL lexer

/// A metric selector's label matcher: `metric{label op "value"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Matcher {
    metric: String,
    label: String,
    op: String,
    value: String,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

/// Reads a quoted string starting at `chars[i]` (a quote); returns its content and the index
/// after the closing quote.
fn read_string(chars: &[char], mut i: usize) -> (String, usize) {
    let quote = chars[i];
    let mut text = String::new();
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' && i + 1 < chars.len() {
            i += 1;
        }
        text.push(chars[i]);
        i += 1;
    }
    (text, i + 1)
}

fn read_ident(chars: &[char], mut i: usize) -> (String, usize) {
    let start = i;
    while i < chars.len() && is_ident(chars[i]) {
        i += 1;
    }
    (chars[start..i].iter().collect(), i)
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

/// The metric names (`harbor_referrers_*`, `process_*`) an expression uses, outside string
/// literals, and the label matchers of their selectors.
fn scan(expr: &str) -> (BTreeSet<String>, Vec<Matcher>) {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut matchers = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = read_string(&chars, i).1;
        } else if is_ident_start(c) && (i == 0 || !is_ident(chars[i - 1])) {
            let (ident, next) = read_ident(&chars, i);
            i = next;
            if !PREFIXES.iter().any(|p| ident.starts_with(p)) {
                continue;
            }
            names.insert(ident.clone());
            if chars.get(i) == Some(&'{') {
                i = read_matchers(&chars, i + 1, &ident, &mut matchers);
            }
        } else {
            i += 1;
        }
    }
    (names, matchers)
}

/// Reads `label op "value", …}` after a selector's `{`; returns the index after the `}`.
fn read_matchers(chars: &[char], mut i: usize, metric: &str, out: &mut Vec<Matcher>) -> usize {
    loop {
        i = skip_space(chars, i);
        match chars.get(i) {
            None => return i,
            Some('}') => return i + 1,
            Some(',') => i += 1,
            Some(_) => {
                let (label, next) = read_ident(chars, i);
                assert!(!label.is_empty(), "cannot read a label matcher at {i}");
                i = skip_space(chars, next);
                let op_start = i;
                while i < chars.len() && "=!~".contains(chars[i]) {
                    i += 1;
                }
                let op: String = chars[op_start..i].iter().collect();
                i = skip_space(chars, i);
                let (value, next) = read_string(chars, i);
                i = next;
                out.push(Matcher {
                    metric: metric.to_owned(),
                    label,
                    op,
                    value,
                });
            }
        }
    }
}

// ------------------------------------------------------------------------- the exposition

/// Sample names of a Prometheus text exposition, each with the label sets of its series, and
/// the declared type of each family.
#[derive(Debug, Default)]
struct Exposition {
    samples: BTreeMap<String, Vec<BTreeMap<String, String>>>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut exposition = Self::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    exposition.types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let chars: Vec<char> = line.chars().collect();
            let (name, mut i) = read_ident(&chars, 0);
            let mut labels = BTreeMap::new();
            if chars.get(i) == Some(&'{') {
                i += 1;
                loop {
                    i = skip_space(&chars, i);
                    match chars.get(i) {
                        None | Some('}') => break,
                        Some(',') => i += 1,
                        Some(_) => {
                            let (label, next) = read_ident(&chars, i);
                            let (value, next) = read_string(&chars, next + 1);
                            labels.insert(label, value);
                            i = next;
                        }
                    }
                }
            }
            exposition.samples.entry(name).or_default().push(labels);
        }
        exposition
    }

    /// Why `name` cannot be queried, if it cannot. Histograms are exposed as `<family>_bucket`,
    /// `_sum` and `_count` lines: those are the names a query uses, the family name has no
    /// series, and a `_count` suffix on a counter is no name at all.
    fn missing(&self, name: &str) -> Option<String> {
        if self.samples.contains_key(name) {
            return None;
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        Some(
            match self.types.get(name).or_else(|| self.types.get(family)) {
                Some(kind) if kind == "histogram" && family == name => format!(
                    "{name} is a histogram family: query {name}_bucket, {name}_sum or {name}_count"
                ),
                Some(kind) => format!("{name} is not exported ({family} is a {kind})"),
                None => format!("{name} is not exported by the sidecar"),
            },
        )
    }

    /// The values `label` takes on series of `metric`.
    fn label_values(&self, metric: &str, label: &str) -> BTreeSet<String> {
        self.samples
            .get(metric)
            .into_iter()
            .flatten()
            .filter_map(|labels| labels.get(label).cloned())
            .collect()
    }
}

/// Every problem with the names and label values `expressions` use, against `exposition`.
fn problems(expressions: &[(String, String)], exposition: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    for (origin, expr) in expressions {
        let (names, matchers) = scan(expr);
        for name in &names {
            if let Some(why) = exposition.missing(name) {
                problems.push(format!("{origin}: {why}"));
            }
        }
        for matcher in matchers {
            if !INITIALISED_LABELS.contains(&matcher.label.as_str())
                || !exposition.samples.contains_key(&matcher.metric)
                || matcher.value.contains('$')
            {
                continue;
            }
            let literals: Vec<&str> = if matcher.op.contains('~') {
                matcher
                    .value
                    .split('|')
                    .filter(|alt| alt.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                    .collect()
            } else {
                vec![matcher.value.as_str()]
            };
            let exported = exposition.label_values(&matcher.metric, &matcher.label);
            for literal in literals {
                if !exported.contains(literal) {
                    problems.push(format!(
                        "{origin}: {}{{{}{}\"{}\"}}: the sidecar exports no such series ({} is one of {:?})",
                        matcher.metric,
                        matcher.label,
                        matcher.op,
                        matcher.value,
                        matcher.label,
                        exported
                    ));
                }
            }
        }
    }
    problems
}

// ------------------------------------------------------------------------- the tests

#[tokio::test]
async fn every_metric_and_label_value_the_rules_and_dashboard_use_is_exported() {
    // One configured upstream registry, so the registry-labelled series exist.
    let sidecar = Sidecar::start(&for_core("http://127.0.0.1:9").with(|s| {
        s.registries
            .insert("hub".into(), registry("hub", "registry-1.docker.io"));
    }));
    let exposition = Exposition::parse(&sidecar.metrics().await);

    let rules = rule_expressions();
    let dashboard = dashboard_expressions();
    assert!(rules.len() >= 7, "the rules file has its alerts: {rules:?}");
    assert!(dashboard.len() >= 20, "the dashboard has its queries");
    let used: BTreeSet<String> = rules
        .iter()
        .chain(&dashboard)
        .flat_map(|(_, expr)| scan(expr).0)
        .collect();
    // The checks below must not be vacuous: the files name the metrics the alerts are about.
    let duration_buckets = format!("{}_bucket", metrics::REQUEST_DURATION);
    for name in [
        metrics::UPSTREAM_RESULTS,
        metrics::BREAKER_STATE,
        metrics::CACHE_LOOKUPS,
        metrics::HARBOR_API_ERRORS,
        &duration_buckets,
        metrics::REQUESTS,
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(name), "{name} is used: {used:?}");
    }
    let on_dashboard: BTreeSet<String> = dashboard
        .iter()
        .flat_map(|(_, expr)| scan(expr).0)
        .collect();
    let mut all = rules;
    all.extend(dashboard);
    let mut found = problems(&all, &exposition);
    // Every metric family the sidecar exports is shown somewhere on the dashboard.
    for family in exposition
        .types
        .keys()
        .filter(|family| family.starts_with("harbor_referrers_"))
    {
        let shown = on_dashboard.iter().any(|name| {
            name == family
                || name
                    .strip_prefix(family.as_str())
                    .is_some_and(|suffix| ["_bucket", "_sum", "_count"].contains(&suffix))
        });
        if !shown {
            found.push(format!("the dashboard shows no panel for {family}"));
        }
    }
    assert!(
        found.is_empty(),
        "the rules and the dashboard disagree with the running sidecar:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn a_made_up_metric_or_label_value_is_reported() {
    let exposition = Exposition::parse(
        "# TYPE harbor_referrers_requests_total counter\n\
         harbor_referrers_requests_total{outcome=\"served\"} 0\n\
         # TYPE harbor_referrers_request_duration_seconds histogram\n\
         harbor_referrers_request_duration_seconds_bucket{outcome=\"served\",le=\"+Inf\"} 0\n\
         harbor_referrers_request_duration_seconds_sum{outcome=\"served\"} 0\n\
         harbor_referrers_request_duration_seconds_count{outcome=\"served\"} 0\n\
         # TYPE process_resident_memory_bytes gauge\n\
         process_resident_memory_bytes 1e+07\n",
    );
    let made_up = |expr: &str| problems(&[("made-up".into(), expr.into())], &exposition);

    // The real names pass, including a histogram's _bucket and _count lines.
    assert_eq!(
        made_up(
            "histogram_quantile(0.99, sum by (le) (rate(harbor_referrers_request_duration_seconds_bucket{outcome=\"served\"}[5m]))) \
             / sum(rate(harbor_referrers_request_duration_seconds_count[5m])) + process_resident_memory_bytes \
             + sum(rate(harbor_referrers_requests_total{outcome=~\"served|$x\", job=~\"$job\"}[$__rate_interval]))"
        ),
        Vec::<String>::new()
    );
    // A name that does not exist, a histogram family queried bare, a suffix on a counter.
    let reported = made_up(
        "sum(rate(harbor_referrers_made_up_total{outcome=\"served\"}[5m])) / process_made_up_bytes",
    );
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert!(reported[0].contains("harbor_referrers_made_up_total is not exported"));
    assert!(reported[1].contains("process_made_up_bytes is not exported"));
    let reported = made_up("harbor_referrers_request_duration_seconds > 1");
    assert!(
        reported[0].contains("is a histogram family"),
        "{reported:?}"
    );
    let reported = made_up("harbor_referrers_requests_total_count > 1");
    assert!(reported[0].contains("is not exported"), "{reported:?}");
    // A label value the sidecar never exports, plain or among regex alternatives.
    let reported = made_up("harbor_referrers_requests_total{outcome=\"servd\"}");
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert!(reported[0].contains("outcome=\"servd\""), "{reported:?}");
    assert_eq!(
        made_up("harbor_referrers_requests_total{outcome=~\"served|core_eror\"}").len(),
        1
    );
    // Names in strings and label names are not metric names.
    let (names, _) =
        scan("label_replace(up, \"harbor_referrers_x\", \"$1\", \"process_y\", \"(.*)\")");
    assert!(names.is_empty(), "{names:?}");
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_has_a_summary_a_description_and_a_runbook_in_the_operations_guide() {
    let mut in_code = false;
    let anchors: BTreeSet<String> = OPERATIONS
        .lines()
        .filter(|line| {
            if line.starts_with("```") {
                in_code = !in_code;
            }
            !in_code
        })
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| anchor(heading.trim_start_matches('#')))
        .collect();
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(RULES).expect("rules.yaml is YAML");
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            alerts += 1;
            let annotations = &rule["annotations"];
            for key in ["summary", "description", "runbook_url"] {
                assert!(
                    annotations[key].as_str().is_some_and(|v| !v.is_empty()),
                    "{name} has no {key}"
                );
            }
            assert!(
                ["warning", "critical"]
                    .contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
                "{name} has a severity"
            );
            let runbook = annotations["runbook_url"].as_str().unwrap_or_default();
            let (page, fragment) = runbook.split_once('#').expect("runbook_url has a #section");
            assert!(
                page.ends_with("docs/operations.md"),
                "{name}: runbook {runbook} is not in docs/operations.md"
            );
            assert!(
                anchors.contains(fragment),
                "{name}: docs/operations.md has no section #{fragment}"
            );
        }
    }
    assert!(alerts >= 7, "{alerts} alerts");
}

#[test]
fn the_dashboard_takes_its_data_source_and_registry_from_variables() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 39));
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");
    assert_eq!(
        variable("registry")["definition"],
        "label_values(harbor_referrers_upstream_requests_total, registry)"
    );
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(panel["id"].as_u64().expect("id")),
            "duplicate panel id"
        );
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "panel {} queries a fixed data source",
                panel["title"]
            );
        }
    }
}
