//! The fault matrix: one row per fault a referrers request can meet — in Harbor core, in the
//! upstream registry, in Redis — and for each, what the caller gets (status, headers, body),
//! an upper bound on how long it takes (a generous multiple of the request's time budget), and
//! how many requests reached the upstream. `docs/reliability.md` gives operators the same table.
//!
//! Every row asks as `ALICE` for the referrers of one subject that Harbor holds one local
//! referrer of and that the upstream (when it answers) lists two referrers of, on two pages.

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::config::{Configure, Settings};
use e2e::harbor_double::{CORE_GARBAGE, CoreFault};
use e2e::redis::{BlackHole, RedisServer};
use e2e::scripted_upstream::{ScriptedUpstream, UpstreamFault};
use e2e::wait::eventually;
use e2e::world::{World, digests, referrers_path, reply, reply_with};
use serde_json::{Value, json};

/// The request's time budget (`response.deadline`).
const BUDGET: Duration = Duration::from_secs(2);

/// The bound every answer must come within: ten budgets. A loaded machine may be slow, but
/// without the bounds under test these requests never end, or take [`OWN_TIMEOUTS`].
const BOUND: Duration = Duration::from_secs(20);

/// `harbor.timeout` and `upstream.timeout`: far past [`BOUND`], so that only the request's
/// budget can end the waits in time.
const OWN_TIMEOUTS: Duration = Duration::from_secs(120);

const REPOSITORY: &str = "hub-proxy/team/app";
const SUBJECT: &str = "sha256:00000000000000000000000000000000000000000000000000000000000000f1";
/// How many referrers the upstream lists for the subject (one page each).
const UPSTREAM_REFERRERS: usize = 2;
/// The `GET /v2/` a sidecar sends a registry before its first listing (for its challenge).
const PROBE: usize = 1;

/// Where the fault is.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Core(CoreFault),
    Upstream(UpstreamFault),
    /// Nothing listens where the upstream was.
    UpstreamDown,
    /// The upstream holds its answers past the budget.
    UpstreamSlowerThanTheBudget,
    /// The upstream holds its answers past the budget the caller asks for
    /// (`X-Referrers-Deadline`), shorter than the configured one.
    UpstreamSlowerThanTheCallersBudget,
    /// The upstream goes down once the subject's list is cached and has gone stale.
    UpstreamDownWithAStaleEntry,
    /// The configured Redis is not running.
    RedisDown,
    /// Redis accepts connections and never answers.
    RedisBlackHoled,
    /// The subject's entry, stored by another replica, is replaced by what this makes of it;
    /// then a fresh replica asks.
    RedisValue(fn(&[u8]) -> Vec<u8>),
}

/// What an answer's body holds.
#[derive(Debug, Clone, Copy)]
enum Body {
    /// An OCI error with this code.
    Error(&'static str),
    /// Core's answer, relayed as it came: it contains this.
    Core(&'static str),
    /// Harbor's local referrer alone.
    Local,
    /// Harbor's local referrer and the upstream's first page (its first referrer).
    LocalAndFirstPage,
    /// Harbor's local referrer and the upstream's.
    LocalAndUpstream,
}

/// One answer a row expects, in order.
#[derive(Debug, Clone, Copy)]
struct Expect {
    status: u16,
    /// `X-Referrers-Upstream` (empty: absent).
    upstream: &'static str,
    /// `X-Referrers-Cache` (empty: absent).
    cache: &'static str,
    body: Body,
}

struct Row {
    fault: Fault,
    answers: &'static [Expect],
    /// Requests the upstream received during the answers, of any kind: the probe, tokens,
    /// pages.
    upstream_requests: usize,
}

const fn served(upstream: &'static str, cache: &'static str, body: Body) -> Expect {
    Expect {
        status: 200,
        upstream,
        cache,
        body,
    }
}

const fn core(status: u16, body: Body) -> Expect {
    Expect {
        status,
        upstream: "",
        cache: "",
        body,
    }
}

/// Core does not answer within the budget.
const CORE_UNAVAILABLE: Expect = core(504, Body::Error("UNAVAILABLE"));

/// The upstream's list fetched, then served from the cache: the fault costs nothing.
const MISS_THEN_HIT: &[Expect] = &[
    served("api", "miss", Body::LocalAndUpstream),
    served("api", "hit", Body::LocalAndUpstream),
];

/// The upstream's page read is served once, marked truncated; then remembered, not read again.
const TRUNCATED_THEN_REMEMBERED: &[Expect] = &[
    served("truncated", "miss", Body::LocalAndFirstPage),
    served("truncated", "miss", Body::Local),
];

/// The local referrer alone, twice, for this upstream result.
const fn local_twice(upstream: &'static str) -> [Expect; 2] {
    [served(upstream, "miss", Body::Local); 2]
}

/// One test per row, named after its fault: `name: fault => answers, upstream requests;`.
macro_rules! fault_matrix {
    ($($name:ident: $fault:expr => $answers:expr, $upstream_requests:expr;)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                const ROW: Row = Row {
                    fault: $fault,
                    answers: $answers,
                    upstream_requests: $upstream_requests,
                };
                run(stringify!($name), ROW).await;
            }
        )*
    };
}

