//! Harbor's pull webhooks warm the cache: a `PULL_ARTIFACT` for a served project has the
//! upstream's referrers fetched in the background, so the first verification is a hit; what
//! is not a pull of a served project reaches no upstream; the secret guards the endpoint; and
//! a flood is bounded by the queue.

use std::time::Duration;

use e2e::Sidecar;
use e2e::config::Configure;
use e2e::harbor_double::DoubleProject;
use e2e::harbor_webhook::{self, Format, artifact_event, post};
use e2e::metrics::{self, WarmResult, WebhookEvent};
use e2e::scripted_upstream::ScriptedUpstream;
use e2e::wait::{eventually, wait_for_metric};
use e2e::world::{Mirror, World, ask};
use referrers_sidecar::webhook::project_header;

/// The auth header of the webhook policy in Harbor, and the sidecar's `webhook.auth_header`.
const SECRET: &str = "Bearer webhook-s3cret";

/// Every warm fetch finished so far, whatever its result.
async fn all_warms(sidecar: &Sidecar) -> f64 {
    metrics::family_sum(&sidecar.metrics().await, metrics::WEBHOOK_WARMS)
}

/// A pull of the mirrored subject through `hub-proxy`, in `format`.
fn pull(world: &World, format: Format) -> serde_json::Value {
    let mirror = world.mirror("hub-proxy");
    artifact_event(
        format,
        "PULL_ARTIFACT",
        &format!("hub-proxy/{}", mirror.repository),
        &mirror.sample.subject.digest,
        "latest",
    )
}

async fn a_pull_warms_the_cache_and_the_first_request_is_a_hit(format: Format) {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let sidecar = world.sidecar_with(|s| s.webhook_auth_header(SECRET));
    let mirror = world.mirror("hub-proxy");

    assert_eq!(
        post(&sidecar, Some(SECRET), format, &pull(&world, format)).await,
        202
    );
    wait_for_metric(&sidecar, &metrics::webhook_warms(WarmResult::Fetched), 1.0).await;
    assert_eq!(mirror.referrers_requests(), 1, "fetched in the background");
    assert_eq!(
        sidecar
            .metric(&metrics::webhook_events(WebhookEvent::PullQueued))
            .await,
        1.0
    );

    let first = ask(&sidecar, &world.subject_path("hub-proxy")).await;
    assert_eq!(
        (first.status, first.cache.as_str(), first.upstream.as_str()),
        (200, "hit", "api")
    );
    world.assert_merged("hub-proxy", &first);

    // Pulled again while the list is fresh: nothing is fetched.
    assert_eq!(
        post(&sidecar, Some(SECRET), format, &pull(&world, format)).await,
        202
    );
    wait_for_metric(&sidecar, &metrics::webhook_warms(WarmResult::Fresh), 1.0).await;
    assert_eq!(
        mirror.referrers_requests(),
        1,
        "no upstream call for a fresh list"
    );
}

#[tokio::test]
async fn a_pull_in_harbors_default_payload_warms_the_cache() {
    a_pull_warms_the_cache_and_the_first_request_is_a_hit(Format::Default).await;
}

#[tokio::test]
async fn a_pull_as_a_cloud_event_warms_the_cache() {
    a_pull_warms_the_cache_and_the_first_request_is_a_hit(Format::CloudEvents).await;
}

