//! `websocketd-bench`: runs every scenario against our release binary and, when installed,
//! the reference websocketd and websocat (the baselines), alternating A B C A B C over
//! several rounds; prints medians, the ratio of medians against each baseline with the
//! spread of per-round ratios, and writes everything as JSON. It also measures the load
//! generator's own ceiling against a trivial in-process server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{Value, json};

use websocketd_bench::scenario::{Better, Goal, Metric, Scenario, names};
use websocketd_bench::stats::{self, median};
use websocketd_bench::target::{Flavor, Target};
use websocketd_bench::{bounds, ceiling, load, proxy, tls};

/// Benchmarks websocketd for Rust against the reference websocketd.
#[derive(Debug, Parser)]
#[command(name = "websocketd-bench")]
struct Args {
    /// Short run: 2 rounds of 0.6 s per figure (under 2 minutes).
    #[arg(long)]
    quick: bool,
    /// Rounds per scenario (default 3, or 2 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds each figure is measured for (default 2.5, or 0.6 with --quick).
    #[arg(long)]
    time: Option<f64>,
    /// Only scenarios whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Our binary (default: websocketd next to this executable).
    #[arg(long)]
    ours: Option<PathBuf>,
    /// The reference websocketd (default: /usr/bin/websocketd when present).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// websocat 1.x, the second baseline (default: websocat on PATH, or in ~/.cargo/bin).
    #[arg(long)]
    websocat: Option<PathBuf>,
    /// Leave websocat out.
    #[arg(long)]
    no_websocat: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench-results.json")]
    json: PathBuf,
    /// Skip the load generator's ceiling.
    #[arg(long)]
    no_ceiling: bool,
}

/// The baselines ours is compared with, in the report's order.
const BASELINES: [&str; 2] = ["websocketd", "websocat"];

/// What ours must be against websocat on every headline figure (issue: "≥ 1.3× on every
/// figure").
const WEBSOCAT_RATIO: f64 = 1.3;

/// One figure across rounds, per server.
#[derive(Debug, Default)]
struct Series {
    unit: &'static str,
    better: Option<Better>,
    /// The target against websocketd.
    goal: Option<Goal>,
    /// The target against websocat, when not the usual one.
    websocat: Option<Goal>,
    /// Whether it is a scenario's main figure (its first, or one with a target), which the
    /// websocat target applies to.
    headline: bool,
    values: BTreeMap<&'static str, Vec<f64>>,
    errors: Vec<String>,
}

impl Series {
    /// The target against `baseline`.
    fn goal_against(&self, baseline: &str) -> Option<Goal> {
        match baseline {
            "websocketd" => self.goal,
            "websocat" if self.websocat.is_some() => self.websocat,
            "websocat" if self.headline => Some(match self.better? {
                Better::Higher => Goal::AtLeast(WEBSOCAT_RATIO),
                Better::Lower => Goal::AtMost((1.0 / WEBSOCAT_RATIO * 100.0).round() / 100.0),
            }),
            _ => None,
        }
    }
}

