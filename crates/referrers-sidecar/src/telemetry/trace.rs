//! OpenTelemetry traces (`trace.*`, off by default): the request's `tracing` span and the spans
//! under it exported over OTLP/HTTP, the caller's W3C trace context continued, and passed on to
//! core and the upstream.
//!
//! The spans only a trace shows (core's call, the cache tiers, the upstream) have the target
//! [`SPANS`]: the log's filter turns that target off, so with tracing off each of them is a
//! disabled callsite (one relaxed load) and costs a request nothing, and with tracing on they
//! never become a log line's current span (the access log keeps the request's fields).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Key, Value};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt as _};
use tracing_subscriber::registry::LookupSpan;

use crate::config::TraceSettings;

/// The target of the spans only traces show (the request's own span is the log's too).
pub const SPANS: &str = "referrers_sidecar::trace";

/// The upstream client's spans (one per request it sends: each page, the token exchange).
pub const UPSTREAM_SPANS: &str = registry_client::SPAN_TARGET;

/// The W3C trace context's headers.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: every step that would cost a request something (reading the
/// caller's context, writing it out, attributes) is skipped when they are not.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The exporter's pipeline; dropping it sends the spans still batched.
pub(super) struct Exporter {
    provider: SdkTracerProvider,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        ON.store(false, Ordering::Relaxed);
        if let Err(error) = self.provider.shutdown() {
            eprintln!("referrers-sidecar: traces not all exported at exit: {error}");
        }
    }
}

/// The layer that turns spans into OpenTelemetry's, and the exporter behind it. Exports from a
/// thread of its own, in batches (`OTEL_BSP_*` tune the batches).
pub(super) fn start<S>(
    settings: &TraceSettings,
) -> Result<(OpenTelemetryLayer<S, SdkTracer>, Exporter), String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let url = settings
        .traces_url()
        .ok_or("trace.otlp_endpoint is not set")?;
    // The exporter's HTTP client (for an https:// collector) uses the process's TLS provider,
    // the one every other connection uses; set before anything else starts.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url.as_str())
        .with_timeout(settings.timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_rate,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("referrers-sidecar");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false);
    ON.store(true, Ordering::Relaxed);
    Ok((layer, Exporter { provider }))
}

/// Makes `span` (a request's) continue the caller's trace when its headers carry one.
pub fn continue_caller(span: &Span, headers: &HeaderMap) {
    if !on() || !headers.contains_key(TRACEPARENT) {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Carrier(headers));
    // Only fails for a span no layer records, or one already started.
    let _ = span.set_parent(parent);
}

/// Makes `span`, which has no parent of its own (work that may outlive the request: a shared
/// fetch, a fill), part of the current span's trace without keeping that span open.
pub fn follow_current(span: &Span) {
    if on() {
        let _ = span.set_parent(Span::current().context());
    }
}

/// Sets `key` on `span`'s exported span (never on its log line).
pub fn attribute(span: &Span, key: &'static str, value: impl Into<Value>) {
    if on() {
        span.set_attribute(Key::from_static_str(key), value);
    }
}

/// `span`'s trace context as W3C headers, for a request made on its behalf: `None` when
/// tracing is off or `span` is not exported.
#[must_use]
pub fn context_headers(span: &Span) -> Option<Vec<(&'static str, String)>> {
    if !on() {
        return None;
    }
    let mut fields = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut fields);
    let mut headers = Vec::with_capacity(2);
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(value) = fields.remove(name).filter(|v| !v.is_empty()) {
            headers.push((name, value));
        }
    }
    (!headers.is_empty()).then_some(headers)
}

/// Replaces the trace context of `headers` (the caller's, passed to core) with `span`'s.
pub fn pass_context(span: &Span, headers: &mut HeaderMap) {
    let Some(context) = context_headers(span) else {
        return;
    };
    headers.remove(TRACESTATE);
    for (name, value) in context {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// A request's headers as the propagator reads them.
struct Carrier<'a>(&'a HeaderMap);

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}
