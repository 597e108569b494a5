//! Referrer descriptors: the few fields we act on are typed, every other field is carried as is.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::digest::{Digest, DigestError};

const MEDIA_TYPE: &str = "mediaType";
const DIGEST: &str = "digest";
const SIZE: &str = "size";
const ARTIFACT_TYPE: &str = "artifactType";
const ANNOTATIONS: &str = "annotations";
const KNOWN_FIELDS: [&str; 5] = [MEDIA_TYPE, DIGEST, SIZE, ARTIFACT_TYPE, ANNOTATIONS];

/// One entry of a referrers list.
///
/// Fields this crate does not interpret (`data`, `urls`, `platform`, and whatever later
/// specs add) stay in [`Descriptor::extra`], so a descriptor read from an upstream goes back
/// out unchanged: Harbor 2.8–2.10 drops them for local referrers, and the upstream copy is
/// the one that must survive the merge.
///
/// REF: <https://github.com/opencontainers/image-spec/blob/main/descriptor.md#properties>
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct Descriptor {
    /// `mediaType` of the referenced manifest; never empty.
    pub media_type: String,
    /// `digest` of the referenced manifest.
    pub digest: Digest,
    /// `size` in bytes of the referenced manifest.
    pub size: u64,
    /// `artifactType` exactly as sent; compared as a whole string when filtering.
    pub artifact_type: Option<String>,
    /// `annotations`, when present.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Every other field, kept for the round trip.
    pub extra: Map<String, Value>,
}

/// Why one element of a `manifests` array is not a usable descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// The element is not a JSON object.
    #[error("descriptor is not a JSON object")]
    NotAnObject,
    /// `mediaType` is missing, not a string, or empty.
    #[error("descriptor mediaType is missing or not a non-empty string")]
    InvalidMediaType,
    /// `digest` is missing or not a string.
    #[error("descriptor digest is missing or not a string")]
    MissingDigest,
    /// `digest` is not a supported digest.
    #[error("descriptor digest is invalid: {0}")]
    InvalidDigest(#[source] DigestError),
    /// `size` is missing, negative, fractional, not a number, or beyond `int64`.
    #[error("descriptor size is missing or not a non-negative int64")]
    InvalidSize,
    /// `artifactType` is present and not a string.
    #[error("descriptor artifactType is not a string")]
    InvalidArtifactType,
    /// `annotations` is present and not a map of strings to strings.
    #[error("descriptor annotations are not a map of strings")]
    InvalidAnnotations,
    /// A field the image-spec types strictly (`urls`, `data`, `platform`) has the wrong JSON
    /// type. Passing it on would make Go clients fail to decode the whole list.
    #[error("descriptor field {0:?} has the wrong JSON type")]
    InvalidField(&'static str),
}

impl Descriptor {
    /// A descriptor with no artifact type, annotations or extra fields.
    #[must_use]
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            annotations: None,
            extra: Map::new(),
        }
    }

    /// The `artifactType`, if any.
    #[must_use]
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type.as_deref()
    }

    /// Length in bytes of this descriptor's JSON encoding, as written by
    /// [`crate::index::encode_index`]; lets paging size a page without encoding it twice.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut counter = ByteCounter(0);
        let written = serde_json::to_writer(&mut counter, self);
        // Strings, integers and `Value`s always serialize, and the counter never fails.
        debug_assert!(written.is_ok());
        counter.0
    }
}

struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Absent and `null` are the same thing for optional fields.
fn present(value: Option<Value>) -> Option<Value> {
    value.filter(|value| !value.is_null())
}

/// Go clients decode `size` into an `int64`.
fn parse_size(value: Option<&Value>) -> Result<u64, DescriptorError> {
    value
        .and_then(Value::as_u64)
        .filter(|&size| i64::try_from(size).is_ok())
        .ok_or(DescriptorError::InvalidSize)
}

