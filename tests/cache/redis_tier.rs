//! The Redis tier against real `redis-server` processes: a plain server, one that is killed,
//! restarted and frozen, a black hole, and a Sentinel set-up that fails over; and the round
//! trips a read costs, counted by Redis itself.

use std::time::Duration;

use e2e::redis::{BlackHole, RedisServer, SentinelSetup};
use referrers_sidecar::cache::{ListIndex, RedisError, RedisTier};
use referrers_sidecar::config::RedisUrl;

/// The most a read takes of a value here: far above what these tests store.
const VALUE_BOUND: usize = 1024;

/// What the sidecar is configured with by default.
const TIMEOUT: Duration = Duration::from_millis(250);
/// Harbor leaves DB 10 free; the tier must write where the URL says.
const DB: u8 = 10;
/// A test deadline only: a call that hangs fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(20);

/// Stores `value` under `key` as the cache stores a list: listed in an index (of Harbor
/// registry 1, repository `key`, namespace `test`).
async fn set(tier: &RedisTier, key: &str, value: &[u8], ttl: Duration) -> Result<(), RedisError> {
    tier.set(key, value, ttl, &ListIndex::new("test", 1, key), now_ms())
        .await
}

fn now_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch");
    u64::try_from(since_epoch.as_millis()).expect("milliseconds")
}

async fn within_deadline<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the call returned before the test deadline")
}

