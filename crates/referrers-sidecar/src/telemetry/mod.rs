//! Logging set-up, the per-request span (carrying the caller's `X-Request-Id` when sent), and
//! the access log: one line per request, written off the request path.

use std::io::{self, BufWriter, Write};
use std::thread;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

mod json_lines;

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

/// Keeps the log writer's thread alive; dropping it flushes every line still buffered.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber: JSON or text lines on stderr, written by a thread of their
/// own so that a worker never waits for a `write(2)` (the access log alone is a line per
/// request), and gathered so that a burst of lines costs one call. Safe to call more than once
/// (later calls keep the first subscriber).
pub fn init(settings: &LogSettings) -> LogGuard {
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-writer")
        .finish(Gathering::new(io::stderr(), GATHER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match settings.format {
        LogFormat::Json => builder
            .json()
            .event_format(json_lines::JsonLines::new())
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
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
