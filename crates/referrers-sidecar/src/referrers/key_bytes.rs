//! The bytes of a key made of a request's parts, each length-prefixed: no two different
//! sequences of parts make the same bytes, so a key is equal only to one made of the same parts.

pub(super) struct KeyBytes(Vec<u8>);

impl KeyBytes {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Adds one part.
    pub(super) fn part(&mut self, value: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&value.len().to_le_bytes());
        self.0.extend_from_slice(value);
        self
    }

    /// Adds a raw query: an empty one is not the same as none.
    pub(super) fn query(&mut self, raw_query: Option<&str>) -> &mut Self {
        match raw_query {
            Some(query) => self.part(b"?").part(query.as_bytes()),
            None => self.part(b""),
        }
    }

    pub(super) fn finish(self) -> Box<[u8]> {
        self.0.into_boxed_slice()
    }
}
