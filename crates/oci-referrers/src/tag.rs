//! The referrers tag schema: where registries without the referrers API keep the list.

use crate::digest::Digest;

const MAX_ALGORITHM_LEN: usize = 32;
const MAX_REFERENCE_LEN: usize = 64;

/// The fallback tag `<alg>-<ref>` for a subject digest, e.g. `sha256-<hex>`.
///
/// The algorithm is cut to 32 characters and the encoded part to 64, and anything a tag
/// may not hold (outside `[a-zA-Z0-9_.-]`) becomes `-`; for `sha512` this means only the
/// first 64 hex characters name the tag.
///
/// REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#referrers-tag-schema>
#[must_use]
pub fn fallback_tag(digest: &Digest) -> String {
    let tag_safe = |c: char| {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            c
        } else {
            '-'
        }
    };
    let algorithm = digest
        .algorithm()
        .chars()
        .take(MAX_ALGORITHM_LEN)
        .map(tag_safe);
    let reference = digest
        .encoded()
        .chars()
        .take(MAX_REFERENCE_LEN)
        .map(tag_safe);
    algorithm
        .chain(std::iter::once('-'))
        .chain(reference)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the distribution-spec's "Referrers Tag Schema" section.
    #[test]
    fn spec_example() {
        let subject: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        assert_eq!(fallback_tag(&subject), format!("sha256-{}", "a".repeat(64)));
    }

    #[test]
    fn sha512_reference_is_cut_to_64_characters() {
        let hex: String = "0123456789abcdef".repeat(8);
        let subject: Digest = format!("sha512:{hex}").parse().unwrap();
        assert_eq!(fallback_tag(&subject), format!("sha512-{}", &hex[..64]));
    }

    #[test]
    fn tag_fits_the_tag_grammar() {
        let subject: Digest = format!("sha384:{}", "f".repeat(96)).parse().unwrap();
        let tag = fallback_tag(&subject);
        assert!(tag.len() <= 128);
        assert!(
            tag.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        );
        assert_eq!(tag, format!("sha384-{}", "f".repeat(64)));
    }
}