#[tokio::test]
async fn pulls_in_projects_not_served_reach_no_upstream() {
    let world = World::hub_proxy_builder(Mirror::with_referrers_api().await)
        .project(DoubleProject::local(9, "library"))
        .enable(&["other-proxy"])
        .start();
    let sidecar = world.sidecar_with(|s| s.webhook_auth_header(SECRET));
    let mirror = world.mirror("hub-proxy");

    // A proxy-cache project neither listed nor labelled, and a local project.
    let local = artifact_event(
        Format::Default,
        "PULL_ARTIFACT",
        "library/app",
        &mirror.sample.subject.digest,
        "v1",
    );
    for payload in [pull(&world, Format::Default), local] {
        assert_eq!(
            post(&sidecar, Some(SECRET), Format::Default, &payload).await,
            202
        );
    }
    wait_for_metric(&sidecar, &metrics::webhook_warms(WarmResult::Unserved), 2.0).await;
    assert_eq!(all_warms(&sidecar).await, 2.0);
    assert_eq!(mirror.referrers_requests(), 0);
    assert_eq!(
        mirror.front.seen_with("/v2/").len(),
        0,
        "no upstream call of any kind"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_secret_gets_401_and_a_bad_payload_400() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let sidecar = world.sidecar_with(|s| s.webhook_auth_header(SECRET));
    let payload = pull(&world, Format::Default);

    for wrong in [
        None,
        Some("Bearer webhook-s3cre"),
        Some("Bearer webhook-s3cret2"),
    ] {
        assert_eq!(
            post(&sidecar, wrong, Format::Default, &payload).await,
            401,
            "{wrong:?}"
        );
    }
    let garbage = harbor_webhook::send(
        &sidecar.url(harbor_webhook::PATH),
        Some(SECRET),
        Format::Default,
        b"{\"type\": ",
    )
    .await;
    assert_eq!(garbage.status(), 400);
    let body: serde_json::Value = garbage.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "BAD_REQUEST");
    // A fixed message and the request's id; the parser's text is in the log under that id.
    let message = body["errors"][0]["message"].as_str().expect("message");
    for detail in ["EOF", "line", "column"] {
        assert!(!message.contains(detail), "{detail:?} in {body}");
    }
    let id = body["errors"][0]["request_id"]
        .as_str()
        .expect("request id")
        .to_owned();
    eventually(
        "the parse error is logged under the answer's request id",
        async || {
            sidecar.logs().iter().any(|line| {
                serde_json::from_str::<serde_json::Value>(line).is_ok_and(|line| {
                    line["span"]["request_id"] == id.as_str()
                        && line["message"] == "webhook refused"
                        && line["error"].as_str().is_some_and(|e| e.contains("EOF"))
                })
            })
        },
    )
    .await;

    assert_eq!(
        sidecar
            .metric(&metrics::webhook_events(WebhookEvent::UnknownUnauthorized))
            .await,
        3.0
    );
    assert_eq!(
        sidecar
            .metric(&metrics::webhook_events(WebhookEvent::UnknownInvalid))
            .await,
        1.0
    );
    assert_eq!(sidecar.metric(&metrics::webhook_queue_depth()).await, 0.0);
    assert_eq!(all_warms(&sidecar).await, 0.0);
    assert_eq!(world.mirror("hub-proxy").referrers_requests(), 0);
    let logs = sidecar.logs().join("\n");
    assert!(
        !logs.contains("webhook-s3cret"),
        "the secret is never logged"
    );
}

#[tokio::test]
async fn a_projects_own_header_signs_that_projects_events_and_no_others() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let sidecar = world.sidecar_with(|s| s.webhook_auth_header(SECRET));
    let payload = pull(&world, Format::Default);

    // The header webhook-setup writes into another project's policy: refused, nothing fetched.
    let others = project_header(SECRET, "ghcr-proxy");
    assert_eq!(
        post(&sidecar, Some(&others), Format::Default, &payload).await,
        401
    );
    assert_eq!(
        sidecar
            .metric(&metrics::webhook_events(WebhookEvent::UnknownUnauthorized))
            .await,
        1.0
    );
    assert_eq!(sidecar.metric(&metrics::webhook_queue_depth()).await, 0.0);

    // Its own: taken and warmed.
    let own = project_header(SECRET, "hub-proxy");
    assert_eq!(
        post(&sidecar, Some(&own), Format::Default, &payload).await,
        202
    );
    wait_for_metric(&sidecar, &metrics::webhook_warms(WarmResult::Fetched), 1.0).await;
    assert_eq!(
        world.mirror("hub-proxy").referrers_requests(),
        1,
        "only the event signed for its project reached the upstream"
    );
}

