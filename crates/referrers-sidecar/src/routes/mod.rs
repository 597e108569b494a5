//! HTTP routes: health, referrers, Harbor's webhooks, the operator API, and the pass-through to
//! core for everything else.

pub mod health;
pub mod operator;
pub mod passthrough;
pub mod referrers;
pub mod webhook;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use harbor_client::CoreClient;

use crate::state::AppState;
use passthrough::Forwarder;

/// Every request that is not `/healthz` or `/readyz`: referrers reads are ours, the rest goes
/// to core unchanged.
pub async fn dispatch(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    forwarder: web::Data<Forwarder>,
    core: web::Data<CoreClient>,
) -> HttpResponse {
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    match referrers::match_path(request.uri().path()) {
        Some(path) if is_read => {
            referrers::handle(&request, payload, path, &state, &forwarder, &core).await
        }
        _ => forwarder.forward(&request, payload, &state.metrics).await,
    }
}
