//! Properties of parsing at the edge: never a panic, and what parses prints back the same.

use oci_referrers::{
    ArtifactType, Digest, ReferrersQuery, RepositoryName, encode_query_value, parse_next_link,
    percent_decode,
};
use proptest::prelude::*;

proptest! {
    #[test]
    fn digest_parsing_never_panics(s in ".*") {
        if let Ok(digest) = s.parse::<Digest>() {
            prop_assert_eq!(digest.as_str(), s.as_str());
            prop_assert_eq!(format!("{}:{}", digest.algorithm(), digest.encoded()), s);
        }
    }

    #[test]
    fn digest_like_strings_parse_by_the_rules(
        algorithm in prop_oneof![Just("sha256"), Just("sha384"), Just("sha512"), Just("md5"), Just("sha1")],
        encoded in "[0-9a-fA-F]{0,130}",
    ) {
        let text = format!("{algorithm}:{encoded}");
        let expected_len = match algorithm {
            "sha256" => Some(64),
            "sha384" => Some(96),
            "sha512" => Some(128),
            _ => None,
        };
        let valid = expected_len == Some(encoded.len())
            && !encoded.bytes().any(|b| b.is_ascii_uppercase());
        prop_assert_eq!(text.parse::<Digest>().is_ok(), valid);
    }

    #[test]
    fn name_parsing_never_panics(s in ".*") {
        if let Ok(name) = s.parse::<RepositoryName>() {
            prop_assert_eq!(name.as_str(), s.as_str());
            prop_assert!(s.len() <= 255);
            prop_assert_eq!(name.components().collect::<Vec<_>>().join("/"), s);
        }
    }

    #[test]
    fn name_like_strings_never_panic(s in "[a-z0-9._/%-]{0,40}") {
        if let Ok(name) = s.parse::<RepositoryName>() {
            prop_assert!(!s.contains("//") && !s.contains('%'));
            prop_assert!(name.components().all(|c| c != "." && c != ".."));
            let rebuilt = match name.repository() {
                Some(repository) => format!("{}/{repository}", name.project()),
                None => name.project().to_owned(),
            };
            prop_assert_eq!(rebuilt, s);
        }
    }

    #[test]
    fn artifact_type_parsing_never_panics(s in ".*") {
        if let Ok(artifact_type) = s.parse::<ArtifactType>() {
            prop_assert_eq!(artifact_type.as_str(), s.as_str());
        }
    }

    #[test]
    fn query_parsing_never_panics(s in ".*") {
        let _ = ReferrersQuery::parse(&s);
    }

    #[test]
    fn query_like_strings_never_panic(
        s in "((artifactType|n|last|ns|%6E)(=[a-zA-Z0-9:/+%._-]{0,20})?&?){0,5}",
    ) {
        if let Ok(query) = ReferrersQuery::parse(&s) {
            prop_assert!(query.n.is_none_or(|n| n >= 1));
        }
    }

    #[test]
    fn encoded_values_decode_back(s in ".*") {
        let encoded = encode_query_value(&s);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        prop_assert_eq!(percent_decode(&encoded).expect("our encoding decodes"), s);
    }

    #[test]
    fn artifact_types_survive_the_query_round_trip(
        kind in "[a-z][a-z0-9.+-]{0,12}",
        subtype in "[a-z0-9][a-zA-Z0-9!#$&^_.+-]{0,20}",
    ) {
        let text = format!("{kind}/{subtype}");
        let raw = format!("ns=docker.io&artifactType={}", encode_query_value(&text));
        let query = ReferrersQuery::parse(&raw).expect("encoded artifact types parse");
        prop_assert_eq!(query.artifact_types.len(), 1);
        prop_assert_eq!(query.artifact_types[0].as_str(), text.as_str());
    }

    #[test]
    fn link_parsing_never_panics(headers in prop::collection::vec(".*", 0..3)) {
        let base = url::Url::parse("https://registry.example.org/v2/a/referrers/x")
            .expect("valid base");
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let _ = parse_next_link(&headers, &base);
    }

    #[test]
    fn link_like_headers_never_panic(header in r#"(<[^>]{0,12}>?( ?; ?[a-z]{0,4}(=("[^"]{0,6}"?|[a-z ]{0,6}))?){0,3}, ?){0,3}"#) {
        let base = url::Url::parse("https://registry.example.org/v2/a/referrers/x")
            .expect("valid base");
        let _ = parse_next_link(&[&header], &base);
    }
}