/// Retries `call` (bounded: 100 attempts, 100 ms apart) until it succeeds; for the first calls
/// after a failover or restart, which may meet a connection that just broke.
async fn eventually<T, F: Future<Output = Result<T, RedisError>>>(
    what: &str,
    mut call: impl FnMut() -> F,
) -> T {
    let mut last = None;
    for _ in 0..100 {
        match within_deadline(call()).await {
            Ok(value) => return value,
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never succeeded; last error: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_is_read_bounded_however_large_it_is_in_redis() {
    let server = RedisServer::start();
    let tier = RedisTier::new(&server.url(DB).parse().expect("URL"), 4, TIMEOUT).expect("tier");
    // Planted by anyone who can write to the DB: 4 MiB under one key.
    let planted = vec![b'x'; 4 * 1024 * 1024];
    set(&tier, "planted", &planted, Duration::from_secs(60))
        .await
        .expect("set");
    let read = tier
        .get("planted", 1024)
        .await
        .expect("get")
        .expect("a value");
    assert_eq!(
        read.len(),
        1025,
        "the bound and one byte more: told apart by length"
    );
    let small = tier.get("planted", 10 * 1024 * 1024).await.expect("get");
    assert_eq!(
        small.map(|v| v.len()),
        Some(planted.len()),
        "within the bound: whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_set_and_expiry_in_the_configured_database() {
    let server = RedisServer::start();
    let tier = RedisTier::new(&server.url(DB).parse().expect("URL"), 4, TIMEOUT).expect("tier");
    let inside = server.client(DB);

    assert_eq!(
        tier.get("referrers-sidecar:v1:k", VALUE_BOUND)
            .await
            .expect("get"),
        None
    );
    set(
        &tier,
        "referrers-sidecar:v1:k",
        b"\x00list\xff",
        Duration::from_secs(60),
    )
    .await
    .expect("set");
    assert_eq!(
        tier.get("referrers-sidecar:v1:k", VALUE_BOUND)
            .await
            .expect("get"),
        Some(b"\x00list\xff".to_vec())
    );
    // The list, and the indexes a purge finds it by, which live as long as it.
    let index = ListIndex::new("test", 1, "referrers-sidecar:v1:k");
    assert_eq!(
        inside.keys("*"),
        vec![
            "referrers-sidecar:v1:k".to_owned(),
            index.registry_index,
            index.repository_index
        ]
    );
    assert!(server.client(0).keys("*").is_empty(), "nothing in DB 0");
    for key in inside.keys("*") {
        let ttl = inside.pttl(&key);
        assert!(ttl > 0 && ttl <= 60_000, "PX ttl set on {key}: {ttl}");
    }

    // Millisecond precision: a short entry is gone soon after, and a zero TTL is 1 ms, not
    // "forever" and not a Redis error.
    set(&tier, "short", b"v", Duration::from_millis(150))
        .await
        .expect("set");
    set(&tier, "zero", b"v", Duration::ZERO).await.expect("set");
    eventually("short entries expiring", || async {
        match (
            tier.get("short", VALUE_BOUND).await?,
            tier.get("zero", VALUE_BOUND).await?,
        ) {
            (None, None) => Ok(()),
            _ => Err(RedisError::Command("not expired yet".into())),
        }
    })
    .await;

    assert_eq!(tier.describe(), server.url(DB));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_is_won_once_and_released_only_by_its_holder() {
    let server = RedisServer::start();
    let tier = RedisTier::new(&server.url(DB).parse().expect("URL"), 4, TIMEOUT).expect("tier");
    let other_replica =
        RedisTier::new(&server.url(DB).parse().expect("URL"), 4, TIMEOUT).expect("tier");
    let ttl = Duration::from_secs(10);

    assert!(tier.try_lock("lock:k", "token-a", ttl).await.expect("lock"));
    assert!(
        !other_replica
            .try_lock("lock:k", "token-b", ttl)
            .await
            .expect("lock")
    );
    let held = server.client(DB).pttl("lock:k");
    assert!(held > 0 && held <= 10_000, "lock has a PX ttl: {held}");

    // Another token cannot release it.
    other_replica
        .unlock("lock:k", "token-b")
        .await
        .expect("unlock");
    assert_eq!(
        server.client(DB).get_raw("lock:k"),
        Some(b"token-a".to_vec())
    );
    assert!(
        !other_replica
            .try_lock("lock:k", "token-b", ttl)
            .await
            .expect("lock")
    );

    // Its holder can; then the other wins it.
    tier.unlock("lock:k", "token-a").await.expect("unlock");
    assert_eq!(server.client(DB).get_raw("lock:k"), None);
    assert!(
        other_replica
            .try_lock("lock:k", "token-b", ttl)
            .await
            .expect("lock")
    );

    // A lock that expired and was taken over is not released by its former holder.
    assert!(
        tier.try_lock("lock:short", "token-a", Duration::from_millis(100))
            .await
            .expect("lock")
    );
    eventually("the short lock expiring and being taken over", || async {
        if other_replica.try_lock("lock:short", "token-b", ttl).await? {
            Ok(())
        } else {
            Err(RedisError::Command("still held".into()))
        }
    })
    .await;
    tier.unlock("lock:short", "token-a").await.expect("unlock");
    assert_eq!(
        server.client(DB).get_raw("lock:short"),
        Some(b"token-b".to_vec())
    );
}

/// What a purge reads and deletes: a repository's lists by its index, a registry's repositories
/// by the registry's; a list past its expiry is not listed, and a repository with no list left
/// leaves its registry's index. Many lists go in a few bounded calls, and nothing walks the
/// keyspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_found_by_their_indexes_and_unlisted_in_batches() {
    let server = RedisServer::start();
    let tier = RedisTier::new(&server.url(DB).parse().expect("URL"), 4, TIMEOUT).expect("tier");
    let inside = server.client(DB);
    let (nginx, app) = (
        ListIndex::new("ns", 3, "library/nginx"),
        ListIndex::new("ns", 3, "team/app"),
    );
    let (now, minute) = (now_ms(), Duration::from_secs(60));
    let lists: Vec<String> = (0..1_200).map(|n| format!("nginx-{n:04}")).collect();
    for list in &lists {
        tier.set(list, b"v", minute, &nginx, now)
            .await
            .expect("set");
    }
    tier.set("app", b"v", minute, &app, now).await.expect("set");
    tier.set("app-brief", b"v", Duration::from_millis(100), &app, now)
        .await
        .expect("set");

    let listed = |index: &str, at: u64| {
        let (tier, index) = (tier.clone(), index.to_owned());
        async move { tier.listed(&index, at, 0, 10_000).await.expect("listed") }
    };
    assert_eq!(listed(&nginx.repository_index, now).await, lists);
    assert_eq!(
        tier.listed(&nginx.repository_index, now, 1_000, 500)
            .await
            .expect("a page"),
        lists[1_000..],
        "a page: 500 from the 1000th on, as many as there are"
    );
    assert_eq!(
        listed(&app.repository_index, now + 1_000).await,
        ["app"],
        "a list past its expiry is not listed"
    );
    assert_eq!(
        listed(&nginx.registry_index, now).await,
        ["library/nginx", "team/app"]
    );

    let before = inside.command_calls();
    assert_eq!(tier.unlist(&nginx, &lists).await.expect("unlist"), 1_200);
    let after = inside.command_calls();
    assert_eq!(after["eval"] - before["eval"], 3, "500 lists a call");
    assert_eq!(after.get("scan"), None, "no walk of the keyspace");
    assert_eq!(listed(&nginx.registry_index, now).await, ["team/app"]);
    assert_eq!(
        inside.keys("*"),
        [
            "app",
            "app-brief",
            "referrers-sidecar:v2:ns:lists:3",
            "referrers-sidecar:v2:ns:lists:3:team/app"
        ],
        "the lists and the repository's index gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fails_fast_with_typed_errors_and_the_pool_recovers_after_restart() {
    let mut server = RedisServer::start();
    // A long timeout: a killed Redis must fail by refusal, not by running into it.
    let tier = RedisTier::new(
        &server.url(DB).parse().expect("URL"),
        4,
        Duration::from_secs(30),
    )
    .expect("tier");
    set(&tier, "k", b"before", Duration::from_secs(60))
        .await
        .expect("set");

    server.kill();
    for _ in 0..3 {
        let get = within_deadline(tier.get("k", VALUE_BOUND)).await;
        assert!(
            matches!(get, Err(RedisError::Pool(_) | RedisError::Command(_))),
            "killed Redis: {get:?}"
        );
        let stored = within_deadline(set(&tier, "k", b"v", Duration::from_secs(1))).await;
        assert!(
            matches!(stored, Err(RedisError::Pool(_) | RedisError::Command(_))),
            "killed Redis: {stored:?}"
        );
        let lock = within_deadline(tier.try_lock("l", "t", Duration::from_secs(1))).await;
        assert!(
            matches!(lock, Err(RedisError::Pool(_) | RedisError::Command(_))),
            "killed Redis: {lock:?}"
        );
    }

    // Restarted empty on the same port: the same tier works again without being rebuilt.
    server.restart();
    assert_eq!(
        within_deadline(tier.get("k", VALUE_BOUND))
            .await
            .expect("get"),
        None
    );
    set(&tier, "k", b"after", Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(server.client(DB).get_raw("k"), Some(b"after".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_redis_times_out_every_call() {
    let hole = BlackHole::start();
    let tier = RedisTier::new(&hole.url(DB).parse().expect("URL"), 2, TIMEOUT).expect("tier");

    let get = within_deadline(tier.get("k", VALUE_BOUND)).await;
    assert!(matches!(get, Err(RedisError::Timeout)), "{get:?}");
    let stored = within_deadline(set(&tier, "k", b"v", Duration::from_secs(1))).await;
    assert!(matches!(stored, Err(RedisError::Timeout)), "{stored:?}");
    let lock = within_deadline(tier.try_lock("l", "t", Duration::from_secs(1))).await;
    assert!(matches!(lock, Err(RedisError::Timeout)), "{lock:?}");
    let unlock = within_deadline(tier.unlock("l", "t")).await;
    assert!(matches!(unlock, Err(RedisError::Timeout)), "{unlock:?}");

    // More callers than connections: the ones waiting for the pool are bounded too.
    let calls = (0..6).map(|i| {
        let tier = tier.clone();
        tokio::spawn(async move { tier.get(&format!("k{i}"), VALUE_BOUND).await })
    });
    for call in futures_util::future::join_all(calls).await {
        let result = call.expect("task");
        assert!(matches!(result, Err(RedisError::Timeout)), "{result:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_times_out_on_pooled_connections_then_recovers() {
    let server = RedisServer::start();
    let tier = RedisTier::new(&server.url(DB).parse().expect("URL"), 2, TIMEOUT).expect("tier");
    set(&tier, "k", b"v", Duration::from_secs(60))
        .await
        .expect("set");

    // The pooled connections stay open, but nothing answers on them.
    server.pause();
    for _ in 0..3 {
        let get = within_deadline(tier.get("k", VALUE_BOUND)).await;
        assert!(matches!(get, Err(RedisError::Timeout)), "{get:?}");
    }
    server.resume();
    let value = eventually("a get after the thaw", || tier.get("k", VALUE_BOUND)).await;
    assert_eq!(value, Some(b"v".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_reaches_the_master_and_the_new_one_after_it_dies() {
    let mut setup = SentinelSetup::start();
    let tier = RedisTier::new(&setup.url(DB).parse().expect("URL"), 4, TIMEOUT).expect("tier");
    assert_eq!(setup.master_port(), Some(setup.master.port()));

    set(&tier, "before", b"1", Duration::from_secs(600))
        .await
        .expect("set through the master");
    assert_eq!(
        tier.get("before", VALUE_BOUND).await.expect("get"),
        Some(b"1".to_vec())
    );
    assert_eq!(
        setup.master.client(DB).get_raw("before"),
        Some(b"1".to_vec())
    );
    let replica = setup.replica.client(DB);
    eventually("replication of the first write", || async {
        replica
            .get_raw("before")
            .map(drop)
            .ok_or(RedisError::Command("not replicated yet".into()))
    })
    .await;

    setup.fail_over();
    assert_eq!(setup.master_port(), Some(setup.replica.port()));

    // The first calls may meet connections to the dead master; new ones reach the new master.
    eventually("a write after the failover", || {
        set(&tier, "after", b"2", Duration::from_secs(600))
    })
    .await;
    assert_eq!(
        setup.replica.client(DB).get_raw("after"),
        Some(b"2".to_vec())
    );
    assert_eq!(
        tier.get("before", VALUE_BOUND).await.expect("get"),
        Some(b"1".to_vec())
    );
    assert!(
        tier.try_lock("lock", "t", Duration::from_secs(5))
            .await
            .expect("lock")
    );
    tier.unlock("lock", "t").await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_follows_a_switch_over_that_demotes_the_master() {
    let mut setup = SentinelSetup::start();
    let tier = RedisTier::new(&setup.url(DB).parse().expect("URL"), 4, TIMEOUT).expect("tier");
    set(&tier, "before", b"1", Duration::from_secs(600))
        .await
        .expect("set through the master");

    // The old master stays up as a replica: a connection left on it could still read, but
    // every write would fail with READONLY.
    setup.switch_over();
    eventually("a write after the switch-over", || {
        set(&tier, "after", b"2", Duration::from_secs(600))
    })
    .await;
    for attempt in 0..8 {
        set(
            &tier,
            &format!("write-{attempt}"),
            b"x",
            Duration::from_secs(600),
        )
        .await
        .expect("every later write reaches the new master");
    }
    assert_eq!(
        setup.replica.client(DB).get_raw("after"),
        Some(b"2".to_vec())
    );
    assert_eq!(
        setup.replica.client(DB).get_raw("write-7"),
        Some(b"x".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_url_and_describe_hide_the_password() {
    let url: RedisUrl = "redis+sentinel://:s3cret@127.0.0.1:26379,127.0.0.1:26380/mymaster/10"
        .parse()
        .expect("URL");
    let tier = RedisTier::new(&url, 4, TIMEOUT).expect("tier");
    assert_eq!(
        tier.describe(),
        "redis+sentinel://:*****@127.0.0.1:26379,127.0.0.1:26380/mymaster/10"
    );
    let refused = "redis+sentinel://:s3cret@127.0.0.1:26379"
        .parse::<RedisUrl>()
        .expect_err("no master");
    assert!(!refused.to_string().contains("s3cret"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_a_pooled_connection_is_one_bounded_getrange_and_no_ping() {
    let server = RedisServer::start();
    let tier = RedisTier::new(&server.url(DB).parse().expect("URL"), 4, TIMEOUT).expect("tier");
    set(&tier, "k", b"v", Duration::from_secs(60))
        .await
        .expect("set, which opens the pooled connection");
    let reset = server.client(DB).command(&[b"CONFIG", b"RESETSTAT"]);
    assert_eq!(reset.text().as_deref(), Some("OK"));

    for _ in 0..20 {
        assert_eq!(
            tier.get("k", VALUE_BOUND).await.expect("get"),
            Some(b"v".to_vec())
        );
    }
    let calls = server.client(DB).command_calls();
    assert_eq!(calls.get("getrange"), Some(&20), "{calls:?}");
    assert_eq!(calls.get("get"), None, "never an unbounded read: {calls:?}");
    assert_eq!(calls.get("ping"), None, "{calls:?}");
    assert_eq!(calls.get("role"), None, "{calls:?}");
}