#[tokio::test]
async fn without_a_secret_configured_the_endpoint_does_not_exist() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let sidecar = world.sidecar();
    let payload = pull(&world, Format::Default);
    for header in [None, Some(SECRET), Some("")] {
        assert_eq!(post(&sidecar, header, Format::Default, &payload).await, 404);
    }
    assert!(
        world.harbor.requests_to("/referrers-sidecar").is_empty(),
        "not passed through to core"
    );
    assert_eq!(all_warms(&sidecar).await, 0.0);
}

#[tokio::test]
async fn other_event_types_are_acknowledged_and_ignored() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let sidecar = world.sidecar_with(|s| s.webhook_auth_header(SECRET));
    let mirror = world.mirror("hub-proxy");
    let repository = format!("hub-proxy/{}", mirror.repository);
    let digest = &mirror.sample.subject.digest;

    for (format, event_type) in [
        (Format::Default, "PUSH_ARTIFACT"),
        (Format::Default, "DELETE_ARTIFACT"),
        (Format::CloudEvents, "SCANNING_COMPLETED"),
        (Format::CloudEvents, "PUSH_ARTIFACT"),
    ] {
        let payload = artifact_event(format, event_type, &repository, digest, "latest");
        assert_eq!(
            post(&sidecar, Some(SECRET), format, &payload).await,
            202,
            "{event_type}"
        );
    }
    // Ignored in the answer itself: nothing is queued, so nothing can be fetched later.
    assert_eq!(
        sidecar
            .metric(&metrics::webhook_events(WebhookEvent::OtherIgnored))
            .await,
        4.0
    );
    assert_eq!(
        sidecar
            .metric(&metrics::webhook_events(WebhookEvent::PullQueued))
            .await,
        0.0
    );
    assert_eq!(sidecar.metric(&metrics::webhook_queue_depth()).await, 0.0);
    assert_eq!(all_warms(&sidecar).await, 0.0);
    assert_eq!(mirror.referrers_requests(), 0);
}

#[tokio::test]
async fn a_flood_beyond_the_queue_is_counted_and_dropped() {
    const QUEUE: usize = 4;
    let upstream = ScriptedUpstream::start(1);
    upstream.hold();
    let world = World::hub_proxy_over("scripted", &upstream.url());
    // Held fetches must outlast the test's waits rather than time out and fail.
    let sidecar = world.sidecar_with(|s| {
        s.webhook_auth_header(SECRET);
        s.webhook.queue_size = QUEUE;
        s.upstream.timeout = Duration::from_secs(120);
    });
    let pull_of = |n: usize| {
        artifact_event(
            Format::Default,
            "PULL_ARTIFACT",
            "hub-proxy/team/app",
            &format!("sha256:{:064x}", 0xf000 + n),
            &format!("v{n}"),
        )
    };

    // Every warm worker takes one and is held upstream …
    for n in 0..4 {
        assert_eq!(
            post(&sidecar, Some(SECRET), Format::Default, &pull_of(n)).await,
            202
        );
    }
    eventually("four warm fetches held upstream", async || {
        upstream.referrers_requests() == 4
    })
    .await;
    // … the queue fills, and what comes after is dropped; a pending artifact is not queued
    // twice.
    for n in 4..50 {
        assert_eq!(
            post(&sidecar, Some(SECRET), Format::Default, &pull_of(n)).await,
            202
        );
    }
    assert_eq!(
        post(&sidecar, Some(SECRET), Format::Default, &pull_of(0)).await,
        202
    );
    assert_eq!(
        post(&sidecar, Some(SECRET), Format::Default, &pull_of(5)).await,
        202
    );
    assert_eq!(
        sidecar
            .metric(&metrics::webhook_events(WebhookEvent::PullQueued))
            .await,
        8.0
    );
    assert_eq!(
        sidecar
            .metric(&metrics::webhook_events(WebhookEvent::PullDropped))
            .await,
        42.0
    );
    assert_eq!(
        sidecar
            .metric(&metrics::webhook_events(WebhookEvent::PullDuplicate))
            .await,
        2.0
    );
    assert_eq!(
        sidecar.metric(&metrics::webhook_queue_depth()).await,
        QUEUE as f64
    );

    upstream.release();
    wait_for_metric(&sidecar, &metrics::webhook_warms(WarmResult::Fetched), 8.0).await;
    assert_eq!(sidecar.metric(&metrics::webhook_queue_depth()).await, 0.0);
    assert_eq!(all_warms(&sidecar).await, 8.0);
    assert_eq!(
        upstream.referrers_requests(),
        8,
        "only what was queued is fetched"
    );
}

