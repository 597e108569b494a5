//! `make demo` works: its self-check runs the real clients against the demo set-up (oci-client
//! lists the referrers; skopeo and oras-py resolve the tag through the core double's proxy
//! cache, and oras-py lists what `oras discover` would); the Go clients' commands it prints
//! succeed as printed, and every referrer it lists — the upstream's and Harbor's own — is
//! fetched by digest through its Harbor, with regctl and oras.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use e2e::clients::Clients;
use e2e::harbor_double::HARBOR_SBOM;
use e2e::users::DEMO;
use serde_json::Value;

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
    // The sample's two, cosign's and notation's signatures, Harbor's SBOM.
    assert!(stdout.contains("5 referrers"), "{stdout}");
    assert!(stdout.contains("application/spdx+json"), "{stdout}");
    // skopeo's inspection of the tag, and oras-py's tree.
    assert!(stdout.contains("skopeo: "), "{stdout}");
    assert!(
        stdout.contains("└── application/vnd.dev.cosign.artifact.sig.v1+json")
            || stdout.contains("├── application/vnd.dev.cosign.artifact.sig.v1+json"),
        "{stdout}"
    );
}

/// The demo, serving; stopped with SIGTERM (it then stops what it started) on drop.
struct Demo {
    child: Child,
    /// What it printed before serving.
    printed: Vec<String>,
}

impl Demo {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_referrers-demo"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the demo");
        let (lines_tx, lines_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let mut printed = Vec::new();
        e2e::wait::blocking("the demo serving", || {
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("the demo exited ({status}):\n{}", printed.join("\n"));
            }
            printed.extend(lines_rx.try_iter());
            printed.iter().any(|l| l == "Serving until Ctrl-C.")
        });
        Self { child, printed }
    }

    /// The printed command line that starts with `start`.
    fn line(&self, start: &str) -> &str {
        self.printed
            .iter()
            .map(|l| l.trim())
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line `{start}…`:\n{}", self.printed.join("\n")))
    }

    /// The sidecar's `host:port`.
    fn host(&self) -> String {
        let line = self.line("referrers-sidecar:");
        let url = line.split_whitespace().nth(1).expect("the sidecar's URL");
        url.trim_start_matches("http://").to_owned()
    }

    /// The image's digest, from the printed referrers URL.
    fn subject(&self) -> String {
        let line = self.line("curl -s -u");
        let (_, digest) = line.rsplit_once("/referrers/").expect("a referrers URL");
        digest.to_owned()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        e2e::wait::blocking("the demo stopping", || {
            self.child.try_wait().is_ok_and(|status| status.is_some())
        });
    }
}

/// The referrers in `regctl artifact tree`'s JSON, each with the digest of its manifest's
/// `subject`, as regctl fetched it.
fn regctl_tree(clients: &Clients, image: &str) -> Vec<(String, String, String)> {
    let tree: Value = serde_json::from_str(&clients.ok(
        "regctl",
        &["artifact", "tree", image, "--format", "{{json .}}"],
    ))
    .expect("regctl's JSON");
    tree["referrer"]
        .as_array()
        .expect("referrers")
        .iter()
        .map(|r| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&r["reference"]["Digest"]),
                text(&r["artifactType"]),
                text(&r["manifest"]["subject"]["digest"]),
            )
        })
        .collect()
}

#[test]
fn the_demo_s_go_client_commands_succeed_and_every_referrer_it_lists_is_fetched() {
    // Without them the demo prints no such commands: say what installs them.
    for client in ["cosign", "notation", "oras", "regctl"] {
        let _ = e2e::upstreams::tool(client);
    }
    let demo = Demo::start();
    let exports = demo.line("export PATH=");
    for command in [
        "cosign verify",
        "notation verify",
        "regctl artifact tree",
        "oras discover",
        "oras manifest fetch",
    ] {
        let line = demo.line(command);
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("{exports} && {line}"))
            .output()
            .expect("sh");
        assert!(
            output.status.success(),
            "{line}:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // The walk, in a home of the test's own.
    let (host, subject) = (demo.host(), demo.subject());
    let mut clients = Clients::new();
    clients.registry(&host, Some(DEMO));
    let repository = format!("{host}/demo-proxy/team/app");
    let tree = regctl_tree(&clients, &format!("{repository}:v1"));
    assert_eq!(tree.len(), 5, "{tree:?}");
    for (digest, _, referred) in &tree {
        assert_eq!(referred, &subject, "{digest}");
    }
    assert!(
        tree.iter()
            .any(|(_, artifact_type, _)| artifact_type == HARBOR_SBOM),
        "Harbor's own SBOM: {tree:?}"
    );
    let discovered: Value = serde_json::from_str(&clients.ok(
        "oras",
        &[
            "discover",
            "--plain-http",
            "--format",
            "json",
            &format!("{repository}:v1"),
        ],
    ))
    .expect("oras' JSON");
    let mut listed: Vec<String> = discovered["referrers"]
        .as_array()
        .expect("referrers")
        .iter()
        .map(|r| r["digest"].as_str().expect("digest").to_owned())
        .collect();
    listed.sort();
    let mut walked: Vec<String> = tree.into_iter().map(|(digest, _, _)| digest).collect();
    walked.sort();
    assert_eq!(listed, walked);
    for digest in &listed {
        let manifest: Value = serde_json::from_str(&clients.ok(
            "oras",
            &[
                "manifest",
                "fetch",
                "--plain-http",
                &format!("{repository}@{digest}"),
            ],
        ))
        .expect("a manifest");
        assert_eq!(manifest["subject"]["digest"], subject.as_str(), "{digest}");
    }
}
