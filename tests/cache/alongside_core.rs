//! The cache lookup runs alongside core's call once the project's facts are known, and what it
//! finds is used only after core's 200: a caller core refuses gets core's answer, with nothing
//! of the cached upstream list in it, and changes no tier, while an authorized caller still
//! gets the hit, from either tier.

use e2e::Sidecar;
use e2e::config::{Configure, Settings};
use e2e::metrics::{self, CacheResult, Tier};
use e2e::redis::RedisServer;
use e2e::users::{ALICE, BOB, User};
use e2e::world::{Mirror, World, ask, referrers_path};
use serde_json::Value;

async fn lookups(sidecar: &Sidecar) -> (f64, f64) {
    (
        sidecar
            .metric(&metrics::cache_lookups(Tier::Memory, CacheResult::Hit))
            .await,
        sidecar
            .metric(&metrics::cache_lookups(Tier::Memory, CacheResult::Miss))
            .await,
    )
}

/// `path` as `user` (Basic), or without credentials.
async fn refused(sidecar: &Sidecar, path: &str, user: Option<User>) -> (u16, String, String) {
    let mut request = e2e::http_client().get(sidecar.url(path));
    if let Some(user) = user {
        request = request.header("Authorization", user.basic_authorization());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("header").to_owned())
        .unwrap_or_default();
    assert!(response.headers().get("x-referrers-cache").is_none());
    assert!(response.headers().get("x-referrers-upstream").is_none());
    (status, challenge, response.text().await.expect("body"))
}

#[tokio::test]
async fn a_caller_core_refuses_gets_cores_401_while_the_list_is_cached() {
    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .user(BOB, &[])
        .start();
    let sidecar = world.sidecar();
    let path = world.subject_path("hub-proxy");
    let mirror = world.mirror("hub-proxy");

    // Cached, and the project's facts with it.
    let miss = ask(&sidecar, &path).await;
    assert_eq!((miss.status, miss.cache.as_str()), (200, "miss"));
    let hit = ask(&sidecar, &path).await;
    assert_eq!(
        (hit.status, hit.cache.as_str(), hit.upstream.as_str()),
        (200, "hit", "api")
    );
    assert_eq!(hit.digests, miss.digests, "the hit answers as the miss did");
    let before = lookups(&sidecar).await;

    for (user, challenge) in [
        (Some(BOB), "Basic realm=\"harbor\""),
        (None, "Bearer realm="),
    ] {
        let (status, got, body) = refused(&sidecar, &path, user).await;
        assert_eq!(status, 401, "{body}");
        assert!(got.starts_with(challenge), "{got}");
        let errors: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(errors["errors"][0]["code"], "UNAUTHORIZED");
        for referrer in &mirror.sample.referrers {
            assert!(
                !body.contains(&referrer.digest),
                "upstream data in a refused answer: {body}"
            );
        }
    }
    assert_eq!(
        lookups(&sidecar).await,
        before,
        "a lookup for a refused caller is never used, nor counted"
    );

    let again = ask(&sidecar, &path).await;
    assert_eq!(
        (again.status, again.cache.as_str(), again.upstream.as_str()),
        (200, "hit", "api")
    );
    assert_eq!(again.digests, miss.digests);
    assert_eq!(mirror.referrers_requests(), 1, "one upstream call in all");
}

#[tokio::test]
async fn a_replica_that_knows_the_project_reads_redis_alongside_core_and_only_uses_it_after() {
    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .user(BOB, &[])
        .start();
    let redis = RedisServer::start();
    let shared = |s: &mut Settings| s.redis(&redis.url(10));
    let first = world.sidecar_with(shared);
    let second = world.sidecar_with(shared);
    let path = world.subject_path("hub-proxy");
    let mirror = world.mirror("hub-proxy");

    let stored = ask(&first, &path).await;
    assert_eq!((stored.status, stored.cache.as_str()), (200, "miss"));
    // The second replica learns the project's facts with another subject.
    let other = referrers_path("hub-proxy/team/app", &format!("sha256:{:064x}", 7));
    assert_eq!(ask(&second, &other).await.status, 200);
    let redis_hits_series = metrics::cache_lookups(Tier::Redis, CacheResult::Hit);
    let redis_hits = || second.metric(&redis_hits_series);
    let (memory_before, redis_before) = (lookups(&second).await, redis_hits().await);

    let (status, _, body) = refused(&second, &path, Some(BOB)).await;
    assert_eq!(status, 401, "{body}");
    for referrer in &mirror.sample.referrers {
        assert!(!body.contains(&referrer.digest), "{body}");
    }
    assert_eq!(
        (lookups(&second).await, redis_hits().await),
        (memory_before, redis_before),
        "nothing counted for a refused caller"
    );

    let shared_hit = ask(&second, &path).await;
    assert_eq!((shared_hit.status, shared_hit.cache.as_str()), (200, "hit"));
    assert_eq!(shared_hit.digests, stored.digests);
    assert_eq!(
        redis_hits().await,
        redis_before + 1.0,
        "read from Redis: the refused request stored nothing in memory"
    );
    assert_eq!(
        mirror.referrers_requests(),
        2,
        "the stored subject once, the other subject once"
    );
}
