//! Harbor's webhooks: the policies API (`/api/v2.0/projects/{name}/webhook/policies`), and
//! the `PULL_ARTIFACT` events a policy sends for pulls through a proxy-cache project.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::api::find_project;
use super::proxy::Pull;
use super::{DoubleConfig, Shared, account, basic_credentials};

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/api/v2.0/projects/{name}/webhook/policies",
            web::get().to(list_webhook_policies),
        )
        .route(
            "/api/v2.0/projects/{name}/webhook/policies",
            web::post().to(create_webhook_policy),
        )
        .route(
            "/api/v2.0/projects/{name}/webhook/policies/{id}",
            web::put().to(update_webhook_policy),
        );
}

/// Harbor's `PULL_ARTIFACT` webhook for a manifest `GET`, when a policy is set: sent in the
/// background, as Harbor's job service does; a target that fails is not retried.
pub(super) fn notify_pull(shared: &Shared, pull: &Pull<'_>, bytes: &[u8]) {
    let Some((url, auth_header)) = shared.state.lock().expect("state").pull_webhook.clone() else {
        return;
    };
    let tag = if pull.reference.contains(':') {
        ""
    } else {
        pull.reference
    };
    let event = crate::harbor_webhook::artifact_event(
        crate::harbor_webhook::Format::Default,
        "PULL_ARTIFACT",
        pull.repository,
        &crate::upstreams::sha256_digest(bytes),
        tag,
    );
    actix_rt::spawn(async move {
        let _ = crate::http_client()
            .post(url)
            .header("Content-Type", "application/json")
            .header("Authorization", auth_header)
            .body(event.to_string())
            .send()
            .await;
    });
}

/// The id of project `name` if the caller may manage its webhook policies (a project admin
/// or a system admin), else the status Harbor answers: 401 without good credentials, 404 for
/// an unknown project, 403 for anyone else.
fn webhook_policy_project(
    request: &HttpRequest,
    config: &DoubleConfig,
    name: &str,
) -> Result<i64, u16> {
    let account = account(config, request).ok_or(401_u16)?;
    let found = find_project(config, request, name).ok_or(404_u16)?;
    if account.role_in(&found.name) == 1 || account.sysadmin {
        Ok(found.id)
    } else {
        Err(403)
    }
}

/// Harbor's API error answer with `status`.
fn api_error(status: u16) -> HttpResponse {
    let code = match status {
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        409 => "CONFLICT",
        _ => "BAD_REQUEST",
    };
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .json(json!({"errors":[{"code": code, "message": code.to_lowercase()}]}))
}

/// A posted policy as Harbor validates and stores it: targets and event types required, an
/// `http` target's payload format `Default` when none is given; `None` when Harbor refuses it.
fn stored_policy(body: &Value, id: i64, project_id: i64, creator: &str) -> Option<Value> {
    let event_types = body["event_types"].as_array().filter(|t| !t.is_empty())?;
    let mut targets = body["targets"]
        .as_array()
        .filter(|t| !t.is_empty())?
        .clone();
    for target in &mut targets {
        if target["type"] != "http" {
            return None;
        }
        if target["payload_format"].as_str().is_none_or(str::is_empty) {
            target["payload_format"] = json!("Default");
        }
    }
    Some(json!({
        "id": id,
        "name": body["name"].as_str().unwrap_or_default(),
        "description": body["description"].as_str().unwrap_or_default(),
        "project_id": project_id,
        "targets": targets,
        "event_types": event_types,
        "creator": creator,
        "creation_time": "2026-01-01T00:00:00.000Z",
        "update_time": "2026-01-01T00:00:00.000Z",
        "enabled": body["enabled"].as_bool().unwrap_or(false),
    }))
}

/// `GET /api/v2.0/projects/{name}/webhook/policies` (paged, `X-Total-Count`).
async fn list_webhook_policies(
    request: HttpRequest,
    shared: web::Data<Shared>,
    name: web::Path<String>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let project_id = match webhook_policy_project(&request, &config, &name) {
        Ok(id) => id,
        Err(status) => return api_error(status),
    };
    let query: HashMap<String, String> =
        web::Query::<HashMap<String, String>>::from_query(request.query_string())
            .map(web::Query::into_inner)
            .unwrap_or_default();
    let number = |key: &str, default: usize| {
        query
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (page, page_size) = (number("page", 1).max(1), number("page_size", 10));
    let state = shared.state.lock().expect("state");
    let all: Vec<&Value> = state
        .webhook_policies
        .iter()
        .filter(|p| p["project_id"] == project_id)
        .collect();
    let listed: Vec<&Value> = all
        .iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .copied()
        .collect();
    HttpResponse::Ok()
        .insert_header(("X-Total-Count", all.len().to_string()))
        .json(listed)
}

/// `POST /api/v2.0/projects/{name}/webhook/policies`: `201` with `Location`; a name the
/// project already has is a `409`.
async fn create_webhook_policy(
    request: HttpRequest,
    shared: web::Data<Shared>,
    name: web::Path<String>,
    body: web::Json<Value>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let project_id = match webhook_policy_project(&request, &config, &name) {
        Ok(id) => id,
        Err(status) => return api_error(status),
    };
    let creator = basic_credentials(&request)
        .map(|(user, _)| user)
        .unwrap_or_default();
    let mut state = shared.state.lock().expect("state");
    let taken = state
        .webhook_policies
        .iter()
        .any(|p| p["project_id"] == project_id && p["name"] == body["name"]);
    if taken {
        return api_error(409);
    }
    let id = state.webhook_policies.len() as i64 + 1;
    let Some(policy) = stored_policy(&body, id, project_id, &creator) else {
        return api_error(400);
    };
    state.webhook_policies.push(policy);
    HttpResponse::Created()
        .insert_header((header::LOCATION, format!("{}/{id}", request.path())))
        .finish()
}

/// `PUT /api/v2.0/projects/{name}/webhook/policies/{id}`: the whole policy replaced.
async fn update_webhook_policy(
    request: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<(String, i64)>,
    body: web::Json<Value>,
) -> HttpResponse {
    let (name, id) = path.into_inner();
    let config = shared.config.lock().expect("config").clone();
    let project_id = match webhook_policy_project(&request, &config, &name) {
        Ok(id) => id,
        Err(status) => return api_error(status),
    };
    let mut state = shared.state.lock().expect("state");
    let Some(stored) = state
        .webhook_policies
        .iter_mut()
        .find(|p| p["id"] == id && p["project_id"] == project_id)
    else {
        return api_error(404);
    };
    let creator = stored["creator"].as_str().unwrap_or_default().to_owned();
    let Some(policy) = stored_policy(&body, id, project_id, &creator) else {
        return api_error(400);
    };
    *stored = policy;
    HttpResponse::Ok().finish()
}
