//! OpenTelemetry traces (`trace.*`): a referrers request continues the caller's W3C trace, its
//! spans reach a real OTLP/HTTP receiver (the protobuf decoded with OpenTelemetry's own
//! definitions), and core and the upstream are asked within the same trace.

use e2e::config::Configure;
use e2e::otlp::{OtlpReceiver, ReceivedSpan};
use e2e::redis::RedisServer;
use e2e::users::ALICE;
use e2e::wait::eventually;
use e2e::world::{Mirror, World, reply_with};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{CALLER_SPAN}-01")
}

/// The span named `name` of `spans`; fails naming every span received.
fn span<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no {name:?} span in {spans:#?}"))
}

/// The trace id in a `traceparent` value.
fn trace_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

async fn world() -> (World, RedisServer) {
    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .start();
    (world, RedisServer::start())
}

#[tokio::test]
async fn a_request_continues_the_callers_trace_through_core_the_cache_and_the_upstream() {
    let (world, redis) = world().await;
    let receiver = OtlpReceiver::start();
    let sidecar = world.sidecar_with(|s| {
        s.redis(&redis.url(10));
        s.trace.enabled = true;
        s.trace.otlp_endpoint = Some(receiver.url().parse().expect("URL"));
        // Only the caller's sampled flag decides.
        s.trace.sample_rate = 0.0;
        s.trace.service_name = "sidecar-under-test".into();
    });
    let path = world.subject_path("hub-proxy");

    let reply = reply_with(
        &sidecar,
        &path,
        &[
            ("traceparent", &traceparent(TRACE_ID)),
            ("tracestate", "vendor=caller-data"),
        ],
    )
    .await;
    assert_eq!(
        (reply.status, reply.cache.as_str()),
        (200, "miss"),
        "{}",
        reply.body
    );

    let wanted = [
        "request",
        "core referrers",
        "harbor facts",
        "cache lookup",
        "upstream fetch",
        "upstream request",
    ];
    eventually("the request's spans at the receiver", async || {
        let spans = receiver.trace(TRACE_ID);
        wanted
            .iter()
            .all(|name| spans.iter().any(|span| span.name == *name))
    })
    .await;
    let spans = receiver.trace(TRACE_ID);
    assert!(
        spans
            .iter()
            .all(|span| span.service == "sidecar-under-test"),
        "{spans:#?}"
    );

    // The request's span is the caller's span's child; the rest hang under it.
    let request = span(&spans, "request");
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.attributes["referrers.outcome"], "served");
    assert_eq!(request.attributes["referrers.project"], "hub-proxy");
    assert_eq!(request.attributes["referrers.cache"], "miss");
    assert_eq!(request.attributes["referrers.upstream"], "api");
    let core = span(&spans, "core referrers");
    assert_eq!(core.parent_span_id, request.span_id);
    assert_eq!(
        span(&spans, "upstream fetch").parent_span_id,
        request.span_id
    );
    let tiers: Vec<&str> = spans
        .iter()
        .filter(|span| span.name == "cache lookup")
        .map(|span| span.attributes["tier"].as_str())
        .collect();
    assert!(
        tiers.contains(&"memory") && tiers.contains(&"redis"),
        "{tiers:?}"
    );
    let fetch = span(&spans, "upstream fetch");
    assert!(
        spans
            .iter()
            .any(|span| span.name == "upstream request" && span.parent_span_id == fetch.span_id),
        "{spans:#?}"
    );
    // No credentials in any attribute.
    for span in &spans {
        for value in span.attributes.values() {
            assert!(!value.contains(ALICE.password), "{span:#?}");
        }
    }

    // Core was asked within the trace, from its span; so was the upstream.
    let asked_core = world.harbor.requests_to(&path);
    let core_parent = asked_core
        .iter()
        .find_map(|seen| seen.headers.get("traceparent"))
        .unwrap_or_else(|| panic!("core got no traceparent: {asked_core:#?}"));
    assert_eq!(trace_of(core_parent), TRACE_ID);
    assert!(core_parent.contains(&core.span_id), "{core_parent}");
    let asked_upstream = world.mirror("hub-proxy").front.seen_with("/referrers/");
    let upstream_parent = asked_upstream
        .iter()
        .find_map(|seen| seen.headers.get("traceparent"))
        .unwrap_or_else(|| panic!("the upstream got no traceparent: {asked_upstream:#?}"));
    assert_eq!(trace_of(upstream_parent), TRACE_ID);
    // The caller's vendors' data goes to core, never to a third party.
    assert!(
        asked_core
            .iter()
            .any(|seen| seen.headers.get("tracestate").map(String::as_str)
                == Some("vendor=caller-data")),
        "{asked_core:#?}"
    );
    assert!(
        asked_upstream
            .iter()
            .all(|seen| !seen.headers.contains_key("tracestate")),
        "{asked_upstream:#?}"
    );
}

#[tokio::test]
async fn with_traces_off_the_callers_context_reaches_core_unchanged_and_nothing_is_exported() {
    let (world, redis) = world().await;
    let receiver = OtlpReceiver::start();
    // Off, with an endpoint given: nothing may be sent there.
    let sidecar = world.sidecar_with(|s| {
        s.redis(&redis.url(10));
        s.trace.otlp_endpoint = Some(receiver.url().parse().expect("URL"));
    });
    let path = world.subject_path("hub-proxy");
    let caller = traceparent(TRACE_ID);

    let reply = reply_with(&sidecar, &path, &[("traceparent", &caller)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let asked_core = world.harbor.requests_to(&path);
    assert!(
        asked_core
            .iter()
            .any(|seen| seen.headers.get("traceparent") == Some(&caller)),
        "{asked_core:#?}"
    );
    let asked_upstream = world.mirror("hub-proxy").front.seen_with("/referrers/");
    assert!(!asked_upstream.is_empty());
    assert!(
        asked_upstream
            .iter()
            .all(|seen| !seen.headers.contains_key("traceparent")),
        "{asked_upstream:#?}"
    );
    // A clean exit sends every span still batched: none were made.
    let mut sidecar = sidecar;
    sidecar.terminate();
    assert!(sidecar.wait_exit().success());
    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
}