fn main() -> Result<()> {
    // Started by a shared-session scenario as its program.
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some(websocketd_bench::fanout::STAMP_FLAG) {
        // COUNT [BURST [EVERY_MS]]
        let mut number = || argv.next().and_then(|n| n.parse::<u64>().ok());
        let count = number().context("--stamp-lines COUNT [BURST [EVERY_MS]]")?;
        let burst = number().unwrap_or(64);
        let every = number().map(Duration::from_millis);
        return Ok(websocketd_bench::fanout::stamp_lines(count, burst, every)?);
    }
    let args = Args::parse();
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let rounds = args.rounds.unwrap_or(if args.quick { 2 } else { 3 });
    let time = Duration::from_secs_f64(args.time.unwrap_or(if args.quick { 0.6 } else { 2.5 }));
    let ours = match args.ours {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("websocketd"),
    };
    anyhow::ensure!(
        ours.exists(),
        "{} not found: run `cargo build --release` first",
        ours.display()
    );
    let mut targets =
        vec![Target { name: "ours", binary: ours, flavor: Flavor::Websocketd, unix_socket: true }];
    let reference = args.reference.or_else(|| {
        let default = PathBuf::from("/usr/bin/websocketd");
        default.exists().then_some(default)
    });
    match reference {
        Some(binary) => {
            targets.push(Target {
                name: "websocketd",
                binary,
                flavor: Flavor::Websocketd,
                unix_socket: false,
            });
        }
        None => eprintln!("note: no reference websocketd (apt-get install websocketd)"),
    }
    let websocat = if args.no_websocat { None } else { args.websocat.or_else(find_websocat) };
    match websocat {
        Some(binary) => targets.push(Target {
            name: "websocat",
            binary,
            flavor: Flavor::Websocat,
            unix_socket: false,
        }),
        None if args.no_websocat => {}
        None => eprintln!(
            "note: no websocat (cargo install websocat --version 1.14.1 --locked): left out"
        ),
    }
    let machine = machine(&targets);
    println!("{}", machine_line(&machine));
    println!("rounds: {rounds}, {:.1} s per figure\n", time.as_secs_f64());

    let scenarios: Vec<Scenario> = Scenario::all()
        .into_iter()
        .filter(|s| args.only.as_ref().is_none_or(|o| s.name.contains(o.as_str())))
        .collect();
    // (scenario, server) → what its TLS handshakes negotiated.
    let mut negotiated: BTreeMap<(String, &'static str), std::collections::BTreeSet<String>> =
        BTreeMap::new();
    // (scenario, metric) → series, in report order.
    let mut results: Vec<((String, &'static str, &'static str), Series)> = Vec::new();
    for scenario in &scenarios {
        for round in 0..rounds {
            for target in &targets {
                if scenario.skips(target.name) {
                    continue;
                }
                let outcome = run_once(scenario, target, time).await;
                eprintln!(
                    "  {} / round {} / {}: {}",
                    scenario.name,
                    round + 1,
                    target.name,
                    summary(&outcome)
                );
                for line in tls::take_seen() {
                    eprintln!("    TLS: {line}");
                    negotiated
                        .entry((scenario.name.clone(), target.name))
                        .or_default()
                        .insert(line);
                }
                record(&mut results, scenario, target.name, outcome);
            }
        }
    }

    let ceiling = if args.no_ceiling { Vec::new() } else { measure_ceiling(time).await? };
    print_report(&results, &targets);
    if !negotiated.is_empty() {
        println!("\nTLS negotiated (version, cipher suite, key exchange, handshake x count):");
        for ((scenario, target), lines) in &negotiated {
            // The counts differ by round; the outcomes are what must match.
            let outcomes: std::collections::BTreeSet<&str> =
                lines.iter().map(|l| l.rsplit_once(" x").map_or(l.as_str(), |(o, _)| o)).collect();
            let outcomes: Vec<&str> = outcomes.into_iter().collect();
            println!("  {scenario:<40} {target:<11} {}", outcomes.join("; "));
        }
    }
    print_ceiling(&ceiling, &results);
    print_bounds(&ceiling, &results);
    let elapsed = started.elapsed().as_secs_f64();
    println!("\ntotal time: {elapsed:.0} s");

    let doc = json!({
        "machine": machine,
        "rounds": rounds,
        "seconds_per_figure": time.as_secs_f64(),
        "results": results.iter().map(|((scenario, metric, unit), s)| series_json(scenario, metric, unit, s)).collect::<Vec<_>>(),
        "ceiling": ceiling.iter().map(|(name, unit, v)| json!({"figure": name, "unit": unit, "value": v})).collect::<Vec<_>>(),
        "total_seconds": elapsed,
    });
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("write {}", args.json.display()))?;
    println!("results: {}", args.json.display());
    Ok(())
}

