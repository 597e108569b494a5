//! The Harbor core double answers in the shapes Harbor's own API definition gives
//! (`tests/fixtures/harbor/swagger-v2.15.2.yaml`, vendored from Harbor v2.15.2): every field it sends exists there, with its type.

use e2e::harbor_double::{
    DoubleAccount, DoubleConfig, DoubleLabel, DoubleProject, DoubleRegistry, HarborDouble,
    label_json, project_json, registry_json, user_json,
};
use e2e::users::{ADMIN, ALICE, PAM};
use serde_json::Value;

/// Keys Harbor ≥ 2.16 adds, which the 2.15.2 definition cannot know.
const NEWER_THAN_SWAGGER: &[&str] = &[
    "proxy_referrer_api",
    "proxy_cache_filter_pattern",
    "proxy_cache_filter_kind",
];

fn swagger() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/harbor/swagger-v2.15.2.yaml"
    );
    let text =
        std::fs::read_to_string(path).expect("Harbor's vendored swagger in tests/fixtures/harbor");
    serde_yaml_ng::from_str(&text).expect("swagger YAML")
}

/// Checks `value` against the swagger schema `schema`, following `$ref`s; returns mismatches.
fn check(swagger: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/definitions/");
        return check(swagger, &swagger["definitions"][name], value, at, problems);
    }
    if value.is_null() {
        return; // Harbor's Go structs send null for empty slices and pointers.
    }
    let expected = schema["type"].as_str().unwrap_or("object");
    let matches = match expected {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        _ => value.is_object(),
    };
    if !matches {
        problems.push(format!("{at}: expected {expected}, got {value}"));
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = &schema["properties"];
            for (key, field) in map {
                let field_schema = &properties[key];
                if field_schema.is_null() {
                    if let Some(extra) = schema["additionalProperties"].as_object() {
                        check(swagger, &Value::Object(extra.clone()), field, at, problems);
                    } else if !NEWER_THAN_SWAGGER.contains(&key.as_str()) {
                        problems.push(format!("{at}.{key}: not in Harbor's definition"));
                    }
                    continue;
                }
                check(
                    swagger,
                    field_schema,
                    field,
                    &format!("{at}.{key}"),
                    problems,
                );
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check(
                    swagger,
                    &schema["items"],
                    item,
                    &format!("{at}[{i}]"),
                    problems,
                );
            }
        }
        _ => {}
    }
}

fn assert_conforms(swagger: &Value, definition: &str, value: &Value) {
    let mut problems = Vec::new();
    let schema = serde_json::json!({ "$ref": format!("#/definitions/{definition}") });
    check(swagger, &schema, value, definition, &mut problems);
    assert!(problems.is_empty(), "{definition}: {problems:#?}");
}

