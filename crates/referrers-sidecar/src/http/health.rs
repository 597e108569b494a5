//! Liveness, readiness, and the metrics endpoint.

use actix_web::{HttpResponse, web};

use super::state::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Readiness: the listeners are up and the configuration was accepted. The Redis tier's state
/// is reported, but a Redis outage does not make the service unready: it still answers, from
/// the in-process tier.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let redis = state
        .cache
        .redis_report()
        .map(|report| serde_json::json!({ "url": report.url, "state": report.state.as_str() }));
    HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "redis": redis }))
}

/// `/metrics` on the metrics listener: the served-projects gauge is brought up to date from
/// the facts at hand (nothing is asked of Harbor), then every metric is rendered.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    crate::operator::track_served_projects(&state.serving, &state.metrics).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
