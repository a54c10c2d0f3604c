//! The command line, one field per flag. The doc comments are the `--help` text.

use std::ffi::OsString;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};

/// websocketd turns any program that reads STDIN and writes STDOUT into a WebSocket server.
///
/// Each WebSocket connection starts COMMAND with ARGS; each line it writes to STDOUT becomes a
/// message to the client, and each message from the client becomes a line on its STDIN.
/// Request details (address, headers, path, query) reach it as CGI-style environment variables.
#[derive(Debug, Parser)]
#[command(
    name = "websocketd",
    override_usage = "websocketd [options] COMMAND [command args]\n       websocketd [options] --dir=DIR",
    after_help = concat!("Full documentation: ", env!("CARGO_PKG_REPOSITORY"), "#readme"),
    disable_version_flag = true,
    disable_help_flag = true,
    args_override_self = true,
    max_term_width = 100
)]
pub struct Args {
    /// Port to listen on: 80 by default, 443 with --ssl (0 picks a free one).
    #[arg(long, value_name = "PORT", allow_negative_numbers = true, help_heading = "Network")]
    pub port: Option<i64>,

    /// Serve HTTPS and WSS on every listener (needs --sslcert and --sslkey).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "TLS")]
    pub ssl: bool,

    /// PEM file with the certificate chain for --ssl.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub sslcert: Option<String>,

    /// PEM file with the private key for --ssl (RSA, ECDSA or Ed25519).
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub sslkey: Option<String>,

    /// Require client certificates signed by the CA(s) in this PEM file; the process sees the
    /// certificate's subject as SSL_CLIENT_S_DN and SSL_CLIENT_VERIFY=SUCCESS.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub sslca: Option<String>,

