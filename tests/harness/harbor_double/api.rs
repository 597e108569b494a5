//! Harbor's REST API (`/api/v2.0`) as the sidecar reads it: systeminfo, projects, metadatas,
//! registries (secret masked), the current user, project labels, ping and health.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{
    DoubleAccount, DoubleConfig, DoubleLabel, DoubleProject, DoubleRegistry, Shared, account,
    error_body,
};

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/v2.0/ping", web::get().to(ping))
        .route("/api/v2.0/health", web::get().to(health))
        .route("/api/v2.0/systeminfo", web::get().to(systeminfo))
        .route(
            "/api/v2.0/projects/{name}/metadatas/",
            web::get().to(metadatas),
        )
        .route("/api/v2.0/projects/{name}", web::get().to(project))
        .route("/api/v2.0/registries/{id}", web::get().to(registry))
        .route("/api/v2.0/labels", web::get().to(labels))
        .route("/api/v2.0/users/current", web::get().to(current_user));
}

async fn ping() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("Pong")
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "healthy",
        "components": [{"name": "core", "status": "healthy"}],
    }))
}

pub(super) fn api_unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .content_type("application/json")
        .body(error_body("UNAUTHORIZED", "unauthorized"))
}

/// `GET /api/v2.0/systeminfo`: the version only for authenticated callers.
async fn systeminfo(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let authenticated = account(&config, &request).is_some();
    if request.headers().contains_key(header::AUTHORIZATION) && !authenticated {
        return api_unauthorized();
    }
    let mut info = json!({
        "auth_mode": "db_auth",
        "primary_auth_mode": false,
        "self_registration": false,
        "has_ca_root": false,
        "read_only": false,
        "registry_storage_provider_name": "filesystem",
        "banner_message": "",
        "current_time": "2026-01-01T00:00:00Z",
    });
    if authenticated {
        info["harbor_version"] = json!(config.version);
        info["external_url"] = json!("https://harbor.example.com");
        info["registry_url"] = json!("harbor.example.com");
        info["project_creation_restriction"] = json!("everyone");
    }
    HttpResponse::Ok().json(info)
}

/// The project named (or, for an all-digit name without `X-Is-Resource-Name`, numbered) so.
pub(super) fn find_project<'a>(
    config: &'a DoubleConfig,
    request: &HttpRequest,
    key: &str,
) -> Option<&'a DoubleProject> {
    let by_name = request
        .headers()
        .get("X-Is-Resource-Name")
        .is_some_and(|v| v == "true");
    if !by_name && key.bytes().all(|b| b.is_ascii_digit()) {
        let id: i64 = key.parse().ok()?;
        return config.projects.iter().find(|p| p.id == id);
    }
    config.projects.iter().find(|p| p.name == key)
}

/// `GET /api/v2.0/projects/{name}` (swagger `Project`).
async fn project(
    request: HttpRequest,
    shared: web::Data<Shared>,
    name: web::Path<String>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let account = account(&config, &request);
    if request.headers().contains_key(header::AUTHORIZATION) && account.is_none() {
        return api_unauthorized();
    }
    let Some(found) = find_project(&config, &request, &name) else {
        return HttpResponse::NotFound()
            .json(json!({"errors":[{"code":"NOT_FOUND","message":"project not found"}]}));
    };
    let role = account.map_or(0, |a| a.role_in(&found.name));
    let readable =
        found.public || role > 0 || account.is_some_and(|a| a.system_reader || a.sysadmin);
    if !readable {
        return if account.is_some() {
            HttpResponse::Forbidden()
                .json(json!({"errors":[{"code":"FORBIDDEN","message":"forbidden"}]}))
        } else {
            api_unauthorized()
        };
    }
    let mut answer = project_json(found);
    if account.is_some() {
        // The caller's roles, as Harbor adds them for an authenticated caller.
        answer["current_user_role_id"] = json!(role);
        answer["current_user_role_ids"] = if role > 0 { json!([role]) } else { Value::Null };
    }
    HttpResponse::Ok().json(answer)
}

/// `GET /api/v2.0/users/current` (swagger `UserResp`): 401 without good credentials, 412 for
/// a robot account (no user).
async fn current_user(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let Some(account) = account(&config, &request) else {
        return api_unauthorized();
    };
    if account.is_robot() {
        return HttpResponse::PreconditionFailed().json(
            json!({"errors":[{"code":"PRECONDITION","message":"the current user is not a user"}]}),
        );
    }
    HttpResponse::Ok().json(user_json(account))
}

/// A user in the shape of Harbor's swagger `UserResp`.
#[must_use]
pub fn user_json(account: &DoubleAccount) -> Value {
    json!({
        "user_id": 3,
        "username": account.name,
        "email": format!("{}@example.com", account.name),
        "realname": account.name,
        "comment": "",
        "sysadmin_flag": account.sysadmin,
        "admin_role_in_auth": false,
        "creation_time": "2026-01-01T00:00:00.000Z",
        "update_time": "2026-01-01T00:00:00.000Z",
    })
}

fn project_metadata(project: &DoubleProject) -> Value {
    let mut metadata = serde_json::Map::new();
    metadata.insert("public".into(), json!(project.public.to_string()));
    if project.registry_id.is_some() {
        metadata.insert("proxy_speed_kb".into(), json!("-1"));
    }
    for (key, value) in &project.metadata {
        metadata.insert(key.clone(), json!(value));
    }
    Value::Object(metadata)
}

