//! Core's referrers endpoint, called with the caller's own credentials: core both authorizes the
//! caller for the repository and returns the local referrers in one `GET` (core routes only
//! `GET` there). Anything but a `200` with an index is core's answer, relayed verbatim.

use std::collections::HashSet;

use awc::http::header::{self, HeaderMap};
use awc::http::{Method, StatusCode};
use bytes::Bytes;
use oci_referrers::{
    Descriptor, Digest, INDEX_MEDIA_TYPE, RepositoryName, decode_index, media_type_essence,
};
use url::Url;

use crate::api::CoreClient;
use crate::error::HarborError;
use crate::transport::copy_end_to_end_headers;

/// The caller's headers core needs: who it is, where it came in (core builds its token realm
/// from `Host` and `X-Forwarded-Proto`), and the trace it is part of (W3C trace context).
const CARRIED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "traceparent",
    "tracestate",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Largest answer read from core's referrers endpoint, per page.
pub const CORE_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// Harbor 2.8–2.10 page their answer; newer ones send everything at once.
const MAX_CORE_PAGES: usize = 100;

/// Core's answer as it was: status, end-to-end headers and body.
#[derive(Debug, Clone)]
pub struct CoreAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What core said about the caller's referrers request.
#[derive(Debug, Clone)]
pub enum CoreReferrers {
    /// `200` with an index: the caller may read the repository; these are its local referrers
    /// (every page), and `first` is core's first answer, unchanged.
    Listed {
        descriptors: Vec<Descriptor>,
        /// Invalid descriptors dropped from core's list.
        rejected: usize,
        first: CoreAnswer,
        /// Core's whole list is in `first`'s body (core did not page it).
        one_page: bool,
    },
    /// Anything else (401 with its challenge, 400, 404, 5xx…): to be relayed verbatim, and
    /// nothing else done.
    Relayed(CoreAnswer),
}

impl CoreClient {
    /// `GET` core's referrers of `digest` in `name`, without any query (the sidecar filters and
    /// pages itself), carrying the caller's credentials and forwarding headers.
    pub async fn local_referrers(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        caller: &HeaderMap,
        request_id: &str,
    ) -> Result<CoreReferrers, HarborError> {
        self.bounded(self.list_local_referrers(name, digest, caller, request_id))
            .await
    }

    async fn list_local_referrers(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        caller: &HeaderMap,
        request_id: &str,
    ) -> Result<CoreReferrers, HarborError> {
        let first_url = self.url(&format!("/v2/{name}/referrers/{digest}"));
        let first = self.fetch_page(&first_url, caller, request_id).await?;
        if first.status != StatusCode::OK || !is_index_content_type(&first.headers) {
            return Ok(CoreReferrers::Relayed(first));
        }
        let Ok(decoded) = decode_index(&first.body) else {
            return Ok(CoreReferrers::Relayed(first));
        };
        let mut descriptors = decoded.descriptors;
        let mut rejected = decoded.rejected.len();

        let mut visited = HashSet::from([first_url.clone()]);
        let mut next = self.next_page(&first.headers, &first_url);
        while let Some(url) = next {
            if !visited.insert(url.clone()) || visited.len() > MAX_CORE_PAGES {
                tracing::warn!(%url, "core's referrers pages loop or exceed the page cap; using what was read");
                break;
            }
            let page = self.fetch_page(&url, caller, request_id).await?;
            // Core's internal URL stays in the log, never in an answer to the caller.
            if page.status != StatusCode::OK {
                tracing::warn!(%url, status = %page.status, "core failed a later referrers page");
                return Err(HarborError::Status {
                    what: "a later page of referrers".into(),
                    status: page.status.as_u16(),
                });
            }
            let decoded = decode_index(&page.body).map_err(|e| {
                tracing::warn!(%url, error = %e, "core sent an unreadable referrers page");
                HarborError::Invalid {
                    what: "a later page of referrers".into(),
                    reason: e.to_string(),
                }
            })?;
            descriptors.extend(decoded.descriptors);
            rejected += decoded.rejected.len();
            next = self.next_page(&page.headers, &url);
        }
        Ok(CoreReferrers::Listed {
            descriptors,
            rejected,
            first,
            one_page: visited.len() == 1,
        })
    }

    async fn fetch_page(
        &self,
        url: &str,
        caller: &HeaderMap,
        request_id: &str,
    ) -> Result<CoreAnswer, HarborError> {
        let mut request = self.connections.request(Method::GET, url).insert_header((
            header::ACCEPT,
            format!("{INDEX_MEDIA_TYPE}, application/json;q=0.9"),
        ));
        for name in CARRIED_HEADERS {
            for value in caller.get_all(*name) {
                request = request.append_header((*name, value.clone()));
            }
        }
        request = request.insert_header(("x-request-id", request_id));
        let (mut response, _slot) = self
            .connections
            .send(request.send(), std::future::ready(()))
            .await
            .map_err(|e| HarborError::from_send(&e))?;
        let body = response
            .body()
            .limit(CORE_BODY_LIMIT)
            .await
            .map_err(|e| match e {
                awc::error::PayloadError::Overflow => HarborError::TooLarge {
                    what: "referrers".into(),
                    limit: CORE_BODY_LIMIT,
                },
                other => HarborError::Unreachable(other.to_string()),
            })?;
        Ok(CoreAnswer {
            status: response.status(),
            headers: end_to_end_headers(response.headers()),
            body,
        })
    }

    /// Core's `Link rel="next"`, only when it stays on core's own origin.
    fn next_page(&self, headers: &HeaderMap, current: &str) -> Option<String> {
        let values: Vec<&str> = headers
            .get_all(header::LINK)
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return None;
        }
        let base = Url::parse(current).ok()?;
        match oci_referrers::parse_next_link(&values, &base) {
            Ok(Some(next)) if next.origin() == self.base.origin() => {
                // Core built the link from the caller's Host; ask core itself for the page.
                let path = &next[url::Position::BeforePath..];
                Some(self.url(path))
            }
            Ok(Some(next)) if next.path().starts_with("/v2/") => {
                Some(self.url(&next[url::Position::BeforePath..]))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable Link from core; using the first page");
                None
            }
        }
    }
}

/// Core's index answers: the OCI index type, or `application/json` from Harbor 2.8–2.9.
fn is_index_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|value| {
            oci_referrers::is_index_content_type(value)
                || media_type_essence(value).eq_ignore_ascii_case("application/json")
        })
}

/// Core's headers minus those that describe the connection or the body's framing (the
/// sidecar frames its own answer).
fn end_to_end_headers(from: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    copy_end_to_end_headers(from, &mut headers);
    headers.remove(header::CONTENT_LENGTH);
    headers
}
