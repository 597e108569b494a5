//! The referrers API: `GET /v2/<repo>/referrers/<digest>`, unfiltered, following
//! `Link rel="next"` within the registry's origin, bounded in pages and bytes.
//!
//! REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers>

use std::collections::HashSet;

use oci_referrers::{
    DecodedIndex, Descriptor, Digest, INDEX_MEDIA_TYPE, decode_index, parse_next_link,
};
use reqwest::Method;
use reqwest::header::LINK;
use serde::Deserialize;
use url::Url;

use crate::budget::Reservation;
use crate::error::{LimitKind, UpstreamError};
use crate::guard::same_origin;
use crate::listing::{Collector, ReferrersSource, UpstreamReferrers};
use crate::observer::RequestKind;
use crate::session::{Session, Step, has_index_content_type, status_error};
use crate::transport::Answer;

/// Largest error body read to tell "unknown repository" from "no such route".
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// What the API said.
pub(crate) enum ApiOutcome {
    /// The list (possibly truncated).
    Listed(UpstreamReferrers),
    /// No referrers API answered. `remember` is false when the registry looks like it has
    /// the API but does not know the repository (404 `NAME_UNKNOWN`/`MANIFEST_UNKNOWN`).
    Absent { remember: bool },
}

pub(crate) async fn list_via_api(
    session: &Session<'_>,
    digest: &Digest,
) -> Result<ApiOutcome, UpstreamError> {
    let mut url = session.url(&format!("/v2/{}/referrers/{digest}", session.repository));
    let mut visited: HashSet<Url> = HashSet::new();
    let mut collector = Collector::default();
    let mut pages = 0usize;
    // Held until the list is returned: the pages read, then the descriptors decoded from them.
    let mut reservation = session.config.memory_budget.reservation();
    let truncated = loop {
        if pages >= session.config.max_pages {
            break true;
        }
        visited.insert(url.clone());
        let answer = session
            .send(RequestKind::Api, Method::GET, url.clone(), INDEX_MEDIA_TYPE)
            .await?;
        let status = answer.status().as_u16();
        let is_index = has_index_content_type(answer.headers());
        if pages == 0 {
            match status {
                200 if is_index => {}
                // An HTML login page, JSON of another kind: not the referrers API.
                200 => return Ok(ApiOutcome::Absent { remember: true }),
                404 => {
                    return Ok(ApiOutcome::Absent {
                        remember: !names_unknown_content(answer).await,
                    });
                }
                400 | 405 | 501 => return Ok(ApiOutcome::Absent { remember: true }),
                _ => return Err(status_error(answer.status(), answer.headers(), Step::Api)),
            }
        } else if status != 200 {
            return Err(status_error(answer.status(), answer.headers(), Step::Api));
        } else if !is_index {
            return Err(UpstreamError::Decode {
                what: "referrers page",
                reason: "a later page is not an OCI index".into(),
            });
        }
        let links: Vec<String> = answer
            .headers()
            .get_all(LINK)
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect();
        let page_url = answer.url.clone();
        let body = match answer
            .read_reserved(
                session.config.max_page_bytes,
                LimitKind::ReferrersPage,
                &mut reservation,
            )
            .await
        {
            Ok(body) => body,
            // Pages already read are worth serving; the list says it is not whole.
            Err(UpstreamError::Limit { .. }) if pages > 0 => break true,
            Err(error) => return Err(error),
        };
        let decoded = decode_reserved(&body, "referrers page", &mut reservation)?;
        collector.add(decoded);
        pages += 1;
        let links: Vec<&str> = links.iter().map(String::as_str).collect();
        match parse_next_link(&links, &page_url) {
            Ok(None) => break false,
            // A next page elsewhere, seen before, or unreadable: stop, and say so.
            Ok(Some(next))
                if !same_origin(&next, &session.registry.base_url) || visited.contains(&next) =>
            {
                break true;
            }
            Ok(Some(next)) => url = next,
            Err(_) => break true,
        }
    };
    Ok(ApiOutcome::Listed(collector.finish(
        ReferrersSource::Api,
        truncated,
        None,
    )))
}

/// The shortest element of `manifests` the decoder accepts as a descriptor (a one-character
/// `mediaType`, a sha256 digest, a one-digit size) and its comma: a page holds at most its
/// length over this many descriptors.
const MIN_DESCRIPTOR_JSON: usize = r#"{"mediaType":"a","digest":"sha256:","size":0},"#.len() + 64;

/// What one decoded descriptor takes beyond the bytes of its strings: the struct three times
/// over (in the page's decoded list, and in the listing's while it moves there, with room for
/// that list to double); the digest the listing keeps to drop duplicates, and its slot in that
/// set; the headers of their allocations. Several times the JSON of a short descriptor.
const DESCRIPTOR_WEIGHT: usize =
    3 * size_of::<Descriptor>() + size_of::<Digest>() + size_of::<u64>() + 4 * 16;

/// Decodes one page within `reservation`. Decoded, a page weighs several times its bytes, so
/// before decoding it reserves its bytes again (the strings the descriptors copy from it) and
/// the weight of as many descriptors as it could hold; then it keeps what the descriptors
/// decoded from it weigh. The page's first reservation, taken as it was read, is kept too: it
/// stands for the digests the listing copies to drop duplicates.
pub(crate) fn decode_reserved(
    body: &[u8],
    what: &'static str,
    reservation: &mut Reservation,
) -> Result<DecodedIndex, UpstreamError> {
    let most = body.len() / MIN_DESCRIPTOR_JSON + 1;
    let reserved = body.len() + most * DESCRIPTOR_WEIGHT;
    reservation.grow(reserved)?;
    let decoded = decode_index(body).map_err(|e| UpstreamError::Decode {
        what,
        reason: e.to_string(),
    });
    let kept = decoded.as_ref().map_or(0, |decoded| {
        body.len() + decoded.descriptors.len().min(most) * DESCRIPTOR_WEIGHT
    });
    reservation.shrink(reserved - kept);
    decoded
}

/// Whether a 404 carries an OCI error saying the repository or manifest is unknown, the
/// way registries with the API answer for a repository they do not hold.
async fn names_unknown_content(answer: Answer) -> bool {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
    }
    let Ok(body) = answer
        .read_capped(MAX_ERROR_BODY_BYTES, LimitKind::ReferrersPage)
        .await
    else {
        return false;
    };
    serde_json::from_slice::<ErrorBody>(&body).is_ok_and(|body| {
        body.errors
            .iter()
            .any(|e| e.code == "NAME_UNKNOWN" || e.code == "MANIFEST_UNKNOWN")
    })
}