fn parse_annotations(value: Value) -> Result<BTreeMap<String, String>, DescriptorError> {
    let Value::Object(object) = value else {
        return Err(DescriptorError::InvalidAnnotations);
    };
    object
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(value) => Ok((key, value)),
            _ => Err(DescriptorError::InvalidAnnotations),
        })
        .collect()
}

fn check_typed_extras(extra: &Map<String, Value>) -> Result<(), DescriptorError> {
    let urls_ok = extra.get("urls").is_none_or(|urls| {
        urls.is_null()
            || urls
                .as_array()
                .is_some_and(|urls| urls.iter().all(Value::is_string))
    });
    if !urls_ok {
        return Err(DescriptorError::InvalidField("urls"));
    }
    if !extra
        .get("data")
        .is_none_or(|data| data.is_null() || data.is_string())
    {
        return Err(DescriptorError::InvalidField("data"));
    }
    if !extra
        .get("platform")
        .is_none_or(|platform| platform.is_null() || platform.is_object())
    {
        return Err(DescriptorError::InvalidField("platform"));
    }
    Ok(())
}

impl TryFrom<Value> for Descriptor {
    type Error = DescriptorError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        let Value::Object(object) = value else {
            return Err(DescriptorError::NotAnObject);
        };
        let mut fields = Fields::default();
        for (key, value) in object {
            fields.set(Key::of(key), value);
        }
        fields.into_descriptor()
    }
}

/// A descriptor's fields as read, before they are checked: the typed ones apart, the rest as
/// they came. A repeated key keeps its last value, as a JSON object read whole does.
#[derive(Default)]
struct Fields {
    media_type: Option<Value>,
    digest: Option<Value>,
    size: Option<Value>,
    artifact_type: Option<Value>,
    annotations: Option<Value>,
    extra: Map<String, Value>,
}

impl Fields {
    fn set(&mut self, key: Key, value: Value) {
        let slot = match key {
            Key::MediaType => &mut self.media_type,
            Key::Digest => &mut self.digest,
            Key::Size => &mut self.size,
            Key::ArtifactType => &mut self.artifact_type,
            Key::Annotations => &mut self.annotations,
            Key::Other(key) => {
                self.extra.insert(key, value);
                return;
            }
        };
        *slot = Some(value);
    }

    fn into_descriptor(self) -> Result<Descriptor, DescriptorError> {
        let media_type = match self.media_type {
            Some(Value::String(media_type)) if !media_type.is_empty() => media_type,
            _ => return Err(DescriptorError::InvalidMediaType),
        };
        let digest = match self.digest {
            Some(Value::String(digest)) => {
                digest.parse().map_err(DescriptorError::InvalidDigest)?
            }
            _ => return Err(DescriptorError::MissingDigest),
        };
        let size = parse_size(self.size.as_ref())?;
        let artifact_type = match present(self.artifact_type) {
            None => None,
            Some(Value::String(artifact_type)) => Some(artifact_type),
            Some(_) => return Err(DescriptorError::InvalidArtifactType),
        };
        let annotations = present(self.annotations)
            .map(parse_annotations)
            .transpose()?;
        check_typed_extras(&self.extra)?;
        Ok(Descriptor {
            media_type,
            digest,
            size,
            artifact_type,
            annotations,
            extra: self.extra,
        })
    }
}

/// A descriptor's key: one of the typed fields, or another one.
enum Key {
    MediaType,
    Digest,
    Size,
    ArtifactType,
    Annotations,
    Other(String),
}

impl Key {
    fn of(key: String) -> Self {
        Self::typed(&key).unwrap_or(Self::Other(key))
    }

