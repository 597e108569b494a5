//! Every error a client can see: its status, code and body.

use std::time::Duration;

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

async fn body_of(response: HttpResponse) -> serde_json::Value {
    let bytes = actix_web::body::to_bytes(response.into_body())
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("JSON body")
}

/// Harbor failing gets the operator API's 502 with `UNAVAILABLE` as before, and a fixed
/// message with the request's id: the client's text, which names core's address, is not
/// in it.
#[tokio::test]
async fn an_operator_error_answers_a_fixed_message_and_the_request_id() {
    let address = "10.96.0.12:8080";
    let refusal = Refusal::Unavailable(HarborError::Unreachable(format!(
        "cannot send to Harbor core: connect to {address}: connection refused"
    )));
    let failed = PurgeError::FactsUnavailable(format!(
        "Harbor core answered 500 for GET http://{address}/api/v2.0/projects/p"
    ));
    for (error, detail) in [
        (OperatorError::from(&refusal), refusal.to_string()),
        (OperatorError::from(&failed), failed.to_string()),
    ] {
        assert!(detail.contains(address), "the log's detail: {detail}");
        let response = error.answer("request-7");
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let body = body_of(response).await;
        assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
        assert_eq!(body["errors"][0]["message"], error.message(), "{body}");
        assert_eq!(body["errors"][0]["request_id"], "request-7", "{body}");
        let text = body.to_string();
        assert!(
            !text.contains(address) && !text.contains("refused") && !text.contains("500"),
            "{text}"
        );
    }
}

/// Every operator error keeps its status and code; only a 401 says how to authenticate;
/// a message names nothing the caller sent.
#[tokio::test]
async fn operator_errors_keep_their_status_and_code() {
    let cases = [
        (OperatorError::NoEndpoint, 404, "NOT_FOUND"),
        (OperatorError::InvalidProject, 400, "BAD_REQUEST"),
        (OperatorError::InvalidQuery, 400, "BAD_REQUEST"),
        (
            OperatorError::from(&PurgeError::InvalidRepository("Team/App".into())),
            400,
            "BAD_REQUEST",
        ),
        (
            OperatorError::from(&PurgeError::InvalidDigest("sha256:abc".into())),
            400,
            "BAD_REQUEST",
        ),
        (
            OperatorError::from(&PurgeError::DigestWithoutRepository),
            400,
            "BAD_REQUEST",
        ),
        (
            OperatorError::from(&Refusal::Unauthorized),
            401,
            "UNAUTHORIZED",
        ),
        (
            OperatorError::from(&Refusal::Forbidden("purging needs an admin")),
            403,
            "FORBIDDEN",
        ),
        (
            OperatorError::from(&Refusal::UnknownProject("no-such".into())),
            404,
            "NOT_FOUND",
        ),
        (
            OperatorError::from(&PurgeError::Limited(Limited {
                retry_after: Duration::from_secs(42),
            })),
            429,
            "TOOMANYREQUESTS",
        ),
    ];
    for (error, status, code) in cases {
        let response = error.answer("id");
        assert_eq!(response.status().as_u16(), status, "{error:?}");
        assert_eq!(
            response.headers().contains_key(header::WWW_AUTHENTICATE),
            status == 401,
            "{error:?}"
        );
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            (status == 429)
                .then(|| header::HeaderValue::from_static("42"))
                .as_ref(),
            "only a 429 says when to retry: {error:?}"
        );
        let body = body_of(response).await;
        assert_eq!(body["errors"][0]["code"], code, "{body}");
        let text = body.to_string();
        for sent in ["Team/App", "sha256:abc", "no-such"] {
            assert!(!text.contains(sent), "{text}");
        }
    }
    assert_eq!(
        OperatorError::from(&Refusal::Forbidden("purging needs an admin")).message(),
        "purging needs an admin",
        "a refusal's own fixed sentence"
    );
}

/// A webhook payload that is no event gets 400 `BAD_REQUEST` with a fixed message and the
/// request's id, not the parser's text.
#[tokio::test]
async fn a_webhook_payload_error_names_no_parse_detail() {
    let payloads: [&[u8]; 3] = [
        b"{\"type\": ",
        b"{\"type\":\"PULL_ARTIFACT\",\"event_data\":7}",
        b"{\"type\":\"PULL_ARTIFACT\",\"event_data\":{\"resources\":[],\"repository\":{\"repo_full_name\":\"p/Bad Name\"}}}",
    ];
    for payload in payloads {
        let parsed = crate::webhook::HarborEvent::parse(payload).expect_err("no usable event");
        let detail = parsed.to_string();
        let error = ApiError::from(&parsed);
        assert_eq!(error.code(), "BAD_REQUEST");
        let response = error.answer("hook-1");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body_of(response).await;
        assert_eq!(body["errors"][0]["request_id"], "hook-1", "{body}");
        let message = body["errors"][0]["message"].as_str().expect("message");
        assert_ne!(message, detail);
        for leak in ["line", "column", "expected", "Bad Name", "invalid type"] {
            assert!(!message.contains(leak), "{message} (detail: {detail})");
        }
    }
}
