//! Every error a client can see, mapped to its HTTP answer in this one place: an OCI error body
//! (`{"errors":[{"code","message"}]}`) as the distribution spec defines it, which is also
//! Harbor's API error shape.
//!
//! The operator API and the webhook endpoint answer with a fixed message per error and the
//! request's id (`{"errors":[{"code","message","request_id"}]}`: Harbor's clients and the OCI
//! ones read `code` and `message` and ignore another field); whatever detail there is — the
//! Harbor client's text, which can name core's internal address, or a parse error — goes to the
//! log only, in the request's span, which carries the same id.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use harbor_client::{HarborError, SendError};
use serde::Serialize;

use crate::operator::{Limited, PurgeError, Refusal, WarmError};
use crate::referrers::RequestError;
use crate::webhook::EventError;

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
    /// A payload that could not be read or is no usable event: a fixed message, the detail is
    /// logged.
    #[error("{0}")]
    WebhookPayload(&'static str),
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

/// A webhook payload that is no usable event, by a fixed message per failure: the parser's
/// text (a `serde` position, the name it read) is logged, not sent.
impl From<&EventError> for ApiError {
    fn from(error: &EventError) -> Self {
        Self::WebhookPayload(match error {
            EventError::Json(_) => "not a Harbor webhook payload",
            EventError::Data(_) => "a pull event's data is not readable",
            EventError::NoRepository => "a pull event without a repository",
            EventError::Repository { .. } => "a pull event names an invalid repository",
            EventError::NoDigest => "a pull event names no valid digest",
        })
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

/// Every error the operator API answers: Harbor's status and code, a fixed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorError {
    /// A path under the API's prefix that is no endpoint.
    NoEndpoint,
    InvalidProject,
    /// A purge's query that is not `repository` and `digest`, once each.
    InvalidQuery,
    InvalidRepository,
    InvalidDigest,
    DigestWithoutRepository,
    /// No credentials, or credentials Harbor refuses.
    Unauthorized,
    /// Harbor accepts the credentials and they do not allow this (why: a fixed sentence).
    Forbidden(&'static str),
    /// A purge of a project Harbor does not know.
    UnknownProject,
    /// Harbor could not be asked who the caller is.
    CoreUnavailable,
    /// Harbor's facts about the project could not be read with the sidecar's robot.
    FactsUnavailable,
    /// The project's budget of such calls is spent: a slot frees in this many seconds.
    TooManyRequests(u64),
    /// A warm-up told to come back in this many seconds, and why.
    WarmLater(WarmLater, u64),
}

/// Why a warm-up is told to come back later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmLater {
    /// The project has `operator.warm_queue_per_project` artifacts waiting or being warmed.
    QueueFull,
    /// The registry's next turn (`operator.warm_per_minute`) is further off than a call waits.
    Paced,
    /// The registry rests after a rate limit.
    Resting,
}

impl OperatorError {
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::NoEndpoint | Self::UnknownProject => StatusCode::NOT_FOUND,
            Self::InvalidProject
            | Self::InvalidQuery
            | Self::InvalidRepository
            | Self::InvalidDigest
            | Self::DigestWithoutRepository => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::CoreUnavailable | Self::FactsUnavailable => StatusCode::BAD_GATEWAY,
            Self::TooManyRequests(_) | Self::WarmLater(..) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Harbor's error code of the body.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self.status() {
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::BAD_REQUEST => "BAD_REQUEST",
            StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
            StatusCode::FORBIDDEN => "FORBIDDEN",
            // The distribution spec's code for a 429.
            StatusCode::TOO_MANY_REQUESTS => "TOOMANYREQUESTS",
            _ => "UNAVAILABLE",
        }
    }

    /// The message: fixed, whatever the detail was.
    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            Self::NoEndpoint => "no such operator endpoint",
            Self::InvalidProject => "invalid project name",
            Self::InvalidQuery => "invalid query: it takes repository and digest, once each",
            Self::InvalidRepository => "invalid repository name",
            Self::InvalidDigest => "invalid digest",
            Self::DigestWithoutRepository => {
                "a digest names a subject of one repository: give the repository too"
            }
            Self::Unauthorized => "Harbor credentials (Basic) are required",
            Self::Forbidden(why) => why,
            Self::UnknownProject => "Harbor knows no such project",
            Self::CoreUnavailable => {
                "cannot ask Harbor who the caller is: the sidecar's log has the detail under this request id"
            }
            Self::FactsUnavailable => {
                "cannot read the project from Harbor: the sidecar's log has the detail under this request id"
            }
            Self::TooManyRequests(_) => {
                "too many such calls for this project: retry after the seconds Retry-After gives"
            }
            Self::WarmLater(WarmLater::QueueFull, _) => {
                "this project's warm queue is full in this replica: retry after the seconds Retry-After gives"
            }
            Self::WarmLater(WarmLater::Paced, _) => {
                "the registry's next warm-up turn is further off: retry after the seconds Retry-After gives"
            }
            Self::WarmLater(WarmLater::Resting, _) => {
                "the upstream registry rests after a rate limit: retry after the seconds Retry-After gives"
            }
        }
    }

    /// The answer: Harbor's error shape with the request's id; a 401 says how to authenticate.
    #[must_use]
    pub fn answer(self, request_id: &str) -> HttpResponse {
        let body = ErrorBody {
            errors: [ErrorEntry {
                code: self.code(),
                message: self.message().to_owned(),
                request_id: Some(request_id),
            }],
        };
        let mut response = HttpResponse::build(self.status());
        match self {
            Self::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"harbor\""));
            }
            Self::TooManyRequests(seconds) | Self::WarmLater(_, seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds));
            }
            _ => {}
        }
        response.json(body)
    }
}

