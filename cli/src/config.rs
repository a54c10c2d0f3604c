//! What the flags mean together: `TryFrom<Args> for Invocation`, which makes the `Config`.

use std::time::Duration;

use std::path::{Path, PathBuf};

use http::HeaderName;
use websocketd_core::broadcast::{BroadcastConfig, BroadcastInput, SlowClient};
use websocketd_core::command::{self, Command};
use websocketd_core::env::{EnvSettings, Vars, is_cgi_name};
use websocketd_core::log::LogLevel;
use websocketd_core::metrics::Metrics;
use websocketd_core::resume::ResumeConfig;
use websocketd_core::session::SessionConfig;
use websocketd_framing::Framing;
use websocketd_transport_tls::TlsSettings;
use websocketd_transport_ws::Settings;
use websocketd_transport_ws::access::{Access, AccessSettings, AuthUrl};
use websocketd_transport_ws::endpoint::Endpoint;
use websocketd_transport_ws::files::StaticDir;
use websocketd_transport_ws::limits::RateLimit;
use websocketd_transport_ws::origin::OriginPolicy;
use websocketd_transport_ws::proxy::TrustedProxies;
use websocketd_transport_ws::response::ExtraHeaders;
use websocketd_transport_ws::scripts::ScriptDir;

use crate::args::{Args, BroadcastInputArg, FramingArg, GenerateArg, LogFormatArg, SlowClientArg};
use crate::log::LogFormat;

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// `--address` values, as given.
    pub addresses: Vec<String>,
    /// The port to listen on.
    pub port: u16,
    /// Whether to listen on TCP at all: not when `--unixsocket` is the only listen flag.
    pub tcp: bool,
    /// `--unixsocket` and `--unixsocket-mode`.
    pub unix: Option<UnixSocket>,
    /// Whether any listen flag was given (`--port`, `--address`, `--unixsocket`,
    /// `--redirport`): with socket activation they are ignored, with a warning.
    pub listen_flags: bool,
    /// `--shutdownms`: how long a shutdown may take before what is left is killed.
    pub shutdown_bound: Duration,
    /// `--ssl` with its certificate and key.
    pub tls: Option<TlsSettings>,
    /// `--redirport` (0: off).
    pub redirport: u16,
    /// The log threshold.
    pub loglevel: LogLevel,
    /// `--logformat`.
    pub logformat: LogFormat,
    /// `--logsummary`.
    pub logsummary: bool,
    /// What is served, and how.
    pub http: Settings,
    /// `--origin` entries that do not parse (skipped, as websocketd does).
    pub skipped_origins: Vec<String>,
    /// `--adminaddress`: where `/metrics`, `/healthz` and `/readyz` are served, if anywhere.
    pub admin: Option<AdminAddress>,
}

/// Where the admin listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddress {
    /// `HOST:PORT`.
    Tcp(String),
    /// A unix socket's path.
    Unix(PathBuf),
}

/// A unix socket to listen on.
#[derive(Debug, Clone)]
pub struct UnixSocket {
    /// Its path.
    pub path: PathBuf,
    /// Its permissions, if asked.
    pub mode: Option<u32>,
}

