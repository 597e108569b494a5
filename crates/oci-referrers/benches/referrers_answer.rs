//! The pure work of one referrers answer on the hot path: merge the upstream and local lists,
//! filter, page, encode — from typed descriptors and from the prepared form the cache holds —
//! and, on a miss, decoding the upstream's index and preparing it.
//!
//! `cargo bench -p oci-referrers`; compare ratios between runs, not absolute times.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use oci_referrers::{
    ArtifactType, Descriptor, PageLimit, PreparedList, decode_index, encode_index, encode_page,
    encode_prepared_page, filter_by_artifact_type, merge, paginate,
};

const TYPES: &[&str] = &[
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/spdx+json",
    "application/vnd.in-toto+json",
    "application/vnd.cncf.notary.signature",
];

/// `count` referrers as an upstream lists them: a type, annotations, unsorted digests.
fn descriptors(count: usize, salt: u64) -> Vec<Descriptor> {
    (0..count)
        .map(|i| {
            let n = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
            serde_json::from_value(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{n:016x}{:048x}", i),
                "size": 700 + i,
                "artifactType": TYPES[i % TYPES.len()],
                "annotations": {
                    "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
                    "dev.sigstore.cosign/signer": "ci@example.com",
                },
            }))
            .expect("descriptor")
        })
        .collect()
}

fn answer(c: &mut Criterion) {
    let mut group = c.benchmark_group("answer");
    let filter: Vec<ArtifactType> = vec![TYPES[1].parse().expect("type")];
    for count in [10usize, 100, 1000] {
        let upstream = descriptors(count, 1);
        // Harbor holds a tenth of them too (pulled through the proxy), plus a few of its own.
        let mut local: Vec<Descriptor> = upstream.iter().step_by(10).cloned().collect();
        local.extend(descriptors(count / 20 + 1, 2));
        let prepared = PreparedList::new(&upstream);
        for (name, types) in [("unfiltered", &[][..]), ("filtered", &filter[..])] {
            // The cached list prepared when it was stored: core's list is sorted and encoded
            // per request, then the page is written by concatenating stored bytes.
            group.bench_with_input(
                BenchmarkId::new(format!("{name}_prepared"), count),
                &count,
                |b, _| {
                    b.iter(|| {
                        let local = PreparedList::new(&local);
                        black_box(encode_prepared_page(
                            &prepared,
                            &local,
                            types,
                            None,
                            PageLimit::Bytes(4 * 1024 * 1024),
                        ))
                    });
                },
            );
            // What the service does: merge references to the cached and local lists, filter,
            // and encode the page in one pass.
            group.bench_with_input(BenchmarkId::new(name, count), &count, |b, _| {
                b.iter(|| {
                    let merged = merge(&upstream, &local);
                    let filtered = filter_by_artifact_type(merged, types);
                    black_box(encode_page(
                        &filtered,
                        None,
                        PageLimit::Bytes(4 * 1024 * 1024),
                    ))
                });
            });
            // The straightforward way, for comparison: owned copies, paginate, then encode.
            group.bench_with_input(
                BenchmarkId::new(format!("{name}_copying"), count),
                &count,
                |b, _| {
                    b.iter(|| {
                        let merged = merge(upstream.clone(), local.clone());
                        let filtered = filter_by_artifact_type(merged, types);
                        let page = paginate(&filtered, None, PageLimit::Bytes(4 * 1024 * 1024));
                        black_box(encode_index(page.items))
                    });
                },
            );
        }
    }
    group.finish();

    let mut group = c.benchmark_group("decode_upstream_index");
    for count in [10usize, 100, 1000] {
        let bytes = encode_index(&descriptors(count, 3));
        group.bench_with_input(BenchmarkId::from_parameter(count), &bytes, |b, bytes| {
            b.iter(|| black_box(decode_index(bytes).expect("index")));
        });
    }
    group.finish();

    // Once per stored list (a miss, or a read from the shared tier).
    let mut group = c.benchmark_group("prepare_upstream_list");
    for count in [10usize, 100, 1000] {
        let list = descriptors(count, 3);
        group.bench_with_input(BenchmarkId::new("new", count), &list, |b, list| {
            b.iter(|| black_box(PreparedList::new(list)));
        });
        let stored = PreparedList::new(&list).to_stored();
        group.bench_with_input(
            BenchmarkId::new("from_stored", count),
            &stored,
            |b, stored| {
                b.iter(|| black_box(PreparedList::from_stored(stored).expect("stored list")));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, answer);
criterion_main!(benches);
