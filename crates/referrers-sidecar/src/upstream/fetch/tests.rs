//! The fetcher against registries on loopback: a refusing one opens its breaker, a rate-limiting
//! one rests, on a manual clock.

use super::*;
use crate::breaker::BreakerState;
use crate::clock::ManualClock;
use crate::outcome::{StatusClass, UpstreamKind};
use registry_client::{AuthError, Registry, RegistryKind};

/// A registry on a port nothing listens on: every fetch is a refused connection, which
/// counts against the breaker.
fn refusing_target() -> UpstreamTarget {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    UpstreamTarget::new(
        Registry {
            name: "refusing".into(),
            base_url: format!("http://127.0.0.1:{port}/").parse().unwrap(),
            kind: RegistryKind::Distribution,
            insecure: true,
            credentials: None,
        },
        "library/nginx".into(),
        false,
    )
}

/// A registry answering every request with the status in `status`, with `Retry-After:
/// 120` on a 429.
async fn registry_answering(status: Arc<std::sync::atomic::AtomicU16>) -> UpstreamTarget {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let status = status.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let retry_after = if status == 429 {
                    "Retry-After: 120\r\n"
                } else {
                    ""
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\n{retry_after}Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    UpstreamTarget::new(
        Registry {
            name: "limited".into(),
            base_url: format!("http://127.0.0.1:{port}/").parse().unwrap(),
            kind: RegistryKind::Distribution,
            insecure: true,
            credentials: None,
        },
        "library/nginx".into(),
        false,
    )
}

fn fetcher(
    settings: &UpstreamSettings,
    clock: &Arc<ManualClock>,
) -> (UpstreamFetcher, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new(&[]).unwrap());
    let observer: Arc<dyn RequestObserver> = Arc::new(UpstreamRequestMetrics(Arc::clone(&metrics)));
    let client = RegistryClient::new(settings.client_config(Some(observer))).unwrap();
    let fetcher = UpstreamFetcher::new(
        client,
        settings,
        Arc::clone(clock) as Arc<dyn Clock>,
        Arc::clone(&metrics),
    );
    (fetcher, metrics)
}

#[tokio::test]
async fn a_rate_limit_rests_the_registry_until_retry_after_and_a_limited_probe_keeps_the_breaker_open()
 {
    use std::sync::atomic::{AtomicU16, Ordering};
    let settings = UpstreamSettings {
        breaker_failures: 1,
        breaker_cooldown: Duration::from_secs(30),
        ..UpstreamSettings::default()
    };
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let (fetcher, metrics) = fetcher(&settings, &clock);
    let status = Arc::new(AtomicU16::new(503));
    let target = registry_answering(Arc::clone(&status)).await;
    let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
    let requests = || {
        UpstreamKind::ALL
            .iter()
            .flat_map(|kind| StatusClass::ALL.iter().map(move |class| (kind, class)))
            .map(|(kind, class)| {
                metrics
                    .upstream_requests
                    .with_label_values(&["limited", kind.as_str(), class.as_str()])
                    .get()
            })
            .sum::<u64>()
    };
    let limited = || {
        metrics
            .upstream_rate_limited
            .with_label_values(&["limited"])
            .get()
    };

    // A 503 without Retry-After is a failure: the breaker opens.
    assert!(matches!(
        fetcher.fetch(&target, &digest, None).await,
        Fetch::Failed
    ));
    assert_eq!(fetcher.breaker("limited").state(), BreakerState::Open);

    // The probe after the cool-down is answered 429: the breaker stays open, and the
    // registry rests for the 120 s it asked for.
    clock.advance(settings.breaker_cooldown);
    status.store(429, Ordering::SeqCst);
    assert_eq!(fetcher.admits("limited"), Admission::Admitted);
    assert!(matches!(
        fetcher.fetch(&target, &digest, None).await,
        Fetch::RateLimited
    ));
    assert_eq!(fetcher.breaker("limited").state(), BreakerState::Open);
    assert_eq!(
        metrics.breaker_state.with_label_values(&["limited"]).get(),
        1
    );
    assert_eq!(limited(), 1);
    let made = requests();

    // Resting: no call, even once the breaker's cool-down is over.
    clock.advance(settings.breaker_cooldown);
    assert_eq!(fetcher.admits("limited"), Admission::Resting);
    assert!(matches!(
        fetcher.fetch(&target, &digest, None).await,
        Fetch::RateLimited
    ));
    clock.advance(Duration::from_secs(120) - settings.breaker_cooldown - Duration::from_millis(1));
    assert_eq!(fetcher.admits("limited"), Admission::Resting);
    assert_eq!(requests(), made, "no upstream call while resting");
    assert_eq!(limited(), 1, "only an upstream answer counts");

    // The rest is over: the next fetch is the breaker's probe, and calls the registry.
    clock.advance(Duration::from_millis(1));
    assert_eq!(fetcher.admits("limited"), Admission::Admitted);
    status.store(503, Ordering::SeqCst);
    assert!(matches!(
        fetcher.fetch(&target, &digest, None).await,
        Fetch::Failed
    ));
    assert!(requests() > made);
    assert_eq!(fetcher.admits("another"), Admission::Admitted);
}