async fn run_once(scenario: &Scenario, target: &Target, time: Duration) -> Result<Vec<Metric>> {
    let args = scenario.server_args()?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = target.start_on(&args, &scenario.listen()?).await?;
    let front = match scenario.upstream(&server) {
        None => None,
        Some(upstream) => match proxy::Nginx::start(&upstream).await {
            Ok(Some(nginx)) => Some(nginx),
            Ok(None) => {
                server.stop().await;
                anyhow::bail!("nginx is not installed (apt-get install nginx-light)");
            }
            Err(e) => {
                server.stop().await;
                return Err(e);
            }
        },
    };
    let addr = front.as_ref().map_or(server.addr, |n| n.addr);
    let outcome =
        tokio::time::timeout(time * 4 + scenario.margin(), scenario.run(&server, addr, time)).await;
    if let Some(front) = front {
        front.stop().await;
    }
    let survivors = server.stop().await;
    if survivors > 0 {
        eprintln!("  warning: {survivors} children of {} outlived it", target.name);
    }
    outcome.unwrap_or_else(|_| {
        anyhow::bail!("scenario timed out ({:.0} s)", (time * 4 + scenario.margin()).as_secs_f64())
    })
}

fn summary(outcome: &Result<Vec<Metric>>) -> String {
    match outcome {
        Ok(metrics) => metrics
            .iter()
            .map(|m| format!("{} {:.1} {}", m.name, m.value, m.unit))
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("error: {e:#}"),
    }
}

fn record(
    results: &mut Vec<((String, &'static str, &'static str), Series)>,
    scenario: &Scenario,
    target: &'static str,
    outcome: Result<Vec<Metric>>,
) {
    match outcome {
        Ok(metrics) => {
            for (i, m) in metrics.into_iter().enumerate() {
                let key = (scenario.name.clone(), m.name, m.unit);
                let series = match results.iter().position(|(k, _)| *k == key) {
                    Some(i) => &mut results[i].1,
                    None => {
                        results.push((key, Series::default()));
                        &mut results.last_mut().expect("just pushed").1
                    }
                };
                series.unit = m.unit;
                series.better = Some(m.better);
                series.goal = m.goal;
                series.websocat = m.websocat;
                series.headline = i == 0 || m.goal.is_some();
                series.values.entry(target).or_default().push(m.value);
            }
        }
        Err(e) => {
            // Keep the failure on every figure of the scenario (or on a placeholder row).
            let msg = format!("{target}: {e:#}");
            let mut any = false;
            for ((name, _, _), series) in results.iter_mut() {
                if *name == scenario.name {
                    series.errors.push(msg.clone());
                    any = true;
                }
            }
            if !any {
                let mut series = Series { unit: "", ..Series::default() };
                series.errors.push(msg);
                results.push(((scenario.name.clone(), "(failed)", ""), series));
            }
        }
    }
}

/// Ratio of medians against `baseline`, and the smallest and largest per-round ratio.
fn ratios(s: &Series, baseline: &str) -> Option<(f64, f64, f64)> {
    let ours = s.values.get("ours")?;
    let theirs = s.values.get(baseline)?;
    let per_round: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
    let min = per_round.iter().copied().fold(f64::INFINITY, f64::min);
    let max = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((median(ours) / median(theirs), min, max))
}

