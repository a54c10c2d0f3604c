//! websocketd's log lines, written through `tracing` on stdout.
//!
//! A line looks like
//! `Mon, 02 Jan 2006 15:04:05 -0700 | ACCESS | session    | url:'…' id:'…' | CONNECT`:
//! local time (RFC 1123 with numeric zone), the level padded to 6, the category padded to 10,
//! the association (the fields of the enclosing spans as `key:'value'`), the message. The
//! levels and how they map onto `tracing`'s are the session crate's ([`LogLevel`]).

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use websocketd_core::log::LogLevel;

/// Installs the global subscriber: websocketd lines on stdout at `level` and above.
pub fn init(level: LogLevel) {
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .fmt_fields(Association)
        .event_format(LineFormat)
        .with_filter(tracing_subscriber::filter::filter_fn(move |meta| {
            meta.is_span() || (level != LogLevel::None && LogLevel::of(meta) >= level)
        }));
    // Only fails if a subscriber is already set, in which case that one stays.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

/// Formats span fields as websocketd's association: `key:'value'` separated by spaces.
#[derive(Debug)]
struct Association;

impl<'w> FormatFields<'w> for Association {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = AssociationVisitor { writer, result: Ok(()), first: true };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct AssociationVisitor<'w> {
    writer: Writer<'w>,
    result: fmt::Result,
    first: bool,
}

impl Visit for AssociationVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = write!(self.writer, "{sep}{}:'{value:?}'", field.name());
    }
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
        let now = chrono::Local::now().format("%a, %d %b %Y %H:%M:%S %z");
        write!(writer, "{now} | {:<6} | {:<10} | ", LogLevel::of(meta).label(), meta.target())?;
        let mut first = true;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(fields) = ext.get::<FormattedFields<N>>() else { continue };
                if fields.is_empty() {
                    continue;
                }
                if !first {
                    writer.write_char(' ')?;
                }
                first = false;
                writer.write_str(fields)?;
            }
        }
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
