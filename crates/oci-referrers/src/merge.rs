//! Merging upstream and local referrers into one sorted list, and filtering it by artifact type.

use std::borrow::Borrow;

use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::media_type::ArtifactType;

/// The union of both lists, one descriptor per digest, sorted by digest.
///
/// The upstream descriptor wins over a local one with the same digest: Harbor 2.8–2.10
/// reports the wrong `size` and `artifactType` for local referrers and drops `data`, `urls`
/// and `platform`. Within each list the first occurrence wins. Sorting by digest makes
/// pages stable whatever order either side listed them in.
///
/// Works on owned descriptors or on references (`merge(cached.iter(), local.iter())`), so a
/// cached list can be served without copying it.
#[must_use]
pub fn merge<D: Borrow<Descriptor>>(
    upstream: impl IntoIterator<Item = D>,
    local: impl IntoIterator<Item = D>,
) -> Vec<D> {
    let mut all: Vec<D> = upstream.into_iter().chain(local).collect();
    // Stable: among equal digests the earlier one (upstream before local) stays first.
    all.sort_by(|a, b| digest_of(a).cmp(digest_of(b)));
    all.dedup_by(|later, earlier| digest_of(later) == digest_of(earlier));
    all
}

fn digest_of<D: Borrow<Descriptor>>(descriptor: &D) -> &Digest {
    &Borrow::<Descriptor>::borrow(descriptor).digest
}

/// Keeps the descriptors whose `artifactType` is exactly one of `types`; an empty `types`
/// keeps everything.
///
/// REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers>
#[must_use]
pub fn filter_by_artifact_type<D: Borrow<Descriptor>>(
    mut descriptors: Vec<D>,
    types: &[ArtifactType],
) -> Vec<D> {
    if !types.is_empty() {
        descriptors.retain(|descriptor| {
            Borrow::<Descriptor>::borrow(descriptor)
                .artifact_type()
                .is_some_and(|kind| types.iter().any(|wanted| wanted.as_str() == kind))
        });
    }
    descriptors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn descriptor(c: char, size: u64, artifact_type: Option<&str>) -> Descriptor {
        let mut descriptor = Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json",
            digest(c),
            size,
        );
        descriptor.artifact_type = artifact_type.map(str::to_owned);
        descriptor
    }

    #[test]
    fn upstream_wins_and_result_is_sorted() {
        let upstream = vec![descriptor('c', 10, None), descriptor('a', 11, None)];
        let local = vec![
            descriptor('b', 1, None),
            descriptor('a', 2, None),
            descriptor('b', 3, None),
        ];
        let merged = merge(upstream, local);
        let got: Vec<_> = merged.iter().map(|d| (d.digest.clone(), d.size)).collect();
        assert_eq!(
            got,
            [(digest('a'), 11), (digest('b'), 1), (digest('c'), 10)]
        );
    }

    #[test]
    fn filter_matches_whole_strings_only() {
        let list = vec![
            descriptor('a', 1, Some("application/vnd.example.sbom.v1")),
            descriptor('b', 1, Some("application/vnd.example.signature.v1")),
            descriptor('c', 1, None),
            descriptor('d', 1, Some("application/vnd.example.sbom.v1+json")),
        ];
        let sbom: ArtifactType = "application/vnd.example.sbom.v1".parse().unwrap();
        let kept = filter_by_artifact_type(list.clone(), std::slice::from_ref(&sbom));
        assert_eq!(kept, vec![list[0].clone()]);
        assert_eq!(filter_by_artifact_type(list.clone(), &[]), list);
        let signature: ArtifactType = "application/vnd.example.signature.v1".parse().unwrap();
        assert_eq!(
            filter_by_artifact_type(list.clone(), &[sbom, signature]).len(),
            2
        );
    }
}