/// Why the flags do not make a configuration. Each is reported with exit code 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `--loglevel` is not a level.
    #[error("Incorrect loglevel flag '{0}'. Use --help to see allowed values.")]
    LogLevel(String),
    /// No COMMAND.
    #[error("Please specify COMMAND or provide --dir, --staticdir or --cgidir argument.")]
    NoCommand,
    /// A `--subprotocol` name that is not an HTTP token.
    #[error("invalid --subprotocol name '{0}': use letters, digits and !#$%&'*+-.^_`|~")]
    Subprotocol(String),
    /// `--passstderr` with a framing other than lines.
    #[error("please only specify one of --{0} and --passstderr")]
    PassStderr(&'static str),
    /// A `--broadcast` setting without `--broadcast`.
    #[error("--{0} only applies with --broadcast")]
    NeedsBroadcast(&'static str),
    /// `--clientqueue` smaller than the largest message.
    #[error(
        "--clientqueue={queue} is smaller than --maxframesize={max}: one message would be too much for every client"
    )]
    ClientQueue {
        /// `--clientqueue`.
        queue: u64,
        /// `--maxframesize`.
        max: u64,
    },
    /// A `--resumems` setting without `--resumems`.
    #[error("--{0} only applies with --resumems")]
    NeedsResume(&'static str),
    /// `--notreadywhenfull` without `--adminaddress`.
    #[error("--notreadywhenfull only applies with --adminaddress")]
    NeedsAdmin,
    /// `--adminaddress` that is neither HOST:PORT nor a path.
    #[error(
        "--adminaddress={0}: give HOST:PORT (e.g. 127.0.0.1:9100) or the path of a unix socket"
    )]
    AdminAddress(String),
    /// `--resumems` with `--broadcast`.
    #[error(
        "--resumems does not work with --broadcast: a shared program has no one client to resume"
    )]
    ResumeWithBroadcast,
    /// `--flushms` with a framing other than lines.
    #[error(
        "--flushms only applies to lines: a chunk is sent as it is read, and a length-prefixed message only when whole"
    )]
    FlushLines,
    /// A `--setenv` value that cannot be a variable, or names one the server sets.
    #[error("invalid --setenv '{0}': {1}")]
    SetEnv(String, &'static str),
    /// An `--authurl` setting without `--authurl`.
    #[error("--{0} only applies with --authurl")]
    NeedsAuthUrl(&'static str),
    /// `--remoteuserheader` without `--trustedproxy`.
    #[error(
        "--remoteuserheader only applies with --trustedproxy: only a trusted proxy may name the user"
    )]
    NeedsTrustedProxy,
    /// `--realm` without `--htpasswd` or `--tokens`.
    #[error("--realm only applies with --htpasswd or --tokens")]
    NeedsChallenge,
    /// `--rateburst` without `--ratelimit`.
    #[error("--rateburst only applies with --ratelimit")]
    NeedsRateLimit,
    /// A `--ratelimit` that is not N/s, N/m or N/h.
    #[error(
        "invalid --ratelimit '{0}': give N/s, N/m or N/h with N a whole number above 0 (e.g. 10/s)"
    )]
    RateLimit(String),
    /// A header name flag whose value is not a header name.
    #[error("invalid --{flag} '{value}': not a header name")]
    HeaderFlag {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
    },
    /// A `--realm` that cannot be quoted in a challenge.
    #[error(
        "invalid --realm '{0}': quotes, backslashes and control characters cannot be in a realm"
    )]
    Realm(String),
    /// `--broadcast` with `--dir`'s scripts or COMMAND missing.
    #[error("--broadcast needs COMMAND or --dir")]
    BroadcastWithoutCommand,
    /// `--binary` with another framing.
    #[error("please only specify one of --binary and --framing={0}")]
    BinaryFraming(&'static str),
    /// A `--header*` value that is not a header, or a `--trustedproxy` entry that is not an
    /// address, a CIDR or `unix`.
    #[error(transparent)]
    Network(#[from] websocketd_transport_ws::Error),
    /// `--cgidir` is not a directory.
    #[error("Your CGI dir '{0}' is not pointing to an accessible directory.")]
    CgiDir(String),
    /// `--staticdir` is not a directory.
    #[error("Your static dir '{0}' is not pointing to an accessible directory.")]
    StaticDir(String),
    /// `--ssl` without both files.
    #[error("Please specify both --sslcert and --sslkey when requesting --ssl.")]
    SslFiles,
    /// `--sslcert` or `--sslkey` without `--ssl`.
    #[error("You should not be using --ssl* flags when there is no --ssl option.")]
    SslWithoutSsl,
    /// Both COMMAND and `--dir`.
    #[error("Ambiguous. Provided COMMAND and --dir argument. Please only specify just one.")]
    Ambiguous,
    /// `--dir` cannot be made absolute.
    #[error("Could not resolve absolute path to dir '{0}'.")]
    DirAbsolute(String),
    /// `--dir` does not exist.
    #[error("Could not find your script dir '{0}'.")]
    DirMissing(String),
    /// `--dir` is not a directory.
    #[error("Did you mean to specify COMMAND instead of --dir '{0}'?")]
    DirNotDir(String),
    /// `--unixsocket-mode` is not an octal mode.
    #[error("invalid --unixsocket-mode '{0}': use octal permissions such as 0660")]
    UnixSocketMode(String),
    /// `--unixsocket-mode` without `--unixsocket`.
    #[error("please specify --unixsocket when requesting --unixsocket-mode")]
    UnixSocketModeAlone,
    /// COMMAND was not found.
    #[error("Unable to locate specified COMMAND '{0}' in OS path.")]
    CommandNotFound(String),
    /// COMMAND is a bare name that is not in PATH but is in the current directory.
    #[error("Unable to locate specified COMMAND '{name}' in OS path. The current directory has it: did you mean {here}?{hint}", here = shell_word(&format!("./{name}")), hint = if *.executable { String::new() } else { format!(" It is not executable either: chmod +x {}", shell_word(name)) })]
    CommandInCurrentDir {
        /// The name as given.
        name: String,
        /// Whether the file there is executable.
        executable: bool,
    },
    /// COMMAND is a file without execute permission.
    #[error("COMMAND '{0}' is not executable. Make it so with: chmod +x {word}", word = shell_word(.0))]
    CommandNotExecutable(String),
    /// `--devconsole` with `--staticdir` or `--cgidir` (exit 4, as a FATAL log line).
    #[error("Invalid parameters: --devconsole cannot be used with {other}. Pick one.")]
    DevConsoleWith {
        /// The other flag.
        other: &'static str,
        /// The log level, at which the line is written.
        loglevel: LogLevel,
    },
    /// `--port` or `--redirport` out of range (exit 3, as a FATAL log line, as when the
    /// port cannot be listened on).
    #[error("Can't start server: listen tcp: address {port}: invalid port")]
    Port {
        /// The port as given.
        port: i64,
        /// The log level, at which the line is written.
        loglevel: LogLevel,
    },
    /// COMMAND is a directory.
    #[error("COMMAND '{0}' is a directory. To serve the programs in it, use --dir={word}", word = shell_word(.0))]
    CommandIsDirectory(String),
}

impl ConfigError {
    /// The exit code: 1, but 3 for a port that cannot be listened on and 4 for
    /// `--devconsole` with `--staticdir` or `--cgidir`, as websocketd exits.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Port { .. } => 3,
            ConfigError::DevConsoleWith { .. } => 4,
            _ => 1,
        }
    }

    /// For the errors websocketd reports as a FATAL log line rather than a message: the log
    /// level asked for, at which that line is written (or not).
    pub fn fatal_line(&self) -> Option<LogLevel> {
        match self {
            ConfigError::Port { loglevel, .. } | ConfigError::DevConsoleWith { loglevel, .. } => {
                Some(*loglevel)
            }
            _ => None,
        }
    }

    /// Whether websocketd prints its short usage after this message.
    pub fn wants_usage(&self) -> bool {
        !matches!(
            self,
            ConfigError::SslFiles
                | ConfigError::SslWithoutSsl
                | ConfigError::Port { .. }
                | ConfigError::DevConsoleWith { .. }
                | ConfigError::UnixSocketMode(_)
                | ConfigError::UnixSocketModeAlone
                | ConfigError::Network(websocketd_transport_ws::Error::TrustedProxy { .. })
        )
    }

    /// Whether the message goes to stdout (as websocketd does for a bad log level).
    pub fn on_stdout(&self) -> bool {
        matches!(self, ConfigError::LogLevel(_))
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Print the version, and with `license` the licence.
    Version {
        /// `--license`.
        license: bool,
    },
    /// Print a man page or completions (`--generate`).
    Generate(GenerateArg),
    /// Serve.
    Serve(Box<Config>),
}