/// A project in the shape of Harbor's swagger `Project`.
#[must_use]
pub fn project_json(project: &DoubleProject) -> Value {
    let mut value = json!({
        "project_id": project.id,
        "owner_id": 1,
        "name": project.name,
        "creation_time": "2026-01-01T00:00:00.000Z",
        "update_time": "2026-01-01T00:00:00.000Z",
        "deleted": false,
        "owner_name": "admin",
        "togglable": true,
        "current_user_role_ids": null,
        "repo_count": 0,
        "metadata": project_metadata(project),
        "cve_allowlist": {
            "id": 0, "project_id": project.id, "items": [],
            "creation_time": "0001-01-01T00:00:00.000Z",
            "update_time": "0001-01-01T00:00:00.000Z"
        },
    });
    if let Some(id) = project.registry_id {
        value["registry_id"] = json!(id);
    }
    value
}

/// `GET /api/v2.0/projects/{name}/metadatas/`: the raw map.
async fn metadatas(
    request: HttpRequest,
    shared: web::Data<Shared>,
    name: web::Path<String>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    match find_project(&config, &request, &name) {
        Some(found) if account(&config, &request).is_some() || found.public => {
            HttpResponse::Ok().json(project_metadata(found))
        }
        Some(_) => api_unauthorized(),
        None => HttpResponse::NotFound().finish(),
    }
}

/// `GET /api/v2.0/registries/{id}` (swagger `Registry`), secret masked; needs registry read.
async fn registry(
    request: HttpRequest,
    shared: web::Data<Shared>,
    id: web::Path<i64>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let Some(account) = account(&config, &request) else {
        return api_unauthorized();
    };
    if !(account.system_reader && config.registries_api_readable) {
        return HttpResponse::Forbidden()
            .json(json!({"errors":[{"code":"FORBIDDEN","message":"forbidden"}]}));
    }
    match config.registries.iter().find(|r| r.id == *id) {
        Some(found) => HttpResponse::Ok().json(registry_json(found)),
        None => HttpResponse::NotFound()
            .json(json!({"errors":[{"code":"NOT_FOUND","message":"registry not found"}]})),
    }
}

/// A registry in the shape of Harbor's swagger `Registry`.
#[must_use]
pub fn registry_json(registry: &DoubleRegistry) -> Value {
    json!({
        "id": registry.id,
        "name": registry.name,
        "url": registry.url,
        "type": registry.registry_type,
        "insecure": registry.insecure,
        "description": "",
        "status": "healthy",
        "credential": {"type": "basic", "access_key": "someone", "access_secret": "*****"},
        "creation_time": "2026-01-01T00:00:00.000Z",
        "update_time": "2026-01-01T00:00:00.000Z",
    })
}

/// The query's value of `key`, percent-decoded.
pub(super) fn query_value(request: &HttpRequest, key: &str) -> Option<String> {
    request.query_string().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn bad_request(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"errors":[{"code":"BAD_REQUEST","message":message}]}))
}

/// `GET /api/v2.0/labels?scope=g|p[&project_id=<n>][&name=<fuzzy>][&page=][&page_size=]`
/// (swagger `Label` list): `name` matches as a substring, `project_id` must be a number for
/// `scope=p`, pages of `page_size` (at most 100) with `X-Total-Count`; listing a project's
/// labels needs `label:list` on it.
async fn labels(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let account = account(&config, &request);
    if request.headers().contains_key(header::AUTHORIZATION) && account.is_none() {
        return api_unauthorized();
    }
    let number = |key: &str, default: i64| match query_value(&request, key) {
        None => Ok(default),
        Some(v) => v.parse::<i64>().map_err(|_| format!("invalid {key}: {v}")),
    };
    let (page, page_size) = match (number("page", 1), number("page_size", 10)) {
        (Ok(page), Ok(size)) if page >= 1 && (1..=100).contains(&size) => (page, size),
        (Err(message), _) | (_, Err(message)) => return bad_request(&message),
        _ => return bad_request("invalid page or page_size"),
    };
    let project_id = match query_value(&request, "scope").as_deref() {
        Some("g") => None,
        Some("p") => match number("project_id", 0) {
            Ok(id) if id > 0 => Some(id),
            Ok(_) => return bad_request("must provide a valid project ID when scope is p"),
            Err(message) => return bad_request(&message),
        },
        _ => return bad_request("invalid scope"),
    };
    if let Some(id) = project_id {
        let Some(project) = config.projects.iter().find(|p| p.id == id) else {
            return HttpResponse::NotFound()
                .json(json!({"errors":[{"code":"NOT_FOUND","message":"project not found"}]}));
        };
        let Some(account) = account else {
            return api_unauthorized();
        };
        let may_list = (account.system_reader && config.labels_listable)
            || account.projects.contains(&project.name);
        if !may_list {
            return HttpResponse::Forbidden()
                .json(json!({"errors":[{"code":"FORBIDDEN","message":"forbidden"}]}));
        }
    }
    let name = query_value(&request, "name").unwrap_or_default();
    let matching: Vec<&DoubleLabel> = config
        .labels
        .iter()
        .filter(|l| l.project_id == project_id && l.name.contains(&name))
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(usize::try_from((page - 1) * page_size).unwrap_or(usize::MAX))
        .take(usize::try_from(page_size).unwrap_or(0))
        .map(label_json)
        .collect();
    HttpResponse::Ok()
        .insert_header(("X-Total-Count", total.to_string()))
        .json(page)
}

/// A label in the shape of Harbor's swagger `Label`.
#[must_use]
pub fn label_json(label: &DoubleLabel) -> Value {
    json!({
        "id": label.id,
        "name": label.name,
        "description": "",
        "color": "#0095D3",
        "scope": if label.project_id.is_some() { "p" } else { "g" },
        "project_id": label.project_id.unwrap_or(0),
        "creation_time": "2026-01-01T00:00:00.000Z",
        "update_time": "2026-01-01T00:00:00.000Z",
    })
}
