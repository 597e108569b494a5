//! Harbor's listing of a project's repositories and their artifacts (`GET
//! /api/v2.0/projects/{project}/repositories` and `…/repositories/{repository}/artifacts`), of
//! what its proxy-cache projects hold: pages of `page_size` (10 by default, at most 100) with
//! `X-Total-Count` and Harbor's `Link` (`<…>; rel="prev" , <…>; rel="next"`); a repository name
//! with a slash comes encoded twice in the path; accessories are not listed, and tags only
//! with `with_tag` (true by default). Reading them takes read access to the project.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::api::{api_unauthorized, query_value};
use super::{DoubleConfig, DoubleProject, Shared, account, error_body};
use crate::proxy_cache::ListedArtifact;

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/api/v2.0/projects/{project}/repositories",
            web::get().to(repositories),
        )
        .route(
            "/api/v2.0/projects/{project}/repositories/{repository}/artifacts",
            web::get().to(artifacts),
        );
}

/// `GET /api/v2.0/projects/{project}/repositories` (swagger `Repository` list).
async fn repositories(
    request: HttpRequest,
    shared: web::Data<Shared>,
    project: web::Path<String>,
) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let found = match readable_project(&config, &request, &project) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let (page, size) = match paging(&request) {
        Ok(paging) => paging,
        Err(refused) => return *refused,
    };
    let state = shared.state.lock().expect("state");
    let listed: Vec<Value> = state
        .cache
        .repositories(&found.name)
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let artifacts = state.cache.artifacts(name);
            json!({
                "id": n + 1,
                "project_id": found.id,
                "name": name,
                "description": "",
                "artifact_count": artifacts.len(),
                "pull_count": artifacts.iter().filter(|a| a.times.pulled.is_some()).count(),
                "creation_time": "2026-01-01T00:00:00.000Z",
                "update_time": "2026-01-01T00:00:00.000Z",
            })
        })
        .collect();
    paged(&request, listed, page, size)
}

/// `GET /api/v2.0/projects/{project}/repositories/{repository}/artifacts` (swagger `Artifact`
/// list): the repository's name decoded once more, as Harbor decodes it.
async fn artifacts(
    request: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (project, repository) = path.into_inner();
    let config = shared.config.lock().expect("config").clone();
    let found = match readable_project(&config, &request, &project) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let (page, size) = match paging(&request) {
        Ok(paging) => paging,
        Err(refused) => return *refused,
    };
    let repository = percent_encoding::percent_decode_str(&repository)
        .decode_utf8_lossy()
        .into_owned();
    let name = format!("{}/{repository}", found.name);
    let listed = shared.state.lock().expect("state").cache.artifacts(&name);
    if listed.is_empty() {
        return not_found("repository not found");
    }
    let with_tag = query_value(&request, "with_tag").is_none_or(|value| value != "false");
    let listed: Vec<Value> = listed
        .iter()
        .enumerate()
        .map(|(n, artifact)| artifact_json(artifact, n + 1, found.id, &name, with_tag))
        .collect();
    paged(&request, listed, page, size)
}

/// An artifact in the shape of Harbor's swagger `Artifact`.
fn artifact_json(
    artifact: &ListedArtifact,
    id: usize,
    project_id: i64,
    repository: &str,
    with_tag: bool,
) -> Value {
    let manifest: Value = serde_json::from_slice(&artifact.manifest.bytes).unwrap_or(Value::Null);
    let pushed = time(artifact.times.pushed);
    let pulled = artifact
        .times
        .pulled
        .map_or_else(|| "0001-01-01T00:00:00.000Z".to_owned(), time);
    let tags = with_tag.then(|| {
        artifact
            .tags
            .iter()
            .enumerate()
            .map(|(n, tag)| {
                json!({
                    "id": n + 1, "repository_id": 1, "artifact_id": id, "name": tag,
                    "push_time": pushed, "pull_time": pulled, "immutable": false,
                })
            })
            .collect::<Vec<Value>>()
    });
    json!({
        "id": id,
        "type": "IMAGE",
        "media_type": manifest["config"]["mediaType"],
        "manifest_media_type": artifact.manifest.media_type,
        "project_id": project_id,
        "repository_id": 1,
        "repository_name": repository,
        "digest": artifact.digest,
        "size": artifact.manifest.bytes.len(),
        "icon": "",
        "push_time": pushed,
        "pull_time": pulled,
        "extra_attrs": {},
        "annotations": manifest["annotations"],
        "references": null,
        "tags": tags,
        "addition_links": {},
        "labels": null,
        "accessories": null,
    })
}

