//! `referrers-sidecar warm --project`: a whole project's artifacts, listed from Harbor with a
//! project admin's credentials, warmed by the running sidecar each once, paced; every one a hit
//! afterwards, and a run again fetches nothing. Progress shows as a bar under a terminal; Ctrl-C
//! stops a run, and the next one goes on where it stopped.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use e2e::Sidecar;
use e2e::metrics::{self, Endpoint, OperatorResult, WarmResult};
use e2e::sidecar::binary;
use e2e::upstreams::{FerroOci, Pusher, venv_python};
use e2e::users::{ALICE, PAM, User};
use e2e::wait::wait_for_metric;
use e2e::world::{Mirror, World, ask, referrers_path};
use serde_json::Value;

/// A proxy-cache project `hub-proxy` whose Harbor holds `artifacts` artifacts pulled through
/// it: the mirror's signed subject and images in `team/app` (the first 150 at most, so that a
/// repository takes two pages) and `team/tool`; [`PAM`] its admin, [`ALICE`] a developer.
/// Returns the world and every artifact as `(repository, digest)`.
async fn project_of(artifacts: usize) -> (World, Vec<(String, String)>) {
    let upstream = FerroOci::start();
    let pusher = Pusher::new(&upstream.url());
    let mirror = Mirror::start(upstream, pusher, "team/app", false).await;
    let pusher = Pusher::new(&mirror.registry_url());
    let mut all = vec![("team/app".to_owned(), mirror.sample.subject.digest.clone())];
    for n in 1..artifacts {
        let repository = if n < 150 { "team/app" } else { "team/tool" };
        let image = pusher
            .push_image(
                repository,
                &format!("v{n}"),
                format!("image {n}").as_bytes(),
            )
            .await;
        all.push((repository.to_owned(), image.digest));
    }
    let world = World::builder()
        .mirror("hub-proxy", "upstream", mirror)
        .user(ALICE, &["hub-proxy"])
        .account(PAM.project_admin(&["hub-proxy"]))
        .start();
    for (repository, digest) in &all {
        let pulled = world
            .harbor
            .pull_manifest(ALICE, &format!("hub-proxy/{repository}"), digest)
            .await;
        assert_eq!(pulled.status(), 200, "{repository}@{digest} pulled through");
    }
    (world, all)
}

/// A sidecar for `world` warming `per_minute` lists a minute.
fn sidecar_pacing(world: &World, per_minute: u32) -> Sidecar {
    world.sidecar_with(|s| s.operator.warm_per_minute = per_minute)
}

/// The warm command's arguments for `sidecar`, without a configuration file.
fn warm_args(sidecar: &Sidecar, more: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "warm",
        "--config",
        "/nonexistent/config.yaml",
        "--url",
        &sidecar.url(""),
        "--project",
        "hub-proxy",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(more.iter().map(|a| (*a).to_owned()));
    args
}

/// The command as `user` (no terminal), off the test's runtime: exit code, stdout, stderr.
async fn run_warm(args: Vec<String>, user: User) -> (Option<i32>, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(binary())
            .args(&args)
            .env("HARBOR_USERNAME", user.name)
            .env("HARBOR_PASSWORD", user.password)
            .stdin(Stdio::null())
            .output()
            .expect("run warm");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("command thread")
}

/// `--json`'s lines: each artifact's, and the summary last.
fn json_lines(stdout: &str) -> (Vec<Value>, Value) {
    let mut lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let summary = lines.pop().expect("a summary line");
    (lines, summary)
}

/// The summary's counts: listed, warmed, fresh, failed.
fn counts(summary: &Value) -> [u64; 4] {
    ["listed", "warmed", "fresh", "failed"].map(|key| summary[key].as_u64().expect(key))
}

