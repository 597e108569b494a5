//! Repository names (`<project>/<repository>`), validated against the distribution name grammar.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

/// The longest name accepted; clients cap `host/name` near this, and Harbor stores no longer.
pub const MAX_NAME_LEN: usize = 255;

/// A validated repository name such as `dockerhub-proxy/library/alpine`.
///
/// Path components match `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` and are joined by `/`. Since
/// the core URL and the upstream repository are both built from this one value, anything that
/// could be read differently by two parsers (`%2F`, `//`, dot segments) is refused.
///
/// REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests>
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct RepositoryName(String);

/// Why a string is not a [`RepositoryName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("repository name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("repository name is {len} characters long, the limit is {MAX_NAME_LEN}")]
    TooLong {
        /// Length of the rejected name in bytes.
        len: usize,
    },
    /// The name holds a `%`: percent-encoded names would mean one thing here and another
    /// wherever they are decoded again.
    #[error("repository name must not be percent-encoded")]
    PercentEncoded,
    /// A leading or trailing `/`, or `//`.
    #[error("repository name has an empty path component")]
    EmptyComponent,
    /// A `.` or `..` path component.
    #[error("repository name has a dot segment")]
    DotSegment,
    /// An uppercase letter; names are lowercase.
    #[error("repository name must be lowercase")]
    Uppercase,
    /// A character outside `[a-z0-9._/-]`.
    #[error("repository name has an invalid character {0:?}")]
    InvalidCharacter(char),
    /// A component that starts or ends with a separator, or mixes separators.
    #[error("repository name component {0:?} does not match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*")]
    InvalidComponent(String),
}

impl RepositoryName {
    /// The name as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first path component: the Harbor project.
    #[must_use]
    pub fn project(&self) -> &str {
        self.0
            .split_once('/')
            .map_or(&self.0, |(project, _)| project)
    }

    /// Everything after the project, or `None` for a one-component name.
    #[must_use]
    pub fn repository(&self) -> Option<&str> {
        self.0.split_once('/').map(|(_, repository)| repository)
    }

    /// The path components in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

/// A separator run between two alphanumeric runs: `.`, `_`, `__`, or one or more `-`.
fn is_separator(run: &str) -> bool {
    matches!(run, "." | "_" | "__") || (!run.is_empty() && run.bytes().all(|b| b == b'-'))
}

fn check_component(component: &str) -> Result<(), NameError> {
    if component.is_empty() {
        return Err(NameError::EmptyComponent);
    }
    if component == "." || component == ".." {
        return Err(NameError::DotSegment);
    }
    let invalid = || NameError::InvalidComponent(component.to_owned());
    let is_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut rest = component;
    loop {
        let alnum_len = rest.find(|c| !is_alnum(c)).unwrap_or(rest.len());
        if alnum_len == 0 {
            return Err(invalid());
        }
        rest = &rest[alnum_len..];
        if rest.is_empty() {
            return Ok(());
        }
        let separator_len = rest.find(is_alnum).ok_or_else(invalid)?;
        if !is_separator(&rest[..separator_len]) {
            return Err(invalid());
        }
        rest = &rest[separator_len..];
    }
}

impl FromStr for RepositoryName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong { len: s.len() });
        }
        if s.contains('%') {
            return Err(NameError::PercentEncoded);
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(NameError::Uppercase);
        }
        if let Some(bad) = s
            .chars()
            .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)))
        {
            return Err(NameError::InvalidCharacter(bad));
        }
        s.split('/').try_for_each(check_component)?;
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for RepositoryName {
    type Error = NameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<RepositoryName> for String {
    fn from(name: RepositoryName) -> Self {
        name.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RepositoryName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for RepositoryName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RepositoryName, NameError> {
        s.parse()
    }

    #[test]
    fn accepts_distribution_names() {
        for good in [
            "library",
            "dockerhub-proxy/library/alpine",
            "a/b/c/d",
            "my_project/some.repo",
            "p/a__b",
            "p/a---b",
            "p/a-b.c_d",
            "0/9",
        ] {
            assert_eq!(parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn splits_project_and_repository() {
        let name = parse("dockerhub-proxy/library/alpine").unwrap();
        assert_eq!(name.project(), "dockerhub-proxy");
        assert_eq!(name.repository(), Some("library/alpine"));
        assert_eq!(
            name.components().collect::<Vec<_>>(),
            ["dockerhub-proxy", "library", "alpine"]
        );
        let single = parse("alpine").unwrap();
        assert_eq!(single.project(), "alpine");
        assert_eq!(single.repository(), None);
    }

    #[test]
    fn rejects_percent_encoded_slash() {
        assert_eq!(parse("proxy%2Falpine"), Err(NameError::PercentEncoded));
        assert_eq!(parse("proxy%2falpine"), Err(NameError::PercentEncoded));
    }

    #[test]
    fn rejects_empty_components() {
        assert_eq!(parse("proxy//alpine"), Err(NameError::EmptyComponent));
        assert_eq!(parse("/proxy/alpine"), Err(NameError::EmptyComponent));
        assert_eq!(parse("proxy/alpine/"), Err(NameError::EmptyComponent));
        assert_eq!(parse("/"), Err(NameError::EmptyComponent));
        assert_eq!(parse(""), Err(NameError::Empty));
    }

    #[test]
    fn rejects_dot_segments() {
        assert_eq!(parse("proxy/../secret"), Err(NameError::DotSegment));
        assert_eq!(parse("proxy/./alpine"), Err(NameError::DotSegment));
        assert_eq!(parse(".."), Err(NameError::DotSegment));
    }

    #[test]
    fn rejects_uppercase() {
        assert_eq!(parse("Proxy/alpine"), Err(NameError::Uppercase));
    }

    #[test]
    fn rejects_names_over_255_characters() {
        let ok = format!("p/{}", "a".repeat(253));
        assert_eq!(parse(&ok).unwrap().as_str().len(), 255);
        let too_long = format!("p/{}", "a".repeat(254));
        assert_eq!(parse(&too_long), Err(NameError::TooLong { len: 256 }));
    }

    #[test]
    fn rejects_bad_separators_and_characters() {
        for bad in [
            "p/-a", "p/a-", "p/a.", "p/_a", "p/a..b", "p/a___b", "p/a.-b", "p/a_.b", "p/a-_b",
        ] {
            assert!(
                matches!(parse(bad), Err(NameError::InvalidComponent(_))),
                "{bad:?} must be rejected"
            );
        }
        assert_eq!(parse("p/a b"), Err(NameError::InvalidCharacter(' ')));
        assert_eq!(parse("p/a:b"), Err(NameError::InvalidCharacter(':')));
        assert_eq!(parse("p/é"), Err(NameError::InvalidCharacter('é')));
        assert_eq!(parse("p\\a"), Err(NameError::InvalidCharacter('\\')));
    }

    #[test]
    fn serde_round_trips_as_a_string_and_validates() {
        let name: RepositoryName = serde_json::from_str("\"proxy/alpine\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"proxy/alpine\"");
        assert!(serde_json::from_str::<RepositoryName>("\"proxy//alpine\"").is_err());
    }
}
