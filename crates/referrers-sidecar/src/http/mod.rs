//! The HTTP layer, and the only one that speaks actix: the route table, health, referrers,
//! Harbor's webhooks, the operator API, the metrics endpoint, the pass-through to core for
//! everything else, and every client-visible error body. A handler translates: it hands the
//! use case the parts of [`AppState`] it uses and turns its typed answer into HTTP.

mod error;
mod health;
mod operator;
mod passthrough;
mod referrers;
mod state;
pub mod webhook;

pub use passthrough::Forwarder;
pub use state::AppState;

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use harbor_client::CoreClient;

use crate::harbor::Core;
use crate::referrers::CoreCalls;

/// The sidecar's routes. Each worker's app data holds the [`AppState`], a [`Forwarder`] and a
/// [`CoreClient`] of its own, and the webhook queue.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route(webhook::PATH, web::post().to(webhook::harbor))
        // After every other route under the operator API's prefix: its scope answers 404 for
        // any path under the prefix that no route before it took.
        .configure(operator::configure)
        .default_service(web::to(dispatch));
}

/// The metrics listener's one route.
pub fn configure_metrics(config: &mut web::ServiceConfig) {
    config.route("/metrics", web::get().to(health::metrics));
}

/// Every request no other route took: referrers reads are ours, the rest goes to core
/// unchanged.
async fn dispatch(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    forwarder: web::Data<Forwarder>,
    core: web::Data<CoreClient>,
    core_calls: web::Data<CoreCalls>,
) -> HttpResponse {
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    match referrers::match_path(request.uri().path()) {
        Some(path) if is_read => {
            let core: Arc<dyn Core> = core.into_inner();
            referrers::handle(
                &request,
                payload,
                path,
                &state,
                &forwarder,
                &core,
                &core_calls,
            )
            .await
        }
        _ => forwarder.forward(&request, payload, &state.metrics).await,
    }
}
