//! The result of a listing: the upstream's referrers, where they came from, and whether
//! the list is whole.

use std::collections::HashSet;

use oci_referrers::{DecodedIndex, Descriptor, Digest};

/// Where an upstream list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferrersSource {
    /// The referrers API.
    Api,
    /// The referrers tag schema (`<alg>-<hex>` tag).
    FallbackTag,
    /// Neither: no API and no fallback tag, so no referrers upstream.
    None,
}

impl ReferrersSource {
    /// `api`, `tag` or `none`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::FallbackTag => "tag",
            Self::None => "none",
        }
    }
}

/// The complete, unfiltered referrers list of one subject on one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamReferrers {
    /// Unique by digest, in the upstream's order (first occurrence wins).
    pub descriptors: Vec<Descriptor>,
    /// Where they came from.
    pub source: ReferrersSource,
    /// A cap (`max_pages`, a later page over `max_page_bytes`) or a `Link` that could not
    /// be followed (another origin, a loop, unreadable) cut the list short.
    pub truncated: bool,
    /// Digest of the fallback tag's manifest, when that is where the list came from: lets
    /// the next listing of a Docker Hub subject skip the `GET` when it has not changed.
    pub tag_digest: Option<Digest>,
    /// Invalid descriptors the upstream sent, dropped.
    pub rejected: usize,
}

impl UpstreamReferrers {
    /// No referrers: neither the API nor the fallback tag has any.
    #[must_use]
    pub fn none() -> Self {
        Self {
            descriptors: Vec::new(),
            source: ReferrersSource::None,
            truncated: false,
            tag_digest: None,
            rejected: 0,
        }
    }
}

/// Collects descriptors across pages, keeping the first of each digest.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    descriptors: Vec<Descriptor>,
    seen: HashSet<Digest>,
    rejected: usize,
}

impl Collector {
    pub(crate) fn add(&mut self, decoded: DecodedIndex) {
        self.rejected += decoded.rejected.len();
        for descriptor in decoded.descriptors {
            if self.seen.insert(descriptor.digest.clone()) {
                self.descriptors.push(descriptor);
            }
        }
    }

    pub(crate) fn finish(
        self,
        source: ReferrersSource,
        truncated: bool,
        tag_digest: Option<Digest>,
    ) -> UpstreamReferrers {
        UpstreamReferrers {
            descriptors: self.descriptors,
            source,
            truncated,
            tag_digest,
            rejected: self.rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrence_of_a_digest_wins_and_rejections_add_up() {
        let a: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let b: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let mut collector = Collector::default();
        collector.add(DecodedIndex {
            descriptors: vec![Descriptor::new("m/1", a.clone(), 1)],
            rejected: vec![oci_referrers::RejectedDescriptor {
                position: 1,
                reason: "bad".into(),
            }],
        });
        collector.add(DecodedIndex {
            descriptors: vec![
                Descriptor::new("m/2", a.clone(), 2),
                Descriptor::new("m/1", b.clone(), 3),
            ],
            rejected: vec![],
        });
        let list = collector.finish(ReferrersSource::Api, false, None);
        assert_eq!(list.descriptors.len(), 2);
        assert_eq!(list.descriptors[0].media_type, "m/1");
        assert_eq!(list.descriptors[1].digest, b);
        assert_eq!(list.rejected, 1);
    }
}