    fn typed(key: &str) -> Option<Self> {
        Some(match key {
            MEDIA_TYPE => Self::MediaType,
            DIGEST => Self::Digest,
            SIZE => Self::Size,
            ARTIFACT_TYPE => Self::ArtifactType,
            ANNOTATIONS => Self::Annotations,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// Reads a key without copying it when it names a typed field.
struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a descriptor's key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(Key::typed(key).unwrap_or_else(|| Key::Other(key.to_owned())))
    }

    fn visit_string<E>(self, key: String) -> Result<Key, E> {
        Ok(Key::of(key))
    }
}

/// One element of an index's `manifests`, read field by field (no `Value` tree of the whole
/// element): a descriptor, or why it is not one. Only JSON that is not JSON fails the read.
pub(crate) struct Element(pub(crate) Result<Descriptor, DescriptorError>);

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ElementVisitor).map(Element)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Result<Descriptor, DescriptorError>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a descriptor")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            fields.set(key, map.next_value()?);
        }
        Ok(fields.into_descriptor())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(DescriptorError::NotAnObject))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(DescriptorError::NotAnObject))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(DescriptorError::NotAnObject))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(DescriptorError::NotAnObject))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(DescriptorError::NotAnObject))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(DescriptorError::NotAnObject))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err(DescriptorError::NotAnObject))
    }
}

impl Serialize for Descriptor {
    /// Writes `mediaType`, `digest`, `size`, `artifactType`, `annotations`, then the extra
    /// fields. Extra entries that shadow a typed field are skipped so the output never has
    /// duplicate keys.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let extra = self
            .extra
            .iter()
            .filter(|(key, _)| !KNOWN_FIELDS.contains(&key.as_str()));
        let len = 3
            + usize::from(self.artifact_type.is_some())
            + usize::from(self.annotations.is_some())
            + extra.clone().count();
        let mut map = serializer.serialize_map(Some(len))?;
        map.serialize_entry(MEDIA_TYPE, &self.media_type)?;
        map.serialize_entry(DIGEST, &self.digest)?;
        map.serialize_entry(SIZE, &self.size)?;
        if let Some(artifact_type) = &self.artifact_type {
            map.serialize_entry(ARTIFACT_TYPE, artifact_type)?;
        }
        if let Some(annotations) = &self.annotations {
            map.serialize_entry(ANNOTATIONS, annotations)?;
        }
        for (key, value) in extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DIGEST_A: &str =
        "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    /// Decodes `value` both ways, from a `Value` and field by field from its JSON, and checks
    /// that they agree.
    fn decode(value: Value) -> Result<Descriptor, DescriptorError> {
        let streamed = serde_json::from_str::<Element>(&value.to_string())
            .unwrap()
            .0;
        let from_value = Descriptor::try_from(value);
        assert_eq!(streamed, from_value);
        from_value
    }

