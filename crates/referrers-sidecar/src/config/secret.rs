//! Secret values: never printed, masked when shown (`check-config`, logs).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret value: never printed, masked when serialized (so `check-config` masks it).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(from = "String")]
pub struct Secret(String);

impl Secret {
    pub const MASK: &'static str = "*****";

    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Self::MASK)
    }
}

/// `text` with the password of a URL's user info replaced by [`Secret::MASK`]; works for
/// Harbor's Sentinel form too, which a URL parser rejects. Text that is not a URL is returned
/// as it is. The user info is read up to the last `@` of the text, not the first `/`, `?` or
/// `#`, so a password holding any of those unencoded is masked whole; a URL whose path or query
/// holds an `@` loses its host in the masked text too, which is the safe way to be wrong.
#[must_use]
pub fn mask_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:{}@{hosts}", Secret::MASK),
            None => text.to_owned(),
        },
        None => text.to_owned(),
    }
}

/// Reads a URL key (`harbor.url`, `registries.<alias>.url`) without echoing it: the URL
/// parser's own error quotes the text whole, password included, so a text that does not parse
/// is named masked. Written as it is (validation refuses one that carries credentials).
pub(super) mod url_key {
    use serde::{Deserialize, Deserializer, Serializer};
    use url::Url;

    use super::mask_password;

    fn parse<E: serde::de::Error>(text: &str) -> Result<Url, E> {
        Url::parse(text).map_err(|reason| {
            E::custom(format!("{:?} is not a URL: {reason}", mask_password(text)))
        })
    }

    pub fn serialize<S: Serializer>(url: &Url, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(url.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
        parse(&String::deserialize(deserializer)?)
    }

    /// The same for an optional URL.
    pub mod option {
        use super::{Deserialize, Deserializer, Serializer, Url};

        #[expect(
            clippy::ref_option,
            reason = "serde's `with` hands the field by reference"
        )]
        pub fn serialize<S: Serializer>(
            url: &Option<Url>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match url {
                Some(url) => serializer.serialize_some(url.as_str()),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Url>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(|text| super::parse(&text))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::config::RedisUrl;

    #[test]
    fn a_password_holding_url_delimiters_is_masked_whole() {
        for (text, masked) in [
            ("redis://:p#ss@h:6379/0", "redis://:*****@h:6379/0"),
            ("redis://:p/ss@h:6379/0", "redis://:*****@h:6379/0"),
            ("redis://u:p?ss@h:6379/0", "redis://u:*****@h:6379/0"),
            ("redis://u:p@ss@h:6379/0", "redis://u:*****@h:6379/0"),
            (
                "redis+sentinel://:pw@s1:26379,s2:26379/mymaster/0",
                "redis+sentinel://:*****@s1:26379,s2:26379/mymaster/0",
            ),
            ("https://registry.example/v2", "https://registry.example/v2"),
            (
                "https://user@registry.example",
                "https://user@registry.example",
            ),
        ] {
            assert_eq!(mask_password(text), masked, "{text}");
        }
    }

    proptest! {
        /// Whatever a password holds, neither the masked text nor the error of a Redis URL that
        /// carries it shows it.
        #[test]
        fn no_password_survives_masking(password in "[\\x20-\\x7e]{6,40}") {
            prop_assume!(!password.contains("h:6379") && !password.contains("redis"));
            let text = format!("redis://user:{password}@h:6379/0");
            prop_assert!(!mask_password(&text).contains(&password));
            if let Err(error) = text.parse::<RedisUrl>() {
                prop_assert!(!error.to_string().contains(&password), "{}", error);
            }
        }
    }
}
