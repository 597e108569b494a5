//! The OCI referrers domain, pure and synchronous: names, digests, artifact types, the
//! referrers query, descriptors and their index, merge and filter, the fallback tag, the
//! `Link` header and paging, lists kept ready to serve, and image manifests read as referrers.
//!
//! Values are parsed once at the edge (`FromStr`, `serde(try_from)`) and trusted afterwards.
//! Nothing here does I/O, so the whole crate can be tested by properties.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod descriptor;
pub mod digest;
pub mod index;
pub mod link;
pub mod manifest;
pub mod media_type;
pub mod merge;
pub mod name;
pub mod paging;
pub mod prepared;
pub mod query;
pub mod tag;

pub use descriptor::{Descriptor, DescriptorError};
pub use digest::{Digest, DigestError};
pub use index::{
    DecodedIndex, INDEX_ENVELOPE_LEN, INDEX_MEDIA_TYPE, IndexError, RejectedDescriptor,
    decode_index, encode_index, encoded_index_len,
};
pub use link::{LinkError, build_next_link, parse_next_link};
pub use manifest::{ImageManifest, MANIFEST_MEDIA_TYPE, ManifestError, decode_image_manifest};
pub use media_type::{ArtifactType, ArtifactTypeError, is_index_content_type, media_type_essence};
pub use merge::{filter_by_artifact_type, merge};
pub use name::{NameError, RepositoryName};
pub use paging::{EncodedPage, Page, PageLimit, encode_page, paginate};
pub use prepared::{
    PreparedDescriptor, PreparedList, PreparedPage, StoredListError, encode_prepared_page,
    merge_prepared,
};
pub use query::{DecodeError, QueryError, ReferrersQuery, encode_query_value, percent_decode};
pub use tag::fallback_tag;
