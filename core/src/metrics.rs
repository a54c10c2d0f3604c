//! The server's metrics (`--adminaddress`'s `/metrics`), through the Prometheus project's own
//! `prometheus-client`: counted where things happen, once per event or per batch, never per
//! message, and encoded as OpenMetrics text when scraped.

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of [`Metrics::encode_prometheus`]'s text.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label set of one label, `outcome`, `class` or the like.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Outcome {
    /// What happened.
    pub outcome: &'static str,
}

/// How a program ended, as a label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ExitClass {
    /// `status0`, `nonzero`, `signal`, or `unknown` (not even SIGKILL ended it).
    pub class: &'static str,
}

/// A direction of the data between clients and programs, as a label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Direction {
    /// `in` (from clients to programs) or `out` (from programs to clients).
    pub direction: &'static str,
}

/// Messages and bytes moved one way, as counted in a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Whole messages.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
}

impl Moved {
    /// One more message of `bytes`.
    pub fn add(&mut self, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes as u64;
    }
}

/// A Close frame's code, as a label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CloseLabel {
    /// The code.
    pub code: u16,
}

/// A plain HTTP request, as labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HttpLabels {
    /// `static`, `cgi`, `console`, `redirect`, `not_found` or `bad_request`.
    pub kind: &'static str,
    /// The status answered.
    pub status: u16,
}

/// An access control decision, as labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AccessLabels {
    /// How the client showed who it is: `basic`, `bearer`, `forward`, `proxy`, or `none`.
    pub method: &'static str,
    /// `allowed`, `denied` (401, 403, 400), `busy` (429 or 503 from the password checks'
    /// bounds) or `failed` (the auth service did not answer).
    pub outcome: &'static str,
}

/// Every series the server keeps, and the registry they are encoded from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// WebSocket sessions connected now.
    pub sessions_active: Gauge,
    /// Session lengths, from CONNECT to DISCONNECT.
    pub session_duration: Histogram,
    /// Programs running now (sessions', shared and resumable ones, CGI scripts).
    pub programs_running: Gauge,
    /// Programs started.
    pub spawns: Counter,
    /// Programs that could not be started.
    pub spawn_failures: Counter,
    /// Programs ended, by how.
    pub exits: Family<ExitClass, Counter>,
    /// Upgrade requests, by outcome: `accepted`, or the status of the refusal.
    pub upgrades: Family<Outcome, Counter>,
    /// Plain HTTP requests, by kind and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Resumable sessions' connections that dropped and left the session waiting.
    pub detached: Counter,
    /// Resumable sessions taken back by a returning connection.
    pub resumed: Counter,
    /// Resumable sessions whose client did not come back in time.
    pub expired: Counter,
    /// Shared programs running now (`--broadcast`).
    pub shared_programs: Gauge,
    /// Clients of shared programs connected now.
    pub shared_clients: Gauge,
    /// Shared programs' clients too slow to keep up, by what happened: `closed` (1013) or
    /// `skipped` (an episode of missed messages).
    pub slow_clients: Family<Outcome, Counter>,
    /// Clients dropped for not answering pings.
    pub ping_timeouts: Counter,
    /// TLS handshakes that failed (or timed out).
    pub tls_failures: Counter,
    /// Close frames sent to clients, by code.
    pub close_codes: Family<CloseLabel, Counter>,
    /// Access control decisions, by method and outcome.
    pub access: Family<AccessLabels, Counter>,
    /// Messages and bytes from clients to programs, and from programs to clients.
    flow: [(Counter, Counter); 2],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(env!("CARGO_PKG_VERSION"), "unknown")
    }
}