fault_matrix! {
    core_stalls_before_its_head: Fault::Core(CoreFault::StallsBeforeItsHead)
        => &[CORE_UNAVAILABLE], 0;
    core_stalls_mid_body: Fault::Core(CoreFault::StallsMidBody) => &[CORE_UNAVAILABLE], 0;
    core_answers_5xx: Fault::Core(CoreFault::Status(500))
        => &[core(500, Body::Core("core failed"))], 0;
    core_answers_garbage: Fault::Core(CoreFault::Garbage)
        => &[core(200, Body::Core(CORE_GARBAGE))], 0;
    upstream_down: Fault::UpstreamDown => &[served("error", "miss", Body::Local)], 0;
    upstream_down_with_a_stale_entry: Fault::UpstreamDownWithAStaleEntry
        => &[served("api", "stale", Body::LocalAndUpstream)], 0;
    // The second request waits for the fetch the first one started.
    upstream_slower_than_the_budget: Fault::UpstreamSlowerThanTheBudget
        => &local_twice("timeout"), PROBE + 1;
    // The configured budget is the longest there is (a minute, past the bound): the caller's
    // own, the budget, is what ends the wait.
    upstream_slower_than_the_callers_budget: Fault::UpstreamSlowerThanTheCallersBudget
        => &local_twice("timeout"), PROBE + 1;
    // The probe is answered 429 and the registry rests: the second request makes no upstream
    // call.
    upstream_rate_limits_with_retry_after:
        Fault::Upstream(UpstreamFault::Status { status: 429, retry_after: Some("120") })
        => &local_twice("rate_limited"), PROBE;
    // Each request's probe fails, and nothing more is asked.
    upstream_answers_5xx: Fault::Upstream(UpstreamFault::Status { status: 500, retry_after: None })
        => &local_twice("error"), 2 * PROBE;
    // Not the referrers API: after the probe and that page, the fallback tag is asked, is not
    // there, and that empty list is cached.
    upstream_answers_html: Fault::Upstream(UpstreamFault::Html)
        => &[served("none", "miss", Body::Local), served("none", "hit", Body::Local)], PROBE + 2;
    // Remembered as too large: not downloaded again.
    upstream_sends_an_oversize_page: Fault::Upstream(UpstreamFault::OversizePage(5 * 1024 * 1024))
        => &local_twice("too_large"), PROBE + 1;
    upstream_sends_an_endless_body: Fault::Upstream(UpstreamFault::EndlessBody)
        => &local_twice("too_large"), PROBE + 1;
    upstream_links_in_a_loop: Fault::Upstream(UpstreamFault::LinkLoop)
        => TRUNCATED_THEN_REMEMBERED, PROBE + 1;
    upstream_links_to_another_origin: Fault::Upstream(UpstreamFault::LinkToAnotherOrigin)
        => TRUNCATED_THEN_REMEMBERED, PROBE + 1;
    // The probe's 401, the token, the two pages; the second request is a hit.
    token_realm_answers_an_overflowing_expires_in:
        Fault::Upstream(UpstreamFault::TokenExpiresIn("99999999999999999999999"))
        => MISS_THEN_HIT, PROBE + 1 + UPSTREAM_REFERRERS;
    redis_down: Fault::RedisDown => MISS_THEN_HIT, PROBE + UPSTREAM_REFERRERS;
    redis_black_holed: Fault::RedisBlackHoled => MISS_THEN_HIT, PROBE + UPSTREAM_REFERRERS;
    redis_holds_a_corrupt_value: Fault::RedisValue(|_| b"RS\x02 written by something else".to_vec())
        => MISS_THEN_HIT, PROBE + UPSTREAM_REFERRERS;
    redis_holds_a_value_from_the_future: Fault::RedisValue(fetched_a_day_from_now)
        => MISS_THEN_HIT, PROBE + UPSTREAM_REFERRERS;
}

