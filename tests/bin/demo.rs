//! `make demo`: on loopback, a real upstream registry with a signed image (ferro-oci-server:
//! an image, a cosign-style signature and an SBOM), the Harbor core double with a proxy-cache
//! project over it (manifests and blobs pulled through from the upstream, as Harbor's proxy
//! cache does) and one local referrer, and the sidecar in front. Prints what to run, then
//! serves until Ctrl-C. `--once` runs the real clients against it and exits (a self-check):
//! oci-client, skopeo and oras-py.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use e2e::config::Configure;
use e2e::harbor_webhook::{self, Format};
use e2e::users::User;
use e2e::world::{Mirror, World};

/// The demo's user, who may pull from `demo-proxy`.
const DEMO: User = User {
    name: "demo",
    password: "demo-password",
};
const USER: &str = DEMO.name;
/// The auth header of the demo's webhook policy, and the sidecar's `webhook.auth_header`.
const WEBHOOK_SECRET: &str = "Bearer demo-webhook-secret";
const PASSWORD: &str = DEMO.password;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let once = std::env::args().any(|a| a == "--once");
    let world = World::builder()
        .mirror("demo-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(DEMO, &["demo-proxy"])
        .start();
    let sidecar = world.sidecar_with(|s| s.webhook_auth_header(WEBHOOK_SECRET));
    let webhook = sidecar.url(harbor_webhook::PATH);
    // As a webhook policy in Harbor would: every pull through the project is announced.
    world.harbor.send_pull_webhooks(&webhook, WEBHOOK_SECRET);
    let upstream = world.mirror("demo-proxy");
    let sample = &upstream.sample;

    let host = format!("127.0.0.1:{}", sidecar.port);
    let subject = &sample.subject.digest;
    let reference = format!("{host}/demo-proxy/team/app@{subject}");
    let tagged = format!("{host}/demo-proxy/team/app:v1");
    let python = venv_python();
    let pulled = harbor_webhook::artifact_event(
        Format::Default,
        "PULL_ARTIFACT",
        "demo-proxy/team/app",
        subject,
        "v1",
    );
    let client = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("list-referrers")));
    println!(
        "\nreferrers-sidecar demo\n\
         \n  upstream registry (referrers API): {upstream}  team/app, 2 referrers\
         \n  Harbor core (test double):         {core}  project demo-proxy (proxy cache), 1 local referrer\
         \n  referrers-sidecar:                 http://{host}  metrics http://127.0.0.1:{metrics}/metrics\
         \n\nThe merged list (2 upstream + 1 local):\
         \n  curl -s -u {USER}:{PASSWORD} http://{host}/v2/demo-proxy/team/app/referrers/{subject}\
         \nFiltered to the SBOM:\
         \n  curl -s -u {USER}:{PASSWORD} 'http://{host}/v2/demo-proxy/team/app/referrers/{subject}?artifactType=application/spdx%2Bjson'\
         \nPaged, one per page (follow the Link header):\
         \n  curl -si -u {USER}:{PASSWORD} 'http://{host}/v2/demo-proxy/team/app/referrers/{subject}?n=1'\
         \nWithout credentials: Harbor's challenge, and nothing from the upstream:\
         \n  curl -si http://{host}/v2/demo-proxy/team/app/referrers/{subject}\
         \nA real OCI client (oci-client):\
         \n  cargo run -q -p e2e --bin list-referrers -- {reference} {USER} {PASSWORD}\
         \nThe tag's manifest, pulled through Harbor's proxy cache, and its digest (skopeo):\
         \n  skopeo inspect --raw --tls-verify=false --creds {USER}:{PASSWORD} docker://{tagged} > manifest.json && skopeo manifest-digest manifest.json\
         \nWhat `oras discover` shows, with oras-py:\
         \n  {python} {discover} {tagged} {USER} {PASSWORD}\
         \nHarbor's pull webhook, which warms the cache (the core double sends it for every pull):\
         \n  curl -si -X POST -H 'Authorization: {WEBHOOK_SECRET}' -H 'Content-Type: application/json' {webhook} -d '{pulled}'\
         \nWith the Go clients, where they are installed:\
         \n  oras discover --plain-http -u {USER} -p {PASSWORD} {tagged}\
         \n  regctl registry set --tls disabled {host} && regctl registry login -u {USER} -p {PASSWORD} {host} && regctl artifact list {tagged}\
         \n  cosign login -u {USER} -p {PASSWORD} {host} && cosign tree --allow-insecure-registry {tagged}\
         \n",
        upstream = upstream.url(),
        core = world.harbor.url(),
        metrics = sidecar.metrics_port,
        python = python.display(),
        discover = DISCOVER,
    );

    if once {
        let Some(client) = client.filter(|c| c.exists()) else {
            eprintln!("list-referrers is not built: cargo build -p e2e --bins");
            return ExitCode::FAILURE;
        };
        let listed = run(Command::new(client).args([&reference, USER, PASSWORD]))
            .is_some_and(|out| out.contains("3 referrers"));
        // The exact bytes of the upstream's manifest: the digest is preserved.
        let manifest = run(Command::new(e2e::upstreams::tool("skopeo")).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &format!("{USER}:{PASSWORD}"),
            &format!("docker://{tagged}"),
        ]));
        let resolved = manifest.is_some_and(|raw| {
            let digest = e2e::upstreams::sha256_digest(raw.trim_end().as_bytes());
            println!("\nskopeo: {tagged} is {digest}");
            &digest == subject
        });
        let discovered = run(Command::new(&python).args([DISCOVER, &tagged, USER, PASSWORD]))
            .is_some_and(|out| {
                out.contains(subject.as_str()) && out.contains("application/spdx+json")
            });
        return if listed && resolved && discovered {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    println!("Serving until Ctrl-C.");
    // SIGTERM too: returning from here stops the processes the demo started.
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
    ExitCode::SUCCESS
}

/// The oras-py script that shows what `oras discover` shows.
const DISCOVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bin/oras_discover.py");

/// The Python of the tools' venv (`make setup` installs oras-py there).
fn venv_python() -> PathBuf {
    std::env::var_os("REFERRERS_SIDECAR_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/referrers-sidecar/tools"))
        })
        .unwrap_or_default()
        .join("venv/bin/python")
}

/// Runs a client, echoing what it prints; its standard output when it succeeded.
fn run(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    output.status.success().then_some(stdout)
}
