//! Memory stays bounded against huge upstream lists: twenty requests at once for subjects
//! whose upstream lists are a hundred pages of about 4 MiB each (400 MiB apiece) keep the
//! sidecar's peak resident memory under 256 MiB, and the lists it could not hold are not
//! downloaded again.

use std::sync::Arc;
use std::time::Duration;

use e2e::metrics;
use e2e::scripted_upstream::ScriptedUpstream;
use e2e::wait::wait_for_metric;
use e2e::world::{World, ask, referrers_path};

const SUBJECTS: usize = 20;
const PAGES: usize = 100;
/// Just under `upstream.max_page_bytes` (4 MiB): every page is one the sidecar may read.
const PAGE_BYTES: usize = 4 * 1024 * 1024 - 1024;
const PEAK_RSS_LIMIT: u64 = 256 * 1024 * 1024;
/// What a list too large to hold whole is answered with, and remembered as.
const UNHELD: [&str; 3] = ["over_budget", "too_large", "truncated"];

#[tokio::test]
async fn twenty_huge_lists_at_once_stay_under_256_mib_and_are_not_downloaded_again() {
    let upstream = ScriptedUpstream::start_bulk(PAGES, PAGE_BYTES);
    let world = World::hub_proxy_over("bulk", &upstream.url());
    // A debug build decoding pages of megabytes on a loaded machine is slow: the listings get
    // the longest times there are, so that each one ends by refusal, never by a timeout
    // (which would not be remembered).
    let sidecar = Arc::new(world.sidecar_with(|s| {
        s.response.deadline = Duration::from_secs(60);
        s.upstream.timeout = Duration::from_secs(600);
    }));
    let paths: Vec<String> = (0..SUBJECTS)
        .map(|i| referrers_path("hub-proxy/team/app", &format!("sha256:{:064x}", 0xb000 + i)))
        .collect();

    let mut first_round = tokio::task::JoinSet::new();
    for path in paths.clone() {
        let sidecar = Arc::clone(&sidecar);
        first_round.spawn(async move { ask(&sidecar, &path).await });
    }
    while let Some(answer) = first_round.join_next().await {
        let answer = answer.expect("no panic");
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(
            UNHELD.contains(&answer.upstream.as_str()) || answer.upstream == "timeout",
            "{answer:?}"
        );
    }
    // Every listing has ended (those past the request's budget went on in the background).
    wait_for_metric(
        &sidecar,
        &metrics::upstream_fetches("bulk"),
        SUBJECTS as f64,
    )
    .await;
    let pages_read = upstream.referrers_requests();

    for path in &paths {
        let answer = ask(&sidecar, path).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(UNHELD.contains(&answer.upstream.as_str()), "{answer:?}");
    }
    assert_eq!(
        upstream.referrers_requests(),
        pages_read,
        "the second round makes no upstream call"
    );

    let peak = sidecar.peak_rss_bytes();
    assert!(
        peak < PEAK_RSS_LIMIT,
        "peak RSS {} MiB after {pages_read} pages of {PAGE_BYTES} bytes",
        peak / (1024 * 1024)
    );
}