impl TryFrom<Args> for Invocation {
    type Error = ConfigError;

    /// websocketd's order: a bad `--loglevel` first, then `--version` and `--license`
    /// (whatever else is wrong), then everything else.
    fn try_from(args: Args) -> Result<Invocation, ConfigError> {
        let loglevel = log_level(&args)?;
        if args.version || args.license {
            return Ok(Invocation::Version { license: args.license });
        }
        if let Some(what) = args.generate {
            return Ok(Invocation::Generate(what));
        }
        Config::build(args, loglevel).map(|config| Invocation::Serve(Box::new(config)))
    }
}

/// `--loglevel`.
fn log_level(args: &Args) -> Result<LogLevel, ConfigError> {
    args.loglevel.parse().map_err(|_| ConfigError::LogLevel(args.loglevel.clone()))
}

impl Config {
    /// Every rule of how the flags go together, and every range check, `--loglevel` (parsed
    /// first, once) aside.
    fn build(args: Args, loglevel: LogLevel) -> Result<Config, ConfigError> {
        let broadcast = broadcast_config(&args, args.dir.is_some() || !args.command.is_empty())?;
        let resume = resume_config(&args)?;
        let admin = admin_address(&args)?;
        let has_proxies = args.trustedproxy.iter().any(|v| !v.trim().is_empty());
        let access = access_settings(&args, has_proxies)?.map(Access::new).transpose()?;
        let rate_limit = rate_limit(&args)?;
        let tls = match (args.ssl, args.sslcert, args.sslkey) {
            (true, Some(cert), Some(key)) => Some(TlsSettings {
                cert: cert.into(),
                key: key.into(),
                ca: args.sslca.map(PathBuf::from),
                http2: args.http2,
            }),
            (true, _, _) => return Err(ConfigError::SslFiles),
            (false, None, None) if args.sslca.is_none() => None,
            (false, _, _) => return Err(ConfigError::SslWithoutSsl),
        };
        let default_port: u16 = if tls.is_some() { 443 } else { 80 };
        let endpoint = match (args.dir, args.command.is_empty()) {
            (Some(_), false) => return Err(ConfigError::Ambiguous),
            (None, true) if args.staticdir.is_none() && args.cgidir.is_none() => {
                return Err(ConfigError::NoCommand);
            }
            (None, true) => None,
            (Some(dir), true) => Some(Endpoint::Dir(script_dir(&dir)?)),
            (None, false) => {
                let mut words = args.command.into_iter();
                let name = words.next().unwrap_or_default().to_string_lossy().into_owned();
                let program = command::resolve(&name, std::env::var_os("PATH").as_deref())
                    .map_err(command_error)?;
                Some(Endpoint::Command(std::sync::Arc::new(Command {
                    program,
                    args: words.collect(),
                })))
            }
        };
        let cgi = match &args.cgidir {
            None => None,
            Some(dir) => {
                let absolute = std::path::absolute(dir).ok().filter(|p| p.is_dir());
                let scripts = absolute.and_then(|p| ScriptDir::new(p).ok());
                Some(scripts.ok_or_else(|| ConfigError::CgiDir(dir.clone()))?)
            }
        };
        let files = match &args.staticdir {
            None => None,
            Some(dir) => {
                let is_dir = std::fs::metadata(dir).is_ok_and(|m| m.is_dir());
                let files = is_dir.then(|| StaticDir::new(PathBuf::from(dir)).ok()).flatten();
                Some(files.ok_or_else(|| ConfigError::StaticDir(dir.clone()))?)
            }
        };
        let subprotocols: Vec<String> = match &args.subprotocol {
            None => Vec::new(),
            Some(list) => list.split(',').map(|p| p.trim().to_owned()).collect(),
        };
        if let Some(bad) = subprotocols.iter().find(|p| !is_token(p)) {
            return Err(ConfigError::Subprotocol(bad.clone()));
        }
        let passenv =
            EnvSettings::capture_passenv(args.passenv.split(','), |k| std::env::var_os(k));
        let mut setenv = setenv(&args.setenv)?;
        // A terminal's programs look at TERM; `dumb` asks for no colours and no cursor moves.
        if args.pty && !passenv.iter().chain(&setenv).any(|(name, _)| name == "TERM") {
            setenv.push(("TERM".to_owned(), "dumb".into()));
        }
        let framing = match (args.binary, args.framing) {
            (false, None | Some(FramingArg::Lines)) => Framing::Lines,
            (_, None | Some(FramingArg::Chunks)) => Framing::Chunks,
            (false, Some(FramingArg::LengthPrefixed)) => Framing::LengthPrefixed,
            (true, Some(FramingArg::Lines)) => return Err(ConfigError::BinaryFraming("lines")),
            (true, Some(FramingArg::LengthPrefixed)) => {
                return Err(ConfigError::BinaryFraming("length-prefixed"));
            }
        };
        if args.passstderr {
            match framing {
                Framing::Lines => {}
                Framing::Chunks if args.binary => return Err(ConfigError::PassStderr("binary")),
                Framing::Chunks => return Err(ConfigError::PassStderr("framing=chunks")),
                _ => return Err(ConfigError::PassStderr("framing=length-prefixed")),
            }
        }
        if args.flushms > 0 && framing != Framing::Lines {
            return Err(ConfigError::FlushLines);
        }
        let parse_all = |raw: &[String]| {
            raw.iter()
                .map(|h| ExtraHeaders::parse(h).map_err(ConfigError::Network))
                .collect::<Result<Vec<_>, _>>()
        };
        let headers = ExtraHeaders {
            all: parse_all(&args.header)?,
            ws: parse_all(&args.header_ws)?,
            http: parse_all(&args.header_http)?,
        };
        let (origins, skipped_origins) = OriginPolicy::new(args.sameorigin, args.origin.as_deref());
        let mode = match &args.unixsocket_mode {
            None => None,
            Some(_) if args.unixsocket.is_none() => return Err(ConfigError::UnixSocketModeAlone),
            Some(raw) => Some(
                u32::from_str_radix(raw, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| ConfigError::UnixSocketMode(raw.clone()))?,
            ),
        };
        let mut trusted_proxies = TrustedProxies::default();
        for value in &args.trustedproxy {
            trusted_proxies.add(value)?;
        }

        // websocketd checks these last (the ports only when it listens).
        if args.devconsole {
            let other = if files.is_some() {
                Some("--staticdir")
            } else if cgi.is_some() {
                Some("--cgidir")
            } else {
                None
            };
            if let Some(other) = other {
                return Err(ConfigError::DevConsoleWith { other, loglevel });
            }
        }
        let valid_port =
            |port: i64| u16::try_from(port).map_err(|_| ConfigError::Port { port, loglevel });
        let port = valid_port(args.port.unwrap_or(i64::from(default_port)))?;
        let redirport = valid_port(args.redirport)?;
        let listen_flags = args.port.is_some()
            || !args.address.is_empty()
            || args.unixsocket.is_some()
            || args.redirport != 0;
        let session = SessionConfig {
            framing,
            // 0 means no limit.
            max_message: match args.maxframesize {
                0 => usize::MAX,
                n => usize::try_from(n).unwrap_or(usize::MAX),
            },
            closems: Duration::from_millis(args.closems),
            pass_stderr: args.passstderr,
            ping: (args.pingms > 0).then(|| Duration::from_millis(args.pingms)),
            idle: (args.idlems > 0).then(|| Duration::from_millis(args.idlems)),
            time_limit: (args.maxsessionms > 0).then(|| Duration::from_millis(args.maxsessionms)),
            pty: args.pty,
            flush: (args.flushms > 0).then(|| Duration::from_millis(args.flushms)),
            env: EnvSettings {
                server_software: format!("websocketd/{}", version()),
                passenv,
                setenv,
            },
            metrics: std::sync::Arc::new(Metrics::new(
                env!("CARGO_PKG_VERSION"),
                env!("WEBSOCKETD_COMMIT"),
            )),
        };
        Ok(Config {
            tcp: args.unixsocket.is_none() || args.port.is_some() || !args.address.is_empty(),
            unix: args.unixsocket.map(|path| UnixSocket { path: path.into(), mode }),
            listen_flags,
            shutdown_bound: Duration::from_millis(args.shutdownms),
            redirport,
            skipped_origins,
            addresses: args.address,
            port,
            tls,
            loglevel,
            logsummary: args.logsummary,
            logformat: match args.logformat {
                Some(LogFormatArg::Json) => LogFormat::Json,
                _ => LogFormat::Text,
            },
            http: Settings {
                endpoint,
                session,
                subprotocols,
                origins,
                reverse_lookup: args.reverselookup,
                maxforks: usize::try_from(args.maxforks).unwrap_or(0),
                files,
                cgi,
                devconsole: args.devconsole,
                trusted_proxies,
                headers,
                broadcast,
                resume,
                not_ready_when_full: args.notreadywhenfull,
                access,
                maxforks_per_ip: usize::try_from(args.maxforksperip).unwrap_or(usize::MAX),
                rate_limit,
                http2: args.http2,
            },
            admin,
        })
    }
}

