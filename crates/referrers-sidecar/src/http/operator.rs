//! The operator API under `/referrers-sidecar/v1/` on the main listener: a project's status,
//! the purge of its cached lists, and the warm-up of one of its artifacts' lists. Harbor's credentials (Basic) authorize each call. Its
//! errors are [`OperatorError`]s: a fixed message and the request's id, the detail logged.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use harbor_client::{BasicAuth, CoreClient};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::OperatorError;
use super::state::AppState;
use crate::operator::{self, Action};
use crate::outcome::{OperatorEndpoint, OperatorResult};
use crate::telemetry;

/// Where the operator API lives; the chart's routes do not send it here from outside.
pub const PREFIX: &str = "/referrers-sidecar/v1";

/// Registers the operator API: one scope, so that a path under it that is no endpoint is a
/// 404 here and never reaches core.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope(PREFIX)
            .service(web::resource("/projects/{project}").route(web::get().to(status)))
            .service(web::resource("/projects/{project}/cache").route(web::delete().to(purge)))
            .service(web::resource("/projects/{project}/warm").route(web::post().to(warm)))
            .default_service(web::to(|request: HttpRequest| async move {
                OperatorError::NoEndpoint.answer(&telemetry::request_id_of(&request))
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
    let answered = match authorize(&request, &state, &core, &project, Action::Status).await {
        Ok(authorized) => operator::project_status(
            &state.status_sources(),
            core.get_ref(),
            &project,
            authorized.project_exists,
        )
        .await
        .map(|status| HttpResponse::Ok().json(status))
        .map_err(|limited| {
            tracing::debug!(project, %limited, "operator API: status refused");
            OperatorError::from(limited)
        }),
        Err(refused) => Err(refused),
    };
    respond(&request, &state, Action::Status, answered)
}

/// The call's answer, or its error's; counted by `action` and result.
fn respond(
    request: &HttpRequest,
    state: &AppState,
    action: Action,
    answered: Result<HttpResponse, OperatorError>,
) -> HttpResponse {
    let response =
        answered.unwrap_or_else(|error| error.answer(&telemetry::request_id_of(request)));
    count(state, action, &response);
    response
}

/// The call's query; one that does not parse (an unknown key, one missing) is refused.
fn parsed_query<Q: DeserializeOwned>(
    request: &HttpRequest,
    action: Action,
) -> Result<Q, OperatorError> {
    web::Query::<Q>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|rejected| {
            tracing::info!(error = %rejected, action = ?action, "operator API: query refused");
            OperatorError::InvalidQuery
        })
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
    let answered = purge_answer(&request, &state, &core, &project).await;
    respond(&request, &state, Action::Purge, answered)
}

/// A purge's answer, or the error it gets (its detail logged here or where it happened).
async fn purge_answer(
    request: &HttpRequest,
    state: &AppState,
    core: &CoreClient,
    project: &str,
) -> Result<HttpResponse, OperatorError> {
    let query: PurgeQuery = parsed_query(request, Action::Purge)?;
    authorize(request, state, core, project, Action::Purge).await?;
    let purged = operator::purge(
        &state.purge_targets(),
        core,
        project,
        query.repository.as_deref(),
        query.digest.as_deref(),
    )
    .await
    .map_err(|failed| {
        let error = OperatorError::from(&failed);
        match error {
            OperatorError::FactsUnavailable => {
                tracing::warn!(project, error = %failed, "operator API: purge failed");
            }
            // Every call is logged with its authorization already: a flood adds no more.
            OperatorError::TooManyRequests(_) => {
                tracing::debug!(project, error = %failed, "operator API: purge refused");
            }
            _ => tracing::info!(project, error = %failed, "operator API: purge refused"),
        }
        error
    })?;
    Ok(HttpResponse::Ok().json(purged))
}

/// The query of a warm-up: one artifact.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmQuery {
    repository: String,
    digest: String,
}

/// `POST /referrers-sidecar/v1/projects/{project}/warm?repository=R&digest=D`: a project admin
/// or a system admin; answered once the artifact is warmed, or told when to come back (429).
async fn warm(
    request: HttpRequest,
    project: web::Path<String>,
    state: web::Data<AppState>,
    core: web::Data<CoreClient>,
) -> HttpResponse {
    let project = project.into_inner();
    let answered = warm_answer(&request, &state, &core, &project).await;
    respond(&request, &state, Action::Warm, answered)
}

async fn warm_answer(
    request: &HttpRequest,
    state: &AppState,
    core: &CoreClient,
    project: &str,
) -> Result<HttpResponse, OperatorError> {
    let query: WarmQuery = parsed_query(request, Action::Warm)?;
    authorize(request, state, core, project, Action::Warm).await?;
    let warmed = operator::warm(
        &state.warm_targets(),
        core,
        project,
        &query.repository,
        &query.digest,
    )
    .await
    .map_err(|refused| {
        // A warm-up told to come back is the command's pacing, not news.
        tracing::debug!(project, error = %refused, "operator API: warm-up refused");
        OperatorError::from(&refused)
    })?;
    Ok(HttpResponse::Ok().json(warmed))
}

/// The caller's verdict from Harbor, or the error that refuses it (the decision, and Harbor's
/// failure when it could not be asked, are logged by the use case).
async fn authorize(
    request: &HttpRequest,
    state: &AppState,
    core: &CoreClient,
    project: &str,
    action: Action,
) -> Result<operator::Authorized, OperatorError> {
    if !operator::is_project_name(project) {
        return Err(OperatorError::InvalidProject);
    }
    let caller = basic_credentials(request);
    state
        .operator
        .authorize(core, caller.as_ref(), project, action)
        .await
        .map_err(|refusal| OperatorError::from(&refusal))
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

/// Counts one call by its answer.
fn count(state: &AppState, action: Action, response: &HttpResponse) {
    let result = match response.status() {
        StatusCode::OK => OperatorResult::Ok,
        StatusCode::UNAUTHORIZED => OperatorResult::Unauthorized,
        StatusCode::FORBIDDEN => OperatorResult::Forbidden,
        StatusCode::NOT_FOUND => OperatorResult::NotFound,
        StatusCode::BAD_REQUEST => OperatorResult::Invalid,
        StatusCode::TOO_MANY_REQUESTS => OperatorResult::Limited,
        _ => OperatorResult::Unavailable,
    };
    let endpoint = match action {
        Action::Status => OperatorEndpoint::Status,
        Action::Purge => OperatorEndpoint::Purge,
        Action::Warm => OperatorEndpoint::Warm,
    };
    state.metrics.count_operator_request(endpoint, result);
}
