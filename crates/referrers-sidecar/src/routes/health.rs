//! Liveness and readiness.

use actix_web::{HttpResponse, web};

use crate::state::AppState;

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
