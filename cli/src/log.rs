//! websocketd's log lines, written through `tracing` on stdout.
//!
//! A line looks like
//! `Mon, 02 Jan 2006 15:04:05 -0700 | ACCESS | session    | url:'…' id:'…' | CONNECT`:
//! local time (RFC 1123 with numeric zone), the level padded to 6, the category padded to 10,
//! the association (the fields of the enclosing spans as `key:'value'`), the message. The
//! levels and how they map onto `tracing`'s are the session crate's ([`LogLevel`]).
//!
//! With `--logformat=json` every line is one JSON object instead, with the same parts:
//! `{"time":"2006-01-02T15:04:05.000-07:00","level":"ACCESS","category":"session",
//! "url":"…","id":"…","message":"CONNECT"}`, the association's fields at the top level, every
//! value a string.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use websocketd_core::log::{LogLevel, SUMMARY_FIELDS};

/// How log lines are written (`--logformat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// websocketd's lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: lines on stdout at `level` and above, in `format`; the
/// text lines with the session's summary on DISCONNECT only if `summary` (`--logsummary`).
pub fn init(level: LogLevel, format: LogFormat, summary: bool) {
    let filter = tracing_subscriber::filter::filter_fn(move |meta| {
        meta.is_span() || (level != LogLevel::None && LogLevel::of(meta) >= level)
    });
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stdout);
    // Only fails if a subscriber is already set, in which case that one stays.
    let _ = match format {
        LogFormat::Text => {
            let fields = Association { summary };
            let layer = layer.fmt_fields(fields).event_format(LineFormat).with_filter(filter);
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        }
        LogFormat::Json => {
            let layer = layer.fmt_fields(JsonFields).event_format(JsonFormat).with_filter(filter);
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        }
    };
}

/// Formats span fields as members of a JSON object: `"key":value` separated by commas.
#[derive(Debug)]
struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = JsonVisitor { writer, result: Ok(()), first: true, skip: &[] };
        fields.record(&mut visitor);
        visitor.result
    }

    /// Fields recorded later (a pid, an exit) join the others after a comma.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if !current.fields.is_empty() {
            current.fields.push(',');
        }
        self.format_fields(current.as_writer(), fields)
    }
}

/// Writes the fields it visits as JSON members, leaving out those named in `skip`.
struct JsonVisitor<'w> {
    writer: Writer<'w>,
    result: fmt::Result,
    first: bool,
    skip: &'static [&'static str],
}

impl JsonVisitor<'_> {
    fn member(&mut self, field: &Field, value: &dyn fmt::Display) {
        if self.result.is_err() || self.skip.contains(&field.name()) {
            return;
        }
        let sep = if self.first { "" } else { "," };
        self.first = false;
        self.result = write!(self.writer, "{sep}{}:{value}", json_string(field.name()));
    }
}

/// Every value is a string, as in the text lines: an `id` is a 64-bit number, which a JSON
/// reader that holds numbers as doubles (JavaScript, jq) would round.
impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, &json_string(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, &json_string(&format!("{value:?}")));
    }
}

/// `text` as a JSON string, quoted and escaped.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Formats one event as a JSON object on a line of its own.
#[derive(Debug)]
struct JsonFormat;

impl<S, N> FormatEvent<S, N> for JsonFormat
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
        let meta = event.metadata();
        let time = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
        let level = LogLevel::of(meta).label();
        write!(
            writer,
            "{{\"time\":{},\"level\":{},\"category\":{}",
            json_string(&time),
            json_string(level),
            json_string(meta.target())
        )?;
        spans_fields(ctx, |fields| write!(writer, ",{fields}"))?;
        let mut visitor = JsonVisitor {
            writer: writer.by_ref(),
            result: Ok(()),
            first: false,
            skip: &["access", "fatal"],
        };
        event.record(&mut visitor);
        visitor.result?;
        writeln!(writer, "}}")
    }
}

/// Formats span fields as websocketd's association: `key:'value'` separated by spaces; the
/// session's summary fields only with `summary`.
#[derive(Debug)]
struct Association {
    summary: bool,
}