    /// Also listen on this port for plain HTTP and redirect every request (301) to --port,
    /// path and query kept. 0: off.
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 0,
        allow_negative_numbers = true,
        help_heading = "Network"
    )]
    pub redirport: i64,

    /// Interface to bind to (e.g. 127.0.0.1 or [::1]); repeat for several. Default: all.
    #[arg(long, value_name = "ADDRESS", action = ArgAction::Append, help_heading = "Network")]
    pub address: Vec<String>,

    /// Listen on this unix socket too (alone when neither --port nor --address is given), for
    /// a proxy such as nginx. A stale socket file is replaced; the file goes on exit.
    #[arg(long, value_name = "PATH", help_heading = "Network")]
    pub unixsocket: Option<String>,

    /// Permissions of the --unixsocket file, in octal (e.g. 0660). Default: from the umask.
    #[arg(long = "unixsocket-mode", value_name = "MODE", help_heading = "Network")]
    pub unixsocket_mode: Option<String>,

    /// Proxies whose X-Forwarded-For / Forwarded and X-Forwarded-Proto headers are believed:
    /// comma-separated CIDRs or addresses, `unix` for the unix socket; repeat for more.
    #[arg(long, value_name = "LIST", action = ArgAction::Append, help_heading = "Network")]
    pub trustedproxy: Vec<String>,

    /// On SIGTERM or SIGINT, how long clients (sent Close 1001) and processes (sent down the
    /// termination ladder) get before what is left is killed. A second signal kills at once.
    #[arg(long, value_name = "MS", default_value_t = 5000, help_heading = "Process")]
    pub shutdownms: u64,

    /// Serve every executable in DIR instead of one COMMAND: the URL names the script
    /// (/sub/chat.sh runs DIR/sub/chat.sh; what follows it in the URL is PATH_INFO).
    #[arg(long, value_name = "DIR", help_heading = "Process")]
    pub dir: Option<String>,

    /// Allowed origins, comma-separated: `host[:port]` (http or https) or
    /// `scheme://host[:port]`; an entry without a port allows any port. Others get 403.
    #[arg(long, value_name = "LIST", help_heading = "Network")]
    pub origin: Option<String>,

    /// Allow only clients whose Origin has the host and port of the Host header (403 else).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "Network")]
    pub sameorigin: bool,

    /// A response header ("Name: value") for every response; repeat for several.
    #[arg(long, value_name = "HEADER", action = ArgAction::Append, help_heading = "Network")]
    pub header: Vec<String>,

    /// A response header for WebSocket upgrades (101) only; repeat for several.
    #[arg(long = "header-ws", value_name = "HEADER", action = ArgAction::Append, help_heading = "Network")]
    pub header_ws: Vec<String>,

    /// A response header for plain HTTP responses only; repeat for several.
    #[arg(long = "header-http", value_name = "HEADER", action = ArgAction::Append, help_heading = "Network")]
    pub header_http: Vec<String>,

    /// Name clients by reverse DNS in REMOTE_HOST and the logs (falls back to the address).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "Network")]
    pub reverselookup: bool,

    /// Serve the files in DIR for requests that are not WebSocket upgrades (index.html for
    /// directories, a listing where there is none; no dotfiles, nothing outside DIR).
    #[arg(long, value_name = "DIR", help_heading = "HTTP")]
    pub staticdir: Option<String>,

    /// Run the CGI/1.1 scripts in DIR for requests that are not WebSocket upgrades
    /// (/path/to/script.cgi/more runs DIR/path/to/script.cgi with PATH_INFO=/more).
    #[arg(long, value_name = "DIR", help_heading = "HTTP")]
    pub cgidir: Option<String>,

    /// Serve a developer console page for every request that is not a WebSocket upgrade: it
    /// connects to the endpoint at the same URL, sends lines and shows what comes back.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "HTTP")]
    pub devconsole: bool,

    /// Subprotocols the server speaks, most preferred first: it answers with the first that
    /// the client offers, and the process sees it as WEBSOCKET_SUBPROTOCOL.
    #[arg(long, value_name = "NAME[,NAME...]", help_heading = "Network")]
    pub subprotocol: Option<String>,

    /// Binary mode: each read from STDOUT is sent as one binary message (--framing=chunks).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "Process")]
    pub binary: bool,

    /// How the process's stdout and stdin are cut into messages: `lines` (each line a text
    /// message), `chunks` (each read a binary message, as --binary) or `length-prefixed`
    /// (records with a 4-byte big-endian header: top bit set for text, low 31 bits the length).
    #[arg(long, value_name = "FRAMING", value_enum, help_heading = "Process")]
    pub framing: Option<FramingArg>,

    /// Largest message, in bytes, accepted from a client (larger: Close 1009) and sent to it
    /// (longer output is split; a longer length-prefixed record is an error). 0: no limit.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024, help_heading = "Process")]
    pub maxframesize: u64,

    /// Send the process's stderr lines to the client too: every stdout and stderr line becomes
    /// a JSON text message {"stream":"stdout"|"stderr","data":"..."}. Text lines only.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "Process")]
    pub passstderr: bool,

    /// Ping each client every MS milliseconds; one silent for twice that is disconnected and
    /// its process stopped. 0: no pings.
    #[arg(long, value_name = "MS", default_value_t = 0, help_heading = "Network")]
    pub pingms: u64,

    /// Extra milliseconds added to each wait of the termination ladder (stdin close, SIGINT,
    /// SIGTERM, SIGKILL).
    #[arg(long, value_name = "MS", default_value_t = 0, help_heading = "Process")]
    pub closems: u64,

    /// Most processes running at once; further upgrades get 429. 0 means no limit.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1024,
        allow_negative_numbers = true,
        help_heading = "Process"
    )]
    pub maxforks: i64,

    /// Every client of one URL (path and query; with --dir the script and its PATH_INFO)
    /// shares one running program: the first client starts it, the others join it, and each
    /// output message is framed once for all. The program sees only what its clients share:
    /// no REMOTE_*, HTTP_* or TLS client variables.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "Broadcast")]
    pub broadcast: bool,

    /// With --broadcast, what clients' messages do: `all` (each reaches the program's stdin
    /// whole, in arrival order) or `none` (dropped) [default: all].
    #[arg(long, value_name = "WHICH", value_enum, help_heading = "Broadcast")]
    pub broadcastinput: Option<BroadcastInputArg>,

    /// With --broadcast, how many of the last messages a joining client gets before the live
    /// output, at most --clientqueue bytes of them [default: 0].
    #[arg(long, value_name = "N", help_heading = "Broadcast")]
    pub replay: Option<u64>,

    /// With --broadcast, how many bytes a client may fall behind the live output before it is
    /// too slow (the program itself never waits for a client) [default: 1048576].
    #[arg(long, value_name = "BYTES", help_heading = "Broadcast")]
    pub clientqueue: Option<u64>,

    /// With --broadcast, what a client that is too slow gets: `close` (Close 1013 `too
    /// slow`) or `skip` (it misses messages until it keeps up; one WARN line says how many)
    /// [default: close].
    #[arg(long, value_name = "WHAT", value_enum, help_heading = "Broadcast")]
    pub slowclient: Option<SlowClientArg>,

    /// With --broadcast, how long a program whose last client left keeps running for a new
    /// one to join, before the termination ladder [default: 0].
    #[arg(long, value_name = "MS", help_heading = "Broadcast")]
    pub lingerms: Option<u64>,

    /// Resumable sessions: a connection that drops without a Close leaves its program
    /// running this long for the client to come back with its token and count (the
    /// `wsd_session` and `wsd_seen` query parameters), and have every message exactly once.
    /// Sessions without a token are as before. 0: off [default: 0].
    #[arg(long, value_name = "MS", help_heading = "Resume")]
    pub resumems: Option<u64>,

    /// With --resumems, most bytes of output a session keeps: unsent (a program whose client
    /// is away blocks on its stdout once they are this many) and, as room allows, sent
    /// [default: 1048576].
    #[arg(long, value_name = "BYTES", help_heading = "Resume")]
    pub resumebuffer: Option<u64>,

    /// Serve `/metrics` (Prometheus), `/healthz` and `/readyz` on this address, apart from
    /// the public port: HOST:PORT, or the path of a unix socket (it has a `/`). Off by
    /// default.
    #[arg(long, value_name = "ADDRESS", help_heading = "Admin")]
    pub adminaddress: Option<String>,

    /// With --adminaddress, `/readyz` also answers 503 while --maxforks is full, so that a
    /// load balancer sends new clients elsewhere.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "Admin")]
    pub notreadywhenfull: bool,

    /// Speak HTTP/2 too: with --ssl, ALPN offers h2 (browsers then open WebSockets as
    /// streams of one connection, RFC 8441); without, a client may start with HTTP/2's
    /// preface (prior knowledge, as proxies speak to backends). HTTP/1.1 keeps working.
    /// Off by default: programs would see SERVER_PROTOCOL=HTTP/2.0.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "Network")]
    pub http2: bool,

    /// Basic auth: users and passwords from this htpasswd file, bcrypt entries only (as
    /// `htpasswd -B` writes them). Reloaded on SIGHUP. Off by default.
    #[arg(long, value_name = "FILE", help_heading = "Access")]
    pub htpasswd: Option<String>,

    /// Bearer tokens from this file, one a line, optionally followed by a name that becomes
    /// REMOTE_USER. Accepted as `Authorization: Bearer`, as the `wsd_token` query parameter
    /// (for browsers' WebSockets) or as the `wsd_token` cookie; never passed on. Reloaded on
    /// SIGHUP. Off by default.
    #[arg(long, value_name = "FILE", help_heading = "Access")]
    pub tokens: Option<String>,

    /// Forward auth: ask this URL about every request (http://HOST:PORT/PATH, or
    /// http://unix:/SOCKET:/PATH), as nginx's auth_request does. 2xx lets it in, 401 and 403
    /// are passed on, anything else is 503. Off by default.
    #[arg(long, value_name = "URL", help_heading = "Access")]
    pub authurl: Option<String>,

    /// With --authurl, the header of the auth service's answer that names the user
    /// (oauth2-proxy: X-Auth-Request-User; Authentik: X-authentik-username) [default:
    /// Remote-User].
    #[arg(long, value_name = "NAME", help_heading = "Access")]
    pub authuserheader: Option<String>,

    /// With --authurl, how long the auth service may take to answer before the request gets
    /// 503 [default: 5000].
    #[arg(long, value_name = "MS", help_heading = "Access")]
    pub authtimeoutms: Option<u64>,

    /// With --trustedproxy, the request header in which the proxy names the user it
    /// authenticated (REMOTE_USER, AUTH_TYPE=Proxy); the header of any other peer is taken
    /// out. Off by default.
    #[arg(long, value_name = "NAME", help_heading = "Access")]
    pub remoteuserheader: Option<String>,

    /// The realm of the Basic and Bearer challenges: browsers show it when they ask for a
    /// password [default: websocketd].
    #[arg(long, value_name = "TEXT", help_heading = "Access")]
    pub realm: Option<String>,

    /// Most programs (sessions and CGI scripts) running at once for one client address
    /// (after --trustedproxy; IPv6 by /64). 0: no limit [default: 0].
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        hide_default_value = true,
        help_heading = "Limits"
    )]
    pub maxforksperip: u64,

    /// How often one client address (after --trustedproxy; IPv6 by /64) may ask for a
    /// WebSocket: N/s, N/m or N/h; more get 429 with Retry-After. Off by default.
    #[arg(long, value_name = "RATE", help_heading = "Limits")]
    pub ratelimit: Option<String>,

    /// With --ratelimit, how many requests may come at once before the rate applies
    /// [default: the rate's N].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub rateburst: Option<u32>,

    /// Close a session (1001, then the termination ladder) after this long without a
    /// message either way. 0: never [default: 0].
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        hide_default_value = true,
        help_heading = "Limits"
    )]
    pub idlems: u64,

    /// Close a session (1001, then the termination ladder) this long after it started,
    /// whatever it does. 0: never [default: 0].
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        hide_default_value = true,
        help_heading = "Limits"
    )]
    pub maxsessionms: u64,

    /// The program's stdout is a pseudo-terminal (raw mode; stdin and stderr stay pipes), so
    /// that C stdio, Python, grep and awk flush each line as they print it. TERM is `dumb`
    /// unless --passenv or --setenv gives one.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "Process")]
    pub pty: bool,

    /// In line mode, send a partial line (a prompt, a progress dot) once it has waited this
    /// long without its newline; the rest of the line comes as the next message. 0: off,
    /// lines wait for their newline [default: 0].
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        hide_default_value = true,
        help_heading = "Process"
    )]
    pub flushms: u64,

    /// An extra variable for every program, NAME=VALUE, set after the CGI ones and
    /// --passenv's (repeatable). A name the server sets for a request (REMOTE_ADDR,
    /// HTTP_*, …) is refused.
    #[arg(long, value_name = "NAME=VALUE", action = ArgAction::Append, help_heading = "Process")]
    pub setenv: Vec<OsString>,

    /// Comma-separated names of variables passed from websocketd's environment to the process.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "PATH,LD_LIBRARY_PATH",
        help_heading = "Process"
    )]
    pub passenv: String,

    /// How log lines are written: `text` (websocketd's lines) or `json` (one object per
    /// line, with the same parts) [default: text].
    #[arg(long, value_name = "FORMAT", value_enum, help_heading = "Logging")]
    pub logformat: Option<LogFormatArg>,

    /// Also write each session's summary on its text DISCONNECT line (duration, messages and
    /// bytes each way, who ended it, the Close): off by default, so that the lines stay as
    /// websocketd writes them. JSON lines always carry it.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool, help_heading = "Logging")]
    pub logsummary: bool,

    /// Least severe level logged: debug, trace, access, info, warn, error, fatal or none.
    #[arg(long, value_name = "LEVEL", default_value = "access", help_heading = "Logging")]
    pub loglevel: String,

    /// Print a man page (`man`) or shell completions (`complete-bash`, `complete-zsh`,
    /// `complete-fish`) made from these definitions, and exit.
    #[arg(long, value_name = "WHAT", value_enum)]
    pub generate: Option<GenerateArg>,

    /// Print the version and exit.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool)]
    pub version: bool,

    /// Print the version and the licence, and exit.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = parse_bool)]
    pub license: bool,

    /// Print this help and exit.
    #[arg(long, short = 'h', action = ArgAction::Help)]
    pub help: Option<bool>,

    /// The program to run for each connection, and its arguments.
    #[arg(value_name = "COMMAND", trailing_var_arg = true, num_args = 0..)]
    pub command: Vec<OsString>,
}

