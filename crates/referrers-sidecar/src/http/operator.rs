//! The operator API under `/referrers-sidecar/v1/` on the main listener: a project's status
//! and the purge of its cached lists. Harbor's credentials (Basic) authorize each call.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use harbor_client::{BasicAuth, CoreClient};
use serde::Deserialize;
use serde_json::json;

use super::state::AppState;
use crate::operator::{self, Action, PurgeError, Refusal};
use crate::outcome::{OperatorEndpoint, OperatorResult};

/// Where the operator API lives; the chart's routes do not send it here from outside.
pub const PREFIX: &str = "/referrers-sidecar/v1";

/// Registers the operator API: one scope, so that a path under it that is no endpoint is a
/// 404 here and never reaches core.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope(PREFIX)
            .service(web::resource("/projects/{project}").route(web::get().to(status)))
            .service(web::resource("/projects/{project}/cache").route(web::delete().to(purge)))
            .default_service(web::to(|| async {
                error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "no such operator endpoint",
                )
            })),
    );
}

/// `GET /referrers-sidecar/v1/projects/{project}`: any reader of the project in Harbor.
async fn status(
    request: HttpRequest,
    project: web::Path<String>,
    state: web::Data<AppState>,
    core: web::Data<CoreClient>,
) -> HttpResponse {
    let project = project.into_inner();
    let response = match authorize(&request, &state, &core, &project, Action::Status).await {
        Ok(authorized) => HttpResponse::Ok().json(
            operator::project_status(
                &state.status_sources(),
                core.get_ref(),
                &project,
                authorized.project_exists,
            )
            .await,
        ),
        Err(refused) => refused,
    };
    count(&state, Action::Status, &response);
    response
}

/// The query of a purge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeQuery {
    repository: Option<String>,
    digest: Option<String>,
}

/// `DELETE /referrers-sidecar/v1/projects/{project}/cache[?repository=R[&digest=D]]`: a
/// project admin or a system admin.
async fn purge(
    request: HttpRequest,
    project: web::Path<String>,
    state: web::Data<AppState>,
    core: web::Data<CoreClient>,
) -> HttpResponse {
    let project = project.into_inner();
    let response = match web::Query::<PurgeQuery>::from_query(request.query_string()) {
        Err(rejected) => error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            &rejected.to_string(),
        ),
        Ok(query) => match authorize(&request, &state, &core, &project, Action::Purge).await {
            Err(refused) => refused,
            Ok(_) => match operator::purge(
                &state.purge_targets(),
                core.get_ref(),
                &project,
                query.repository.as_deref(),
                query.digest.as_deref(),
            )
            .await
            {
                Ok(purged) => HttpResponse::Ok().json(json!({ "purged": purged.lists })),
                Err(failed @ PurgeError::FactsUnavailable(_)) => {
                    error(StatusCode::BAD_GATEWAY, "UNAVAILABLE", &failed.to_string())
                }
                Err(invalid) => error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &invalid.to_string()),
            },
        },
    };
    count(&state, Action::Purge, &response);
    response
}

/// The caller's verdict from Harbor, or the answer that refuses it.
async fn authorize(
    request: &HttpRequest,
    state: &AppState,
    core: &CoreClient,
    project: &str,
    action: Action,
) -> Result<operator::Authorized, HttpResponse> {
    if !operator::is_project_name(project) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "invalid project name",
        ));
    }
    let caller = basic_credentials(request);
    state
        .operator
        .authorize(core, caller.as_ref(), project, action)
        .await
        .map_err(|refusal| match refusal {
            Refusal::Unauthorized => {
                let mut response = error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    &refusal.to_string(),
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"harbor\""),
                );
                response
            }
            Refusal::Forbidden(_) => {
                error(StatusCode::FORBIDDEN, "FORBIDDEN", &refusal.to_string())
            }
            Refusal::UnknownProject(_) => {
                error(StatusCode::NOT_FOUND, "NOT_FOUND", &refusal.to_string())
            }
            Refusal::Unavailable(_) => {
                error(StatusCode::BAD_GATEWAY, "UNAVAILABLE", &refusal.to_string())
            }
        })
}

/// The caller's Basic credentials, if it sent readable ones.
fn basic_credentials(request: &HttpRequest) -> Option<BasicAuth> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(BasicAuth {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// An error in Harbor's shape: `{"errors":[{"code","message"}]}`.
fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"errors": [{"code": code, "message": message}]}))
}

/// Counts one call by its answer.
fn count(state: &AppState, action: Action, response: &HttpResponse) {
    let result = match response.status() {
        StatusCode::OK => OperatorResult::Ok,
        StatusCode::UNAUTHORIZED => OperatorResult::Unauthorized,
        StatusCode::FORBIDDEN => OperatorResult::Forbidden,
        StatusCode::NOT_FOUND => OperatorResult::NotFound,
        StatusCode::BAD_REQUEST => OperatorResult::Invalid,
        _ => OperatorResult::Unavailable,
    };
    let endpoint = match action {
        Action::Status => OperatorEndpoint::Status,
        Action::Purge => OperatorEndpoint::Purge,
    };
    state.metrics.count_operator_request(endpoint, result);
}
