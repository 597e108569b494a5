//! `make demo` works: its self-check runs the real clients against the demo set-up (oci-client
//! lists the referrers; skopeo and oras-py resolve the tag through the core double's proxy
//! cache, and oras-py lists what `oras discover` would).

use std::process::Command;

#[test]
fn the_demo_serves_merged_referrers_to_a_real_client() {
    let output = Command::new(env!("CARGO_BIN_EXE_referrers-demo"))
        .arg("--once")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("3 referrers"), "{stdout}");
    assert!(stdout.contains("application/spdx+json"), "{stdout}");
    // skopeo's inspection of the tag, and oras-py's tree.
    assert!(stdout.contains("skopeo: "), "{stdout}");
    assert!(
        stdout.contains("└── application/vnd.dev.cosign.artifact.sig.v1+json")
            || stdout.contains("├── application/vnd.dev.cosign.artifact.sig.v1+json"),
        "{stdout}"
    );
}
