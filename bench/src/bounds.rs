//! What bounds the two connection targets, worked out from figures the run measured: where
//! each connection's CPU time goes, how much of it a target leaves to our server, and how
//! much of the first message's wait is spent starting the child alone.

use crate::scenario::names::{self, CLIENTS_32 as RATE_SCENARIO, ONE_CLIENT as FIRST_SCENARIO};

/// The median of one figure for one server: `(scenario, figure, server)`.
pub type Lookup<'a> = dyn Fn(&str, &str, &str) -> Option<f64> + 'a;

/// Where one connection's CPU time went, in milliseconds.
struct Budget {
    /// The machine's busy time (every process and the kernel).
    busy: f64,
    /// Idle, or taken by the hypervisor.
    idle: f64,
    server: f64,
    server_kernel: f64,
    children: f64,
    client: f64,
}

impl Budget {
    fn of(median: &Lookup<'_>, who: &str) -> Option<Budget> {
        Budget::of_scenario(median, RATE_SCENARIO, who)
    }

    fn of_scenario(median: &Lookup<'_>, scenario: &str, who: &str) -> Option<Budget> {
        let figure = |name: &str| median(scenario, name, who);
        Some(Budget {
            busy: figure(names::BUSY)?,
            idle: figure(names::IDLE)?,
            server: figure(names::SERVER)?,
            server_kernel: figure(names::SERVER_KERNEL)?,
            children: figure(names::CHILDREN)?,
            client: figure(names::CLIENT)?,
        })
    }

    /// What is neither the server, its children nor the load generator: mostly the kernel's
    /// network work done outside their own time (softirqs).
    fn other(&self) -> f64 {
        self.busy - self.server - self.children - self.client
    }
}

/// Lines explaining the bounds, empty when the figures they need are missing.
///
/// A connection rate is at most the machine's CPU divided by what one connection costs. Per
/// websocketd connection the machine spent its busy time plus what it left idle, so a rate
/// `rate_goal` times websocketd's needs one of ours to cost at most that sum divided by
/// `rate_goal`, even if we used every idle moment. Taking away what our children, the load
/// generator and the rest cost leaves what our server may use; its kernel time (system calls
/// on sockets and pipes, spawning) is a floor no change in user space lowers.
///
/// `floors` are two times that have nothing to do with the server: starting `cat` and
/// echoing one line through it with no network, and connecting and the handshake with a
/// trivial in-process server. The first message needs both nearly one after the other: the
/// child is started once the server has answered the handshake (the client's message then
/// waits in its pipe), so only the client's reading of that answer overlaps the start.
pub fn explain(
    median: &Lookup<'_>,
    rate_goal: Option<f64>,
    first_goal: Option<f64>,
    floors: Option<(f64, f64)>,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let (Some(rate_goal), Some(ours), Some(theirs)) =
        (rate_goal, Budget::of(median, "ours"), Budget::of(median, "websocketd"))
    {
        lines.push(format!(
            "CPU per connection, {RATE_SCENARIO} (ms; other = the rest of the busy time, mostly \
             the kernel's network work):"
        ));
        for (who, b) in [("ours", &ours), ("websocketd", &theirs)] {
            lines.push(format!(
                "  {who:<10} {:.2} = server {:.2} ({:.2} in the kernel) + children {:.2} + load \
                 generator {:.2} + other {:.2}; idle or stolen besides: {:.2}",
                b.busy,
                b.server,
                b.server_kernel,
                b.children,
                b.client,
                b.other(),
                b.idle
            ));
        }
        let allowed = (theirs.busy + theirs.idle) / rate_goal;
        let for_server = allowed - (ours.busy - ours.server);
        lines.push(format!(
            "  {rate_goal}x websocketd's rate allows {allowed:.2} ms per connection, which leaves \
             our server {for_server:.2} ms; it uses {:.2}, {:.2} of it in the kernel",
            ours.server, ours.server_kernel
        ));
    }
    let first = |who: &str| median(FIRST_SCENARIO, names::FIRST_P50, who);
    if let (Some(first_goal), Some(ours), Some(theirs), Some((spawn, network))) =
        (first_goal, first("ours"), first("websocketd"), floors)
    {
        let allowed = theirs * first_goal;
        lines.push(format!(
            "first message p50, {FIRST_SCENARIO}: {first_goal}x websocketd's {theirs:.2} ms is \
             {allowed:.2} ms. Starting cat and echoing through it takes {spawn:.2} ms with no \
             network, {:.0}% of that budget; connecting and the handshake take \
             {network:.2} ms with no child (they overlap the start only by the client's reading \
             of the 101). Ours takes {ours:.2} ms",
            spawn / allowed * 100.0
        ));
    }
    lines
}

