//! `websocketd`: parse, convert, run, and map the outcome to websocketd's exit codes
//! (0 help/version, 1 invalid options, 2 flag syntax, 3 cannot listen, 4 devconsole with staticdir or cgidir).

use std::process::ExitCode;

use clap::Parser;
use websocketd::args::{self, Args};
use websocketd::config::{self, ConfigError, Invocation};
use websocketd::{log, server};

const SHORT_USAGE: &str = concat!(
    "\
Usage:

  Export a single executable program as a WebSocket server:
    websocketd [options] COMMAND [command args]

  Or export every executable in a directory, one per URL:
    websocketd [options] --dir=DIR

  Full documentation at ",
    env!("CARGO_PKG_REPOSITORY"),
    "#readme, or run: websocketd --help"
);

/// How long an idle thread of tokio's blocking pool stays: for good (a century).
const BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().collect();
    // Started by the server as its guardian (see websocketd_core::guardian).
    if argv.first().is_some_and(|a| a == websocketd_core::guardian::ARGV0) {
        return ExitCode::from(websocketd_core::guardian::serve());
    }
    let empty = Args::is_empty_command_line(&argv);
    let args = match Args::try_parse_from(args::normalize(argv)) {
        Ok(args) => args,
        Err(e) => {
            let e = args::one_tip(e);
            // Help too goes to stderr, as websocketd prints it.
            eprint!("{}", e.render());
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if empty {
        println!("Command line arguments are missing.");
        eprintln!("\n{SHORT_USAGE}");
        return ExitCode::from(1);
    }
    let config = match Invocation::try_from(args) {
        Ok(Invocation::Serve(config)) => config,
        Ok(Invocation::Generate(what)) => {
            print!("{}", websocketd::generate::generate(what));
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version { license }) => {
            println!("websocketd {}", config::version());
            if license {
                print!("\n{}", config::LICENSE);
            }
            return ExitCode::SUCCESS;
        }
        Err(e) => return invalid(&e),
    };
    log::init(config.loglevel, config.logformat, config.logsummary);
    // Before any thread starts: taking the sockets removes LISTEN_FDS and LISTEN_PID from
    // the environment.
    let inherited = match websocketd_transport_ws::activation::Inherited::from_env() {
        Ok(inherited) => inherited,
        Err(e) => return cannot_start(&format!("{:#}", anyhow::Error::new(e))),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("websocketd-rt")
        // The blocking pool (static files, reverse lookups) keeps the threads it has made:
        // tokio panics when a task finds none and the system will not give one (a process
        // limit reached), so there must always be one.
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return cannot_start(&e.to_string()),
    };
    let code = runtime.block_on(async {
        // Every thread the server needs later is made now, while it can be.
        let prepared = websocketd_core::child::prepare();
        let blocking = tokio::task::spawn_blocking(|| ()).await;
        if let Err(e) = prepared {
            return cannot_start(&e.to_string());
        }
        if let Err(e) = blocking {
            return cannot_start(&e.to_string());
        }
        if let Err(e) = websocketd_core::guardian::start() {
            tracing::warn!(target: "server", "Cannot start the guardian ({e}): programs may outlive a crash of the server");
        }
        let listeners = match server::bind(&config, inherited).await {
            Ok(listeners) => listeners,
            Err(e) => return cannot_start(&server::explain(e)),
        };
        server::serve(*config, listeners).await;
        ExitCode::SUCCESS
    });
    // Whatever still runs (a process's last log lines, a pipe being drained) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

/// Reports flags that do not make a configuration, as websocketd does each.
fn invalid(e: &ConfigError) -> ExitCode {
    if let Some(level) = e.fatal_line() {
        log::init(level, log::LogFormat::Text, false);
        websocketd_core::fatal!(target: "server", "{e}");
    } else if e.on_stdout() {
        println!("{e}");
    } else {
        eprintln!("{e}");
    }
    if e.wants_usage() {
        eprintln!("\n{SHORT_USAGE}");
    }
    ExitCode::from(e.exit_code())
}

/// The FATAL line of a server that cannot start, and exit code 3.
fn cannot_start(why: &str) -> ExitCode {
    websocketd_core::fatal!(target: "server", "Can't start server: {why}");
    ExitCode::from(3)
}