impl<'w> FormatFields<'w> for Association {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor =
            AssociationVisitor { writer, result: Ok(()), first: true, summary: self.summary };
        fields.record(&mut visitor);
        visitor.result
    }

    /// Fields recorded later (a pid, an exit) join the others after a space; those left out
    /// of the text (the summary's) add nothing, not even the space.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut more = String::new();
        let mut visitor = AssociationVisitor {
            writer: Writer::new(&mut more),
            result: Ok(()),
            first: true,
            summary: self.summary,
        };
        fields.record(&mut visitor);
        visitor.result?;
        if !more.is_empty() {
            if !current.fields.is_empty() {
                current.fields.push(' ');
            }
            current.fields.push_str(&more);
        }
        Ok(())
    }
}

struct AssociationVisitor<'w> {
    writer: Writer<'w>,
    result: fmt::Result,
    first: bool,
    summary: bool,
}

impl Visit for AssociationVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || (!self.summary && SUMMARY_FIELDS.contains(&field.name())) {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = write!(self.writer, "{sep}{}:'{value:?}'", field.name());
    }
}

/// The time at the start of a line, made once per second and thread: working out the local
/// zone (chrono looks at `/etc/localtime` again) and formatting cost more than the rest of
/// a line, and a busy server writes thousands of lines a second.
#[derive(Debug, Default)]
struct Stamp {
    second: Option<u64>,
    text: String,
}

impl Stamp {
    fn now(&mut self) -> &str {
        let now = std::time::SystemTime::now();
        let second = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.second != Some(second) {
            let local = chrono::DateTime::<chrono::Local>::from(now);
            self.text = local.format("%a, %d %b %Y %H:%M:%S %z").to_string();
            self.second = Some(second);
        }
        &self.text
    }
}

thread_local! {
    static STAMP: std::cell::RefCell<Stamp> = std::cell::RefCell::default();
}

/// Calls `each` with the formatted fields of every span around the event that has any,
/// outermost first.
fn spans_fields<S, N>(
    ctx: &FmtContext<'_, S, N>,
    mut each: impl FnMut(&str) -> fmt::Result,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let Some(scope) = ctx.event_scope() else { return Ok(()) };
    for span in scope.from_root() {
        let ext = span.extensions();
        match ext.get::<FormattedFields<N>>() {
            Some(fields) if !fields.is_empty() => each(fields)?,
            _ => {}
        }
    }
    Ok(())
}

/// Formats one event as a websocketd line.
#[derive(Debug)]
struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
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
        let meta = event.metadata();
        let level = LogLevel::of(meta).label();
        STAMP.with_borrow_mut(|stamp| {
            write!(writer, "{} | {level:<6} | {:<10} | ", stamp.now(), meta.target())
        })?;
        let mut first = true;
        spans_fields(ctx, |fields| {
            let sep = if first { "" } else { " " };
            first = false;
            write!(writer, "{sep}{fields}")
        })?;
        writer.write_str(" | ")?;
        let mut visitor = MessageVisitor { writer: writer.by_ref(), result: Ok(()) };
        event.record(&mut visitor);
        visitor.result?;
        writeln!(writer)
    }
}

struct MessageVisitor<'w> {
    writer: Writer<'w>,
    result: fmt::Result,
}

impl Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        self.result = match field.name() {
            "message" => write!(self.writer, "{value:?}"),
            "access" | "fatal" => Ok(()),
            name => write!(self.writer, " {name}={value:?}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::Stamp;

    #[test]
    fn stamp_is_rfc1123_with_numeric_zone_and_follows_the_clock() {
        let mut stamp = Stamp::default();
        let first = stamp.now().to_owned();
        let parsed = chrono::DateTime::parse_from_str(&first, "%a, %d %b %Y %H:%M:%S %z")
            .unwrap_or_else(|e| panic!("{first:?}: {e}"));
        let drift = (chrono::Utc::now().timestamp() - parsed.timestamp()).abs();
        assert!(drift <= 2, "{first:?} is {drift} s off");
        // A stale second is made again, not reused.
        stamp.second = stamp.second.map(|s| s - 3600);
        stamp.text = "stale".to_owned();
        assert_ne!(stamp.now(), "stale");
    }
}