/// The values of `--framing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FramingArg {
    /// Newline-terminated text lines.
    Lines,
    /// Raw reads, binary messages.
    Chunks,
    /// Length-prefixed records.
    LengthPrefixed,
}

/// The values of `--generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateArg {
    /// The man page, in roff.
    Man,
    /// Completions for bash.
    CompleteBash,
    /// Completions for zsh.
    CompleteZsh,
    /// Completions for fish.
    CompleteFish,
}

/// The values of `--logformat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// websocketd's lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The values of `--broadcastinput`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BroadcastInputArg {
    /// Every client's messages reach the program.
    All,
    /// Clients' messages are dropped.
    None,
}

/// The values of `--slowclient`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlowClientArg {
    /// Close 1013.
    Close,
    /// Skip messages until it keeps up.
    Skip,
}

/// Go's `strconv.ParseBool`, which websocketd's boolean flags accept.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("parse error: '{s}' is not a boolean")),
    }
}

/// Rewrites a command line from websocketd's Go-flag style into one clap reads the same way:
/// `-flag` becomes `--flag` (`-help` too), and parsing stops at `--` or at the first word that
/// is not a flag, after which everything goes to COMMAND untouched.
pub fn normalize<I>(argv: I) -> Vec<OsString>
where
    I: IntoIterator<Item = OsString>,
{
    // Flags whose value may be the next word: those that require one (booleans take a value
    // only as `--flag=value`). Read from the definitions above, so the list cannot drift.
    let mut command = Args::command();
    command.build();
    let value_flags: Vec<&str> = command
        .get_arguments()
        .filter(|a| {
            a.get_num_args().is_some_and(|n| n.min_values() > 0) && a.get_action().takes_values()
        })
        .filter_map(|a| a.get_long())
        .collect();
    let mut argv = argv.into_iter();
    let mut out: Vec<OsString> = argv.next().into_iter().collect();
    let mut expect_value = false;
    for arg in argv.by_ref() {
        if expect_value {
            expect_value = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(OsString::from("--"));
            out.push(arg);
            break;
        };
        if text == "--" {
            out.push(arg);
            break;
        }
        let name = match text.strip_prefix("--").or_else(|| text.strip_prefix('-')) {
            Some(name) if !name.is_empty() && !name.starts_with('-') => name,
            // Not a flag: COMMAND starts here.
            _ => {
                out.push(OsString::from("--"));
                out.push(arg);
                break;
            }
        };
        let (flag, has_value) = match name.split_once('=') {
            Some((flag, _)) => (flag, true),
            None => (name, false),
        };
        expect_value = !has_value && value_flags.contains(&flag);
        if flag == "h" && !has_value {
            out.push(OsString::from("-h"));
        } else {
            out.push(OsString::from(format!("--{name}")));
        }
    }
    out.extend(argv);
    out
}