/// What the machine allows any server, measured in the same run with no server in the way.
#[derive(Debug, Clone, Copy)]
pub struct Floors {
    /// Starting `cat`, echoing one line and waiting for it, 32 at once (processes/s).
    pub churn: f64,
    /// Starting `cat` to its echo, one at a time, p50 (ms).
    pub spawn_first: f64,
}

/// The targets that a floor decides, each with the bound used and the verdict.
///
/// - Connections/s with 32 clients: at least 1.3x websocketd's, or 95% of the spawn churn,
///   whichever asks less.
/// - First message p50 with one client: at most 0.8x websocketd's, or the spawn floor over
///   0.95 (the same rule), whichever allows more.
/// - Against websocat (1.3x): whether 1.3x websocat's figure is beyond what the floor allows
///   any server.
pub fn targets(median: &Lookup<'_>, floors: Floors, websocat_goal: f64) -> Vec<String> {
    let mut lines = Vec::new();
    let fig = |scenario: &str, figure: &str, who: &str| median(scenario, figure, who);
    let verdict = |ok: bool| if ok { "ok" } else { "MISS" };
    if let (Some(ours), Some(theirs)) =
        (fig(RATE_SCENARIO, names::RATE, "ours"), fig(RATE_SCENARIO, names::RATE, "websocketd"))
    {
        let (by_ratio, by_floor) = (1.3 * theirs, 0.95 * floors.churn);
        let need = by_ratio.min(by_floor);
        lines.push(format!(
            "{RATE_SCENARIO}: target min(1.3x websocketd = {by_ratio:.0}, 95% of the spawn churn \
             = {by_floor:.0}) = {need:.0} conn/s; ours {ours:.0} ({:.0}% of the churn): {}",
            ours / floors.churn * 100.0,
            verdict(ours >= need)
        ));
        if let Some(wc) = fig(RATE_SCENARIO, names::RATE, "websocat") {
            lines.push(beyond(
                "  vs websocat",
                websocat_goal * wc,
                floors.churn,
                "conn/s",
                "the spawn churn",
                true,
            ));
        }
    }
    let first = |who: &str| fig(FIRST_SCENARIO, names::FIRST_P50, who);
    if let (Some(ours), Some(theirs)) = (first("ours"), first("websocketd")) {
        let (by_ratio, by_floor) = (0.8 * theirs, floors.spawn_first / 0.95);
        let allowed = by_ratio.max(by_floor);
        lines.push(format!(
            "{FIRST_SCENARIO}, first message p50: target max(0.8x websocketd = {by_ratio:.2}, \
             the spawn floor / 0.95 = {by_floor:.2}) = {allowed:.2} ms; ours {ours:.2}: {}",
            verdict(ours <= allowed)
        ));
        if let Some(wc) = first("websocat") {
            lines.push(beyond(
                "  vs websocat",
                wc / websocat_goal,
                floors.spawn_first,
                "ms",
                "the spawn floor",
                false,
            ));
        }
    }
    lines
}

/// Whether a goal lies beyond what a floor allows any server (`higher`: a rate that must
/// reach `goal`; otherwise a time that must come down to `goal`).
fn beyond(label: &str, goal: f64, floor: f64, unit: &str, what: &str, higher: bool) -> String {
    let unreachable = if higher { goal > floor } else { goal < floor };
    let digits = if unit == "ms" { 2 } else { 0 };
    if unreachable {
        format!(
            "{label}: 1.3x would be {goal:.digits$} {unit}, beyond {what} ({floor:.digits$} \
             {unit}): no server can reach it on this machine"
        )
    } else {
        format!(
            "{label}: 1.3x would be {goal:.digits$} {unit}; {what} ({floor:.digits$} {unit}) \
             allows it"
        )
    }
}