#[tokio::test]
async fn a_project_of_200_artifacts_is_warmed_each_once_and_every_one_is_a_hit() {
    let (world, artifacts) = project_of(200).await;
    let sidecar = sidecar_pacing(&world, 6000);
    let mirror = world.mirror("hub-proxy");
    assert_eq!(mirror.referrers_requests(), 0);

    let (code, stdout, stderr) = run_warm(warm_args(&sidecar, &["--json"]), PAM).await;
    assert_eq!(code, Some(0), "{stderr}");
    let (lines, summary) = json_lines(&stdout);
    assert_eq!(counts(&summary), [200, 200, 0, 0], "{summary}");
    assert_eq!(summary["interrupted"], false);
    let warmed: BTreeSet<(String, String)> = lines
        .iter()
        .map(|line| {
            assert_eq!(line["result"], "fetched", "{line}");
            (
                line["repository"].as_str().expect("repository").to_owned(),
                line["digest"].as_str().expect("digest").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        warmed,
        artifacts.iter().cloned().collect(),
        "each artifact once"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no bar without a terminal: {stderr}"
    );
    assert_eq!(
        mirror.referrers_requests(),
        200,
        "the upstream listed once each"
    );
    assert_eq!(
        sidecar
            .metric(&metrics::operator_warms(WarmResult::Fetched))
            .await,
        200.0
    );

    // Every artifact's first verification is a hit, and asks the upstream nothing.
    for (repository, digest) in &artifacts {
        let answer = ask(
            &sidecar,
            &referrers_path(&format!("hub-proxy/{repository}"), digest),
        )
        .await;
        assert_eq!(
            (answer.status, answer.cache.as_str()),
            (200, "hit"),
            "{repository}@{digest}"
        );
    }
    let subject = ask(&sidecar, &world.subject_path("hub-proxy")).await;
    world.assert_merged("hub-proxy", &subject);
    assert_eq!(mirror.referrers_requests(), 200);

    // Run again: everything is fresh, nothing is fetched.
    let (code, stdout, stderr) = run_warm(warm_args(&sidecar, &[]), PAM).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with(
            "hub-proxy: 200 artifacts listed: 0 warmed, 200 already fresh, 0 failed (in "
        ),
        "{stdout}"
    );
    assert_eq!(mirror.referrers_requests(), 200);
}

#[tokio::test]
async fn warming_takes_a_project_admin_and_a_served_project() {
    let (world, _) = project_of(3).await;
    let sidecar = sidecar_pacing(&world, 6000);

    let (code, _, stderr) = run_warm(warm_args(&sidecar, &[]), ALICE).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("403") && stderr.contains("warming needs the project admin role"),
        "{stderr}"
    );
    let wrong = User {
        password: "wrong",
        ..PAM
    };
    let (code, _, stderr) = run_warm(warm_args(&sidecar, &[]), wrong).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("401") && !stderr.contains("wrong"),
        "{stderr}"
    );
    // The calls already sent when the first refusal came back (four at most) were refused too.
    let forbidden = sidecar
        .metric(&metrics::operator_requests(
            Endpoint::Warm,
            OperatorResult::Forbidden,
        ))
        .await;
    assert!((1.0..=3.0).contains(&forbidden), "{forbidden}");

    let off = world.sidecar_with(|s| s.projects.enabled = vec![]);
    let (code, _, stderr) = run_warm(warm_args(&off, &[]), PAM).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("hub-proxy: not served (not_enabled"),
        "{stderr}"
    );

    let (code, _, stderr) =
        run_warm(warm_args(&sidecar, &["--repository", "team/nothing"]), PAM).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("Harbor has no repository hub-proxy/team/nothing"),
        "{stderr}"
    );
    assert_eq!(world.mirror("hub-proxy").referrers_requests(), 0);
}

#[tokio::test]
async fn since_and_repository_narrow_what_is_warmed() {
    let (world, artifacts) = project_of(4).await;
    let sidecar = sidecar_pacing(&world, 6000);
    // One artifact last pulled (and cached) thirty days ago.
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86_400);
    let (old_repository, old_digest) = &artifacts[1];
    world.harbor.set_artifact_times(
        &format!("hub-proxy/{old_repository}"),
        old_digest,
        e2e::proxy_cache::ArtifactTimes {
            pushed: month_ago,
            pulled: Some(month_ago),
        },
    );
    let (code, stdout, stderr) = run_warm(
        warm_args(
            &sidecar,
            &["--since", "7d", "--repository", "team/app", "--json"],
        ),
        PAM,
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let (lines, summary) = json_lines(&stdout);
    assert_eq!(counts(&summary), [3, 3, 0, 0], "{summary}");
    assert_eq!(summary["older"], 1);
    assert!(
        lines
            .iter()
            .all(|line| line["digest"] != old_digest.as_str()),
        "{stdout}"
    );
    assert_eq!(world.mirror("hub-proxy").referrers_requests(), 3);
}

