//! Everything the sidecar does not answer itself goes to core unchanged: method, raw path and
//! query, headers (`Host` and `Authorization` included), bodies streamed both ways without
//! buffering or decompression, redirects not followed, hop-by-hop headers dropped (RFC 9110
//! §7.6.1).

use actix_web::body::{BodyStream, BoxBody, MessageBody, None as NoBody, SizedStream};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use harbor_client::{CoreConnections, Slot};
use url::Url;

use super::error::ApiError;
use crate::metrics::Metrics;
use crate::outcome::StatusClass;
use crate::telemetry;

/// One per worker, on that worker's connections to core.
pub struct Forwarder {
    connections: CoreConnections,
    /// Core's scheme, authority and path prefix, without a trailing `/`.
    base: String,
}

impl Forwarder {
    #[must_use]
    pub fn new(connections: CoreConnections, core_url: &Url) -> Self {
        let base = core_url.as_str().trim_end_matches('/').to_owned();
        Self { connections, base }
    }

    /// Sends `request` to core as it came and streams core's answer back.
    pub async fn forward(
        &self,
        request: &HttpRequest,
        payload: web::Payload,
        metrics: &Metrics,
    ) -> HttpResponse {
        let target = format!(
            "{}{}",
            self.base,
            request.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        let mut outgoing = self
            .connections
            .request(request.method().clone(), target.as_str());
        copy_end_to_end_headers(request.headers(), outgoing.headers_mut(), true);
        // Core continues the trace from the request's span (the caller's own context otherwise).
        telemetry::pass_context(&tracing::Span::current(), outgoing.headers_mut());

        // Core's head is awaited from the moment the body is sent: a long push is legitimate.
        let (payload, body_sent) = harbor_client::signal_end(payload);
        let sent = match request_body_size(request.headers()) {
            BodySize::Length(length) => outgoing.send_body(SizedStream::new(length, payload)),
            BodySize::Chunked => outgoing.send_body(BodyStream::new(payload)),
            BodySize::Empty => {
                drop(payload);
                outgoing.send_body(NoBody::new())
            }
        };
        let (response, slot) = match self.connections.send(sent, body_sent).await {
            Ok(answer) => answer,
            Err(error) => {
                metrics.count_passthrough(StatusClass::Error);
                tracing::warn!(error = %error, "cannot forward to Harbor core");
                return ApiError::from(&error).error_response();
            }
        };
        metrics.count_passthrough(StatusClass::of(response.status().as_u16()));
        relay(request.method(), response, slot)
    }
}

enum BodySize {
    Length(u64),
    Chunked,
    Empty,
}

/// How the client framed its body: `Transfer-Encoding` wins over `Content-Length` (RFC 9112
/// §6.3), and no framing means no body.
fn request_body_size(headers: &HeaderMap) -> BodySize {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return BodySize::Chunked;
    }
    match content_length(headers) {
        Some(length) => BodySize::Length(length),
        None => BodySize::Empty,
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Copies every end-to-end header. For a request, `Expect` is dropped too: the sidecar's
/// server already answered it.
fn copy_end_to_end_headers(from: &HeaderMap, to: &mut HeaderMap, is_request: bool) {
    harbor_client::copy_end_to_end_headers(from, to);
    if is_request {
        to.remove(header::EXPECT);
    }
}

/// Core's answer, status and end-to-end headers as they are, body streamed with its own length.
/// The connection `slot` stays taken while the body streams.
fn relay<S>(method: &Method, response: awc::ClientResponse<S>, slot: Slot) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>>
        + Unpin
        + 'static,
{
    let status = response.status();
    let length = content_length(response.headers());
    let mut builder = HttpResponse::build(status);
    {
        let mut headers = HeaderMap::new();
        copy_end_to_end_headers(response.headers(), &mut headers, false);
        for (name, value) in headers {
            builder.append_header((name, value));
        }
    }
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let body: BoxBody = match (no_body, length) {
        // The length describes the body a GET would get; HEAD keeps it without sending bytes.
        (true, Some(length)) => SizedStream::new(
            length,
            futures_util::stream::empty::<Result<bytes::Bytes, awc::error::PayloadError>>(),
        )
        .boxed(),
        (true, None) => NoBody::new().boxed(),
        (false, Some(length)) => SizedStream::new(length, slot.hold(response)).boxed(),
        (false, None) => BodyStream::new(slot.hold(response)).boxed(),
    };
    builder.body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut from = HeaderMap::new();
        let mut add = |name: &'static str, value: &'static str| {
            from.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        };
        add("connection", "keep-alive, x-private");
        add("keep-alive", "timeout=5");
        add("x-private", "1");
        add("transfer-encoding", "chunked");
        add("expect", "100-continue");
        add("authorization", "Bearer t");
        add("host", "harbor.example");
        add("accept", "a");
        add("accept", "b");
        let mut to = HeaderMap::new();
        copy_end_to_end_headers(&from, &mut to, true);
        let names: Vec<&str> = to.keys().map(HeaderName::as_str).collect();
        assert!(names.contains(&"authorization") && names.contains(&"host"));
        assert_eq!(to.get_all("accept").count(), 2);
        for dropped in [
            "connection",
            "keep-alive",
            "x-private",
            "transfer-encoding",
            "expect",
        ] {
            assert!(!names.contains(&dropped), "{dropped} must be dropped");
        }
    }
}