#[tokio::test]
async fn the_registry_breaker_opens_skips_then_probes_after_its_cool_down() {
    let settings = UpstreamSettings {
        breaker_failures: 2,
        breaker_cooldown: Duration::from_secs(30),
        ..UpstreamSettings::default()
    };
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let metrics = Arc::new(Metrics::new(&[]).unwrap());
    let observer: Arc<dyn RequestObserver> = Arc::new(UpstreamRequestMetrics(Arc::clone(&metrics)));
    let client = RegistryClient::new(settings.client_config(Some(observer))).unwrap();
    let fetcher = UpstreamFetcher::new(
        client,
        &settings,
        Arc::clone(&clock) as Arc<dyn Clock>,
        Arc::clone(&metrics),
    );
    let target = refusing_target();
    let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
    let requests = || {
        metrics
            .upstream_requests
            .with_label_values(&["refusing", "api", "error"])
            .get()
    };
    let gauge = || metrics.breaker_state.with_label_values(&["refusing"]).get();

    for _ in 0..2 {
        assert_eq!(fetcher.admits("refusing"), Admission::Admitted);
        assert!(matches!(
            fetcher.fetch(&target, &digest, None).await,
            Fetch::Failed
        ));
    }
    assert_eq!(fetcher.breaker("refusing").state(), BreakerState::Open);
    assert_eq!(gauge(), 1);
    let made = requests();
    assert!(made >= 2, "each fetch reached the registry: {made}");

    // Open: no call at all.
    assert_eq!(fetcher.admits("refusing"), Admission::BreakerOpen);
    assert!(matches!(
        fetcher.fetch(&target, &digest, None).await,
        Fetch::Skipped
    ));
    assert_eq!(requests(), made);

    // After the cool-down one probe goes; it fails, so the breaker opens again.
    clock.advance(settings.breaker_cooldown);
    assert_eq!(fetcher.admits("refusing"), Admission::Admitted);
    assert!(matches!(
        fetcher.fetch(&target, &digest, None).await,
        Fetch::Failed
    ));
    assert!(requests() > made);
    assert_eq!(gauge(), 1);
    assert_eq!(fetcher.admits("refusing"), Admission::BreakerOpen);
    // Another registry has a breaker of its own.
    assert_eq!(fetcher.admits("another"), Admission::Admitted);
}

/// What the last call said of a registry is kept for the status, per registry: a refused
/// connection or a 5xx makes it unreachable, a 401 an authentication failure, and an answer
/// (a 404: no referrers API, no fallback tag) clears it.
#[tokio::test]
async fn the_last_call_tells_whether_a_registry_is_unreachable_or_refuses_the_credentials() {
    use std::sync::atomic::{AtomicU16, Ordering};
    let settings = UpstreamSettings {
        breaker_failures: 100,
        ..UpstreamSettings::default()
    };
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let (fetcher, _) = fetcher(&settings, &clock);
    let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
    let trouble = |name: &str| fetcher.registry_state(name).trouble;

    assert_eq!(trouble("refusing"), None, "never called");
    let refusing = refusing_target();
    assert!(matches!(
        fetcher.fetch(&refusing, &digest, None).await,
        Fetch::Failed
    ));
    assert_eq!(trouble("refusing"), Some(Trouble::Unreachable));

    let status = Arc::new(AtomicU16::new(401));
    let answering = registry_answering(Arc::clone(&status)).await;
    assert!(matches!(
        fetcher.fetch(&answering, &digest, None).await,
        Fetch::Failed
    ));
    assert_eq!(trouble("limited"), Some(Trouble::AuthFailed));
    status.store(502, Ordering::SeqCst);
    fetcher.fetch(&answering, &digest, None).await;
    assert_eq!(trouble("limited"), Some(Trouble::Unreachable));
    status.store(404, Ordering::SeqCst);
    assert!(matches!(
        fetcher.fetch(&answering, &digest, None).await,
        Fetch::Listed(_)
    ));
    assert_eq!(trouble("limited"), None, "it answered");
    assert_eq!(
        trouble("refusing"),
        Some(Trouble::Unreachable),
        "each registry its own"
    );
}

