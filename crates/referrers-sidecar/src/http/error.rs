//! Every error a client can see, mapped to its HTTP answer in this one place: an OCI error body
//! (`{"errors":[{"code","message"}]}`) as the distribution spec defines it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use harbor_client::{HarborError, SendError};
use serde::Serialize;

use crate::referrers::RequestError;

/// The header every registry answer carries.
pub const API_VERSION_HEADER: (&str, &str) = ("Docker-Distribution-Api-Version", "registry/2.0");

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Not a valid referrers request.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The detail (awc's or the API client's text) is logged where it happens, never sent: it
    /// names core's internal address and the client library's internals.
    #[error("Harbor core is unreachable")]
    CoreUnreachable,
    #[error("Harbor core did not answer in time")]
    CoreTimeout,
    /// Every connection to core stayed busy for `harbor.connect_timeout`: the caller may retry
    /// in a second rather than queue without bound.
    #[error("Harbor core is busy, retry shortly")]
    CoreBusy,
    /// The webhook endpoint is off: no `webhook.auth_header` is configured.
    #[error("not found")]
    WebhookOff,
    /// Missing or wrong `Authorization` on a webhook.
    #[error("the Authorization header is not the webhook secret of the event's project")]
    WebhookUnauthorized,
    #[error("{0}")]
    WebhookPayload(String),
    #[error("webhook payloads are at most {0} bytes")]
    WebhookTooLarge(usize),
}

impl ApiError {
    /// The OCI error code of the body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Request(RequestError::NameInvalid(_)) => "NAME_INVALID",
            Self::Request(RequestError::DigestInvalid(_)) => "DIGEST_INVALID",
            Self::Request(RequestError::PaginationNumberInvalid(_)) => "PAGINATION_NUMBER_INVALID",
            Self::Request(RequestError::QueryInvalid(_)) => "UNSUPPORTED",
            Self::CoreUnreachable | Self::CoreTimeout | Self::CoreBusy => "UNAVAILABLE",
            // Harbor's API codes: these answers go to Harbor's job service.
            Self::WebhookOff => "NOT_FOUND",
            Self::WebhookUnauthorized => "UNAUTHORIZED",
            Self::WebhookPayload(_) => "BAD_REQUEST",
            Self::WebhookTooLarge(_) => "PAYLOAD_TOO_LARGE",
        }
    }
}

impl From<HarborError> for ApiError {
    fn from(error: HarborError) -> Self {
        match error {
            HarborError::Timeout => Self::CoreTimeout,
            HarborError::NoConnection => Self::CoreBusy,
            _ => Self::CoreUnreachable,
        }
    }
}

/// A request passed through that core did not take.
impl From<&SendError> for ApiError {
    fn from(error: &SendError) -> Self {
        match error {
            SendError::NoConnection(_) => Self::CoreBusy,
            _ if error.is_timeout() => Self::CoreTimeout,
            _ => Self::CoreUnreachable,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
struct ErrorEntry<'a> {
    code: &'a str,
    message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Request(_) | Self::WebhookPayload(_) => StatusCode::BAD_REQUEST,
            Self::WebhookOff => StatusCode::NOT_FOUND,
            Self::WebhookUnauthorized => StatusCode::UNAUTHORIZED,
            Self::WebhookTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::CoreUnreachable => StatusCode::BAD_GATEWAY,
            Self::CoreTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::CoreBusy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = ErrorBody {
            errors: [ErrorEntry {
                code: self.code(),
                message: self.to_string(),
            }],
        };
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header(API_VERSION_HEADER);
        if matches!(self, Self::CoreBusy) {
            response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
        }
        response.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each part of a referrers request that is wrong gets the OCI error code the distribution
    /// spec gives it, as a 400.
    #[test]
    fn an_invalid_request_gets_its_oci_error_code() {
        let cases = [
            (RequestError::NameInvalid("p/R".into()), "NAME_INVALID"),
            (
                RequestError::DigestInvalid("sha256:abc".into()),
                "DIGEST_INVALID",
            ),
            (
                RequestError::PaginationNumberInvalid("n=0".into()),
                "PAGINATION_NUMBER_INVALID",
            ),
            (RequestError::QueryInvalid("x".into()), "UNSUPPORTED"),
        ];
        for (request, code) in cases {
            let message = request.to_string();
            let error = ApiError::from(request);
            assert_eq!(error.code(), code);
            assert_eq!(error.status_code(), StatusCode::BAD_REQUEST);
            assert_eq!(
                error.to_string(),
                message,
                "the message is the request's own"
            );
        }
    }
}
