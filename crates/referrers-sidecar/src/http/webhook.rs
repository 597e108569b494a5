//! `POST /referrers-sidecar/v1/webhooks/harbor`: Harbor's webhook events, authenticated by the
//! `Authorization` Harbor sends — the project's own header, derived from `webhook.auth_header`
//! (see [`crate::webhook::secret`]), or that master secret itself; pulled artifacts are queued
//! for a warm fetch and Harbor gets `202` at once (its job service never waits for an upstream).

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::ApiError;
use super::state::AppState;
use crate::outcome::WebhookEvent;
use crate::telemetry;
use crate::webhook::{EventKind, HarborEvent, Offered, Signer, WarmQueue};

/// Harbor's payload for one pulled artifact is well under a kilobyte.
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// How long the payload may take to arrive once the request head is in.
const PAYLOAD_TIMEOUT: Duration = Duration::from_secs(10);

pub const PATH: &str = "/referrers-sidecar/v1/webhooks/harbor";

pub async fn harbor(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    queue: web::Data<WarmQueue>,
) -> HttpResponse {
    let count = |event: WebhookEvent| state.metrics.count_webhook_event(event);
    // Every error answer carries the request's id, under which the log holds the detail.
    let answer = |error: ApiError| error.answer(&telemetry::request_id_of(&request));
    // Off unless a secret is configured: the endpoint does not exist.
    let Some(secret) = &state.settings.webhook.auth_header else {
        return answer(ApiError::WebhookOff);
    };
    let master = secret.expose();
    let sent = request
        .headers()
        .get(header::AUTHORIZATION)
        .map_or(&b""[..], |value| value.as_bytes());
    let signer = Signer::of(master, sent);
    let refuse = || {
        tracing::warn!(
            "webhook refused: its Authorization header is neither webhook.auth_header nor the header webhook-setup derives from it for the event's project"
        );
        count(WebhookEvent::UnknownUnauthorized);
        answer(ApiError::WebhookUnauthorized)
    };
    // A project's header is a Bearer value: anything else that is not the master secret is
    // refused before the payload is read.
    if signer == Signer::Other && !sent.starts_with(b"Bearer ") {
        return refuse();
    }
    let read = tokio::time::timeout(PAYLOAD_TIMEOUT, payload.to_bytes_limited(MAX_PAYLOAD_BYTES));
    let body = match read.await {
        Ok(Ok(Ok(body))) => body,
        _ if signer == Signer::Other => return refuse(),
        unread => {
            let error = match unread {
                Ok(Err(_)) => ApiError::WebhookTooLarge(MAX_PAYLOAD_BYTES),
                Ok(Ok(Err(error))) => {
                    tracing::info!(error = %error, "webhook refused: the payload could not be read");
                    ApiError::WebhookPayload("cannot read the payload")
                }
                _ => ApiError::WebhookPayload("the payload did not arrive in time"),
            };
            count(WebhookEvent::UnknownInvalid);
            return answer(error);
        }
    };
    let event = match HarborEvent::parse(&body) {
        Ok(event) => event,
        // Whom a header that is not the master secret speaks for is told by the event: an
        // unreadable one is refused as unsigned.
        Err(_) if signer == Signer::Other => return refuse(),
        Err(error) => {
            tracing::info!(error = %error, "webhook refused");
            count(error.event());
            return answer(ApiError::from(&error));
        }
    };
    // A project's header speaks for events of that project only, and for no event that names
    // none.
    let signed = match signer {
        Signer::Master => true,
        Signer::Other => {
            !event.pulled.is_empty()
                && event
                    .pulled
                    .iter()
                    .all(|pulled| signer.may_speak_for(master, sent, pulled.name.project()))
        }
    };
    if !signed {
        return refuse();
    }
    if event.kind != EventKind::PullArtifact {
        count(WebhookEvent::OtherIgnored);
        return HttpResponse::build(StatusCode::ACCEPTED).finish();
    }
    // The worst of its artifacts': one dropped is what an operator must see.
    let mut result = Offered::Duplicate;
    for pulled in event.pulled {
        match queue.offer(pulled) {
            Offered::Dropped => result = Offered::Dropped,
            Offered::Queued if result == Offered::Duplicate => result = Offered::Queued,
            _ => {}
        }
    }
    count(match result {
        Offered::Queued => WebhookEvent::PullQueued,
        Offered::Duplicate => WebhookEvent::PullDuplicate,
        Offered::Dropped => WebhookEvent::PullDropped,
    });
    HttpResponse::build(StatusCode::ACCEPTED).finish()
}
