//! Core's `/v2/` API: authorization, the token service and the referrers endpoint; manifests
//! and blobs of proxy-cache projects go on to `super::proxy`.

use std::collections::HashSet;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::proxy::{Pull, pull_through, upstream_of};
use super::{Access, CORE_GARBAGE, CoreFault, DoubleConfig, Shared, account, error_body, may_pull};

/// The token service; everything else under `/v2/` (and anything no other surface routes).
pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/service/token", web::get().to(token))
        .default_service(web::to(registry_v2));
}

/// An answer of core's `/v2/` API: JSON with the distribution API version header.
pub(super) fn v2_response(status: u16) -> actix_web::HttpResponseBuilder {
    let mut builder =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
    builder
        .insert_header(("Docker-Distribution-Api-Version", "registry/2.0"))
        .content_type("application/json; charset=utf-8");
    builder
}

/// `GET /service/token?service=harbor-registry&scope=repository:<p>/<r>:pull`.
async fn token(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let config = shared.config.lock().expect("config").clone();
    let has_credentials = request.headers().contains_key(header::AUTHORIZATION);
    let account = account(&config, &request);
    if has_credentials && account.is_none() {
        return HttpResponse::Unauthorized()
            .content_type("application/json; charset=utf-8")
            .body(error_body("UNAUTHORIZED", "authentication required"));
    }
    let mut granted = HashSet::new();
    for pair in request.query_string().split('&') {
        let Some(scope) = pair.strip_prefix("scope=") else {
            continue;
        };
        let scope = percent_encoding::percent_decode_str(scope).decode_utf8_lossy();
        if let Some(repository) = scope
            .strip_prefix("repository:")
            .and_then(|s| s.strip_suffix(":pull"))
        {
            let project = repository.split('/').next().unwrap_or_default();
            if may_pull(&config, account, project) {
                granted.insert(project.to_owned());
            }
        }
    }
    let mut state = shared.state.lock().expect("state");
    state.issued += 1;
    let token = format!("double-token-{}", state.issued);
    state.tokens.insert(
        token.clone(),
        Access {
            account: account.map(|a| a.name.clone()),
            projects: granted,
        },
    );
    HttpResponse::Ok().json(json!({
        "token": token,
        "expires_in": 1800,
        "issued_at": "2026-01-01T00:00:00Z",
    }))
}

/// Everything under `/v2/` (and anything else): authorization first, then the referrers API.
async fn registry_v2(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/v2/") else {
        return HttpResponse::NotFound().finish();
    };
    let config = shared.config.lock().expect("config").clone();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("core")
        .to_owned();
    let scheme = request
        .headers()
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http")
        .to_owned();
    let (name, tail) = split_repository(rest);
    let project = name.split('/').next().unwrap_or_default().to_owned();

    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let Some(authorization) = authorization else {
        let scope = if name.is_empty() {
            String::new()
        } else {
            format!(",scope=\"repository:{name}:pull\"")
        };
        return v2_response(401)
            .insert_header((
                header::WWW_AUTHENTICATE,
                format!(
                    "Bearer realm=\"{scheme}://{host}/service/token\",service=\"harbor-registry\"{scope}"
                ),
            ))
            .body(error_body("UNAUTHORIZED", "unauthorized to access repository"));
    };
    if name.is_empty() {
        // `GET /v2/` with credentials: the API version check.
        return v2_response(200).body("{}");
    }
    let allowed = if let Some(token) = authorization.strip_prefix("Bearer ") {
        let state = shared.state.lock().expect("state");
        state.tokens.get(token.trim()).is_some_and(|access| {
            access.projects.contains(&project) && {
                // A token's account must still exist.
                access
                    .account
                    .as_ref()
                    .is_none_or(|a| config.accounts.iter().any(|c| &c.name == a))
            }
        })
    } else {
        let account = account(&config, &request);
        account.is_some() && may_pull(&config, account, &project)
    };
    if !allowed {
        return v2_response(401)
            .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"harbor\""))
            .body(error_body(
                "UNAUTHORIZED",
                "unauthorized to access repository",
            ));
    }

    let method = request.method().clone();
    match tail {
        Tail::Referrers(subject) if method == actix_web::http::Method::GET => {
            shared.referrers_gate.pass().await;
            let fault = *shared.referrers_fault.lock().expect("fault");
            match fault {
                Some(fault) => faulty_referrers(fault),
                None => referrers(&request, &shared, &config, name, subject),
            }
        }
        Tail::Content(kind, reference)
            if method == actix_web::http::Method::GET
                || method == actix_web::http::Method::HEAD =>
        {
            match upstream_of(&config, &project) {
                Some(upstream) => {
                    let head = method == actix_web::http::Method::HEAD;
                    let pull = Pull {
                        upstream: &upstream,
                        repository: name,
                        project: &project,
                        kind,
                        reference,
                    };
                    pull_through(&shared, &pull, head).await
                }
                None => v2_response(404).body(error_body("NOT_FOUND", "not found")),
            }
        }
        // Core's router knows referrers for GET only: HEAD falls to the registry, which 404s.
        _ => v2_response(404).body(error_body("NOT_FOUND", "not found")),
    }
}