#[tokio::test]
async fn a_registry_resting_after_a_rate_limit_is_not_called_and_the_command_waits() {
    let (world, artifacts) = project_of(5).await;
    // 60 a minute: a second between the first listing and the next, for its 429 to come back.
    let sidecar = sidecar_pacing(&world, 60);
    let mirror = world.mirror("hub-proxy");
    // Harbor's pulls through the project went through the front too.
    let pulls = mirror.front.seen().len();
    mirror.front.rate_limit("60");
    let child = Command::new(binary())
        .args(warm_args(&sidecar, &["--json"]))
        .env("HARBOR_USERNAME", PAM.name)
        .env("HARBOR_PASSWORD", PAM.password)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warm");
    // The four artifacts the command sends at once were each told to come back: the registry
    // rests after the upstream's 429.
    let limited = metrics::operator_requests(Endpoint::Warm, OperatorResult::Limited);
    wait_for_metric(&sidecar, &limited, 4.0).await;
    assert_eq!(
        mirror.front.seen().len() - pulls,
        1,
        "only the call that got the 429 reached the upstream"
    );
    // What the command is told: when the rest ends.
    let (repository, digest) = &artifacts[0];
    let told = e2e::http_client()
        .post(sidecar.url("/referrers-sidecar/v1/projects/hub-proxy/warm"))
        .query(&[("repository", repository), ("digest", digest)])
        .basic_auth(PAM.name, Some(PAM.password))
        .send()
        .await
        .expect("warm call");
    assert_eq!(told.status(), 429);
    let retry_after: u64 = told.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = told.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rests after a rate limit")),
        "{body}"
    );
    assert_eq!(mirror.front.seen().len() - pulls, 1);
    let stopped = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(stopped.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("command thread")
        .expect("warm's output");
    assert_eq!(output.status.code(), Some(130));
    let (_, summary) = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(counts(&summary), [5, 0, 0, 0], "{summary}");
}

#[tokio::test]
async fn a_terminal_shows_a_progress_bar() {
    let (world, _) = project_of(40).await;
    // 1200 a minute: two seconds for the bar to be drawn and redrawn.
    let sidecar = sidecar_pacing(&world, 1200);
    let args = warm_args(&sidecar, &[]);
    // Python's pty: the command runs with a pseudo-terminal as its stdin, stdout and stderr,
    // 40 rows by 160 columns; everything it wrote is printed, and its exit code returned.
    const UNDER_A_TERMINAL: &str = r#"
import fcntl, os, pty, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let output = tokio::task::spawn_blocking(move || {
        Command::new(venv_python())
            .arg("-c")
            .arg(UNDER_A_TERMINAL)
            .arg(binary())
            .args(&args)
            .env("HARBOR_USERNAME", PAM.name)
            .env("HARBOR_PASSWORD", PAM.password)
            .stdin(Stdio::null())
            .output()
            .expect("run warm under a pseudo-terminal")
    })
    .await
    .expect("command thread");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{screen}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The bar: drawn over itself, with the counts, the rate and the time left.
    assert!(
        screen.contains("\u{1b}["),
        "terminal control sequences: {screen:?}"
    );
    for part in [
        "warming hub-proxy [",
        "/40 listed",
        "warmed, ",
        "/s",
        "ETA ",
    ] {
        assert!(screen.contains(part), "{part:?} in {screen:?}");
    }
    assert!(
        screen.contains("hub-proxy: 40 artifacts listed: 40 warmed, 0 already fresh, 0 failed"),
        "{screen:?}"
    );
    assert_eq!(world.mirror("hub-proxy").referrers_requests(), 40);
}

#[tokio::test]
async fn ctrl_c_stops_a_run_and_the_next_run_skips_what_is_fresh() {
    let (world, _) = project_of(60).await;
    // 300 a minute: twelve seconds for 60 artifacts, time enough to stop it on the way.
    let sidecar = sidecar_pacing(&world, 300);
    let child = Command::new(binary())
        .args(warm_args(&sidecar, &["--json"]))
        .env("HARBOR_USERNAME", PAM.name)
        .env("HARBOR_PASSWORD", PAM.password)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warm");
    let fetched = metrics::operator_warms(WarmResult::Fetched);
    wait_for_metric(&sidecar, &fetched, 10.0).await;
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("command thread")
        .expect("warm's output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped: ") && stderr.contains("run it again to go on"),
        "{stderr}"
    );
    let (_, summary) = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(summary["interrupted"], true);
    let [listed, warmed, _, failed] = counts(&summary);
    assert!(
        (10..60).contains(&warmed) && failed == 0 && listed == 60,
        "{summary}"
    );

    // What it was told was warmed is fresh now (and so is what it had asked for when it
    // stopped, which the sidecar went on with): the next run fetches only the rest.
    let first_run = warmed;
    let (code, stdout, stderr) = run_warm(warm_args(&sidecar, &["--json"]), PAM).await;
    assert_eq!(code, Some(0), "{stderr}");
    let (_, summary) = json_lines(&stdout);
    let [listed, warmed, fresh, failed] = counts(&summary);
    assert_eq!((listed, failed), (60, 0), "{summary}");
    assert!(fresh >= first_run, "{first_run} warmed before: {summary}");
    assert_eq!(warmed + fresh, 60);
    assert_eq!(
        world.mirror("hub-proxy").referrers_requests(),
        60,
        "each listed once over both runs"
    );
}
