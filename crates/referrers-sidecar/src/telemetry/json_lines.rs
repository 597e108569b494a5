//! JSON log lines, with the access log's line written directly: one a request, it is the line
//! that counts. Every other event goes to tracing-subscriber's JSON format unchanged.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::ACCESS_TARGET;

/// Lines as tracing-subscriber's JSON format writes them (the event's fields flattened, the
/// current span, no span list), byte for byte. The access log's line is written without
/// reading its span's fields back: the span keeps them as a JSON object already, which the
/// JSON format would parse and write again on every request.
pub struct JsonLines {
    json: Format<Json>,
}

impl JsonLines {
    pub fn new() -> Self {
        Self {
            json: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() == ACCESS_TARGET {
            let span = event
                .parent()
                .and_then(|id| ctx.span(id))
                .or_else(|| ctx.lookup_current());
            if let Some(span) = span {
                let extensions = span.extensions();
                // The span's fields as the JSON format stored them: an object.
                let head = extensions
                    .get::<FormattedFields<N>>()
                    .and_then(|formatted| formatted.fields.strip_suffix('}'))
                    .filter(|head| head.starts_with('{'));
                if let Some(head) = head {
                    return write_line(&mut writer, event, head, span.name());
                }
            }
        }
        self.json.format_event(ctx, writer, event)
    }
}

/// Writes `event` with its span: `span_head` is the span's fields as a JSON object without
/// its closing brace.
fn write_line(
    writer: &mut Writer<'_>,
    event: &Event<'_>,
    span_head: &str,
    span_name: &str,
) -> fmt::Result {
    let meta = event.metadata();
    writer.write_str("{\"timestamp\":\"")?;
    SystemTime.format_time(writer)?;
    write!(writer, "\",\"level\":\"{}\"", meta.level().as_str())?;
    let mut fields = Fields {
        writer: &mut *writer,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    writer.write_str(",\"target\":")?;
    write_string(writer, meta.target())?;
    writer.write_str(",\"span\":")?;
    writer.write_str(span_head)?;
    if span_head.len() > 1 {
        writer.write_char(',')?;
    }
    writer.write_str("\"name\":")?;
    write_string(writer, span_name)?;
    writer.write_str("}}\n")
}

/// An event's fields as JSON members, each after a comma, as the JSON format writes them.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let writer = &mut *self.writer;
        self.result = writer
            .write_char(',')
            .and_then(|()| write_string(writer, field.name()))
            .and_then(|()| writer.write_char(':'))
            .and_then(|()| value(writer));
    }
}

impl Visit for Fields<'_, '_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, |w| match serde_json::Number::from_f64(value) {
            Some(number) => write!(w, "{number}"),
            None => w.write_str("null"),
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| write_string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `text` as a JSON string.
fn write_string(writer: &mut impl Write, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaped(&mut *writer).write_str(text)?;
    writer.write_char('"')
}

/// Writes what it is given escaped for a JSON string, as serde_json escapes it.
struct Escaped<W>(W);

impl<W: Write> Write for Escaped<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = at + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// The lines a request's events (with awkward values) are written as, their timestamps
    /// blanked.
    fn lines(subscriber: impl Subscriber + Send + Sync, captured: &Captured) -> Vec<String> {
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                http.method = %"GET",
                http.target = %"/v2/p/r\"q\\\u{1}\t\u{e9}\u{7f}/referrers/sha256:abc",
                http.client_ip = %"",
                request_id = %"id-1",
            );
            let entered = span.enter();
            tracing::info!(target: ACCESS_TARGET, status = 200_u16, duration_us = 17_u64, "request");
            tracing::warn!(target: ACCESS_TARGET, status = 500_u16, error = %"it \"broke\"\n\u{8}\u{c}\r", "request failed");
            tracing::info!(target: ACCESS_TARGET, ratio = 0.25_f64, nan = f64::NAN, ok = true, delta = -3_i64, text = "plain", "other fields");
            tracing::info!(project = "p", "not an access line");
            drop(entered);
            tracing::info!(target: ACCESS_TARGET, status = 200_u16, "outside any span");
            let bare = tracing::info_span!("bare");
            let _entered = bare.enter();
            tracing::info!(target: ACCESS_TARGET, status = 204_u16, "in a span without fields");
        });
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| {
                let at = line.find("\"timestamp\":\"").unwrap() + 13;
                let end = at + line[at..].find('"').unwrap();
                format!("{}{}", &line[..at], &line[end..])
            })
            .collect()
    }

    #[test]
    fn lines_are_those_of_the_json_format_byte_for_byte() {
        let json = Captured::default();
        let expected = lines(
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(json.clone())
                .finish(),
            &json,
        );
        let ours = Captured::default();
        let written = lines(
            tracing_subscriber::fmt()
                .json()
                .event_format(JsonLines::new())
                .with_writer(ours.clone())
                .finish(),
            &ours,
        );
        assert_eq!(written.len(), 6, "{written:#?}");
        assert_eq!(written, expected);
        assert!(written[0].contains("\\u0001"), "{}", written[0]);
        assert!(written[0].contains("\"status\":200"), "{}", written[0]);
    }
}