fn print_report(results: &[((String, &'static str, &'static str), Series)], targets: &[Target]) {
    let mut printed_errors = std::collections::HashSet::new();
    let present = |name: &str| targets.iter().any(|t| t.name == name);
    let mut head = format!("{:<30} {:<28} {:>12}", "scenario", "figure", "ours");
    for b in BASELINES {
        head.push_str(&format!(" {b:>12}"));
    }
    for b in BASELINES {
        head.push_str(&format!(
            " {:>8} {:>13} {:>10}",
            format!("vs {}", &b[..6]),
            "per-round",
            "target"
        ));
    }
    println!("{head}");
    for ((scenario, metric, unit), s) in results {
        let med = |name: &str| s.values.get(name).map(|v| median(v));
        let fmt = |v: Option<f64>| {
            v.map_or("-".to_owned(), |v| {
                if v.abs() < 10.0 { format!("{v:.2}") } else { format!("{v:.1}") }
            })
        };
        let figure = format!("{metric} ({unit})");
        let mut line = format!("{:<30} {:<28} {:>12}", scenario, figure, fmt(med("ours")));
        for b in BASELINES {
            line.push_str(&format!(" {:>12}", if present(b) { fmt(med(b)) } else { "-".into() }));
        }
        for b in BASELINES {
            let (ratio, spread) = match ratios(s, b) {
                Some((r, lo, hi)) => (format!("{r:.2}x"), format!("[{lo:.2}-{hi:.2}]")),
                None => ("-".to_owned(), String::new()),
            };
            let goal = match (s.goal_against(b), ratios(s, b)) {
                (Some(g), Some((r, _, _))) => {
                    format!("{} {}", g.label(), if g.met(r) { "ok" } else { "MISS" })
                }
                (Some(g), None) if present(b) => g.label(),
                _ => String::new(),
            };
            line.push_str(&format!(" {ratio:>8} {spread:>13} {goal:>10}"));
        }
        println!("{}", line.trim_end());
        if printed_errors.insert(scenario.clone()) {
            for e in &s.errors {
                println!("    ! {e}");
            }
        }
    }
}

/// websocat on PATH, or where `cargo install` puts it.
fn find_websocat() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::split_paths(&path).chain(home).map(|dir| dir.join("websocat")).find(|p| p.is_file())
}

/// The ceiling's figure for connecting and the handshake, with no child process.
const NETWORK_FLOOR: &str = "connect and handshake, p50, 1 at a time";
/// The ceiling's figure for starting children one after another, with no network.
const SPAWN_CHURN: &str = "no network: spawn cat, echo, wait; 32 at once";
/// The ceiling's figure for starting a child and echoing through it, with no network.
const SPAWN_FLOOR: &str = "no network: spawn cat to its echo, p50, 1 at a time";

/// The ceiling's figures for the two plain downloads through a bare relay (`dd`'s pipe to
/// the socket, a message per read, nothing else), in the order of `names::DOWNLOADS`.
const BARE_RELAY: [&str; 2] = [
    "bare relay (no server): binary download 4 KiB",
    "bare relay (no server): binary download 64 KiB",
];

/// The load generator against the trivial in-process server.
async fn measure_ceiling(time: Duration) -> Result<Vec<(&'static str, &'static str, f64)>> {
    use load::Unit::{Bytes, Messages};
    let addr = ceiling::start().await?;
    let to = load::Dial::plain(addr);
    let mut out = Vec::new();
    let (rate, _) = load::connection_rate(&to, 32, time).await?;
    out.push((names::CLIENTS_32, "conn/s", rate));
    let handshakes = load::handshakes(addr, time).await?;
    out.push((NETWORK_FLOOR, "ms", stats::percentile(&stats::millis(&handshakes), 50.0)));
    let echo =
        load::echo(load::connect(&to, "/").await?, load::line64(), Messages, 1000, time).await?;
    out.push(("echo 64 B lines, pipelined", "msg/s", echo));
    let (push, _) = load::download(load::connect(&to, "/push").await?, time).await?;
    out.push(("server push 64 B lines", "msg/s", push));
    let ws = load::connect(&to, "/").await?;
    let bin = load::echo(ws, load::binary(65536), Bytes, 128 << 10, time).await?;
    out.push(("binary echo 64 KiB", "MB/s", bin / 1e6));
    let (_, down) = load::download(load::connect(&to, "/download64k").await?, time).await?;
    out.push(("binary download 64 KiB", "MB/s", down / 1e6));
    let up = load::upload(load::connect(&to, "/sink").await?, 65536, time).await?;
    out.push(("binary upload 64 KiB", "MB/s", up / 1e6));
    if let Some(nginx) = proxy::Nginx::start(&proxy::Upstream::Tcp(addr)).await? {
        let front = load::Dial::plain(nginx.addr);
        let (rate, _) = load::connection_rate(&front, 32, time).await?;
        out.push((names::NGINX_TCP_RATE, "conn/s", rate));
        let echo =
            load::echo(load::connect(&front, "/").await?, load::line64(), Messages, 1000, time)
                .await?;
        out.push((names::NGINX_TCP_ECHO, "msg/s", echo));
        let (_, down) = load::download(load::connect(&front, "/download64k").await?, time).await?;
        out.push((names::NGINX_TCP_DOWNLOAD, "MB/s", down / 1e6));
        nginx.stop().await;
    }
    for (chunk, name) in [(4096, BARE_RELAY[0]), (65536, BARE_RELAY[1])] {
        let bare = load::Dial::plain(ceiling::bare_relay(chunk)?);
        let (_, down) = load::download(load::connect(&bare, "/").await?, time).await?;
        out.push((name, "MB/s", down / 1e6));
    }
    let (spawns, _) = load::process_churn(32, time).await?;
    out.push((SPAWN_CHURN, "proc/s", spawns));
    let (_, firsts) = load::process_churn(1, time).await?;
    let floor = stats::percentile(&stats::millis(&firsts), 50.0);
    out.push((SPAWN_FLOOR, "ms", floor));
    Ok(out)
}