#[test]
fn the_checker_catches_a_wrong_shape() {
    let swagger = swagger();
    let mut problems = Vec::new();
    let wrong = serde_json::json!({"project_id": "3", "name": "p", "surprise": 1});
    let schema = serde_json::json!({"$ref": "#/definitions/Project"});
    check(&swagger, &schema, &wrong, "Project", &mut problems);
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[tokio::test]
async fn projects_registries_labels_and_systeminfo_match_harbors_definitions() {
    let swagger = swagger();
    let mut hub = DoubleProject::proxy(3, "hub-proxy", 1);
    hub.metadata
        .insert("proxy_referrer_api".into(), "false".into());
    hub.metadata
        .insert("proxy_cache_filter_pattern".into(), "library/**".into());
    hub.metadata
        .insert("proxy_cache_filter_kind".into(), "doublestar".into());
    let registry = DoubleRegistry {
        id: 1,
        name: "hub".into(),
        url: "https://hub.docker.com".into(),
        registry_type: "docker-hub".into(),
        insecure: false,
    };
    assert_conforms(&swagger, "Project", &project_json(&hub));
    assert_conforms(
        &swagger,
        "Project",
        &project_json(&DoubleProject::local(1, "library")),
    );
    assert_conforms(&swagger, "Registry", &registry_json(&registry));
    let label = DoubleLabel {
        id: 7,
        name: "referrers-proxy".into(),
        project_id: Some(3),
    };
    assert_conforms(&swagger, "Label", &label_json(&label));

    // And what the running double serves over HTTP.
    let double = HarborDouble::start(DoubleConfig {
        projects: vec![hub],
        registries: vec![registry],
        labels: vec![label],
        accounts: vec![
            DoubleAccount {
                name: "robot$sidecar".into(),
                password: "secret".into(),
                projects: vec![],
                system_reader: true,
                admin_of: vec![],
                sysadmin: false,
            },
            PAM.project_admin(&["hub-proxy"]),
            ALICE.account(&["hub-proxy"]),
            ADMIN.sysadmin(),
        ],
        ..DoubleConfig::default()
    });
    let client = e2e::http_client();
    let get = |path: &str| {
        client
            .get(format!("{}{path}", double.url()))
            .basic_auth("robot$sidecar", Some("secret"))
            .send()
    };
    let project: Value = get("/api/v2.0/projects/hub-proxy")
        .await
        .expect("project")
        .json()
        .await
        .expect("json");
    assert_conforms(&swagger, "Project", &project);
    let registry: Value = get("/api/v2.0/registries/1")
        .await
        .expect("registry")
        .json()
        .await
        .expect("json");
    assert_conforms(&swagger, "Registry", &registry);
    assert_eq!(registry["credential"]["access_secret"], "*****");
    let labels: Value = get("/api/v2.0/labels?scope=p&project_id=3&name=proxy")
        .await
        .expect("labels")
        .json()
        .await
        .expect("json");
    assert_eq!(labels.as_array().map(Vec::len), Some(1), "{labels}");
    assert_conforms(&swagger, "Label", &labels[0]);
    // Without `name`, Harbor lists every label of the project.
    let all: Value = get("/api/v2.0/labels?scope=p&project_id=3&page=1&page_size=100")
        .await
        .expect("labels")
        .json()
        .await
        .expect("json");
    assert_eq!(all, labels);
    let info: Value = get("/api/v2.0/systeminfo")
        .await
        .expect("systeminfo")
        .json()
        .await
        .expect("json");
    assert_conforms(&swagger, "GeneralInfo", &info);
    assert!(
        info["harbor_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("v2."))
    );
}

#[tokio::test]
async fn callers_see_their_roles_and_themselves_as_harbor_shows_them() {
    let swagger = swagger();
    assert_conforms(&swagger, "UserResp", &user_json(&ADMIN.sysadmin()));
    let double = HarborDouble::start(DoubleConfig {
        projects: vec![DoubleProject::proxy(3, "hub-proxy", 1)],
        accounts: vec![
            PAM.project_admin(&["hub-proxy"]),
            ALICE.account(&["hub-proxy"]),
            ADMIN.sysadmin(),
            e2e::users::ROBOT.system_reader(),
        ],
        ..DoubleConfig::default()
    });
    let client = e2e::http_client();
    let get = |path: &str, user: e2e::users::User| {
        client
            .get(format!("{}{path}", double.url()))
            .basic_auth(user.name, Some(user.password))
            .send()
    };
    let roles = async |user| {
        let project: Value = get("/api/v2.0/projects/hub-proxy", user)
            .await
            .expect("project")
            .json()
            .await
            .expect("json");
        assert_conforms(&swagger, "Project", &project);
        (
            project["current_user_role_id"].clone(),
            project["current_user_role_ids"].clone(),
        )
    };
    assert_eq!(roles(PAM).await, (1.into(), serde_json::json!([1])));
    assert_eq!(roles(ALICE).await, (2.into(), serde_json::json!([2])));
    assert_eq!(roles(ADMIN).await, (0.into(), Value::Null));

    let me = get("/api/v2.0/users/current", ADMIN)
        .await
        .expect("current user");
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.expect("json");
    assert_conforms(&swagger, "UserResp", &me);
    assert_eq!(me["sysadmin_flag"], true);
    let robot = get("/api/v2.0/users/current", e2e::users::ROBOT)
        .await
        .expect("robot");
    assert_eq!(robot.status(), 412, "a robot is no user");
    let wrong = e2e::users::User {
        password: "wrong",
        ..PAM
    };
    let refused = get("/api/v2.0/users/current", wrong).await.expect("wrong");
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn webhook_policies_are_managed_by_project_admins_in_harbors_shape() {
    let swagger = swagger();
    let double = HarborDouble::start(DoubleConfig {
        projects: vec![DoubleProject::proxy(3, "hub-proxy", 1)],
        accounts: vec![
            PAM.project_admin(&["hub-proxy"]),
            ALICE.account(&["hub-proxy"]),
        ],
        ..DoubleConfig::default()
    });
    let client = e2e::http_client();
    let policies = format!(
        "{}/api/v2.0/projects/hub-proxy/webhook/policies",
        double.url()
    );
    let policy = serde_json::json!({
        "name": "warm",
        "event_types": ["PULL_ARTIFACT"],
        "targets": [{"type": "http", "address": "http://sidecar:8080/x", "auth_header": "Bearer s"}],
        "enabled": true,
    });
    let create = |user: e2e::users::User| {
        client
            .post(&policies)
            .basic_auth(user.name, Some(user.password))
            .json(&policy)
            .send()
    };
    assert_eq!(create(ALICE).await.expect("post").status(), 403);
    let created = create(PAM).await.expect("post");
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("location"));
    assert_eq!(
        create(PAM).await.expect("post").status(),
        409,
        "a name is unique"
    );

    let listed = client
        .get(&policies)
        .basic_auth(PAM.name, Some(PAM.password))
        .send()
        .await
        .expect("list");
    assert_eq!(listed.headers()["x-total-count"], "1");
    let listed: Value = listed.json().await.expect("json");
    assert_conforms(&swagger, "WebhookPolicy", &listed[0]);
    assert_eq!(listed[0]["targets"][0]["payload_format"], "Default");
    assert_eq!(
        double.webhook_policies("hub-proxy"),
        listed.as_array().cloned().unwrap()
    );
}

#[tokio::test]
async fn repositories_and_artifacts_are_listed_in_pages_in_harbors_shape() {
    use e2e::upstreams::{FerroOci, Pusher};

    let swagger = swagger();
    let upstream = FerroOci::start();
    let pusher = Pusher::new(&upstream.url());
    let mut images = Vec::new();
    for n in 0..3 {
        images.push(
            pusher
                .push_image(
                    "team/app",
                    &format!("v{n}"),
                    format!("layer {n}").as_bytes(),
                )
                .await,
        );
    }
    let signature = pusher
        .push_referrer(
            "team/app",
            &images[0],
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            serde_json::json!({}),
        )
        .await;
    let double = HarborDouble::start(DoubleConfig {
        projects: vec![
            DoubleProject::proxy(3, "hub-proxy", 1),
            DoubleProject::local(4, "other"),
        ],
        registries: vec![DoubleRegistry {
            id: 1,
            name: "upstream".into(),
            url: upstream.url(),
            registry_type: "docker-registry".into(),
            insecure: true,
        }],
        accounts: vec![ALICE.account(&["hub-proxy"]), PAM.account(&["other"])],
        ..DoubleConfig::default()
    });
    // The first by its tag, the others by digest (Harbor keeps no tag for those).
    for (n, image) in images.iter().enumerate() {
        let reference = if n == 0 { "v0" } else { image.digest.as_str() };
        let pulled = double
            .pull_manifest(ALICE, "hub-proxy/team/app", reference)
            .await;
        assert_eq!(pulled.status(), 200);
    }
    // A referrer pulled through is an accessory: not listed.
    let pulled = double
        .pull_manifest(ALICE, "hub-proxy/team/app", &signature.digest)
        .await;
    assert_eq!(pulled.status(), 200);

    let client = e2e::http_client();
    let get = |path: &str, user: e2e::users::User| {
        client
            .get(format!("{}{path}", double.url()))
            .basic_auth(user.name, Some(user.password))
            .send()
    };
    let repositories = get("/api/v2.0/projects/hub-proxy/repositories", ALICE)
        .await
        .expect("repositories");
    assert_eq!(repositories.headers()["x-total-count"], "1");
    let repositories: Value = repositories.json().await.expect("json");
    assert_conforms(&swagger, "Repository", &repositories[0]);
    assert_eq!(repositories[0]["name"], "hub-proxy/team/app");
    assert_eq!(repositories[0]["artifact_count"], 3);

    // The repository's name encoded twice; pages of two, told apart by Link.
    let artifacts = "/api/v2.0/projects/hub-proxy/repositories/team%252Fapp/artifacts";
    let first = get(&format!("{artifacts}?page=1&page_size=2"), ALICE)
        .await
        .expect("artifacts");
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-total-count"], "3");
    assert_eq!(
        first.headers()["link"],
        "</api/v2.0/projects/hub-proxy/repositories/team%2Fapp/artifacts?page=2&page_size=2>; rel=\"next\""
    );
    let first: Value = first.json().await.expect("json");
    assert_conforms(&swagger, "Artifact", &first[0]);
    assert_eq!(first[0]["tags"][0]["name"], "v0", "tags by default");
    let second = get(
        &format!("{artifacts}?page=2&page_size=2&with_tag=false"),
        ALICE,
    )
    .await
    .expect("artifacts");
    assert_eq!(
        second.headers()["link"],
        "</api/v2.0/projects/hub-proxy/repositories/team%2Fapp/artifacts?with_tag=false&page=1&page_size=2>; rel=\"prev\""
    );
    let second: Value = second.json().await.expect("json");
    assert_conforms(&swagger, "Artifact", &second[0]);
    assert_eq!(second[0]["tags"], Value::Null);
    let mut listed: Vec<&str> = first
        .as_array()
        .into_iter()
        .chain(second.as_array())
        .flatten()
        .map(|artifact| artifact["digest"].as_str().expect("digest"))
        .collect();
    listed.sort_unstable();
    let mut pushed: Vec<&str> = images.iter().map(|image| image.digest.as_str()).collect();
    pushed.sort_unstable();
    assert_eq!(listed, pushed, "every image, and not the signature");

    assert_eq!(
        get(&format!("{artifacts}?page_size=101"), ALICE)
            .await
            .expect("too large a page")
            .status(),
        400
    );
    assert_eq!(
        get(artifacts, PAM).await.expect("a non-member").status(),
        403
    );
    assert_eq!(
        get("/api/v2.0/projects/nothing/repositories", ALICE)
            .await
            .expect("unknown")
            .status(),
        404
    );
}
