//! The referrers query string (`artifactType`, `n`, `last`), decoded by hand from the raw query.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::digest::{Digest, DigestError};
use crate::media_type::{ArtifactType, ArtifactTypeError};

/// What a client asked for in `GET /v2/<name>/referrers/<digest>?…`.
///
/// `artifactType` is the spec's filter; `n` and `last` are this service's paging cursor,
/// modelled on the tag list's. Everything else (containerd's `ns`, …) is ignored.
///
/// REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers>
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferrersQuery {
    /// Keep referrers whose artifact type is any of these; empty means no filter.
    /// Deduplicated, in the order first given.
    pub artifact_types: Vec<ArtifactType>,
    /// Largest page wanted; at least 1. The upper bound is the caller's policy.
    pub n: Option<usize>,
    /// Serve only referrers whose digest sorts after this one.
    pub last: Option<Digest>,
}

/// Which query parameter is bad, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// An `artifactType` value is not a bare media type.
    #[error("invalid artifactType: {0}")]
    InvalidArtifactType(#[source] ArtifactTypeError),
    /// `n` is not a decimal integer of at least 1 (the raw, decoded value is kept).
    #[error("invalid n {0:?}: must be a decimal integer of at least 1")]
    InvalidN(String),
    /// `last` is not a digest.
    #[error("invalid last: {0}")]
    InvalidLast(#[source] DigestError),
    /// One of our parameters has a malformed `%` escape or is not UTF-8 once decoded.
    #[error("query parameter is not valid percent-encoded UTF-8")]
    InvalidEncoding,
}

/// Why [`percent_decode`] refused a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    #[error("malformed percent escape")]
    MalformedEscape,
    /// The decoded bytes are not UTF-8.
    #[error("percent-decoded value is not UTF-8")]
    InvalidUtf8,
}

/// RFC 3986 `unreserved` is all that goes out unescaped, so `+` and `/` in media types
/// survive any decoder on the other side.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const ARTIFACT_TYPE: &[u8] = b"artifactType";
const N: &[u8] = b"n";
const LAST: &[u8] = b"last";

/// Decodes `%XX` escapes and nothing else: a `+` stays a `+`, unlike form decoding, which
/// would turn `application/vnd.foo+json` into `application/vnd.foo json`.
///
/// # Errors
///
/// [`DecodeError`] on a `%` not followed by two hex digits, or bytes that are not UTF-8.
///
/// REF: <https://www.rfc-editor.org/rfc/rfc3986#section-2.1>
pub fn percent_decode(s: &str) -> Result<String, DecodeError> {
    if !has_well_formed_escapes(s) {
        return Err(DecodeError::MalformedEscape);
    }
    percent_decode_str(s)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| DecodeError::InvalidUtf8)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (`A-Za-z0-9-._~`).