/// A parse error with one tip at most: for a mistyped flag, clap suggests the flag meant
/// and also how to pass the word to COMMAND (`-- --prot`), which only confuses; the second
/// tip is dropped when there is a first.
pub fn one_tip(e: clap::Error) -> clap::Error {
    use clap::error::ContextKind;
    let has = |kind| e.get(kind).is_some();
    if !(has(ContextKind::SuggestedArg) && has(ContextKind::Suggested)) {
        return e;
    }
    let mut command = Args::command();
    command.build();
    let mut out = clap::Error::new(e.kind()).with_cmd(&command);
    for (kind, value) in e.context() {
        if kind != ContextKind::Suggested {
            out.insert(kind, value.clone());
        }
    }
    out
}

impl Args {
    /// Whether the command line had no arguments at all.
    pub fn is_empty_command_line(argv: &[OsString]) -> bool {
        argv.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        let argv = std::iter::once("websocketd").chain(args.iter().copied()).map(OsString::from);
        normalize(argv).into_iter().skip(1).map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn single_dash_flags_become_double_dash() {
        assert_eq!(norm(&["-port=80", "-binary", "cat"]), ["--port=80", "--binary", "--", "cat"]);
        assert_eq!(norm(&["-port", "80", "cat"]), ["--port", "80", "--", "cat"]);
        assert_eq!(norm(&["-help"]), ["--help"]);
        assert_eq!(norm(&["-h"]), ["-h"]);
    }

    #[test]
    fn every_flag_with_a_value_takes_it_from_the_next_word() {
        for flag in [
            "port",
            "address",
            "dir",
            "origin",
            "header",
            "header-ws",
            "header-http",
            "pingms",
            "redirport",
            "staticdir",
            "cgidir",
            "sslcert",
            "sslkey",
            "passenv",
            "loglevel",
            "framing",
            "maxframesize",
            "subprotocol",
            "closems",
            "maxforks",
            "broadcastinput",
            "replay",
            "clientqueue",
            "slowclient",
            "lingerms",
            "resumems",
            "resumebuffer",
            "adminaddress",
            "logformat",
            "htpasswd",
            "tokens",
            "authurl",
            "authuserheader",
            "authtimeoutms",
            "remoteuserheader",
            "realm",
            "maxforksperip",
            "ratelimit",
            "rateburst",
            "idlems",
            "maxsessionms",
            "setenv",
            "generate",
            "flushms",
        ] {
            let got = norm(&[&format!("-{flag}"), "V", "cat"]);
            assert_eq!(got, [format!("--{flag}"), "V".into(), "--".into(), "cat".into()], "{flag}");
        }
        for boolean in [
            "binary",
            "ssl",
            "devconsole",
            "sameorigin",
            "passstderr",
            "reverselookup",
            "broadcast",
            "notreadywhenfull",
            "logsummary",
            "pty",
            "http2",
        ] {
            let got = norm(&[&format!("-{boolean}"), "cat"]);
            assert_eq!(got, [format!("--{boolean}"), "--".into(), "cat".into()], "{boolean}");
        }
    }

    #[test]
    fn parsing_stops_at_the_first_word_that_is_not_a_flag() {
        assert_eq!(
            norm(&["--port=1", "cat", "--port=2", "-x"]),
            ["--port=1", "--", "cat", "--port=2", "-x"]
        );
        assert_eq!(norm(&["--binary", "true", "cat"]), ["--binary", "--", "true", "cat"]);
        assert_eq!(norm(&["--", "-weird"]), ["--", "-weird"]);
    }

    #[test]
    fn normalized_lines_parse_as_websocketd_would() {
        let parse = |args: &[&str]| {
            let argv =
                std::iter::once("websocketd").chain(args.iter().copied()).map(OsString::from);
            Args::try_parse_from(normalize(argv))
        };
        let a = parse(&[
            "-port",
            "8080",
            "--binary=false",
            "-address=127.0.0.1",
            "--address",
            "[::1]",
            "cat",
            "-n",
        ])
        .unwrap();
        assert_eq!(a.port, Some(8080));
        assert!(!a.binary);
        assert_eq!(a.address, ["127.0.0.1", "[::1]"]);
        assert_eq!(a.command, ["cat", "-n"]);
        let b = parse(&["--binary", "true", "cat"]).unwrap();
        assert!(b.binary);
        assert_eq!(b.command, ["true", "cat"]);
        assert!(parse(&["--port=1", "--port=2", "x"]).is_ok_and(|a| a.port == Some(2)));
        assert!(parse(&["--bogus", "cat"]).is_err());
        assert!(parse(&["--binary=maybe", "cat"]).is_err());
    }
}
