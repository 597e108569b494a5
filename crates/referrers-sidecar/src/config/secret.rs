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
/// as it is.
#[must_use]
pub fn mask_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:{}@{hosts}{tail}", Secret::MASK),
            None => text.to_owned(),
        },
        None => text.to_owned(),
    }
}