async fn run(name: &str, row: Row) {
    let mut upstream = ScriptedUpstream::start(UPSTREAM_REFERRERS);
    let world = World::hub_proxy_over("scripted", &upstream.url());
    world
        .harbor
        .set_local_referrers(REPOSITORY, SUBJECT, vec![world.local.clone()]);
    let path = referrers_path(REPOSITORY, SUBJECT);

    // What must be in place before the sidecar starts.
    let mut redis =
        matches!(row.fault, Fault::RedisDown | Fault::RedisValue(_)).then(RedisServer::start);
    let hole = matches!(row.fault, Fault::RedisBlackHoled).then(BlackHole::start);
    let redis_url = redis
        .as_ref()
        .map(|redis| redis.url(10))
        .or_else(|| hole.as_ref().map(|hole| hole.url(10)));
    let configure = |s: &mut Settings| {
        s.response.deadline = BUDGET;
        s.harbor.timeout = OWN_TIMEOUTS;
        s.upstream.timeout = OWN_TIMEOUTS;
        if let Some(url) = &redis_url {
            s.redis(url);
            s.cache.redis_timeout = Duration::from_millis(250);
        }
    };
    match (row.fault, redis.as_mut()) {
        (Fault::RedisDown, Some(redis)) => redis.kill(),
        (Fault::RedisValue(rewrite), Some(redis)) => {
            let other_replica = world.sidecar_with(configure);
            let first = reply(&other_replica, &path).await;
            assert_eq!(first.status, 200, "{name}: the entry is stored");
            drop(other_replica);
            let key = entry_key(redis);
            let client = redis.client(10);
            let stored = client.get_raw(&key).expect("the stored value");
            client.set_raw(&key, &rewrite(&stored));
        }
        _ => {}
    }
    let fresh_for = match row.fault {
        Fault::UpstreamDownWithAStaleEntry => Duration::from_secs(1),
        _ => Duration::from_secs(600),
    };
    let callers_budget = matches!(row.fault, Fault::UpstreamSlowerThanTheCallersBudget);
    let sidecar = world.sidecar_with(|s| {
        configure(s);
        s.cache.fresh_for = fresh_for;
        if callers_budget {
            s.response.deadline = Duration::from_secs(60);
        }
    });
    let budget_header = format!("{}ms", BUDGET.as_millis());
    let headers: &[(&str, &str)] = if callers_budget {
        &[("x-referrers-deadline", &budget_header)]
    } else {
        &[]
    };

    match row.fault {
        Fault::Core(fault) => world.harbor.fail_referrers(fault),
        Fault::Upstream(fault) => upstream.fail(Some(fault)),
        Fault::UpstreamDown => upstream.stop(),
        Fault::UpstreamSlowerThanTheBudget | Fault::UpstreamSlowerThanTheCallersBudget => {
            upstream.hold();
        }
        Fault::UpstreamDownWithAStaleEntry => {
            assert_eq!(reply(&sidecar, &path).await.cache, "miss");
            upstream.stop();
            // Until the entry goes stale, it is a hit.
            eventually("the entry goes stale", async || {
                reply(&sidecar, &path).await.cache != "hit"
            })
            .await;
        }
        Fault::RedisDown | Fault::RedisBlackHoled | Fault::RedisValue(_) => {}
    }
    let before = upstream.requests();

    for (i, expected) in row.answers.iter().enumerate() {
        let started = Instant::now();
        let got = reply_with(&sidecar, &path, headers).await;
        let took = started.elapsed();
        let what = format!("{name}, answer {}", i + 1);
        assert!(took < BOUND, "{what}: answered after {took:?}");
        assert_eq!(
            (got.status, got.upstream.as_str(), got.cache.as_str()),
            (expected.status, expected.upstream, expected.cache),
            "{what}: {}",
            got.body
        );
        check_body(&what, expected.body, &got.body, world.local_digest());
    }
    assert_eq!(
        upstream.requests() - before,
        row.upstream_requests,
        "{name}: requests that reached the upstream: {:?}",
        &upstream.targets()[before..]
    );

    if let Some(redis) = redis
        .as_ref()
        .filter(|_| matches!(row.fault, Fault::RedisValue(_)))
    {
        let value = redis
            .client(10)
            .get_raw(&entry_key(redis))
            .expect("the value");
        assert!(
            fetched_at(&value).is_some_and(|at| at <= now_ms()),
            "{name}: the value was overwritten by the fetch"
        );
    }
    upstream.release();
}

