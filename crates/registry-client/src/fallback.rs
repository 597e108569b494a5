//! The referrers tag schema: the index at tag `<alg>-<hex>` on registries without the API.
//! On Docker Hub a manifest `GET` counts as a pull, so the tag is checked with `HEAD` first
//! and read only when its digest changed since the previous listing.
//!
//! REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#referrers-tag-schema>

use oci_referrers::{Digest, INDEX_MEDIA_TYPE, fallback_tag};
use reqwest::Method;
use reqwest::header::HeaderMap;
use sha2::{Digest as _, Sha256};

use crate::error::{LimitKind, UpstreamError};
use crate::listing::{Collector, ReferrersSource, UpstreamReferrers};
use crate::observer::RequestKind;
use crate::referrers::decode_reserved;
use crate::registry::RegistryKind;
use crate::session::{Session, Step, has_index_content_type, status_error};

const CONTENT_DIGEST: &str = "docker-content-digest";

pub(crate) async fn read_fallback_tag(
    session: &Session<'_>,
    digest: &Digest,
    previous: Option<&UpstreamReferrers>,
) -> Result<UpstreamReferrers, UpstreamError> {
    let url = session.url(&format!(
        "/v2/{}/manifests/{}",
        session.repository,
        fallback_tag(digest)
    ));
    let previous = previous.filter(|p| p.source == ReferrersSource::FallbackTag && !p.truncated);
    if session.registry.kind == RegistryKind::DockerHub
        && let Some(previous) = previous
        && let Some(previous_digest) = &previous.tag_digest
    {
        let answer = session
            .send(
                RequestKind::Tag,
                Method::HEAD,
                url.clone(),
                INDEX_MEDIA_TYPE,
            )
            .await?;
        match answer.status().as_u16() {
            200 if content_digest(answer.headers()).as_ref() == Some(previous_digest) => {
                return Ok(previous.clone());
            }
            200 => {}
            404 => return Ok(UpstreamReferrers::none()),
            _ => {
                return Err(status_error(
                    answer.status(),
                    answer.headers(),
                    Step::Fallback,
                ));
            }
        }
    }
    let answer = session
        .send(RequestKind::Tag, Method::GET, url, INDEX_MEDIA_TYPE)
        .await?;
    match answer.status().as_u16() {
        200 => {}
        404 => return Ok(UpstreamReferrers::none()),
        _ => {
            return Err(status_error(
                answer.status(),
                answer.headers(),
                Step::Fallback,
            ));
        }
    }
    if !has_index_content_type(answer.headers()) {
        return Err(UpstreamError::Decode {
            what: "fallback index",
            reason: "the fallback tag is not an OCI index".into(),
        });
    }
    let mut reservation = session.config.memory_budget.reservation();
    let body = answer
        .read_reserved(
            session.config.max_page_bytes,
            LimitKind::FallbackIndex,
            &mut reservation,
        )
        .await?;
    let decoded = decode_reserved(&body, "fallback index", &mut reservation)?;
    // The digest of the bytes read, not the header: it is what a later HEAD is compared to
    // and what the registry would report for these bytes.
    let tag_digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)))
        .parse()
        .ok();
    let mut collector = Collector::default();
    collector.add(decoded);
    Ok(collector.finish(ReferrersSource::FallbackTag, false, tag_digest))
}

fn content_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get(CONTENT_DIGEST)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
