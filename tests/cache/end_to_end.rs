//! The cache tier, end to end: what a client sees (`X-Referrers-Cache`, the list) and what the
//! upstream sees (requests counted at a front), with a real upstream registry.
//!
//! Entries that must go stale or expire get short lifetimes, and the tests ask until the
//! sidecar says so: no test depends on a sleep being long enough.

use std::time::Duration;

use e2e::metrics::{self, CacheResult, Refresh, Target, Tier};
use e2e::scripted_upstream::ScriptedUpstream;
use e2e::users::ALICE;
use e2e::wait::{eventually, wait_for_metric};
use e2e::world::{Mirror, World, ask, ask_until, referrers_path};
use serde_json::Value;

const HOUR: Duration = Duration::from_secs(3600);

/// A lifetime short enough to wait out, long enough that the request right after a miss still
/// finds the entry on a loaded machine.
const SHORT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn miss_hit_stale_and_refresh() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let mirror = world.mirror("hub-proxy");
    let sidecar = world.sidecar_with(|s| {
        s.cache.fresh_for = SHORT;
        s.cache.keep_stale_for = HOUR;
    });
    let path = world.subject_path("hub-proxy");

    let first = ask(&sidecar, &path).await;
    assert_eq!(
        (first.status, first.cache.as_str(), first.upstream.as_str()),
        (200, "miss", "api")
    );
    assert_eq!(first.digests.len(), 3);
    assert_eq!(mirror.referrers_requests(), 1);

    let second = ask(&sidecar, &path).await;
    assert_eq!(
        (second.cache.as_str(), second.upstream.as_str()),
        ("hit", "api")
    );
    assert_eq!(second.digests, first.digests);
    assert_eq!(
        mirror.referrers_requests(),
        1,
        "a fresh entry costs no upstream call"
    );

    // Hits until fresh_for has passed, then the stale entry, served at once.
    let (hits, third) = ask_until(&sidecar, &path, "stale").await;
    for hit in &hits {
        assert_eq!(hit.cache, "hit", "{hits:?}");
        assert_eq!(hit.digests, first.digests);
    }
    assert_eq!(third.digests, first.digests);
    eventually("the background refresh reaches the upstream", async || {
        mirror.referrers_requests() == 2
    })
    .await;
    wait_for_metric(&sidecar, &metrics::cache_refreshes(Refresh::Refreshed), 1.0).await;
    let fourth = ask(&sidecar, &path).await;
    assert_eq!(fourth.cache, "hit", "refreshed");
    assert_eq!(mirror.referrers_requests(), 2);
    let after = sidecar.metrics().await;
    assert_eq!(
        e2e::metric(
            &after,
            &metrics::cache_lookups(Tier::Memory, CacheResult::Hit)
        ),
        (2 + hits.len()) as f64
    );
    assert_eq!(
        e2e::metric(
            &after,
            &metrics::cache_lookups(Tier::Memory, CacheResult::Stale)
        ),
        1.0
    );
    assert_eq!(
        e2e::metric(&after, &metrics::cache_stores(Tier::Memory)),
        2.0
    );
}

