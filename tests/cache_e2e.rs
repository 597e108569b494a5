//! The cache tier, end to end: what a client sees (`X-Referrers-Cache`, the list) and what the
//! upstream sees (requests counted at a front), with a real upstream registry.

use std::time::{Duration, Instant};

use e2e::proxy_world::{ALICE, ProxyWorld, ask, eventually, metric};
use e2e::scripted_upstream::{ScriptedUpstream, scripted_world};
use e2e::upstreams::DockerRegistry;
use serde_json::Value;

#[tokio::test]
async fn miss_hit_stale_and_refresh() {
    let world = ProxyWorld::start().await;
    let sidecar = world.sidecar("  fresh_for: 2s\n  keep_stale_for: 1h\n", "");
    let path = world.path();

    let (status, cache, upstream, first) = ask(&sidecar, &path).await;
    assert_eq!(
        (status, cache.as_str(), upstream.as_str()),
        (200, "miss", "api")
    );
    assert_eq!(first.len(), 3);
    assert_eq!(world.upstream_referrers_requests(), 1);

    let (_, cache, upstream, second) = ask(&sidecar, &path).await;
    assert_eq!((cache.as_str(), upstream.as_str()), ("hit", "api"));
    assert_eq!(second, first);
    assert_eq!(
        world.upstream_referrers_requests(),
        1,
        "a fresh entry costs no upstream call"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, cache, _, third) = ask(&sidecar, &path).await;
    assert_eq!(cache, "stale", "older than fresh_for: served at once");
    assert_eq!(third, first);
    eventually("the background refresh reaches the upstream", || {
        world.upstream_referrers_requests() == 2
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(
        &sidecar.metrics().await,
        "harbor_referrers_cache_refreshes_total{outcome=\"refreshed\"}",
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "the refresh did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, cache, _, _) = ask(&sidecar, &path).await;
    assert_eq!(cache, "hit", "refreshed");
    assert_eq!(world.upstream_referrers_requests(), 2);
    let after = sidecar.metrics().await;
    assert_eq!(
        metric(
            &after,
            "harbor_referrers_cache_lookups_total{result=\"hit\",tier=\"memory\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &after,
            "harbor_referrers_cache_lookups_total{result=\"stale\",tier=\"memory\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &after,
            "harbor_referrers_cache_stores_total{tier=\"memory\"}"
        ),
        2.0
    );
}

#[tokio::test]
async fn two_hundred_concurrent_requests_for_a_cold_key_make_one_upstream_request() {
    let world = ProxyWorld::start().await;
    let sidecar = world.sidecar("  fresh_for: 10m\n", "");
    let path = world.path();
    let client = e2e::http_client();
    let requests = (0..200).map(|_| {
        let client = client.clone();
        let url = sidecar.url(&path);
        async move {
            let response = client
                .get(url)
                .basic_auth(ALICE.0, Some(ALICE.1))
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
    assert_eq!(
        world.upstream_referrers_requests(),
        1,
        "{:?}",
        world.front.seen()
    );
}

#[tokio::test]
async fn a_stopped_upstream_serves_stale_until_the_entry_expires_then_local_only() {
    let mut world = ProxyWorld::start().await;
    let sidecar = world.sidecar("  fresh_for: 1s\n  keep_stale_for: 4s\n", "");
    let path = world.path();
    let (_, cache, _, all) = ask(&sidecar, &path).await;
    // The entry was fetched before this instant, so it is gone 4 s after it.
    let fetched_by = Instant::now();
    assert_eq!((cache.as_str(), all.len()), ("miss", 3));
    world.front.stop();

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, cache, upstream, served) = ask(&sidecar, &path).await;
    assert_eq!(
        (status, cache.as_str(), upstream.as_str()),
        (200, "stale", "api")
    );
    assert_eq!(
        served, all,
        "the upstream's list from the cache, with the local one"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, cache, _, served) = ask(&sidecar, &path).await;
    assert_eq!(cache, "stale", "a failed refresh keeps the stale entry");
    assert_eq!(served, all);

    let wait = Duration::from_millis(4300).saturating_sub(fetched_by.elapsed());
    tokio::time::sleep(wait).await;
    let (status, cache, upstream, served) = ask(&sidecar, &path).await;
    assert_eq!(
        (status, cache.as_str(), upstream.as_str()),
        (200, "miss", "error")
    );
    assert_eq!(
        served,
        vec![world.local["digest"].as_str().expect("digest").to_owned()]
    );
}

#[tokio::test]
async fn an_empty_list_expires_after_keep_empty_for() {
    let world = ProxyWorld::start().await;
    let sidecar = world.sidecar("  fresh_for: 1h\n  keep_empty_for: 2s\n", "");
    // A subject without referrers upstream.
    let path = format!("/v2/hub-proxy/team/app/referrers/sha256:{}", "9".repeat(64));
    let (_, cache, upstream, served) = ask(&sidecar, &path).await;
    assert_eq!((cache.as_str(), upstream.as_str()), ("miss", "api"));
    assert!(served.is_empty());
    let (_, cache, _, _) = ask(&sidecar, &path).await;
    assert_eq!(cache, "hit");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_, cache, _, _) = ask(&sidecar, &path).await;
    assert_eq!(
        cache, "miss",
        "gone after keep_empty_for although fresh_for is an hour"
    );
    assert_eq!(world.upstream_referrers_requests(), 2);
}

#[tokio::test]
async fn an_oversize_list_is_served_and_not_stored() {
    let world = ProxyWorld::start().await;
    let sidecar = world.sidecar("  max_entry_bytes: 64\n", "");
    let path = world.path();
    for _ in 0..2 {
        let (status, cache, _, served) = ask(&sidecar, &path).await;
        assert_eq!((status, cache.as_str(), served.len()), (200, "miss", 3));
    }
    assert_eq!(world.upstream_referrers_requests(), 2);
    let metrics = sidecar.metrics().await;
    assert_eq!(
        metric(&metrics, "harbor_referrers_cache_oversize_total"),
        2.0
    );
    assert_eq!(
        metric(
            &metrics,
            "harbor_referrers_cache_stores_total{tier=\"memory\"}"
        ),
        0.0
    );
}

#[tokio::test]
async fn a_fallback_tag_list_is_cached_too() {
    let world = ProxyWorld::start_on(DockerRegistry::start(), true).await;
    let sidecar = world.sidecar("  fresh_for: 10m\n", "");
    let path = world.path();
    let (_, cache, upstream, served) = ask(&sidecar, &path).await;
    assert_eq!(
        (cache.as_str(), upstream.as_str(), served.len()),
        ("miss", "tag", 3)
    );
    let before = world.front.seen().len();
    let (_, cache, upstream, again) = ask(&sidecar, &path).await;
    assert_eq!((cache.as_str(), upstream.as_str()), ("hit", "tag"));
    assert_eq!(again, served);
    assert_eq!(
        world.front.seen().len(),
        before,
        "no upstream request at all for a hit"
    );
}

/// The referrers path of the `i`-th made-up subject (never the all-zero probe digest).
fn subject(i: u32) -> String {
    format!("/v2/hub-proxy/team/app/referrers/sha256:{:064x}", i + 1)
}

#[tokio::test]
async fn a_truncated_list_is_served_but_not_stored_as_whole() {
    let upstream = ScriptedUpstream::start(3);
    let (_harbor, sidecar) = scripted_world(
        &upstream,
        "upstream:\n  allow_private_realms: true\n  max_pages: 2\n",
    );
    let (status, cache, result, served) = ask(&sidecar, &subject(1)).await;
    assert_eq!(
        (status, cache.as_str(), result.as_str()),
        (200, "miss", "truncated")
    );
    assert_eq!(served.len(), 2, "the pages read before the cap");
    assert_eq!(upstream.referrers_requests(), 2);
    let (_, cache, result, _) = ask(&sidecar, &subject(1)).await;
    assert_eq!(
        (cache.as_str(), result.as_str()),
        ("miss", "truncated"),
        "not cached as whole"
    );
    assert_eq!(upstream.referrers_requests(), 4);

    // Under the cap the same list is whole, and cached.
    let whole = ScriptedUpstream::start(3);
    let (_harbor, sidecar) = scripted_world(&whole, "upstream:\n  allow_private_realms: true\n");
    let (_, cache, result, served) = ask(&sidecar, &subject(1)).await;
    assert_eq!(
        (cache.as_str(), result.as_str(), served.len()),
        ("miss", "api", 3)
    );
    let (_, cache, _, _) = ask(&sidecar, &subject(1)).await;
    assert_eq!(cache, "hit");
}

#[tokio::test]
async fn the_registry_breaker_opens_on_5xx_and_stops_upstream_calls() {
    let upstream = ScriptedUpstream::start(1);
    upstream.fail_with(Some(503));
    let (_harbor, sidecar) = scripted_world(
        &upstream,
        "upstream:\n  allow_private_realms: true\n  breaker_failures: 2\n  breaker_cooldown: 1h\n",
    );
    for i in 0..2 {
        let (status, _, result, _) = ask(&sidecar, &subject(i)).await;
        assert_eq!((status, result.as_str()), (200, "error"));
    }
    let asked = upstream.requests();
    assert!(asked >= 2, "{asked}");
    // Open: other subjects of that registry are not asked upstream at all.
    for i in 2..6 {
        let (status, _, result, _) = ask(&sidecar, &subject(i)).await;
        assert_eq!((status, result.as_str()), (200, "skipped"));
    }
    assert_eq!(upstream.requests(), asked);
    let metrics = sidecar.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "harbor_referrers_breaker_state{target=\"scripted\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn client_errors_do_not_open_the_breaker() {
    let upstream = ScriptedUpstream::start(1);
    upstream.fail_with(Some(403));
    let (_harbor, sidecar) = scripted_world(
        &upstream,
        "upstream:\n  allow_private_realms: true\n  breaker_failures: 1\n  breaker_cooldown: 1h\n",
    );
    for i in 0..3 {
        let (status, _, result, _) = ask(&sidecar, &subject(i)).await;
        assert_eq!((status, result.as_str()), (200, "error"));
    }
    assert!(
        upstream.referrers_requests() >= 3,
        "every request still asked the upstream"
    );
    let metrics = sidecar.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "harbor_referrers_breaker_state{target=\"scripted\"}"
        ),
        0.0
    );
}