impl Metrics {
    /// Every series at zero, registered under the prefix `websocketd`, for the build of
    /// `version` from `commit`.
    pub fn new(version: &str, commit: &str) -> Metrics {
        let mut root = Registry::with_prefix("websocketd");
        // A gauge at 1 rather than OpenMetrics' info type, which Prometheus text parsers
        // (promtool among them) do not know.
        let build = Family::<Vec<(&'static str, String)>, Gauge>::default();
        build
            .get_or_create(&vec![("version", version.to_owned()), ("commit", commit.to_owned())])
            .set(1);
        root.register("build_info", "The build: its version and commit", build);
        let m = Metrics {
            registry: Registry::default(),
            sessions_active: Gauge::default(),
            // 10 ms to about 3 days, each bucket 4 times the last.
            session_duration: Histogram::new(exponential_buckets(0.01, 4.0, 13)),
            programs_running: Gauge::default(),
            spawns: Counter::default(),
            spawn_failures: Counter::default(),
            exits: Family::default(),
            upgrades: Family::default(),
            http_requests: Family::default(),
            detached: Counter::default(),
            resumed: Counter::default(),
            expired: Counter::default(),
            shared_programs: Gauge::default(),
            shared_clients: Gauge::default(),
            slow_clients: Family::default(),
            ping_timeouts: Counter::default(),
            tls_failures: Counter::default(),
            close_codes: Family::default(),
            access: Family::default(),
            flow: Default::default(),
        };
        let messages = Family::<Direction, Counter>::default();
        let bytes = Family::<Direction, Counter>::default();
        // The two series of each family made now, and held: a batch adds to them without a
        // lookup.
        let flow = ["in", "out"].map(|direction| {
            let label = Direction { direction };
            (messages.get_or_create(&label).clone(), bytes.get_or_create(&label).clone())
        });
        let r = &mut root;
        r.register(
            "sessions_active",
            "WebSocket sessions connected now",
            m.sessions_active.clone(),
        );
        r.register_with_unit(
            "session_duration",
            "How long sessions lasted, CONNECT to DISCONNECT",
            Unit::Seconds,
            m.session_duration.clone(),
        );
        r.register("programs_running", "Programs running now", m.programs_running.clone());
        r.register("program_spawns", "Programs started", m.spawns.clone());
        r.register(
            "program_spawn_failures",
            "Programs that could not be started",
            m.spawn_failures.clone(),
        );
        r.register("program_exits", "Programs ended, by how", m.exits.clone());
        r.register("upgrades", "WebSocket upgrade requests, by outcome", m.upgrades.clone());
        r.register(
            "http_requests",
            "Plain HTTP requests, by kind and status",
            m.http_requests.clone(),
        );
        r.register(
            "resume_detached",
            "Resumable sessions left waiting by a dropped connection",
            m.detached.clone(),
        );
        r.register("resume_resumed", "Resumable sessions taken back", m.resumed.clone());
        r.register(
            "resume_expired",
            "Resumable sessions whose client did not come back in time",
            m.expired.clone(),
        );
        r.register(
            "shared_programs",
            "Shared programs running now (--broadcast)",
            m.shared_programs.clone(),
        );
        r.register(
            "messages",
            "Messages, in (client to program) and out (program to client)",
            messages,
        );
        r.register_with_unit(
            "payload",
            "Message payload, in (client to program) and out (program to client)",
            Unit::Bytes,
            bytes,
        );
        r.register(
            "shared_clients",
            "Clients of shared programs connected now",
            m.shared_clients.clone(),
        );
        r.register(
            "slow_clients",
            "Shared programs' clients too slow to keep up: closed (1013) or skipped",
            m.slow_clients.clone(),
        );
        r.register(
            "ping_timeouts",
            "Clients dropped for not answering pings",
            m.ping_timeouts.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            m.tls_failures.clone(),
        );
        r.register(
            "close_codes_sent",
            "Close frames sent to clients, by code",
            m.close_codes.clone(),
        );
        r.register(
            "access_checks",
            "Access control decisions, by how the client showed who it is and the outcome",
            m.access.clone(),
        );
        Metrics { registry: root, flow, ..m }
    }

    /// Everything, as OpenMetrics text ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Everything, as Prometheus' older text format ([`PROMETHEUS_CONTENT_TYPE`]), for
    /// clients that do not ask for OpenMetrics (`curl`, `promtool check metrics`): a
    /// counter's family is named with its `_total`, and there is no `# UNIT` or `# EOF`.
    pub fn encode_prometheus(&self) -> String {
        let open = self.encode();
        let mut out = String::with_capacity(open.len());
        let mut help: Option<&str> = None;
        for line in open.lines() {
            if line.starts_with("# UNIT ") || line == "# EOF" {
                continue;
            }
            if line.starts_with("# HELP ") {
                help = Some(line);
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let counter = rest.strip_suffix(" counter");
                if let Some(help) = help.take() {
                    match counter {
                        Some(name) => {
                            let text =
                                help.strip_prefix("# HELP ").and_then(|h| h.strip_prefix(name));
                            out.push_str(&format!("# HELP {name}_total{}\n", text.unwrap_or("")));
                        }
                        None => {
                            out.push_str(help);
                            out.push('\n');
                        }
                    }
                }
                match counter {
                    Some(name) => out.push_str(&format!("# TYPE {name}_total counter\n")),
                    None => {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// A program was started: counted, and running until [`Metrics::exited`].
    pub fn spawned(&self) {
        self.spawns.inc();
        self.programs_running.inc();
    }

    /// A program that was running ended (`None`: not even SIGKILL ended it).
    pub fn exited(&self, status: Option<ExitStatus>) {
        use std::os::unix::process::ExitStatusExt;
        self.programs_running.dec();
        let class = match status {
            Some(s) if s.success() => "status0",
            Some(s) if s.code().is_some() => "nonzero",
            Some(s) if s.signal().is_some() => "signal",
            _ => "unknown",
        };
        self.exits.get_or_create(&ExitClass { class }).inc();
    }

    /// A batch of messages went from clients to programs.
    pub fn moved_in(&self, batch: Moved) {
        self.moved(0, batch);
    }

    /// A batch of messages went from programs to clients.
    pub fn moved_out(&self, batch: Moved) {
        self.moved(1, batch);
    }

    fn moved(&self, way: usize, batch: Moved) {
        if batch.messages > 0 {
            self.flow[way].0.inc_by(batch.messages);
            self.flow[way].1.inc_by(batch.bytes);
        }
    }

    /// A Close frame with `code` was sent to a client.
    pub fn close_sent(&self, code: u16) {
        self.close_codes.get_or_create(&CloseLabel { code }).inc();
    }

    /// Access control let a request in (or not) by `method`, as `outcome`.
    pub fn access(&self, method: &'static str, outcome: &'static str) {
        self.access.get_or_create(&AccessLabels { method, outcome }).inc();
    }

    /// An upgrade request ended as `outcome`.
    pub fn upgrade(&self, outcome: &'static str) {
        self.upgrades.get_or_create(&Outcome { outcome }).inc();
    }

    /// A session connected: the guard counts it as active until it is dropped, and then
    /// observes how long it lasted.
    pub fn session(self: &Arc<Self>) -> Connected {
        self.sessions_active.inc();
        Connected { metrics: Arc::clone(self), since: tokio::time::Instant::now() }
    }
}

/// A connected session, as the metrics count it (see [`Metrics::session`]).
#[derive(Debug)]
pub struct Connected {
    metrics: Arc<Metrics>,
    since: tokio::time::Instant,
}

impl Connected {
    /// How long the session has lasted.
    pub fn elapsed(&self) -> Duration {
        self.since.elapsed()
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.metrics.sessions_active.dec();
        self.metrics.session_duration.observe(self.since.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_name_every_series_and_count_what_happened() {
        let m = Arc::new(Metrics::new("1.2.3", "abc"));
        m.spawned();
        m.exited(None);
        m.upgrade("429");
        drop(m.session());
        let open = m.encode();
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE websocketd_program_spawns counter\n"), "{open}");
        assert!(open.contains("websocketd_build_info{version=\"1.2.3\",commit=\"abc\"} 1\n"));
        let text = m.encode_prometheus();
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
        assert!(
            text.contains("# HELP websocketd_program_spawns_total Programs started.\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE websocketd_program_spawns_total counter\n"), "{text}");
        assert!(text.contains("websocketd_program_spawns_total 1\n"), "{text}");
        assert!(text.contains("websocketd_program_exits_total{class=\"unknown\"} 1\n"), "{text}");
        assert!(text.contains("websocketd_upgrades_total{outcome=\"429\"} 1\n"), "{text}");
        assert!(text.contains("websocketd_session_duration_seconds_count 1\n"), "{text}");
        assert!(text.contains("websocketd_programs_running 0\n"), "{text}");
        assert!(text.contains("websocketd_sessions_active 0\n"), "{text}");
    }
}