/// `--broadcast` and its settings; each setting without it is an error.
fn broadcast_config(
    args: &Args,
    has_endpoint: bool,
) -> Result<Option<BroadcastConfig>, ConfigError> {
    if !args.broadcast {
        let given = [
            ("broadcastinput", args.broadcastinput.is_some()),
            ("replay", args.replay.is_some()),
            ("clientqueue", args.clientqueue.is_some()),
            ("slowclient", args.slowclient.is_some()),
            ("lingerms", args.lingerms.is_some()),
        ];
        return match given.into_iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(ConfigError::NeedsBroadcast(flag)),
            None => Ok(None),
        };
    }
    if !has_endpoint {
        return Err(ConfigError::BroadcastWithoutCommand);
    }
    let queue = args.clientqueue.unwrap_or(1024 * 1024).max(1);
    if args.maxframesize != 0 && queue < args.maxframesize {
        return Err(ConfigError::ClientQueue { queue, max: args.maxframesize });
    }
    Ok(Some(BroadcastConfig {
        input: match args.broadcastinput {
            Some(BroadcastInputArg::None) => BroadcastInput::None,
            _ => BroadcastInput::All,
        },
        replay: usize::try_from(args.replay.unwrap_or(0)).unwrap_or(usize::MAX),
        client_queue: usize::try_from(queue).unwrap_or(usize::MAX),
        slow_client: match args.slowclient {
            Some(SlowClientArg::Skip) => SlowClient::Skip,
            _ => SlowClient::Close,
        },
        linger: Duration::from_millis(args.lingerms.unwrap_or(0)),
    }))
}

