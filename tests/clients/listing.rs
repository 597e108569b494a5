//! oras, regctl, crane and go-containerregistry (the library cosign reads referrers with) see
//! exactly the merged list through the sidecar — the upstream's referrers and Harbor's own —
//! fetch every referrer in it by digest through Harbor's proxy cache, and follow the sidecar's
//! pages when the list does not fit on one.

use e2e::users::ALICE;
use e2e::world::{digests, referrers_path};
use serde_json::Value;

use crate::{ATTACHED, ATTACHED_CONTENT, ATTACHED_FILE, PROJECT, Signed, regctl_list, sorted};

/// The digests `oras discover` lists for `image` (sorted).
fn oras_discover(signed: &Signed, image: &str) -> Vec<String> {
    let discovered: Value = serde_json::from_str(&signed.clients.ok(
        "oras",
        &["discover", "--plain-http", "--format", "json", image],
    ))
    .expect("oras' JSON");
    sorted(
        discovered["referrers"]
            .as_array()
            .expect("referrers")
            .iter()
            .map(|r| r["digest"].as_str().expect("digest").to_owned())
            .collect(),
    )
}

/// The pages the suite's go-containerregistry program reads for `image`: one with
/// `remote.Referrers`, or pages of `n` following `Link`.
fn ggcr_pages(signed: &Signed, image: &str, n: Option<usize>) -> Vec<Vec<String>> {
    let n = n.map(|n| n.to_string());
    let mut args = vec!["-plain-http"];
    if let Some(n) = &n {
        args.extend(["-n", n]);
    }
    args.push(image);
    let read: Value =
        serde_json::from_str(&signed.clients.ok("ggcr-referrers", &args)).expect("its JSON");
    read["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|page| {
            page.as_array()
                .expect("page")
                .iter()
                .map(|d| d.as_str().expect("digest").to_owned())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn oras_discovers_and_pulls_an_sbom_attached_upstream() {
    let signed = Signed::start(|_| {}).await;
    // Harbor core alone lists its own SBOM only (asked first: what is pulled through the
    // proxy-cache project by digest, Harbor keeps as a local referrer).
    assert_eq!(
        oras_discover(&signed, &signed.through_core()),
        [signed.harbor_sbom()]
    );
    let image = signed.through_sidecar();
    assert_eq!(oras_discover(&signed, &image), signed.merged());
    let discovered: Value = serde_json::from_str(&signed.clients.ok(
        "oras",
        &[
            "discover",
            "--plain-http",
            "--format",
            "json",
            "--artifact-type",
            ATTACHED,
            &image,
        ],
    ))
    .expect("oras' JSON");
    assert_eq!(
        discovered["referrers"][0]["digest"],
        signed.attached.as_str(),
        "{discovered}"
    );
    signed.clients.ok(
        "oras",
        &[
            "pull",
            "--plain-http",
            "--output",
            "pulled",
            &Signed::at(&image, &signed.attached),
        ],
    );
    let pulled = std::fs::read_to_string(signed.clients.dir().join("pulled").join(ATTACHED_FILE))
        .expect("the pulled SBOM");
    assert_eq!(pulled, ATTACHED_CONTENT);
}

#[tokio::test]
async fn regctl_crane_and_go_containerregistry_see_exactly_the_merged_list() {
    let signed = Signed::start(|_| {}).await;
    let image = signed.through_sidecar();
    let merged = signed.merged();
    assert_eq!(regctl_list(&signed.clients, &image), merged);
    assert_eq!(
        ggcr_pages(&signed, &image, None),
        std::slice::from_ref(&merged)
    );

    // regctl's tree fetches every referrer's manifest by digest.
    let tree: Value = serde_json::from_str(&signed.clients.ok(
        "regctl",
        &["artifact", "tree", &image, "--format", "{{json .}}"],
    ))
    .expect("regctl's JSON");
    let referrers = tree["referrer"].as_array().expect("referrers");
    let mut walked = Vec::new();
    for referrer in referrers {
        assert_eq!(
            referrer["manifest"]["subject"]["digest"],
            signed.subject.as_str(),
            "{referrer}"
        );
        walked.push(
            referrer["reference"]["Digest"]
                .as_str()
                .expect("digest")
                .to_owned(),
        );
    }
    assert_eq!(sorted(walked), merged);

    // And crane, each by its digest.
    for digest in &merged {
        let manifest: Value = serde_json::from_str(&signed.clients.ok(
            "crane",
            &["manifest", "--insecure", &Signed::at(&image, digest)],
        ))
        .expect("a manifest");
        assert_eq!(
            manifest["subject"]["digest"],
            signed.subject.as_str(),
            "{digest}"
        );
    }
}

#[tokio::test]
async fn clients_that_follow_link_see_the_merged_list_across_pages() {
    // Pages of at most 1 KiB: a few descriptors each.
    let signed = Signed::start(|s| s.response.max_bytes = 1024).await;
    let image = signed.through_sidecar();
    let merged = signed.merged();
    let path = referrers_path(
        &format!("{PROJECT}/{}", signed.world.mirror(PROJECT).repository),
        &signed.subject,
    );
    let first = signed.sidecar.get_as(&path, ALICE).await;
    assert!(first.headers().contains_key("link"), "{first:?}");
    let first_page = digests(&first.json().await.expect("an index"));
    assert!(
        !first_page.is_empty() && first_page.len() < merged.len(),
        "{first_page:?}"
    );

    assert_eq!(oras_discover(&signed, &image), merged);
    assert_eq!(regctl_list(&signed.clients, &image), merged);
    // go-containerregistry asking pages of two, following Link.
    let pages = ggcr_pages(&signed, &image, Some(2));
    assert!(pages.len() >= 3, "{pages:?}");
    assert_eq!(pages.concat(), merged, "{pages:?}");
    // Its `remote.Referrers`, as released cosign reads referrers, sees the first page only.
    assert_eq!(ggcr_pages(&signed, &image, None), [first_page]);
}