fn print_ceiling(
    ceiling: &[(&'static str, &'static str, f64)],
    results: &[((String, &'static str, &'static str), Series)],
) {
    if ceiling.is_empty() {
        return;
    }
    println!("\nload generator ceiling (trivial in-process server, no child processes):");
    for (name, unit, value) in ceiling {
        let theirs = results
            .iter()
            .find(|((s, _, u), _)| s == name && u == unit)
            .and_then(|(_, s)| s.values.get("websocketd"))
            .map(|v| median(v));
        let times = theirs.map_or(String::new(), |t| format!("  = {:.1}x websocketd", value / t));
        let times = if *name == SPAWN_FLOOR {
            let first = |who: &str| {
                median_of(results, names::ONE_CLIENT, names::FIRST_P50, who)
                    .map(|m| format!("{who} +{:.2} ms", m - value))
            };
            let over: Vec<String> =
                ["ours", "websocketd"].iter().filter_map(|w| first(w)).collect();
            if over.is_empty() {
                times
            } else {
                format!("  (1-client time to first message above it: {})", over.join(", "))
            }
        } else if name.starts_with("nginx -> TCP") {
            let unix = name.replace("nginx -> TCP", "nginx -> unix socket");
            let figure = results
                .iter()
                .find(|((s, _, u), _)| s == name && u == unit)
                .map(|((_, f, _), _)| *f);
            let share = |scenario: &str, who: &str| {
                figure
                    .and_then(|f| median_of(results, scenario, f, who))
                    .map(|m| format!("{:.0}%", 100.0 * m / value))
            };
            let parts: Vec<String> = [
                share(name, "ours").map(|s| format!("ours over TCP {s}")),
                share(&unix, "ours").map(|s| format!("ours over the unix socket {s}")),
                share(name, "websocketd").map(|s| format!("websocketd {s}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if parts.is_empty() { times } else { format!("  (share of it: {})", parts.join(", ")) }
        } else if *unit == "proc/s" {
            let conn = |who: &str| {
                median_of(results, names::CLIENTS_32, names::RATE, who)
                    .map(|m| format!("{who} {:.0}%", 100.0 * m / value))
            };
            let shares: Vec<String> =
                ["ours", "websocketd"].iter().filter_map(|w| conn(w)).collect();
            if shares.is_empty() {
                times
            } else {
                format!("  (32-client connection rate as a share of it: {})", shares.join(", "))
            }
        } else {
            times
        };
        println!("  {name:<52} {value:>12.2} {unit}{times}");
    }
}

/// The series of one figure of one scenario.
fn series<'a>(
    results: &'a [((String, &'static str, &'static str), Series)],
    scenario: &str,
    figure: &str,
) -> Option<&'a Series> {
    results.iter().find(|((s, f, _), _)| s == scenario && *f == figure).map(|(_, s)| s)
}

/// The median of one figure of one scenario for one server.
fn median_of(
    results: &[((String, &'static str, &'static str), Series)],
    scenario: &str,
    figure: &str,
    who: &str,
) -> Option<f64> {
    series(results, scenario, figure).and_then(|s| s.values.get(who)).map(|v| median(v))
}

/// What bounds the connection targets, when both servers ran the connection scenarios.
fn print_bounds(
    ceiling: &[(&'static str, &'static str, f64)],
    results: &[((String, &'static str, &'static str), Series)],
) {
    let lookup =
        |scenario: &str, figure: &str, who: &str| median_of(results, scenario, figure, who);
    let goal = |scenario: &str, figure: &str| match series(results, scenario, figure)?.goal? {
        Goal::AtLeast(g) | Goal::AtMost(g) => Some(g),
    };
    let rate_goal = goal(names::CLIENTS_32, names::RATE);
    let first_goal = goal(names::ONE_CLIENT, names::FIRST_P50);
    let figure = |name: &str| ceiling.iter().find(|(n, _, _)| *n == name).map(|&(_, _, v)| v);
    let floors = figure(SPAWN_FLOOR).zip(figure(NETWORK_FLOOR));
    let mut lines = bounds::explain(&lookup, rate_goal, first_goal, floors);
    let churn = figure(SPAWN_CHURN);
    lines.extend(bounds::broadcast(&lookup));
    lines.extend(bounds::rate_budgets(&lookup));
    if let (Some(churn), Some((spawn_first, _))) = (churn, floors) {
        let floors = bounds::Floors { churn, spawn_first };
        lines.extend(bounds::targets(&lookup, floors, WEBSOCAT_RATIO));
    }
    let bare: Vec<(&str, f64)> = names::DOWNLOADS
        .iter()
        .zip(BARE_RELAY)
        .filter_map(|(&scenario, name)| figure(name).map(|v| (scenario, v)))
        .collect();
    lines.extend(bounds::downloads(&lookup, &bare, WEBSOCAT_RATIO));
    if !lines.is_empty() {
        println!("\nwhat bounds the targets:");
        for line in lines {
            println!("  {line}");
        }
    }
}

fn series_json(scenario: &str, metric: &str, unit: &str, s: &Series) -> Value {
    let ratio = ratios(s, "websocketd");
    let baselines: serde_json::Map<String, Value> = BASELINES
        .iter()
        .map(|&b| {
            let r = ratios(s, b);
            let goal = s.goal_against(b);
            let v = json!({
                "values": s.values.get(b),
                "median": s.values.get(b).map(|v| median(v)),
                "ratio": r.map(|r| r.0),
                "ratio_min": r.map(|r| r.1),
                "ratio_max": r.map(|r| r.2),
                "target": goal.map(Goal::label),
                "target_met": goal.zip(r).map(|(g, r)| g.met(r.0)),
            });
            (b.to_owned(), v)
        })
        .collect();
    json!({
        "baselines": baselines,
        "scenario": scenario,
        "figure": metric,
        "unit": unit,
        "higher_is_better": s.better.map(|b| b == Better::Higher),
        "ours": s.values.get("ours"),
        "websocketd": s.values.get("websocketd"),
        "ours_median": s.values.get("ours").map(|v| median(v)),
        "websocketd_median": s.values.get("websocketd").map(|v| median(v)),
        "ratio": ratio.map(|r| r.0),
        "ratio_min": ratio.map(|r| r.1),
        "ratio_max": ratio.map(|r| r.2),
        "target": s.goal.map(Goal::label),
        "target_met": s.goal.zip(ratio).map(|(g, r)| g.met(r.0)),
        "errors": s.errors,
    })
}

fn machine(targets: &[Target]) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let kernel =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    let versions: Vec<Value> = targets
        .iter()
        .map(|t| {
            let out = std::process::Command::new(&t.binary).arg("--version").output();
            let version = out
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            json!({"name": t.name, "binary": t.binary, "version": version})
        })
        .collect();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": kernel,
        "servers": versions,
    })
}

fn machine_line(m: &Value) -> String {
    format!(
        "machine: {} cpus, {}, linux {}",
        m["cpus"],
        m["cpu"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?")
    )
}

/// Thousands of connections need thousands of descriptors, here and in the servers.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