/// `--htpasswd`, `--tokens`, `--authurl`, `--remoteuserheader` and their settings, or `None`
/// when there is no access control; a setting without what it applies to is an error.
fn access_settings(args: &Args, has_proxies: bool) -> Result<Option<AccessSettings>, ConfigError> {
    if args.authurl.is_none() {
        if args.authuserheader.is_some() {
            return Err(ConfigError::NeedsAuthUrl("authuserheader"));
        }
        if args.authtimeoutms.is_some() {
            return Err(ConfigError::NeedsAuthUrl("authtimeoutms"));
        }
    }
    if args.remoteuserheader.is_some() && !has_proxies {
        return Err(ConfigError::NeedsTrustedProxy);
    }
    if args.realm.is_some() && args.htpasswd.is_none() && args.tokens.is_none() {
        return Err(ConfigError::NeedsChallenge);
    }
    if args.htpasswd.is_none()
        && args.tokens.is_none()
        && args.authurl.is_none()
        && args.remoteuserheader.is_none()
    {
        return Ok(None);
    }
    let header = |flag: &'static str, value: &str| {
        HeaderName::try_from(value)
            .map_err(|_| ConfigError::HeaderFlag { flag, value: value.to_owned() })
    };
    let realm = args.realm.clone().unwrap_or_else(|| "websocketd".to_owned());
    if realm.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(ConfigError::Realm(realm));
    }
    Ok(Some(AccessSettings {
        htpasswd: args.htpasswd.as_ref().map(PathBuf::from),
        tokens: args.tokens.as_ref().map(PathBuf::from),
        auth_url: args.authurl.as_deref().map(AuthUrl::parse).transpose()?,
        auth_user_header: header(
            "authuserheader",
            args.authuserheader.as_deref().unwrap_or("Remote-User"),
        )?,
        auth_timeout: Duration::from_millis(args.authtimeoutms.unwrap_or(5000).max(1)),
        remote_user_header: args
            .remoteuserheader
            .as_deref()
            .map(|name| header("remoteuserheader", name))
            .transpose()?,
        realm,
    }))
}