#[tokio::test]
async fn two_hundred_concurrent_requests_for_a_cold_key_make_one_upstream_request() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let sidecar = world.sidecar_with(|s| s.cache.fresh_for = Duration::from_secs(600));
    let path = world.subject_path("hub-proxy");
    let client = e2e::http_client();
    let requests = (0..200).map(|_| {
        let client = client.clone();
        let url = sidecar.url(&path);
        async move {
            let response = client
                .get(url)
                .basic_auth(ALICE.name, Some(ALICE.password))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            (status, body["manifests"].as_array().map_or(0, Vec::len))
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    assert!(answers.iter().all(|a| *a == (200, 3)), "{answers:?}");
    let mirror = world.mirror("hub-proxy");
    assert_eq!(mirror.referrers_requests(), 1, "{:?}", mirror.front.seen());
}

#[tokio::test]
async fn a_stopped_upstream_serves_stale_until_the_entry_expires_then_local_only() {
    let mut world = World::hub_proxy(Mirror::with_referrers_api().await);
    // Fresh for a second, then stale long enough to see a refresh fail; the registry breaker
    // stays closed so the last answer shows the upstream's error itself.
    let sidecar = world.sidecar_with(|s| {
        s.cache.fresh_for = Duration::from_secs(1);
        s.cache.keep_stale_for = Duration::from_secs(1) + SHORT;
        s.upstream.breaker_failures = 1000;
        s.upstream.breaker_cooldown = HOUR;
    });
    let path = world.subject_path("hub-proxy");
    let first = ask(&sidecar, &path).await;
    assert_eq!((first.cache.as_str(), first.digests.len()), ("miss", 3));
    let all = first.digests;
    world.mirror_mut("hub-proxy").front.stop();

    let (hits, stale) = ask_until(&sidecar, &path, "stale").await;
    assert!(hits.iter().all(|a| a.cache == "hit"), "{hits:?}");
    assert_eq!(
        (stale.status, stale.upstream.as_str()),
        (200, "api"),
        "{stale:?}"
    );
    assert_eq!(
        stale.digests, all,
        "the upstream's list from the cache, with the local one"
    );
    wait_for_metric(&sidecar, &metrics::cache_refreshes(Refresh::Failed), 1.0).await;
    let again = ask(&sidecar, &path).await;
    assert_eq!(
        again.cache, "stale",
        "a failed refresh keeps the stale entry"
    );
    assert_eq!(again.digests, all);

    let (stale, expired) = ask_until(&sidecar, &path, "miss").await;
    assert!(
        stale.iter().all(|a| a.cache == "stale" && a.digests == all),
        "{stale:?}"
    );
    assert_eq!(
        (expired.status, expired.upstream.as_str()),
        (200, "error"),
        "{expired:?}"
    );
    assert_eq!(
        expired.digests,
        vec![world.local["digest"].as_str().expect("digest").to_owned()]
    );
}

#[tokio::test]
async fn an_empty_list_expires_after_keep_empty_for() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let sidecar = world.sidecar_with(|s| {
        s.cache.fresh_for = HOUR;
        s.cache.keep_empty_for = SHORT;
    });
    // A subject without referrers upstream.
    let path = referrers_path("hub-proxy/team/app", &format!("sha256:{}", "9".repeat(64)));
    let first = ask(&sidecar, &path).await;
    assert_eq!(
        (first.cache.as_str(), first.upstream.as_str()),
        ("miss", "api")
    );
    assert!(first.digests.is_empty());
    assert_eq!(ask(&sidecar, &path).await.cache, "hit");
    let (hits, gone) = ask_until(&sidecar, &path, "miss").await;
    assert!(hits.iter().all(|a| a.cache == "hit"), "{hits:?}");
    assert_eq!(
        gone.cache, "miss",
        "gone after keep_empty_for although fresh_for is an hour"
    );
    assert_eq!(world.mirror("hub-proxy").referrers_requests(), 2);
}

#[tokio::test]
async fn an_oversize_list_is_served_once_and_not_downloaded_again() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let sidecar = world.sidecar_with(|s| s.cache.max_entry_bytes = 64);
    let path = world.subject_path("hub-proxy");
    let answer = ask(&sidecar, &path).await;
    assert_eq!(
        (answer.status, answer.cache.as_str(), answer.digests.len()),
        (200, "miss", 3)
    );
    let again = ask(&sidecar, &path).await;
    assert_eq!(
        (again.status, again.cache.as_str(), again.upstream.as_str()),
        (200, "miss", "too_large"),
        "remembered as too large for keep_empty_for"
    );
    assert_eq!(world.mirror("hub-proxy").referrers_requests(), 1);
    let metrics = sidecar.metrics().await;
    assert_eq!(e2e::metric(&metrics, &metrics::cache_oversize()), 1.0);
    assert_eq!(
        e2e::metric(&metrics, &metrics::cache_stores(Tier::Memory)),
        0.0
    );
}

