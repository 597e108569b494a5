//! Properties of the index codec: unknown fields survive, sizes are exact.

mod strategies;

use oci_referrers::{decode_index, encode_index, encoded_index_len};
use proptest::prelude::*;
use strategies::rich_descriptors;

proptest! {
    #[test]
    fn decode_encode_decode_keeps_every_field(list in rich_descriptors(12)) {
        let encoded = encode_index(&list);
        let decoded = decode_index(&encoded).expect("our own index decodes");
        prop_assert!(decoded.rejected.is_empty());
        prop_assert_eq!(&decoded.descriptors, &list);
        prop_assert_eq!(encode_index(&decoded.descriptors), encoded);
    }

    #[test]
    fn encoded_lengths_are_exact(list in rich_descriptors(12)) {
        let encoded = encode_index(&list);
        prop_assert_eq!(encoded.len(), encoded_index_len(&list));
        for descriptor in &list {
            prop_assert_eq!(
                descriptor.encoded_len(),
                serde_json::to_vec(descriptor).expect("descriptors serialize").len()
            );
        }
    }

    #[test]
    fn one_bad_element_costs_only_itself(
        list in rich_descriptors(12),
        bad in prop_oneof![
            Just(serde_json::json!("not an object")),
            Just(serde_json::json!({"mediaType": "m/t", "digest": "sha256:00", "size": 1})),
            Just(serde_json::json!({"digest": "sha256:00", "size": -1})),
        ],
        at in any::<prop::sample::Index>(),
    ) {
        let mut elements: Vec<serde_json::Value> =
            list.iter().map(|d| serde_json::to_value(d).expect("serializes")).collect();
        let position = at.index(elements.len() + 1);
        elements.insert(position, bad);
        let body = serde_json::json!({"schemaVersion": 2, "manifests": elements});
        let decoded = decode_index(&serde_json::to_vec(&body).expect("serializes"))
            .expect("the envelope is fine");
        prop_assert_eq!(decoded.descriptors, list);
        prop_assert_eq!(decoded.rejected.len(), 1);
        prop_assert_eq!(decoded.rejected[0].position, position);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_index(&bytes);
    }
}
