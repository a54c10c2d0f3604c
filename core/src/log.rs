//! websocketd's log levels and the macros for its own two, on top of `tracing`. How a line
//! looks is the binary's business (its `log` module).
//!
//! websocketd's levels, most verbose first, are DEBUG, TRACE, ACCESS, INFO, ERROR and FATAL
//! (we add WARN between INFO and ERROR). They map onto `tracing` like this: the category is
//! the event's target; DEBUG, TRACE, INFO, WARN and ERROR are tracing's levels of the same
//! name; ACCESS is an INFO event with an `access` field ([`access!`](crate::access)); FATAL is
//! an ERROR event with a `fatal` field ([`fatal!`](crate::fatal)). The filter orders them the
//! websocketd way, in which DEBUG is more verbose than TRACE.

use std::str::FromStr;

use tracing::{Level, Metadata};

use crate::error::Error;

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

impl FromStr for LogLevel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            "access" => LogLevel::Access,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "fatal" => LogLevel::Fatal,
            "none" => LogLevel::None,
            other => return Err(Error::LogLevel(other.to_owned())),
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

/// The fields of a session's summary, recorded on its span before DISCONNECT: in the JSON
/// lines, left out of websocketd's text lines (which stay as websocketd writes them).
pub const SUMMARY_FIELDS: [&str; 7] =
    ["duration", "messages_in", "bytes_in", "messages_out", "bytes_out", "ended_by", "close"];

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
