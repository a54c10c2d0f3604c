//! websocketd's log lines, written through `tracing`.
//!
//! A line looks like
//! `Mon, 02 Jan 2006 15:04:05 -0700 | ACCESS | session    | url:'…' id:'…' | CONNECT`:
//! local time (RFC 1123 with numeric zone), the level padded to 6, the category padded to 10,
//! the association (the fields of the enclosing spans as `key:'value'`), the message.
//!
//! websocketd's levels, most verbose first, are DEBUG, TRACE, ACCESS, INFO, ERROR and FATAL
//! (we add WARN between INFO and ERROR). They map onto `tracing` like this: the category is
//! the event's target; DEBUG, TRACE, INFO, WARN and ERROR are tracing's levels of the same
//! name; ACCESS is an INFO event with an `access` field ([`access!`](crate::access)); FATAL is
//! an ERROR event with a `fatal` field ([`fatal!`](crate::fatal)). The filter orders them the
//! websocketd way, in which DEBUG is more verbose than TRACE.

use std::fmt;
use std::str::FromStr;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

/// Logs a websocketd ACCESS line: `access!(target: "session", "CONNECT")`.
#[macro_export]
macro_rules! access {
    (target: $target:expr, $($arg:tt)+) => {
        ::tracing::event!(target: $target, ::tracing::Level::INFO, access = true, $($arg)+)
    };
}

/// Logs a websocketd FATAL line: `fatal!(target: "server", "Can't start server: {e}")`.
#[macro_export]
macro_rules! fatal {
    (target: $target:expr, $($arg:tt)+) => {
        ::tracing::event!(target: $target, ::tracing::Level::ERROR, fatal = true, $($arg)+)
    };
}

/// The least severe level that is shown (`--loglevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// TRACE and up.
    Trace,
    /// ACCESS and up (the default).
    Access,
    /// INFO and up.
    Info,
    /// WARN and up.
    Warn,
    /// ERROR and up.
    Error,
    /// FATAL only.
    Fatal,
    /// Nothing at all.
    None,
}

/// A `--loglevel` value that is not one of the names.
#[derive(Debug, thiserror::Error)]
#[error("incorrect loglevel '{0}'")]
pub struct UnknownLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, UnknownLevel> {
        Ok(match s {
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            "access" => LogLevel::Access,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "fatal" => LogLevel::Fatal,
            "none" => LogLevel::None,
            other => return Err(UnknownLevel(other.to_owned())),
        })
    }
}

impl LogLevel {
    /// The level of an event, the websocketd way.
    pub fn of(meta: &Metadata<'_>) -> LogLevel {
        let has = |name| meta.fields().field(name).is_some();
        match *meta.level() {
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
            Level::INFO if has("access") => LogLevel::Access,
            Level::INFO => LogLevel::Info,
            Level::WARN => LogLevel::Warn,
            Level::ERROR if has("fatal") => LogLevel::Fatal,
            Level::ERROR => LogLevel::Error,
        }
    }

    /// The label in a log line.
    pub fn label(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
            LogLevel::Access => "ACCESS",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
            LogLevel::None => "",
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order_as_websocketd() {
        let names = ["debug", "trace", "access", "info", "warn", "error", "fatal", "none"];
        let levels: Vec<LogLevel> = names.iter().map(|n| n.parse().unwrap()).collect();
        assert!(levels.windows(2).all(|w| w[0] < w[1]));
        assert!("verbose".parse::<LogLevel>().is_err());
    }
}