/// `--setenv` values as variables: `NAME=VALUE`, NAME a shell variable's name and none the
/// server sets for a request.
fn setenv(values: &[std::ffi::OsString]) -> Result<Vars, ConfigError> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut vars = Vars::new();
    for value in values {
        let bytes = value.as_bytes();
        let shown = || String::from_utf8_lossy(bytes).into_owned();
        let Some(eq) = bytes.iter().position(|&b| b == b'=') else {
            return Err(ConfigError::SetEnv(shown(), "give NAME=VALUE"));
        };
        let name = std::str::from_utf8(&bytes[..eq]).unwrap_or("");
        let valid = name.bytes().next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !valid {
            return Err(ConfigError::SetEnv(
                shown(),
                "NAME must be letters, digits and _, not starting with a digit",
            ));
        }
        if is_cgi_name(name) {
            return Err(ConfigError::SetEnv(
                shown(),
                "the server sets this name for every request",
            ));
        }
        vars.push((name.to_owned(), std::ffi::OsString::from_vec(bytes[eq + 1..].to_vec())));
    }
    Ok(vars)
}

/// `--ratelimit` (`N/s`, `N/m` or `N/h`) with `--rateburst` (the rate's N unless given).
fn rate_limit(args: &Args) -> Result<Option<RateLimit>, ConfigError> {
    let Some(text) = &args.ratelimit else {
        return match args.rateburst {
            Some(_) => Err(ConfigError::NeedsRateLimit),
            None => Ok(None),
        };
    };
    let bad = || ConfigError::RateLimit(text.clone());
    let (count, unit) = text.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
    let seconds = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let burst = args.rateburst.unwrap_or(count).max(1);
    Ok(Some(RateLimit::new(f64::from(count) / seconds, burst)))
}

