//! Media types: bare RFC 6838 artifact types used to filter referrers, and reading the media
//! type of a `Content-Type` value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use crate::index::INDEX_MEDIA_TYPE;

/// The longest artifact type accepted.
pub const MAX_ARTIFACT_TYPE_LEN: usize = 255;

/// RFC 6838 caps each of type and subtype at 127 characters.
const MAX_PART_LEN: usize = 127;

/// A validated artifact type such as `application/vnd.cncf.notary.signature`.
///
/// A bare `type "/" subtype`: the referrers API compares artifact types as whole strings,
/// so parameters (`; charset=…`) are refused rather than silently never matching.
///
/// REF: <https://www.rfc-editor.org/rfc/rfc6838#section-4.2>
/// REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers>
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct ArtifactType(String);

/// Why a string is not an [`ArtifactType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactTypeError {
    /// The value is empty.
    #[error("artifact type is empty")]
    Empty,
    /// The value is longer than [`MAX_ARTIFACT_TYPE_LEN`].
    #[error("artifact type is {len} characters long, the limit is {MAX_ARTIFACT_TYPE_LEN}")]
    TooLong {
        /// Length of the rejected value in bytes.
        len: usize,
    },
    /// There is no `/` between type and subtype.
    #[error("artifact type has no '/' between type and subtype")]
    MissingSlash,
    /// Type or subtype is empty, longer than 127 characters, or does not start with a letter
    /// or digit.
    #[error("artifact type {part} is not a restricted-name")]
    InvalidPart {
        /// `"type"` or `"subtype"`.
        part: &'static str,
    },
    /// A character outside RFC 6838 `restricted-name-chars` (this includes `;`: parameters
    /// are not allowed).
    #[error("artifact type has an invalid character {0:?}")]
    InvalidCharacter(char),
}

impl ArtifactType {
    /// The media type as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `restricted-name-chars = ALPHA / DIGIT / "!" / "#" / "$" / "&" / "-" / "^" / "_" / "." / "+"`
fn is_restricted_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c)
}

fn check_part(part: &str, which: &'static str) -> Result<(), ArtifactTypeError> {
    let starts_alnum = part
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !starts_alnum || part.len() > MAX_PART_LEN {
        return Err(ArtifactTypeError::InvalidPart { part: which });
    }
    Ok(())
}

impl FromStr for ArtifactType {
    type Err = ArtifactTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ArtifactTypeError::Empty);
        }
        if s.len() > MAX_ARTIFACT_TYPE_LEN {
            return Err(ArtifactTypeError::TooLong { len: s.len() });
        }
        let (kind, subtype) = s.split_once('/').ok_or(ArtifactTypeError::MissingSlash)?;
        if let Some(bad) = kind
            .chars()
            .chain(subtype.chars())
            .find(|&c| !is_restricted_name_char(c))
        {
            return Err(ArtifactTypeError::InvalidCharacter(bad));
        }
        check_part(kind, "type")?;
        check_part(subtype, "subtype")?;
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for ArtifactType {
    type Error = ArtifactTypeError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<ArtifactType> for String {
    fn from(artifact_type: ArtifactType) -> Self {
        artifact_type.0
    }
}

impl fmt::Display for ArtifactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ArtifactType {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for ArtifactType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// The media type of a `Content-Type` value, without its parameters (`; charset=…`) and the
/// whitespace around it.
///
/// REF: <https://www.rfc-editor.org/rfc/rfc9110#section-8.3.1>
#[must_use]
pub fn media_type_essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// Whether a `Content-Type` value says the body is an OCI image index. Parameters are
/// ignored and case does not matter (media types are case-insensitive); clients accept exactly
/// this type for a referrers list.
#[must_use]
pub fn is_index_content_type(content_type: &str) -> bool {
    media_type_essence(content_type).eq_ignore_ascii_case(INDEX_MEDIA_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_of_an_index() {
        for index in [
            "application/vnd.oci.image.index.v1+json",
            " Application/VND.oci.image.index.v1+JSON ",
            "application/vnd.oci.image.index.v1+json; charset=utf-8",
        ] {
            assert!(is_index_content_type(index), "{index}");
        }
        for other in [
            "",
            "application/json",
            "text/html; application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.index.v1+jsonx",
        ] {
            assert!(!is_index_content_type(other), "{other}");
        }
        assert_eq!(
            media_type_essence("application/json ; charset=utf-8"),
            "application/json"
        );
    }

    fn parse(s: &str) -> Result<ArtifactType, ArtifactTypeError> {
        s.parse()
    }

    #[test]
    fn accepts_real_artifact_types() {
        for good in [
            "application/vnd.cncf.notary.signature",
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            "application/vnd.example.sbom.v1",
            "application/spdx+json",
            "text/plain",
            "application/vnd.oci.empty.v1+json",
            "Application/X-Thing!#$&^_",
        ] {
            assert_eq!(parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn rejects_parameters() {
        assert_eq!(
            parse("application/json; charset=utf-8"),
            Err(ArtifactTypeError::InvalidCharacter(';'))
        );
        assert_eq!(
            parse("application/json;v=1"),
            Err(ArtifactTypeError::InvalidCharacter(';'))
        );
    }

    #[test]
    fn rejects_malformed_media_types() {
        assert_eq!(parse(""), Err(ArtifactTypeError::Empty));
        assert_eq!(parse("application"), Err(ArtifactTypeError::MissingSlash));
        assert_eq!(
            parse("/json"),
            Err(ArtifactTypeError::InvalidPart { part: "type" })
        );
        assert_eq!(
            parse("application/"),
            Err(ArtifactTypeError::InvalidPart { part: "subtype" })
        );
        assert_eq!(
            parse("application/+json"),
            Err(ArtifactTypeError::InvalidPart { part: "subtype" })
        );
        assert_eq!(
            parse("application/a/b"),
            Err(ArtifactTypeError::InvalidCharacter('/'))
        );
        assert_eq!(
            parse("application/vnd foo"),
            Err(ArtifactTypeError::InvalidCharacter(' '))
        );
    }

    #[test]
    fn enforces_length_limits() {
        let part_too_long = format!("application/{}", "a".repeat(128));
        assert_eq!(
            parse(&part_too_long),
            Err(ArtifactTypeError::InvalidPart { part: "subtype" })
        );
        let longest = format!("{}/{}", "a".repeat(127), "b".repeat(127));
        assert!(parse(&longest).is_ok());
        let too_long = format!("{}/{}", "a".repeat(127), "b".repeat(128));
        assert!(parse(&too_long).is_err());
        assert_eq!(
            parse(&"a".repeat(300)),
            Err(ArtifactTypeError::TooLong { len: 300 })
        );
    }
}