    #[test]
    fn decodes_typed_fields_and_keeps_the_rest() {
        let descriptor = decode(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": DIGEST_A,
            "size": 1234,
            "artifactType": "application/vnd.example.sbom.v1",
            "annotations": {"org.example.sbom.format": "json"},
            "data": "e30=",
            "urls": ["https://example.com/a"],
            "platform": {"os": "linux", "architecture": "amd64"},
            "x-future": [1, {"k": null}]
        }))
        .unwrap();
        assert_eq!(descriptor.size, 1234);
        assert_eq!(
            descriptor.artifact_type(),
            Some("application/vnd.example.sbom.v1")
        );
        assert_eq!(
            descriptor
                .extra
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["data", "platform", "urls", "x-future"]
        );
    }

    #[test]
    fn encodes_typed_fields_first_in_spec_order() {
        let mut descriptor = decode(json!({
            "annotations": {"k": "v"},
            "artifactType": "application/vnd.example.signature.v1",
            "a-first-extra": true,
            "size": 7,
            "digest": DIGEST_A,
            "mediaType": "application/vnd.oci.image.manifest.v1+json"
        }))
        .unwrap();
        let encoded = serde_json::to_string(&descriptor).unwrap();
        assert_eq!(
            encoded,
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{DIGEST_A}","size":7,"artifactType":"application/vnd.example.signature.v1","annotations":{{"k":"v"}},"a-first-extra":true}}"#
            )
        );
        assert_eq!(descriptor.encoded_len(), encoded.len());

        descriptor.extra.insert("digest".into(), json!("shadow"));
        let encoded = serde_json::to_string(&descriptor).unwrap();
        assert_eq!(encoded.matches("\"digest\"").count(), 1);
        assert_eq!(descriptor.encoded_len(), encoded.len());
    }

    #[test]
    fn null_optionals_are_absent() {
        let descriptor = decode(json!({
            "mediaType": "m/t", "digest": DIGEST_A, "size": 0,
            "artifactType": null, "annotations": null
        }))
        .unwrap();
        assert_eq!(
            descriptor,
            Descriptor::new("m/t", DIGEST_A.parse().unwrap(), 0)
        );
    }

    #[test]
    fn rejects_each_bad_field() {
        let base = || {
            json!({"mediaType": "m/t", "digest": DIGEST_A, "size": 1})
                .as_object()
                .cloned()
                .unwrap()
        };
        let with = |key: &str, value: Value| {
            let mut object = base();
            object.insert(key.into(), value);
            decode(Value::Object(object))
        };
        let without = |key: &str| {
            let mut object = base();
            object.remove(key);
            decode(Value::Object(object))
        };
        assert!(decode(Value::Object(base())).is_ok());
        assert_eq!(decode(json!([1])), Err(DescriptorError::NotAnObject));
        assert_eq!(decode(json!("x")), Err(DescriptorError::NotAnObject));
        assert_eq!(without("mediaType"), Err(DescriptorError::InvalidMediaType));
        assert_eq!(
            with("mediaType", json!("")),
            Err(DescriptorError::InvalidMediaType)
        );
        assert_eq!(
            with("mediaType", json!(3)),
            Err(DescriptorError::InvalidMediaType)
        );
        assert_eq!(without("digest"), Err(DescriptorError::MissingDigest));
        assert!(matches!(
            with("digest", json!("sha256:abc")),
            Err(DescriptorError::InvalidDigest(_))
        ));
        assert_eq!(without("size"), Err(DescriptorError::InvalidSize));
        for bad_size in [
            json!(-1),
            json!(1.5),
            json!(1.0),
            json!("1"),
            json!(null),
            json!(u64::MAX),
        ] {
            assert_eq!(with("size", bad_size), Err(DescriptorError::InvalidSize));
        }
        assert_eq!(
            with("artifactType", json!(1)),
            Err(DescriptorError::InvalidArtifactType)
        );
        assert_eq!(
            with("annotations", json!({"k": 1})),
            Err(DescriptorError::InvalidAnnotations)
        );
        assert_eq!(
            with("annotations", json!(["k"])),
            Err(DescriptorError::InvalidAnnotations)
        );
        assert_eq!(
            with("urls", json!("u")),
            Err(DescriptorError::InvalidField("urls"))
        );
        assert_eq!(
            with("urls", json!([1])),
            Err(DescriptorError::InvalidField("urls"))
        );
        assert_eq!(
            with("data", json!(1)),
            Err(DescriptorError::InvalidField("data"))
        );
        assert_eq!(
            with("platform", json!("linux")),
            Err(DescriptorError::InvalidField("platform"))
        );
    }

    #[test]
    fn artifact_type_is_kept_as_sent() {
        let descriptor = decode(json!({
            "mediaType": "m/t", "digest": DIGEST_A, "size": 1,
            "artifactType": "not really; a media type"
        }))
        .unwrap();
        assert_eq!(descriptor.artifact_type(), Some("not really; a media type"));
    }

    #[test]
    fn serde_deserialize_uses_the_same_validation() {
        let descriptor: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"m/t","digest":"{DIGEST_A}","size":3}}"#
        ))
        .unwrap();
        assert_eq!(descriptor.size, 3);
        assert!(serde_json::from_str::<Descriptor>(r#"{"mediaType":"m/t"}"#).is_err());
    }
}