/// Warm results without a list.
const FAILED_WARMS: [WarmResult; 3] = [
    WarmResult::Error,
    WarmResult::Skipped,
    WarmResult::RateLimited,
];

/// The counts of [`FAILED_WARMS`] on `sidecar`.
async fn counts(sidecar: &Sidecar) -> [f64; 3] {
    let metrics = sidecar.metrics().await;
    FAILED_WARMS.map(|result| e2e::metric(&metrics, &metrics::webhook_warms(result)))
}

/// Two pulls of different artifacts through `hub-proxy` over `upstream`, which answers every
/// request with `status`: what the second warm fetch was, and whether it reached the upstream.
async fn second_warm_after(status: u16) -> (WarmResult, usize, usize) {
    let upstream = ScriptedUpstream::start(1);
    upstream.fail_with(Some(status));
    let world = World::hub_proxy_over("scripted", &upstream.url());
    let sidecar = world.sidecar_with(|s| {
        s.webhook_auth_header(SECRET);
        s.upstream.breaker_failures = 1;
        s.upstream.breaker_cooldown = Duration::from_secs(600);
    });
    let pull_of = |n: u32| {
        artifact_event(
            Format::Default,
            "PULL_ARTIFACT",
            "hub-proxy/team/app",
            &format!("sha256:{:064x}", 0xe000 + n),
            "latest",
        )
    };
    assert_eq!(
        post(&sidecar, Some(SECRET), Format::Default, &pull_of(1)).await,
        202
    );
    eventually("the first warm fetch", async || {
        all_warms(&sidecar).await >= 1.0
    })
    .await;
    let after_first = upstream.requests();
    assert!(after_first > 0);
    let first = counts(&sidecar).await;
    assert_eq!(
        post(&sidecar, Some(SECRET), Format::Default, &pull_of(2)).await,
        202
    );
    eventually("the second warm fetch", async || {
        all_warms(&sidecar).await >= 2.0
    })
    .await;
    let then = counts(&sidecar).await;
    let second = FAILED_WARMS
        .into_iter()
        .zip(first.into_iter().zip(then))
        .find_map(|(result, (before, after))| (after > before).then_some(result))
        .expect("the second warm fetch is counted");
    (second, after_first, upstream.requests())
}

#[tokio::test]
async fn warming_obeys_the_registrys_breaker() {
    let (second, before, after) = second_warm_after(503).await;
    assert_eq!(
        second,
        WarmResult::Skipped,
        "the breaker opened on the first failure"
    );
    assert_eq!(after, before, "no upstream call while it is open");
}

#[tokio::test]
async fn warming_obeys_the_registrys_rate_limit() {
    let (second, before, after) = second_warm_after(429).await;
    assert_eq!(
        second,
        WarmResult::RateLimited,
        "the registry rests after a 429"
    );
    assert_eq!(after, before, "no upstream call while it rests");
}
