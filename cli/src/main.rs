//! `websocketd`: parse, convert, run, and map the outcome to websocketd's exit codes
//! (0 help/version, 1 invalid options, 2 flag syntax, 3 cannot listen, 4 devconsole with staticdir or cgidir).

use std::process::ExitCode;

use clap::Parser;
use websocketd::args::{self, Args};
use websocketd::config::{self, Config};
use websocketd::server;

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

fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().collect();
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
    if args.version || args.license {
        if let Err(e) = args.loglevel.parse::<websocketd_core::log::LogLevel>() {
            println!("Incorrect loglevel flag '{}'. Use --help to see allowed values.", e.0);
            eprintln!("\n{SHORT_USAGE}");
            return ExitCode::from(1);
        }
        println!("websocketd {}", config::version());
        if args.license {
            print!("\n{}", config::LICENSE);
        }
        return ExitCode::SUCCESS;
    }
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(e) => {
            if e.on_stdout() {
                println!("{e}");
            } else {
                eprintln!("{e}");
            }
            if e.wants_usage() {
                eprintln!("\n{SHORT_USAGE}");
            }
            return ExitCode::from(1);
        }
    };
    websocketd_core::log::init(config.loglevel);
    if config.http.devconsole {
        let other = if config.http.files.is_some() {
            Some("--staticdir")
        } else if config.http.cgi.is_some() {
            Some("--cgidir")
        } else {
            None
        };
        if let Some(other) = other {
            websocketd_core::fatal!(target: "server", "Invalid parameters: --devconsole cannot be used with {other}. Pick one.");
            return ExitCode::from(4);
        }
    }
    // Before any thread starts: taking the sockets removes LISTEN_FDS and LISTEN_PID from
    // the environment.
    let inherited = match websocketd_transport_ws::activation::Inherited::from_env() {
        Ok(inherited) => inherited,
        Err(e) => {
            websocketd_core::fatal!(target: "server", "Can't start server: {e}");
            return ExitCode::from(3);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("websocketd-rt")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            websocketd_core::fatal!(target: "server", "Can't start server: {e}");
            return ExitCode::from(3);
        }
    };
    let code = runtime.block_on(async {
        let listeners = match server::bind(&config, inherited).await {
            Ok(listeners) => listeners,
            Err(e) => {
                websocketd_core::fatal!(target: "server", "Can't start server: {}", server::explain(&e));
                return ExitCode::from(3);
            }
        };
        server::serve(config, listeners).await;
        ExitCode::SUCCESS
    });
    // Whatever still runs (a process's last log lines, a pipe being drained) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}