/// What bounds the plain downloads: the bare relay's figure for the same program and
/// client (`bare`: scenario and MB/s), each server's share of it, and whether 1.3x
/// websocat's figure is beyond it.
pub fn downloads(median: &Lookup<'_>, bare: &[(&str, f64)], websocat_goal: f64) -> Vec<String> {
    let mut lines = Vec::new();
    for &(scenario, ceiling) in bare {
        let fig = |who: &str| median(scenario, names::DOWNLOAD, who);
        let Some(ours) = fig("ours") else { continue };
        let share = |v: f64| format!("{:.0}%", 100.0 * v / ceiling);
        let mut parts = vec![format!("ours {:.0} MB/s ({})", ours, share(ours))];
        for who in ["websocketd", "websocat"] {
            if let Some(v) = fig(who) {
                parts.push(format!("{who} {v:.0} ({})", share(v)));
            }
        }
        lines.push(format!(
            "{scenario}: the bare relay moves {ceiling:.0} MB/s; {}",
            parts.join(", ")
        ));
        if let Some(wc) = fig("websocat") {
            lines.push(beyond(
                "  vs websocat",
                websocat_goal * wc,
                ceiling,
                "MB/s",
                "the bare relay",
                true,
            ));
        }
    }
    lines
}

/// The shared-session target (1.5M deliveries/s, none lost), and what bounds the figure:
/// the CPU the server and the load generator spend per delivery on the same two cores.
pub fn broadcast(median: &Lookup<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    let fig = |scenario: &str, figure: &str, who: &str| median(scenario, figure, who);
    let verdict = |ok: bool| if ok { "ok" } else { "MISS" };
    if let Some(ours) = fig(names::BROADCAST, names::DELIVERIES, "ours") {
        let lost = fig(names::BROADCAST, "lost", "ours").unwrap_or(f64::NAN);
        let server = fig(names::BROADCAST, "server CPU per 1M deliveries", "ours");
        let client = fig(names::BROADCAST, "load generator CPU per 1M", "ours");
        lines.push(format!(
            "{}: target 1.5M deliveries/s with none lost; ours {:.2}M/s, {lost:.0} lost: {}",
            names::BROADCAST,
            ours / 1e6,
            verdict(ours >= 1.5e6 && lost == 0.0)
        ));
        if let (Some(server), Some(client)) = (server, client) {
            lines.push(format!(
                "  per million deliveries the server spends {server:.2} CPU s and the load \
                 generator {client:.2} on the same two cores: 2 / {:.2} = {:.1}M/s at most",
                server + client,
                2.0 / (server + client)
            ));
        }
    }
    lines
}

/// For the other connection-rate targets (wss, behind nginx): how much CPU per connection the
/// target leaves our server once the children, the load generator and the rest have had
/// theirs, against what it uses. A target our server cannot reach even at no cost is said so.
pub fn rate_budgets(median: &Lookup<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    for (scenario, goal) in [
        ("wss: connections, 32 clients", 1.4),
        ("wss: connections, 32 clients, resumed", 1.4),
        (names::NGINX_TCP_RATE, 1.3),
    ] {
        let (Some(ours), Some(theirs)) = (
            Budget::of_scenario(median, scenario, "ours"),
            Budget::of_scenario(median, scenario, "websocketd"),
        ) else {
            continue;
        };
        let allowed = (theirs.busy + theirs.idle) / goal;
        let for_server = allowed - (ours.busy - ours.server);
        let verdict = if for_server <= 0.0 {
            "no server could reach it".to_owned()
        } else {
            format!("it uses {:.2} ({:.2} in the kernel)", ours.server, ours.server_kernel)
        };
        lines.push(format!(
            "{scenario}: {goal}x websocketd's rate allows {allowed:.2} ms of CPU per connection; \
             children {:.2}, load generator {:.2} and the rest (a proxy, the kernel's network work) {:.2} leave our server \
             {for_server:.2} ms: {verdict}",
            ours.children,
            ours.client,
            ours.other(),
        ));
    }
    lines
}
