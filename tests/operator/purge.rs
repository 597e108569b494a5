//! Purges that cost little and cannot be flooded: a purge among a million keys that are not the
//! sidecar's finds its lists without walking Redis's keyspace, drops them on every replica and
//! nothing of another registry; past `operator.purges_per_minute` a project's purges are
//! refused with `Retry-After` before Redis is asked anything.

use std::collections::BTreeMap;

use e2e::Sidecar;
use e2e::config::Configure;
use e2e::metrics::{self, Endpoint, OperatorResult};
use e2e::redis::RedisServer;
use e2e::users::{ALICE, PAM, User};
use e2e::wait::wait_for_metric;
use e2e::world::{Mirror, World, ask};
use serde_json::{Value, json};

/// The Redis database the sidecars share.
const DB: u8 = 10;

/// An operator API call's status, `Retry-After` and JSON body.
struct Called {
    code: u16,
    retry_after: Option<u64>,
    body: Value,
}

async fn call(request: reqwest::RequestBuilder, user: User) -> Called {
    let response = request
        .basic_auth(user.name, Some(user.password))
        .send()
        .await
        .expect("operator API request");
    let code = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|value| {
        value
            .to_str()
            .unwrap()
            .parse()
            .expect("Retry-After in seconds")
    });
    let body = response.json().await.expect("JSON body");
    Called {
        code,
        retry_after,
        body,
    }
}

/// `DELETE` the cached lists of `project` as `user`.
async fn purge(sidecar: &Sidecar, project: &str, user: User) -> Called {
    let url = sidecar.url(&format!("/referrers-sidecar/v1/projects/{project}/cache"));
    call(e2e::http_client().delete(url), user).await
}

/// `GET` the status of `project` as `user`.
async fn status(sidecar: &Sidecar, project: &str, user: User) -> Called {
    let url = sidecar.url(&format!("/referrers-sidecar/v1/projects/{project}"));
    call(e2e::http_client().get(url), user).await
}

/// The commands Redis ran, without those a test's own look sends (`INFO`, the `SELECT` before
/// it) and the connections' keep-alive `PING`s: what the sidecars asked of Redis.
fn sidecar_work(calls: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    calls
        .into_iter()
        .filter(|(command, _)| !["info", "select", "ping"].contains(&command.as_str()))
        .collect()
}

#[tokio::test]
async fn a_purge_among_a_million_other_keys_walks_no_keyspace_and_reaches_every_replica() {
    let world = World::builder()
        .mirror("hub-proxy", "hub", Mirror::with_referrers_api().await)
        .mirror("other-proxy", "other", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy", "other-proxy"])
        .account(PAM.project_admin(&["hub-proxy"]))
        .start();
    let redis = RedisServer::start();
    let shared = |s: &mut e2e::config::Settings| s.redis(&redis.url(DB));
    let first = world.sidecar_with(shared);
    let second = world.sidecar_with(shared);
    for replica in [&first, &second] {
        wait_for_metric(replica, &metrics::cache_purge_subscribed(), 1.0).await;
    }
    let (hub, other) = (world.mirror("hub-proxy"), world.mirror("other-proxy"));
    let (hub_path, other_path) = (
        world.subject_path("hub-proxy"),
        world.subject_path("other-proxy"),
    );
    // Both replicas hold both lists in memory (the second read them from Redis).
    for path in [&hub_path, &other_path] {
        assert_eq!(ask(&first, path).await.cache, "miss");
        assert_eq!(ask(&second, path).await.cache, "hit");
    }
    assert_eq!(
        (hub.referrers_requests(), other.referrers_requests()),
        (1, 1)
    );

    let client = redis.client(DB);
    client.fill("someone-else:", 1_000_000);
    let before = client.command_calls();
    let purged = purge(&first, "hub-proxy", PAM).await;
    assert_eq!(purged.code, 200, "{}", purged.body);
    wait_for_metric(&second, &metrics::cache_purges_received(), 1.0).await;
    let after = client.command_calls();
    for walk in ["scan", "keys"] {
        assert_eq!(
            after.get(walk),
            before.get(walk),
            "the purge walked the keyspace with {walk}: {after:?}"
        );
    }
    assert!(
        sidecar_work(after) != sidecar_work(before),
        "the purge asked Redis nothing"
    );
    assert_eq!(
        purged.body,
        json!({"purged": 1, "registry_id": 1, "redis": "purged"})
    );
    assert!(client.dbsize() >= 1_000_000, "the other keys stay");

    // The second replica serves the purged list neither from its memory nor from Redis: it
    // fetches it again; the other registry's list stays, in both replicas.
    let refetched = ask(&second, &hub_path).await;
    assert_eq!(refetched.cache, "miss");
    assert_eq!(hub.referrers_requests(), 2, "fetched again once");
    assert_eq!(ask(&first, &hub_path).await.cache, "hit");
    for replica in [&first, &second] {
        assert_eq!(ask(replica, &other_path).await.cache, "hit");
    }
    assert_eq!(
        other.referrers_requests(),
        1,
        "the other registry's list stays"
    );
}

#[tokio::test]
async fn the_seventh_purge_of_a_project_in_a_minute_is_refused_before_redis_is_asked() {
    let world = World::builder()
        .mirror("hub-proxy", "hub", Mirror::with_referrers_api().await)
        .mirror("other-proxy", "other", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy", "other-proxy"])
        .account(PAM.project_admin(&["hub-proxy", "other-proxy"]))
        .start();
    let redis = RedisServer::start();
    let sidecar = world.sidecar_with(|s| {
        s.redis(&redis.url(DB));
        s.operator.status_per_minute = 2;
    });
    wait_for_metric(&sidecar, &metrics::cache_purge_subscribed(), 1.0).await;
    assert_eq!(
        ask(&sidecar, &world.subject_path("hub-proxy")).await.cache,
        "miss"
    );
    let client = redis.client(DB);

    // operator.purges_per_minute: 6 by default.
    for n in 1..=6 {
        let purged = purge(&sidecar, "hub-proxy", PAM).await;
        assert_eq!(purged.code, 200, "purge {n}: {}", purged.body);
    }
    let before = sidecar_work(client.command_calls());
    let refused = purge(&sidecar, "hub-proxy", PAM).await;
    assert_eq!(refused.code, 429, "{}", refused.body);
    assert_eq!(refused.body["errors"][0]["code"], "TOOMANYREQUESTS");
    let retry_after = refused.retry_after.expect("a Retry-After");
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_eq!(
        sidecar_work(client.command_calls()),
        before,
        "the refused purge asked Redis nothing"
    );
    let limited = async |endpoint| {
        sidecar
            .metric(&metrics::operator_requests(
                endpoint,
                OperatorResult::Limited,
            ))
            .await
    };
    assert_eq!(limited(Endpoint::Purge).await, 1.0);

    // Another project's purges, and the status calls, have budgets of their own.
    let other = purge(&sidecar, "other-proxy", PAM).await;
    assert_eq!(other.code, 200, "{}", other.body);
    for _ in 0..2 {
        assert_eq!(status(&sidecar, "hub-proxy", ALICE).await.code, 200);
    }
    let refused = status(&sidecar, "hub-proxy", ALICE).await;
    assert_eq!(refused.code, 429, "{}", refused.body);
    assert!(
        refused
            .retry_after
            .is_some_and(|seconds| (1..=60).contains(&seconds)),
        "Retry-After: {:?}",
        refused.retry_after
    );
    assert_eq!(limited(Endpoint::Status).await, 1.0);
}
