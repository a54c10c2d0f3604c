//! What bounds the two connection targets, worked out from figures the run measured: where
//! each connection's CPU time goes, how much of it a target leaves to our server, and how
//! much of the first message's wait is spent starting the child alone.

/// The median of one figure for one server: `(scenario, figure, server)`.
pub type Lookup<'a> = dyn Fn(&str, &str, &str) -> Option<f64> + 'a;

const RATE_SCENARIO: &str = "connections, 32 clients";
const FIRST_SCENARIO: &str = "connections, 1 client";

/// Lines explaining the bounds, empty when the figures they need are missing.
///
/// With every core busy, `cpus / rate` is the CPU time one connection costs in all. Taking
/// away what the children, the load generator and everything else cost leaves what the
/// server may use for a target rate; the server's kernel time (its system calls: sockets,
/// pipes, spawning) is a floor no user-space change lowers. `floor_ms` is the time to start
/// `cat` and echo one line through it with no network at all.
pub fn explain(
    median: &Lookup<'_>,
    cpus: f64,
    rate_goal: f64,
    first_goal: f64,
    floor_ms: Option<f64>,
) -> Vec<String> {
    let mut lines = Vec::new();
    let figure = |who: &str, name: &str| median(RATE_SCENARIO, name, who);
    let budget = |who: &str| -> Option<(f64, [f64; 4])> {
        let rate = figure(who, "connections")?;
        let parts = [
            figure(who, "server CPU per connection")?,
            figure(who, "  of it in the kernel")?,
            figure(who, "children's CPU per connection")?,
            figure(who, "load generator CPU per connection")?,
        ];
        Some((cpus * 1000.0 / rate, parts))
    };
    if let (Some((ours, [server, kernel, children, client])), Some((theirs, t))) =
        (budget("ours"), budget("websocketd"))
    {
        lines.push(format!(
            "CPU per connection, {RATE_SCENARIO}, every core busy (ms; other = the rest, mostly \
             the kernel's network work):"
        ));
        for (who, total, [s, k, c, g]) in
            [("ours", ours, [server, kernel, children, client]), ("websocketd", theirs, t)]
        {
            lines.push(format!(
                "  {who:<10} {total:.2} = server {s:.2} ({k:.2} in the kernel) + children {c:.2} \
                 + load generator {g:.2} + other {:.2}",
                total - s - c - g
            ));
        }
        let allowed = theirs / rate_goal;
        let for_server = allowed - (ours - server);
        lines.push(format!(
            "  {rate_goal}x websocketd's rate allows {allowed:.2} ms per connection, which leaves \
             our server {for_server:.2} ms; it uses {server:.2}, {kernel:.2} of it in the kernel"
        ));
    }
    let first = |who: &str| median(FIRST_SCENARIO, "first message p50", who);
    if let (Some(ours), Some(theirs), Some(floor)) = (first("ours"), first("websocketd"), floor_ms)
    {
        let allowed = theirs * first_goal;
        lines.push(format!(
            "first message p50, {FIRST_SCENARIO}: {first_goal}x websocketd's {theirs:.2} ms is \
             {allowed:.2} ms; starting cat and echoing through it takes {floor:.2} ms with no \
             network, which leaves {:.2} ms for connecting, the handshake and the relay; ours \
             takes {:.2} ms for them",
            allowed - floor,
            ours - floor
        ));
    }
    lines
}