/// Harbor's time format: RFC 3339, milliseconds, UTC.
fn time(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// The project if the caller may read it (public, a member, a system reader or admin); else
/// Harbor's answer: 401 for refused credentials, 404 for an unknown project, 403 otherwise.
fn readable_project(
    config: &DoubleConfig,
    request: &HttpRequest,
    name: &str,
) -> Result<DoubleProject, Box<HttpResponse>> {
    let caller = account(config, request);
    if request.headers().contains_key(header::AUTHORIZATION) && caller.is_none() {
        return Err(Box::new(api_unauthorized()));
    }
    let Some(found) = config.projects.iter().find(|p| p.name == name) else {
        return Err(Box::new(not_found("project not found")));
    };
    let readable = found.public
        || caller.is_some_and(|a| a.role_in(&found.name) > 0 || a.system_reader || a.sysadmin);
    match (readable, caller) {
        (true, _) => Ok(found.clone()),
        (false, Some(_)) => Err(Box::new(
            HttpResponse::Forbidden()
                .content_type("application/json")
                .body(error_body("FORBIDDEN", "forbidden")),
        )),
        (false, None) => Err(Box::new(api_unauthorized())),
    }
}

/// `page` (from 1) and `page_size` (1–100, 10 by default), or a 400.
fn paging(request: &HttpRequest) -> Result<(usize, usize), Box<HttpResponse>> {
    let number = |key: &str, default: usize| match query_value(request, key) {
        None => Some(default),
        Some(value) => value.parse::<usize>().ok(),
    };
    match (number("page", 1), number("page_size", 10)) {
        (Some(page), Some(size)) if page >= 1 && (1..=100).contains(&size) => Ok((page, size)),
        _ => Err(Box::new(
            HttpResponse::BadRequest()
                .content_type("application/json")
                .body(error_body("BAD_REQUEST", "invalid page or page_size")),
        )),
    }
}

/// Page `page` of `all`, with `X-Total-Count` and, when there are others, Harbor's `Link`.
fn paged(request: &HttpRequest, all: Vec<Value>, page: usize, size: usize) -> HttpResponse {
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip((page - 1) * size).take(size).collect();
    let link_to = |to: usize, rel: &str| {
        let query: Vec<String> = request
            .query_string()
            .split('&')
            .filter(|pair| {
                !pair.is_empty() && !pair.starts_with("page=") && !pair.starts_with("page_size=")
            })
            .map(str::to_owned)
            .chain([format!("page={to}"), format!("page_size={size}")])
            .collect();
        // Harbor unescapes the path once: a repository's `%252F` is `%2F` in its links.
        let path = percent_encoding::percent_decode_str(request.path()).decode_utf8_lossy();
        format!(r#"<{path}?{}>; rel="{rel}""#, query.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 && (page - 1) * size < total {
        links.push(link_to(page - 1, "prev"));
    }
    if page * size < total {
        links.push(link_to(page + 1, "next"));
    }
    let mut response = HttpResponse::Ok();
    response.insert_header(("X-Total-Count", total.to_string()));
    if !links.is_empty() {
        response.insert_header(("Link", links.join(" , ")));
    }
    response.json(items)
}

fn not_found(message: &str) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("application/json")
        .body(error_body("NOT_FOUND", message))
}
