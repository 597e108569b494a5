//! `make demo`: on loopback, a real upstream registry with a signed image (ferro-oci-server:
//! an image, a cosign-style signature and an SBOM), the Harbor core double with a proxy-cache
//! project over it and one local referrer, and the sidecar in front. Prints what to run, then
//! serves until Ctrl-C. `--once` runs the real client against it and exits (a self-check).

use std::process::{Command, ExitCode};

use e2e::users::User;
use e2e::world::{Mirror, World};

/// The demo's user, who may pull from `demo-proxy`.
const DEMO: User = User {
    name: "demo",
    password: "demo-password",
};
const USER: &str = DEMO.name;
const PASSWORD: &str = DEMO.password;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let once = std::env::args().any(|a| a == "--once");
    let world = World::builder()
        .mirror("demo-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(DEMO, &["demo-proxy"])
        .start();
    let sidecar = world.sidecar();
    let upstream = world.mirror("demo-proxy");
    let sample = &upstream.sample;

    let host = format!("127.0.0.1:{}", sidecar.port);
    let subject = &sample.subject.digest;
    let reference = format!("{host}/demo-proxy/team/app@{subject}");
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
         \n",
        upstream = upstream.url(),
        core = world.harbor.url(),
        metrics = sidecar.metrics_port,
    );

    if once {
        let Some(client) = client.filter(|c| c.exists()) else {
            eprintln!("list-referrers is not built: cargo build -p e2e --bins");
            return ExitCode::FAILURE;
        };
        let output = Command::new(client)
            .args([&reference, USER, PASSWORD])
            .output()
            .expect("run list-referrers");
        let stdout = String::from_utf8_lossy(&output.stdout);
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        return if output.status.success() && stdout.contains("3 referrers") {
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
