//! Signatures still verify through the sidecar when the upstream registry is down or rate-limits,
//! once the upstream's list is cached, even stale: the sidecar serves the cached list, and
//! Harbor serves what it cached of the image and the signatures (as Harbor's proxy cache does
//! when its upstream fails). The image is verified by digest, as admission controllers do: it
//! was pulled through Harbor by digest, which Harbor keeps without a tag.

use std::time::Duration;

use e2e::clients::notation_verify_args;
use e2e::world::{ask, ask_until, referrers_path};

use crate::{PROJECT, Signed, sorted};

/// Verifies with cosign and notation through the sidecar.
fn verify(signed: &Signed) {
    let image = signed.through_sidecar();
    signed
        .clients
        .ok("cosign", &signed.clients.cosign_verify_args(&image));
    signed.clients.ok("notation", &notation_verify_args(&image));
}

/// The scenario with lists fresh for a second; the image pulled through the sidecar and its
/// signatures verified, so that Harbor and the sidecar have cached what verifying takes.
async fn verified_once() -> (Signed, String) {
    let signed = Signed::start(|s| s.cache.fresh_for = Duration::from_secs(1)).await;
    signed.clients.ok(
        "crane",
        &["manifest", "--insecure", &signed.through_sidecar()],
    );
    verify(&signed);
    let path = referrers_path(
        &format!("{PROJECT}/{}", signed.world.mirror(PROJECT).repository),
        &signed.subject,
    );
    (signed, path)
}

/// Once the list is stale, verification succeeds, and the list served is still the merged one.
async fn verifies_from_the_stale_list(signed: &Signed, path: &str) {
    ask_until(&signed.sidecar, path, "stale").await;
    verify(signed);
    let answer = ask(&signed.sidecar, path).await;
    assert_eq!(answer.cache, "stale", "{answer:?}");
    assert_eq!(
        sorted(answer.digests.clone()),
        signed.merged(),
        "{answer:?}"
    );
}

#[tokio::test]
async fn signatures_verify_from_the_cache_while_the_upstream_is_down() {
    let (mut signed, path) = verified_once().await;
    signed.world.mirror_mut(PROJECT).front.stop();
    verifies_from_the_stale_list(&signed, &path).await;
}

#[tokio::test]
async fn signatures_verify_from_the_cache_while_the_upstream_answers_429() {
    let (signed, path) = verified_once().await;
    let front = &signed.world.mirror(PROJECT).front;
    front.rate_limit("120");
    front.clear();
    verifies_from_the_stale_list(&signed, &path).await;
    // The upstream was asked (and answered 429): the sidecar's refresh, Harbor's pulls.
    assert!(!front.seen().is_empty());
}