#[test]
fn each_failure_says_what_it_says_of_the_registry() {
    let cases = [
        (
            UpstreamError::Timeout(Duration::from_secs(1)),
            Heard::Trouble(Trouble::Unreachable),
        ),
        (
            UpstreamError::Tls {
                origin: "https://r".into(),
                detail: "unknown CA".into(),
            },
            Heard::Trouble(Trouble::Unreachable),
        ),
        (
            UpstreamError::Api { status: 503 },
            Heard::Trouble(Trouble::Unreachable),
        ),
        (
            UpstreamError::Auth(AuthError::TokenEndpoint { status: 500 }),
            Heard::Trouble(Trouble::Unreachable),
        ),
        (
            UpstreamError::Auth(AuthError::TokenRefused { status: 401 }),
            Heard::Trouble(Trouble::AuthFailed),
        ),
        (
            UpstreamError::Auth(AuthError::Denied { status: 403 }),
            Heard::Trouble(Trouble::AuthFailed),
        ),
        (
            UpstreamError::Fallback { status: 401 },
            Heard::Trouble(Trouble::AuthFailed),
        ),
        (
            UpstreamError::Manifest { status: 502 },
            Heard::Trouble(Trouble::Unreachable),
        ),
        (
            UpstreamError::Manifest { status: 403 },
            Heard::Trouble(Trouble::AuthFailed),
        ),
        (UpstreamError::Api { status: 400 }, Heard::Answered),
        (UpstreamError::Manifest { status: 404 }, Heard::Answered),
        (
            UpstreamError::Decode {
                what: "referrers page",
                reason: "not JSON".into(),
            },
            Heard::Answered,
        ),
        (
            UpstreamError::RateLimited { retry_after: None },
            Heard::Nothing,
        ),
        (
            UpstreamError::OverBudget(registry_client::OverBudget { limit: 1 }),
            Heard::Nothing,
        ),
    ];
    for (error, heard) in cases {
        assert_eq!(Heard::of(&error), heard, "{error}");
    }
}

/// A referrer's manifest is read behind the same rest and breaker as the registry's lists: a
/// rate limit on a manifest read rests the registry for the lists too, and refused connections
/// open the one breaker.
#[tokio::test]
async fn manifest_reads_share_the_registrys_rest_and_breaker_with_its_lists() {
    use std::sync::atomic::AtomicU16;
    let settings = UpstreamSettings {
        breaker_failures: 1,
        ..UpstreamSettings::default()
    };
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let (fetcher, _) = fetcher(&settings, &clock);
    let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();

    let limited = registry_answering(Arc::new(AtomicU16::new(429))).await;
    assert!(matches!(
        fetcher.manifest(&limited, &digest, 4096).await,
        ManifestRead::RateLimited
    ));
    assert_eq!(fetcher.admits("limited"), Admission::Resting);
    assert!(matches!(
        fetcher.fetch(&limited, &digest, None).await,
        Fetch::RateLimited
    ));

    let refusing = refusing_target();
    assert!(matches!(
        fetcher.manifest(&refusing, &digest, 4096).await,
        ManifestRead::Failed
    ));
    assert_eq!(fetcher.admits("refusing"), Admission::BreakerOpen);
    assert!(matches!(
        fetcher.manifest(&refusing, &digest, 4096).await,
        ManifestRead::Skipped
    ));
    assert!(matches!(
        fetcher.fetch(&refusing, &digest, None).await,
        Fetch::Skipped
    ));
}