fn faulty_referrers(fault: CoreFault) -> HttpResponse {
    match fault {
        // Held at the gate until the double stops.
        CoreFault::StallsBeforeItsHead => v2_response(500).finish(),
        CoreFault::StallsMidBody => {
            let part = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#;
            let first = futures_util::stream::once(async move {
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(part.as_bytes()))
            });
            let body = first.chain(futures_util::stream::pending());
            v2_response(200)
                .content_type("application/vnd.oci.image.index.v1+json")
                .body(actix_web::body::SizedStream::new(
                    part.len() as u64 + 1024,
                    Box::pin(body),
                ))
        }
        CoreFault::Status(status) => v2_response(status).body(error_body("UNKNOWN", "core failed")),
        CoreFault::Garbage => v2_response(200)
            .content_type("application/vnd.oci.image.index.v1+json")
            .body(CORE_GARBAGE),
    }
}

enum Tail<'a> {
    Referrers(&'a str),
    /// `manifests` or `blobs`, and the tag or digest.
    Content(&'static str, &'a str),
    Other,
}

fn split_repository(rest: &str) -> (&str, Tail<'_>) {
    if let Some((name, subject)) = rest.rsplit_once("/referrers/") {
        return (name, Tail::Referrers(subject));
    }
    for kind in ["manifests", "blobs"] {
        if let Some((name, reference)) = rest.split_once(&format!("/{kind}/")) {
            return (name, Tail::Content(kind, reference));
        }
    }
    if let Some((name, _)) = rest.split_once("/tags/") {
        return (name, Tail::Other);
    }
    (rest.trim_end_matches('/'), Tail::Other)
}

fn referrers(
    request: &HttpRequest,
    shared: &Shared,
    config: &DoubleConfig,
    name: &str,
    subject: &str,
) -> HttpResponse {
    if !subject.starts_with("sha256:") || subject.len() != 71 {
        return v2_response(400).body(error_body("DIGEST_INVALID", "invalid digest"));
    }
    let all = shared
        .state
        .lock()
        .expect("state")
        .referrers
        .get(&(name.to_owned(), subject.to_owned()))
        .cloned()
        .unwrap_or_default();
    let total = all.len();
    let filters: Vec<String> = request
        .query_string()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("artifactType="))
        .map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|v| !v.is_empty())
        .collect();
    let mut manifests: Vec<Value> = all
        .into_iter()
        .filter(|d| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|f| d["artifactType"].as_str() == Some(f.as_str()))
        })
        .collect();
    if config.legacy_2_8 {
        for descriptor in &mut manifests {
            // 2.8–2.10 report the artifact's size and its config media type.
            let size = descriptor["size"].as_u64().unwrap_or_default();
            descriptor["size"] = json!(size + 1000);
            descriptor["artifactType"] = json!("application/vnd.oci.image.config.v1+json");
        }
    }
    let mut response = HttpResponse::Ok();
    response
        .insert_header(("Docker-Distribution-Api-Version", "registry/2.0"))
        .insert_header(("X-Total-Count", total.to_string()));
    if config.legacy_2_8 {
        response.content_type("application/json; charset=utf-8");
    } else {
        response.content_type("application/vnd.oci.image.index.v1+json");
    }
    if !filters.is_empty() {
        response.insert_header(("OCI-Filters-Applied", "artifactType"));
    }
    response.body(
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        })
        .to_string(),
    )
}
