//! Logging and tracing set-up, the per-request span (carrying the caller's `X-Request-Id` when
//! sent, continuing the caller's trace when traces are on), and the access log: one line per
//! request, written off the request path.

use std::io::{self, BufWriter, Write};
use std::thread;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, LogSettings, TraceSettings};

mod json_lines;
mod trace;

pub use trace::{
    SPANS, UPSTREAM_SPANS, attribute, context_headers, continue_caller, follow_current, on,
    pass_context,
};

/// The header that carries a request's id across Harbor's components.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The target of the access log's lines: `log.level: info,referrers_sidecar::access=warn` turns
/// the access log off and keeps every other line.
pub const ACCESS_TARGET: &str = "referrers_sidecar::access";

/// Lines held in memory while stderr is slower than the requests; beyond that a worker waits
/// for the writer rather than dropping a line. The queue is allocated whole at start (32 bytes
/// a line); the writer takes a millisecond of lines at a time, so it holds a stall of stderr of
/// a fraction of a second at thousands of requests a second.
const BUFFERED_LINES: usize = 8 * 1024;

/// Bytes of lines the writer gathers into one `write(2)`.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// How long the writer lets lines gather after a write: under load, the lines of a millisecond
/// go out in one call, and the writer wakes once for them instead of once a line.
const GATHER: Duration = Duration::from_millis(1);

/// Keeps the log writer's thread alive, and the trace exporter's; dropping it flushes every
/// line still buffered and sends the spans still batched.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    // Dropped first: its last words go to the log.
    _traces: Option<trace::Exporter>,
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber: JSON or text lines on stderr, written by a thread of their
/// own so that a worker never waits for a `write(2)` (the access log alone is a line per
/// request), and gathered so that a burst of lines costs one call; with `trace.enabled`, the
/// spans exported too. Safe to call more than once (later calls keep the first subscriber).
pub fn init(log: &LogSettings, traces: &TraceSettings) -> LogGuard {
    // The spans only traces show are never the log's: with traces off they cost nothing, and
    // with traces on a line's span stays the request's.
    let filter = EnvFilter::try_new(&log.level)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(format!("{SPANS}=off").parse().expect("a valid directive"))
        .add_directive(
            format!("{UPSTREAM_SPANS}=off")
                .parse()
                .expect("a valid directive"),
        );
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-writer")
        .finish(Gathering::new(io::stderr(), GATHER));
    if !traces.enabled {
        // The log's filter stays global: a span or line it turns off costs nothing at all.
        let installed = Registry::default()
            .with(filter)
            .with(lines(log.format, writer))
            .try_init();
        return LogGuard {
            _traces: None,
            _writer: installed.is_ok().then_some(guard),
        };
    }
    let (exported, exporter) = match trace::start(traces) {
        Ok(started) => started,
        Err(error) => {
            let installed = Registry::default()
                .with(filter)
                .with(lines(log.format, writer))
                .try_init();
            tracing::error!(error = %error, "traces are not exported: the exporter did not start");
            return LogGuard {
                _traces: None,
                _writer: installed.is_ok().then_some(guard),
            };
        }
    };
    // Every span of the service and its upstream client; warnings become span events.
    let exported_filter = Targets::new()
        .with_target("referrers_sidecar", tracing::Level::INFO)
        .with_target(UPSTREAM_SPANS, tracing::Level::INFO);
    let installed = Registry::default()
        .with(lines(log.format, writer).with_filter(filter))
        .with(exported.with_filter(exported_filter))
        .try_init();
    LogGuard {
        _traces: installed.is_ok().then_some(exporter),
        _writer: installed.is_ok().then_some(guard),
    }
}

/// The log's lines, JSON or text, written by `writer`.
fn lines<S>(format: LogFormat, writer: NonBlocking) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Json => lines
            .json()
            .event_format(json_lines::JsonLines::new())
            .boxed(),
        LogFormat::Text => lines.boxed(),
    }
}

/// The log writer's output: lines are buffered, and written when the writer has taken every
/// line waiting (it flushes then); after a write it pauses for `pause`, so that the lines
/// arriving meanwhile are written together. A line waits at most `pause` plus one write.
struct Gathering<W: Write> {
    buffer: BufWriter<W>,
    pause: Duration,
}

impl<W: Write> Gathering<W> {
    fn new(inner: W, pause: Duration) -> Self {
        Self {
            buffer: BufWriter::with_capacity(WRITE_BUFFER_BYTES, inner),
            pause,
        }
    }
}

impl<W: Write> Write for Gathering<W> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.buffer.write(line)
    }

    fn flush(&mut self) -> io::Result<()> {
        let wrote = !self.buffer.buffer().is_empty();
        self.buffer.flush()?;
        if wrote && !self.pause.is_zero() {
            thread::sleep(self.pause);
        }
        Ok(())
    }
}

/// The request's id: the caller's `X-Request-Id` when it is a sane token, else a new one.
#[must_use]
pub fn request_id(request: &ServiceRequest) -> String {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The id chosen for a request, kept in its extensions for the handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// When the request arrived, for the access log's duration.
#[derive(Debug, Clone, Copy)]
struct Arrived(Instant);

/// The id of `request` (as its span carries it).
#[must_use]
pub fn request_id_of(request: &actix_web::HttpRequest) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |id| id.0.clone())
}

/// Root span of every request (method, path, client and request id, formatted once when the
/// request arrives), and its access line when the response head is ready.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request_id(request);
        let span = tracing::info_span!(
            "request",
            http.method = %request.method(),
            // The path only: a query may carry secrets (an OIDC callback's code, say).
            http.target = %request.uri().path(),
            http.client_ip = %request.connection_info().realip_remote_addr().unwrap_or(""),
            request_id = %request_id,
        );
        trace::continue_caller(&span, request.headers());
        let mut extensions = request.extensions_mut();
        extensions.insert(RequestId(request_id));
        extensions.insert(Arrived(Instant::now()));
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let _entered = span.enter();
        match outcome {
            Ok(response) => {
                let micros = response
                    .request()
                    .extensions()
                    .get::<Arrived>()
                    .map_or(0, |arrived| {
                        u64::try_from(arrived.0.elapsed().as_micros()).unwrap_or(u64::MAX)
                    });
                tracing::info!(
                    target: ACCESS_TARGET,
                    status = response.status().as_u16(),
                    duration_us = micros,
                    "request"
                );
            }
            Err(error) => tracing::warn!(
                target: ACCESS_TARGET,
                status = error.as_response_error().status_code().as_u16(),
                error = %error,
                "request failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathered_lines_are_written_whole_at_each_flush() {
        let mut out = Gathering::new(Vec::new(), Duration::ZERO);
        out.write_all(b"one\n").unwrap();
        out.write_all(b"two\n").unwrap();
        assert!(out.buffer.get_ref().is_empty(), "held until the flush");
        out.flush().unwrap();
        assert_eq!(out.buffer.get_ref().as_slice(), b"one\ntwo\n");
        out.flush().unwrap();
        assert_eq!(out.buffer.get_ref().as_slice(), b"one\ntwo\n");
    }
}