#[must_use]
pub fn encode_query_value(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

fn has_well_formed_escapes(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let escape = bytes.get(i + 1..i + 3);
            if !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn parse_n(value: &str) -> Result<usize, QueryError> {
    let invalid = || QueryError::InvalidN(value.to_owned());
    // `usize::from_str` would also take a leading `+`.
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(invalid()),
    }
}

impl ReferrersQuery {
    /// Parses the raw query string (without the leading `?`).
    ///
    /// - `artifactType` may repeat (any of them matches); an empty value adds no filter.
    /// - `n` and `last`, when repeated, are each validated and the first one is used, as Go's
    ///   `url.Values.Get` does in registries; an empty value counts as absent.
    /// - A parameter without `=` counts as present and empty.
    /// - Unknown parameters are ignored without being decoded.
    ///
    /// # Errors
    ///
    /// [`QueryError`] naming the first of our parameters that is malformed.
    pub fn parse(raw_query: &str) -> Result<Self, QueryError> {
        let mut query = Self::default();
        for pair in raw_query.split('&').filter(|pair| !pair.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            if !has_well_formed_escapes(raw_key) {
                // Cannot be one of ours.
                continue;
            }
            let key: Vec<u8> = percent_decode_str(raw_key).collect();
            if ![ARTIFACT_TYPE, N, LAST].contains(&key.as_slice()) {
                continue;
            }
            let value = percent_decode(raw_value).map_err(|_| QueryError::InvalidEncoding)?;
            if value.is_empty() {
                continue;
            }
            match key.as_slice() {
                ARTIFACT_TYPE => {
                    let artifact_type: ArtifactType =
                        value.parse().map_err(QueryError::InvalidArtifactType)?;
                    if !query.artifact_types.contains(&artifact_type) {
                        query.artifact_types.push(artifact_type);
                    }
                }
                N => {
                    let n = parse_n(&value)?;
                    query.n.get_or_insert(n);
                }
                _ => {
                    let last: Digest = value.parse().map_err(QueryError::InvalidLast)?;
                    query.last.get_or_insert(last);
                }
            }
        }
        Ok(query)
    }

    /// Whether an `artifactType` filter was requested (and so `OCI-Filters-Applied` is due).
    #[must_use]
    pub fn is_filtered(&self) -> bool {
        !self.artifact_types.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn parse(raw: &str) -> Result<ReferrersQuery, QueryError> {
        ReferrersQuery::parse(raw)
    }

    fn types(query: &ReferrersQuery) -> Vec<&str> {
        query
            .artifact_types
            .iter()
            .map(ArtifactType::as_str)
            .collect()
    }

    #[test]
    fn empty_query_is_no_filter_and_no_paging() {
        assert_eq!(parse("").unwrap(), ReferrersQuery::default());
        assert!(!parse("").unwrap().is_filtered());
    }

    #[test]
    fn plus_stays_a_literal_plus() {
        let query = parse("artifactType=application/vnd.cncf.notary.signature+json").unwrap();
        assert_eq!(
            types(&query),
            ["application/vnd.cncf.notary.signature+json"]
        );
        assert!(query.is_filtered());
    }

    #[test]
    fn encoded_plus_and_slash_decode() {
        let query = parse("artifactType=application%2Fvnd.foo%2Bjson").unwrap();
        assert_eq!(types(&query), ["application/vnd.foo+json"]);
    }

    #[test]
    fn repeated_artifact_types_are_deduplicated_in_order() {
        let query =
            parse("artifactType=b/x&artifactType=a/y&artifactType=b%2Fx&artifactType=").unwrap();
        assert_eq!(types(&query), ["b/x", "a/y"]);
    }

    #[test]
    fn empty_artifact_type_is_no_filter() {
        assert!(!parse("artifactType=").unwrap().is_filtered());
        assert!(!parse("artifactType").unwrap().is_filtered());
        assert!(!parse("artifactType=&n=5").unwrap().is_filtered());
    }

    #[test]
    fn parses_n_and_last() {
        let query = parse(&format!("n=10&last={DIGEST}")).unwrap();
        assert_eq!(query.n, Some(10));
        assert_eq!(query.last.unwrap().as_str(), DIGEST);
        let encoded = parse(&format!("last={}", encode_query_value(DIGEST))).unwrap();
        assert_eq!(encoded.last.unwrap().as_str(), DIGEST);
        assert_eq!(parse("n=007").unwrap().n, Some(7));
    }

    #[test]
    fn first_n_wins_but_all_are_validated() {
        assert_eq!(parse("n=3&n=9").unwrap().n, Some(3));
        assert_eq!(parse("n=3&n=x"), Err(QueryError::InvalidN("x".into())));
    }

    #[test]
    fn rejects_bad_n() {
        for (raw, value) in [
            ("n=0", "0"),
            ("n=abc", "abc"),
            ("n=-1", "-1"),
            ("n=%2B5", "+5"),
            ("n=1.5", "1.5"),
            ("n=%201", " 1"),
            ("n=99999999999999999999999999", "99999999999999999999999999"),
        ] {
            assert_eq!(parse(raw), Err(QueryError::InvalidN(value.into())), "{raw}");
        }
    }

    #[test]
    fn empty_n_and_last_are_absent() {
        assert_eq!(parse("n=&last=").unwrap(), ReferrersQuery::default());
        assert_eq!(parse("n&last").unwrap(), ReferrersQuery::default());
    }

    #[test]
    fn rejects_bad_last() {
        assert!(matches!(
            parse("last=sha256:abc"),
            Err(QueryError::InvalidLast(DigestError::WrongLength { .. }))
        ));
        assert!(matches!(
            parse("last=md5:abc"),
            Err(QueryError::InvalidLast(_))
        ));
    }

    #[test]
    fn rejects_bad_artifact_type() {
        assert!(matches!(
            parse("artifactType=notamediatype"),
            Err(QueryError::InvalidArtifactType(
                ArtifactTypeError::MissingSlash
            ))
        ));
        // A form encoder's `+` for a space would have to be sent as a literal space.
        assert!(matches!(
            parse("artifactType=application/vnd.foo%20json"),
            Err(QueryError::InvalidArtifactType(_))
        ));
    }

    #[test]
    fn rejects_bad_encoding_in_our_parameters() {
        assert_eq!(
            parse("artifactType=a/%ff"),
            Err(QueryError::InvalidEncoding)
        );
        assert_eq!(
            parse("artifactType=a/%zz"),
            Err(QueryError::InvalidEncoding)
        );
        assert_eq!(parse("n=%"), Err(QueryError::InvalidEncoding));
    }

    #[test]
    fn ignores_unknown_parameters_even_when_malformed() {
        let query = parse("ns=docker.io&foo&bar=%ff&%zz=1&N=0&artifacttype=x&&n=2").unwrap();
        assert_eq!(query.n, Some(2));
        assert!(!query.is_filtered());
    }

    #[test]
    fn encoded_keys_are_recognized() {
        assert_eq!(parse("%6E=4").unwrap().n, Some(4));
    }

    #[test]
    fn percent_decode_is_not_form_decoding() {
        assert_eq!(percent_decode("a+b%20c%2B").unwrap(), "a+b c+");
        assert_eq!(percent_decode("%E2%9C%93").unwrap(), "✓");
        assert_eq!(percent_decode("%"), Err(DecodeError::MalformedEscape));
        assert_eq!(percent_decode("%4"), Err(DecodeError::MalformedEscape));
        assert_eq!(percent_decode("%C3%28"), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn encode_query_value_escapes_all_but_unreserved() {
        assert_eq!(
            encode_query_value("application/vnd.foo+json"),
            "application%2Fvnd.foo%2Bjson"
        );
        assert_eq!(encode_query_value("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_query_value("sha256:ab"), "sha256%3Aab");
        assert_eq!(encode_query_value("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(encode_query_value("✓"), "%E2%9C%93");
    }
}
