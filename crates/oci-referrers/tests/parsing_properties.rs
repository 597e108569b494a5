//! Properties of parsing at the edge: never a panic, and what parses prints back the same.

mod strategies;

use oci_referrers::{
    ArtifactType, Digest, ReferrersQuery, RepositoryName, build_next_link, decode_index,
    encode_index, encode_query_value, parse_next_link, percent_decode,
};
use proptest::prelude::*;
use strategies::{artifact_type, fresh_digest};

/// Names as the grammar allows them: lowercase components joined by `/`, `.`, `_`, `-`.
fn repository_name() -> impl Strategy<Value = RepositoryName> {
    prop::collection::vec("[a-z0-9]{1,6}([._-][a-z0-9]{1,4})?", 1..4).prop_map(|components| {
        components
            .join("/")
            .parse()
            .expect("generated names follow the grammar")
    })
}

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

    #[test]
    fn our_next_links_parse_back_to_the_same_page_request(
        name in repository_name(),
        digest in fresh_digest(),
        n in proptest::option::of(1usize..5000),
        last in fresh_digest(),
        types in prop::collection::vec(artifact_type(), 0..3),
    ) {
        let header = build_next_link(&name, &digest, n, &last, &types);
        let base = url::Url::parse("https://harbor.example.org/v2/x/referrers/y").expect("valid base");
        let next = parse_next_link(&[&header], &base)
            .expect("our Link header is well formed")
            .expect("it has rel=next");
        prop_assert_eq!(next.origin(), base.origin());
        prop_assert_eq!(next.path(), format!("/v2/{name}/referrers/{digest}"));
        let query = ReferrersQuery::parse(next.query().unwrap_or_default())
            .expect("our query parses");
        let mut expected_types: Vec<ArtifactType> = Vec::new();
        for artifact_type in types {
            if !expected_types.contains(&artifact_type) {
                expected_types.push(artifact_type);
            }
        }
        prop_assert_eq!(query, ReferrersQuery { artifact_types: expected_types, n, last: Some(last) });
    }

    #[test]
    fn what_decodes_from_arbitrary_json_encodes_and_decodes_the_same(
        manifests in prop::collection::vec(
            prop_oneof![
                strategies::json_value(),
                (fresh_digest(), any::<i64>(), proptest::option::of("[a-z]{1,5}/[a-z.+]{1,8}"))
                    .prop_map(|(digest, size, artifact_type)| serde_json::json!({
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": digest.as_str(),
                        "size": size,
                        "artifactType": artifact_type,
                    })),
            ],
            0..6,
        ),
    ) {
        let body = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        let bytes = serde_json::to_vec(&body).expect("serializes");
        let decoded = decode_index(&bytes).expect("an index envelope decodes");
        prop_assert_eq!(decoded.descriptors.len() + decoded.rejected.len(), manifests.len());
        let again = decode_index(&encode_index(&decoded.descriptors)).expect("our encoding decodes");
        prop_assert!(again.rejected.is_empty());
        prop_assert_eq!(again.descriptors, decoded.descriptors);
    }

    #[test]
    fn queries_that_parse_say_what_they_were_given(
        n in proptest::option::of(0usize..3000),
        last in proptest::option::of(fresh_digest()),
        types in prop::collection::vec(artifact_type(), 0..3),
        noise in "(ns=[a-z.]{0,8}&)?",
    ) {
        let mut raw = noise.clone();
        if let Some(n) = n { raw.push_str(&format!("n={n}&")); }
        if let Some(last) = &last { raw.push_str(&format!("last={}&", encode_query_value(last.as_str()))); }
        for artifact_type in &types {
            raw.push_str(&format!("artifactType={}&", encode_query_value(artifact_type.as_str())));
        }
        match ReferrersQuery::parse(raw.trim_end_matches('&')) {
            Ok(query) => {
                prop_assert_ne!(n, Some(0), "n=0 is not a page size");
                prop_assert_eq!(query.n, n);
                prop_assert_eq!(query.last, last);
                prop_assert!(query.artifact_types.iter().all(|t| types.contains(t)));
            }
            Err(error) => prop_assert_eq!(n, Some(0), "only n=0 is refused, got {}", error),
        }
    }
}