/// The key of the subject's entry (the only one stored).
fn entry_key(redis: &RedisServer) -> String {
    redis
        .client(10)
        .keys("referrers-sidecar:v2:*")
        .into_iter()
        .find(|key| !key.ends_with(":lock"))
        .expect("the stored entry")
}

fn check_body(what: &str, expected: Body, body: &str, local: &str) {
    match expected {
        Body::Error(code) => {
            let error: Value = serde_json::from_str(body).expect("an OCI error body");
            assert_eq!(error["errors"][0]["code"], code, "{what}: {body}");
        }
        Body::Core(text) => assert!(body.contains(text), "{what}: {body}"),
        Body::Local | Body::LocalAndUpstream | Body::LocalAndFirstPage => {
            let index: Value = serde_json::from_str(body).expect("an index");
            let served = digests(&index);
            let upstream = match expected {
                Body::Local => 0,
                Body::LocalAndFirstPage => 1,
                _ => UPSTREAM_REFERRERS,
            };
            assert_eq!(served.len(), 1 + upstream, "{what}: {served:?}");
            assert!(served.iter().any(|d| d == local), "{what}: {served:?}");
        }
    }
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    u64::try_from(since_epoch.as_millis()).expect("ms")
}

/// A stored entry: `RS\x02`, then zlib over the head's length (`u32`, little-endian), the
/// head (JSON with `fetched_at_ms`) and the list.
fn inflate(value: &[u8]) -> Option<Vec<u8>> {
    let body = value.strip_prefix(b"RS\x02")?;
    let mut decoded = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .read_to_end(&mut decoded)
        .ok()?;
    Some(decoded)
}

fn fetched_at(value: &[u8]) -> Option<u64> {
    let decoded = inflate(value)?;
    let (length, rest) = decoded.split_first_chunk::<4>()?;
    let head: Value =
        serde_json::from_slice(rest.get(..u32::from_le_bytes(*length) as usize)?).ok()?;
    head["fetched_at_ms"].as_u64()
}

/// The same entry, as if fetched a day from now (a replica's clock far ahead, or a value
/// written to stay fresh for ever).
fn fetched_a_day_from_now(value: &[u8]) -> Vec<u8> {
    let decoded = inflate(value).expect("an entry of ours");
    let (length, rest) = decoded.split_first_chunk::<4>().expect("a head length");
    let (head, list) = rest.split_at(u32::from_le_bytes(*length) as usize);
    let mut head: Value = serde_json::from_slice(head).expect("the head");
    head["fetched_at_ms"] = json!(now_ms() + 24 * 3600 * 1000);
    let head = serde_json::to_vec(&head).expect("head");
    let mut encoder =
        flate2::write::ZlibEncoder::new(b"RS\x02".to_vec(), flate2::Compression::fast());
    encoder
        .write_all(&u32::try_from(head.len()).expect("short").to_le_bytes())
        .expect("write");
    encoder.write_all(&head).expect("write");
    encoder.write_all(list).expect("write");
    encoder.finish().expect("zlib")
}
