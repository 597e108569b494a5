//! cosign and notation verify signatures that exist only on the upstream registry: through
//! Harbor core alone (Harbor up to 2.15: its referrers API lists only what Harbor holds) they
//! find no signature; through the sidecar, for the same proxy-cache project, they succeed.
//!
//! Core is asked first: a signature pulled by digest through the proxy-cache project is stored
//! by Harbor as a local referrer, so after the sidecar's verification core lists it too.

use e2e::clients::notation_verify_args;

use crate::Signed;

#[tokio::test]
async fn cosign_verifies_through_the_sidecar_and_not_through_core_alone() {
    let signed = Signed::start(|_| {}).await;
    let refused = signed.clients.fails(
        "cosign",
        &signed
            .clients
            .cosign_verify_args(&signed.tagged_through_core()),
    );
    assert!(
        refused.stderr.contains("no signatures found"),
        "{}",
        refused.output()
    );
    let verified = signed.clients.ok(
        "cosign",
        &signed
            .clients
            .cosign_verify_args(&signed.tagged_through_sidecar()),
    );
    assert!(
        verified.contains(&format!(
            "\"docker-manifest-digest\":\"{}\"",
            signed.subject
        )),
        "{verified}"
    );
}

#[tokio::test]
async fn notation_verifies_through_the_sidecar_and_not_through_core_alone() {
    let signed = Signed::start(|_| {}).await;
    let refused = signed
        .clients
        .fails("notation", &notation_verify_args(&signed.through_core()));
    assert!(
        refused.stderr.contains("no signature is associated with"),
        "{}",
        refused.output()
    );
    let through_sidecar = signed.through_sidecar();
    let verified = signed
        .clients
        .ok("notation", &notation_verify_args(&through_sidecar));
    assert!(
        verified.contains(&format!(
            "Successfully verified signature for {through_sidecar}"
        )),
        "{verified}"
    );
}
