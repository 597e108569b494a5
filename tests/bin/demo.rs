//! `make demo`: on loopback, a real upstream registry with a signed image (ferro-oci-server:
//! an image, a cosign-style signature and an SBOM; signed with cosign and notation too where
//! `make setup` installed them), the Harbor core double with a proxy-cache project over it
//! (manifests and blobs pulled through from the upstream, as Harbor's proxy cache does) and one
//! local referrer (an SBOM Harbor generated), and the sidecar in front. Prints what to run,
//! then serves until Ctrl-C. `--once` runs the real clients against it and exits (a
//! self-check): oci-client, skopeo and oras-py.

use std::process::{Command, ExitCode};

use e2e::clients::{Clients, notation_verify_args, shell_line};
use e2e::config::Configure;
use e2e::harbor_webhook::{self, Format};
use e2e::upstreams::{installed, venv_python};
use e2e::users::DEMO;
use e2e::world::{Mirror, World};

/// The Go clients the demo signs with and prints commands for.
const GO_CLIENTS: [&str; 4] = ["cosign", "notation", "oras", "regctl"];
const USER: &str = DEMO.name;
/// The auth header of the demo's webhook policy, and the sidecar's `webhook.auth_header`.
const WEBHOOK_SECRET: &str = "Bearer demo-webhook-secret";
const PASSWORD: &str = DEMO.password;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let once = std::env::args().any(|a| a == "--once");
    let world = World::builder()
        .mirror("demo-proxy", "upstream", Mirror::with_referrers_api().await)
        .harbor_sbom()
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
    let repository = format!("{host}/demo-proxy/team/app");
    // The clients users run, in a home of the demo's own: the image signed upstream.
    let clients = GO_CLIENTS
        .iter()
        .all(|c| installed(c).is_some())
        .then(|| sign(upstream, &host));
    let upstream_referrers = sample.referrers.len() + if clients.is_some() { 2 } else { 0 };
    let merged = upstream_referrers + 1;
    let client = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("list-referrers")));
    println!(
        "\nreferrers-sidecar demo\n\
         \n  upstream registry (referrers API): {upstream}  team/app, {upstream_referrers} referrers\
         \n  Harbor core (test double):         {core}  project demo-proxy (proxy cache), 1 local referrer (an SBOM Harbor generated)\
         \n  referrers-sidecar:                 http://{host}  metrics http://127.0.0.1:{metrics}/metrics\
         \n\nThe merged list ({upstream_referrers} upstream + 1 local):\
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
         \n",
        upstream = upstream.url(),
        core = world.harbor.url(),
        metrics = sidecar.metrics_port,
        python = python.display(),
        discover = DISCOVER,
    );
    match &clients {
        Some(clients) => {
            let sbom = world.local_of("demo-proxy")["digest"]
                .as_str()
                .expect("digest");
            println!(
                "The Go clients, with the demo's credentials and keys:\
                 \n  {exports}\
                 \nThe upstream's signatures, verified through Harbor (Harbor core alone, {core}, finds none until they were pulled through it):\
                 \n  {cosign}\
                 \n  {notation}\
                 \nThe tree: every referrer, the upstream's and Harbor's SBOM, fetched by digest through Harbor:\
                 \n  {tree}\
                 \n  {oras_tree}\
                 \n  {oras_fetch}\
                 \n",
                exports = clients.shell_exports(),
                core = world.harbor.url(),
                cosign = shell_line("cosign", &clients.cosign_verify_args(&tagged)),
                notation = shell_line("notation", &notation_verify_args(&reference)),
                tree = shell_line("regctl", &["artifact", "tree", &tagged]),
                oras_tree = shell_line(
                    "oras",
                    &["discover", "--plain-http", "--format", "tree", &tagged]
                ),
                oras_fetch = shell_line(
                    "oras",
                    &[
                        "manifest",
                        "fetch",
                        "--plain-http",
                        &format!("{repository}@{sbom}")
                    ]
                ),
            );
        }
        None => println!(
            "The Go clients ({}) are not all installed: `make setup` installs them, and the demo then signs its image with cosign and notation.\n",
            GO_CLIENTS.join(", ")
        ),
    }

    if once {
        let Some(client) = client.filter(|c| c.exists()) else {
            eprintln!("list-referrers is not built: cargo build -p e2e --bins");
            return ExitCode::FAILURE;
        };
        let listed = run(Command::new(client).args([&reference, USER, PASSWORD]))
            .is_some_and(|out| out.contains(&format!("{merged} referrers")));
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

/// Signs the upstream's image with cosign and notation, in a home of the demo's own where the
/// Go clients have the sidecar (`host`) with the demo's credentials.
fn sign(upstream: &Mirror, host: &str) -> Clients {
    let mut clients = Clients::new();
    let registry = upstream.registry_url().replace("http://", "");
    clients.registry(&registry, None);
    clients.registry(host, Some(DEMO));
    let image = format!(
        "{registry}/{}@{}",
        upstream.repository, upstream.sample.subject.digest
    );
    clients.cosign_key_pair();
    clients.cosign_sign(&image);
    clients.notation_test_key();
    clients.notation_sign(&image);
    clients
}

/// The oras-py script that shows what `oras discover` shows.
const DISCOVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bin/oras_discover.py");

/// Runs a client, echoing what it prints; its standard output when it succeeded.
fn run(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    output.status.success().then_some(stdout)
}