/// `--adminaddress`, checked for its form (binding it says the rest).
fn admin_address(args: &Args) -> Result<Option<AdminAddress>, ConfigError> {
    let Some(address) = &args.adminaddress else {
        return if args.notreadywhenfull { Err(ConfigError::NeedsAdmin) } else { Ok(None) };
    };
    if address.contains('/') {
        return Ok(Some(AdminAddress::Unix(PathBuf::from(address))));
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(Some(AdminAddress::Tcp(address.clone())))
        }
        _ => Err(ConfigError::AdminAddress(address.clone())),
    }
}

/// `--resumems` and its setting; the setting without it is an error.
fn resume_config(args: &Args) -> Result<Option<ResumeConfig>, ConfigError> {
    let wait = args.resumems.unwrap_or(0);
    if wait == 0 {
        return match args.resumebuffer {
            Some(_) => Err(ConfigError::NeedsResume("resumebuffer")),
            None => Ok(None),
        };
    }
    if args.broadcast {
        return Err(ConfigError::ResumeWithBroadcast);
    }
    let buffer = args.resumebuffer.unwrap_or(1024 * 1024).max(1);
    Ok(Some(ResumeConfig {
        wait: Duration::from_millis(wait),
        buffer: usize::try_from(buffer).unwrap_or(usize::MAX),
    }))
}

/// `--dir` as websocketd checks it: made absolute, existing, a directory.
fn script_dir(dir: &str) -> Result<ScriptDir, ConfigError> {
    let absolute: PathBuf = std::path::absolute(Path::new(dir))
        .map_err(|_| ConfigError::DirAbsolute(dir.to_owned()))?;
    let meta = std::fs::metadata(&absolute).map_err(|_| ConfigError::DirMissing(dir.to_owned()))?;
    if !meta.is_dir() {
        return Err(ConfigError::DirNotDir(dir.to_owned()));
    }
    ScriptDir::new(absolute).map_err(|_| ConfigError::DirMissing(dir.to_owned()))
}

/// What to tell a user whose COMMAND was not found.
fn command_error(e: websocketd_core::Error) -> ConfigError {
    use websocketd_core::Error;
    match e {
        Error::CommandInCurrentDir { name, executable } => {
            ConfigError::CommandInCurrentDir { name, executable }
        }
        Error::CommandNotExecutable(name) => ConfigError::CommandNotExecutable(name),
        Error::CommandIsDirectory(name) => ConfigError::CommandIsDirectory(name),
        // Not found, or a reason the lookup learns later: it still reads as not found.
        other => ConfigError::CommandNotFound(other.command().unwrap_or_default().to_owned()),
    }
}

/// `word` as a shell would need it typed in a suggested command: as is when it has only
/// harmless characters, else in single quotes.
fn shell_word(word: &str) -> String {
    let harmless = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c);
    if !word.is_empty() && word.chars().all(harmless) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// An HTTP token (RFC 9110), as a subprotocol name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The version string: ours, the commit it was built from, and what it runs on.
pub fn version() -> String {
    format!(
        "{} (commit {}, {}-{})",
        env!("CARGO_PKG_VERSION"),
        env!("WEBSOCKETD_COMMIT"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Our licence, as `--license` prints it.
pub const LICENSE: &str = "\
Copyright (c) the websocketd for Rust authors.
All rights reserved.

Redistribution and use in source and binary forms, with or without modification, are
permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of
   conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials
   provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS \"AS IS\" AND ANY EXPRESS
OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF
MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE
COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE
GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND
ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING
NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED
OF THE POSSIBILITY OF SUCH DAMAGE.
";
