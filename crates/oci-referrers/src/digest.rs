//! Content digests (`sha256:<hex>`), parsed once at the edge and trusted afterwards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

/// A validated content digest such as `sha256:9f86d0…`.
///
/// Only the algorithms the image-spec registers are accepted (`sha256`, `sha512`, and
/// `sha384`, which registries use in practice), each with its exact lowercase-hex length:
/// a digest nobody can verify is useless as a referrers subject or cursor.
///
/// Ordering is the byte order of the whole string `"<algorithm>:<encoded>"`; that is what
/// "sorted by digest" means everywhere in this crate.
///
/// REF: <https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests>
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Digest(String);

/// Why a string is not a [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string has no `:` between algorithm and encoded part.
    #[error("digest has no ':' separating algorithm and encoded part")]
    MissingSeparator,
    /// The algorithm does not match `[a-z0-9]+([+._-][a-z0-9]+)*`.
    #[error("digest algorithm is not well formed")]
    MalformedAlgorithm,
    /// The algorithm is well formed but not one this service can verify.
    #[error("digest algorithm {0:?} is not supported (sha256, sha384, sha512)")]
    UnsupportedAlgorithm(String),
    /// The encoded part has the wrong length for its algorithm.
    #[error("{algorithm} digest must have {expected} hex characters, got {actual}")]
    WrongLength {
        /// The digest algorithm.
        algorithm: &'static str,
        /// The length the algorithm requires.
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// The encoded part holds something other than lowercase hex.
    #[error("digest encoded part must be lowercase hex")]
    NotLowercaseHex,
}

/// The registered algorithms and the hex length each one requires.
const ALGORITHMS: [(&str, usize); 3] = [("sha256", 64), ("sha384", 96), ("sha512", 128)];

impl Digest {
    /// The digest as written: `"<algorithm>:<encoded>"`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The algorithm part, e.g. `sha256`.
    #[must_use]
    pub fn algorithm(&self) -> &str {
        self.parts().0
    }

    /// The encoded (hex) part.
    #[must_use]
    pub fn encoded(&self) -> &str {
        self.parts().1
    }

    /// Whether the encoded part is all zeros: oras-go probes referrers support with
    /// `sha256:000…0`, which must get an empty list rather than an error.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.encoded().bytes().all(|b| b == b'0')
    }

    fn parts(&self) -> (&str, &str) {
        // Parsing guaranteed exactly one ':'; the fallback keeps this total without a panic.
        self.0.split_once(':').unwrap_or((&self.0, ""))
    }
}

/// `algorithm-component ::= [a-z0-9]+`, joined by `algorithm-separator ::= [+._-]`.
fn is_well_formed_algorithm(algorithm: &str) -> bool {
    !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|component| {
            !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, encoded) = s.split_once(':').ok_or(DigestError::MissingSeparator)?;
        if !is_well_formed_algorithm(algorithm) {
            return Err(DigestError::MalformedAlgorithm);
        }
        let (algorithm, expected) = ALGORITHMS
            .iter()
            .copied()
            .find(|(name, _)| *name == algorithm)
            .ok_or_else(|| DigestError::UnsupportedAlgorithm(algorithm.to_owned()))?;
        if !encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::NotLowercaseHex);
        }
        if encoded.len() != expected {
            return Err(DigestError::WrongLength {
                algorithm,
                expected,
                actual: encoded.len(),
            });
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> Self {
        digest.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(len: usize) -> String {
        "0123456789abcdef".chars().cycle().take(len).collect()
    }

    #[test]
    fn accepts_registered_algorithms_with_exact_lengths() {
        for (algorithm, len) in ALGORITHMS {
            let text = format!("{algorithm}:{}", hex(len));
            let digest: Digest = text.parse().unwrap();
            assert_eq!(digest.as_str(), text);
            assert_eq!(digest.algorithm(), algorithm);
            assert_eq!(digest.encoded(), hex(len));
            assert_eq!(digest.to_string(), text);
        }
    }

    #[test]
    fn rejects_sha256_with_63_characters() {
        let err = format!("sha256:{}", hex(63)).parse::<Digest>().unwrap_err();
        assert_eq!(
            err,
            DigestError::WrongLength {
                algorithm: "sha256",
                expected: 64,
                actual: 63
            }
        );
    }

    #[test]
    fn rejects_sha512_with_sha256_length() {
        assert!(format!("sha512:{}", hex(64)).parse::<Digest>().is_err());
    }

    #[test]
    fn rejects_uppercase_hex() {
        let text = format!("sha256:{}", hex(64).to_uppercase());
        assert_eq!(
            text.parse::<Digest>().unwrap_err(),
            DigestError::NotLowercaseHex
        );
    }

    #[test]
    fn rejects_unregistered_algorithm() {
        assert_eq!(
            "md5:d41d8cd98f00b204e9800998ecf8427e"
                .parse::<Digest>()
                .unwrap_err(),
            DigestError::UnsupportedAlgorithm("md5".into())
        );
        // Well formed per the grammar, still not verifiable here.
        assert!(matches!(
            format!("sha256+b64u:{}", hex(64)).parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn rejects_malformed_shapes() {
        for bad in [
            "",
            "sha256",
            ":abc",
            "SHA256:abc",
            "sha256-:abc",
            "sha256::abc",
            "sha256:",
            " sha256:abc",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} must be rejected");
        }
        let with_space = format!("sha256:{} ", hex(64));
        assert!(with_space.parse::<Digest>().is_err());
        let two_colons = format!("sha256:{}:", hex(64));
        assert!(two_colons.parse::<Digest>().is_err());
    }

    #[test]
    fn zero_digest_is_recognized() {
        let zero: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        assert!(zero.is_zero());
        let other: Digest = format!("sha256:{}1", "0".repeat(63)).parse().unwrap();
        assert!(!other.is_zero());
    }

    #[test]
    fn ordering_is_byte_order_of_the_whole_string() {
        let a: Digest = format!("sha256:{}", "f".repeat(64)).parse().unwrap();
        let b: Digest = format!("sha384:{}", "0".repeat(96)).parse().unwrap();
        let c: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        let mut sorted = vec![b.clone(), a.clone(), c.clone()];
        sorted.sort();
        assert_eq!(sorted, vec![c, a, b]);
    }

    #[test]
    fn serde_round_trips_as_a_string_and_validates() {
        let text = format!("\"sha256:{}\"", hex(64));
        let digest: Digest = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&digest).unwrap(), text);
        assert!(serde_json::from_str::<Digest>("\"md5:abc\"").is_err());
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }
}