impl From<&Refusal> for OperatorError {
    fn from(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::Unauthorized => Self::Unauthorized,
            Refusal::Forbidden(why) => Self::Forbidden(why),
            Refusal::UnknownProject(_) => Self::UnknownProject,
            Refusal::Unavailable(_) => Self::CoreUnavailable,
        }
    }
}

impl From<&PurgeError> for OperatorError {
    fn from(error: &PurgeError) -> Self {
        match error {
            PurgeError::InvalidRepository(_) => Self::InvalidRepository,
            PurgeError::InvalidDigest(_) => Self::InvalidDigest,
            PurgeError::DigestWithoutRepository => Self::DigestWithoutRepository,
            PurgeError::FactsUnavailable(_) => Self::FactsUnavailable,
            PurgeError::Limited(limited) => Self::from(*limited),
        }
    }
}

impl From<&WarmError> for OperatorError {
    fn from(error: &WarmError) -> Self {
        let later = |why| Self::WarmLater(why, error.retry_after().unwrap_or(1));
        match error {
            WarmError::InvalidRepository(_) => Self::InvalidRepository,
            WarmError::InvalidDigest(_) => Self::InvalidDigest,
            WarmError::QueueFull => later(WarmLater::QueueFull),
            WarmError::Paced(_) => later(WarmLater::Paced),
            WarmError::Resting(_) => later(WarmLater::Resting),
        }
    }
}

impl From<Limited> for OperatorError {
    fn from(limited: Limited) -> Self {
        Self::TooManyRequests(limited.retry_after.as_secs())
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
    /// The request's id, under which the log holds the detail (operator API and webhook).
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ApiError {
    /// The answer with the request's id in its body: the webhook endpoint's answers.
    #[must_use]
    pub fn answer(&self, request_id: &str) -> HttpResponse {
        let body = ErrorBody {
            errors: [ErrorEntry {
                code: self.code(),
                message: self.to_string(),
                request_id: Some(request_id),
            }],
        };
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header(API_VERSION_HEADER);
        response.json(body)
    }
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
                request_id: None,
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
mod tests;