#[tokio::test]
async fn a_fallback_tag_list_is_cached_too() {
    let world = World::hub_proxy(Mirror::with_fallback_tag().await);
    let mirror = world.mirror("hub-proxy");
    let sidecar = world.sidecar_with(|s| s.cache.fresh_for = Duration::from_secs(600));
    let path = world.subject_path("hub-proxy");
    let first = ask(&sidecar, &path).await;
    assert_eq!(
        (
            first.cache.as_str(),
            first.upstream.as_str(),
            first.digests.len()
        ),
        ("miss", "tag", 3)
    );
    let before = mirror.front.seen().len();
    let again = ask(&sidecar, &path).await;
    assert_eq!(
        (again.cache.as_str(), again.upstream.as_str()),
        ("hit", "tag")
    );
    assert_eq!(again.digests, first.digests);
    assert_eq!(
        mirror.front.seen().len(),
        before,
        "no upstream request at all for a hit"
    );
}

/// The referrers path of the `i`-th made-up subject (never the all-zero probe digest).
fn subject(i: u32) -> String {
    referrers_path("hub-proxy/team/app", &format!("sha256:{:064x}", i + 1))
}

#[tokio::test]
async fn a_truncated_list_is_served_once_then_remembered_not_stored_as_whole() {
    let upstream = ScriptedUpstream::start(3);
    let world = World::hub_proxy_over("scripted", &upstream.url());
    let sidecar = world.sidecar_with(|s| s.upstream.max_pages = 2);
    let first = ask(&sidecar, &subject(1)).await;
    assert_eq!(
        (first.status, first.cache.as_str(), first.upstream.as_str()),
        (200, "miss", "truncated")
    );
    assert_eq!(first.digests.len(), 2, "the pages read before the cap");
    assert_eq!(upstream.referrers_requests(), 2);
    let again = ask(&sidecar, &subject(1)).await;
    assert_eq!(
        (again.cache.as_str(), again.upstream.as_str()),
        ("miss", "truncated"),
        "not cached as whole"
    );
    assert!(again.digests.is_empty(), "local referrers only: {again:?}");
    assert_eq!(
        upstream.referrers_requests(),
        2,
        "remembered for keep_empty_for: not downloaded again"
    );

    // Under the cap the same list is whole, and cached.
    let whole = ScriptedUpstream::start(3);
    let world = World::hub_proxy_over("scripted", &whole.url());
    let sidecar = world.sidecar();
    let first = ask(&sidecar, &subject(1)).await;
    assert_eq!(
        (
            first.cache.as_str(),
            first.upstream.as_str(),
            first.digests.len()
        ),
        ("miss", "api", 3)
    );
    assert_eq!(ask(&sidecar, &subject(1)).await.cache, "hit");
}

#[tokio::test]
async fn the_registry_breaker_opens_on_5xx_and_stops_upstream_calls() {
    let upstream = ScriptedUpstream::start(1);
    upstream.fail_with(Some(503));
    let world = World::hub_proxy_over("scripted", &upstream.url());
    let sidecar = world.sidecar_with(|s| {
        s.upstream.breaker_failures = 2;
        s.upstream.breaker_cooldown = HOUR;
    });
    for i in 0..2 {
        let answer = ask(&sidecar, &subject(i)).await;
        assert_eq!((answer.status, answer.upstream.as_str()), (200, "error"));
    }
    let asked = upstream.requests();
    assert!(asked >= 2, "{asked}");
    // Open: other subjects of that registry are not asked upstream at all.
    for i in 2..6 {
        let answer = ask(&sidecar, &subject(i)).await;
        assert_eq!((answer.status, answer.upstream.as_str()), (200, "skipped"));
    }
    assert_eq!(upstream.requests(), asked);
    assert_eq!(
        sidecar
            .metric(&metrics::breaker_state(Target::Registry("scripted")))
            .await,
        1.0
    );
}

#[tokio::test]
async fn client_errors_do_not_open_the_breaker() {
    let upstream = ScriptedUpstream::start(1);
    upstream.fail_with(Some(403));
    let world = World::hub_proxy_over("scripted", &upstream.url());
    let sidecar = world.sidecar_with(|s| {
        s.upstream.breaker_failures = 1;
        s.upstream.breaker_cooldown = HOUR;
    });
    for i in 0..3 {
        let answer = ask(&sidecar, &subject(i)).await;
        assert_eq!((answer.status, answer.upstream.as_str()), (200, "error"));
    }
    assert!(
        upstream.referrers_requests() >= 3,
        "every request still asked the upstream"
    );
    assert_eq!(
        sidecar
            .metric(&metrics::breaker_state(Target::Registry("scripted")))
            .await,
        0.0
    );
}
