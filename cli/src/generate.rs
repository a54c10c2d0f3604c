//! `--generate`: the man page and the shell completions, made from the same definitions as
//! `--help` (clap_mangen, clap_complete), the man page with the sections a program's author
//! needs beside the flags.

use clap::CommandFactory;

use crate::args::{Args, GenerateArg};

/// What `--generate=what` prints.
pub fn generate(what: GenerateArg) -> String {
    let mut command = Args::command();
    command.build();
    let mut out = Vec::new();
    match what {
        GenerateArg::Man => {
            let about =
                "turn any program that reads stdin and writes stdout into a WebSocket server";
            let command = command.about(about).version(env!("CARGO_PKG_VERSION"));
            let man = clap_mangen::Man::new(command).section("1").manual("User Commands");
            // Writing into a Vec cannot fail.
            let _ = man.render_title(&mut out);
            let _ = man.render_name_section(&mut out);
            let _ = man.render_synopsis_section(&mut out);
            out.extend_from_slice(DESCRIPTION.as_bytes());
            let _ = man.render_options_section(&mut out);
            out.extend_from_slice(SECTIONS.as_bytes());
        }
        GenerateArg::CompleteBash => complete(clap_complete::Shell::Bash, command, &mut out),
        GenerateArg::CompleteZsh => complete(clap_complete::Shell::Zsh, command, &mut out),
        GenerateArg::CompleteFish => complete(clap_complete::Shell::Fish, command, &mut out),
    }
    let text = String::from_utf8_lossy(&out);
    match what {
        GenerateArg::Man => roff_ascii(&text),
        _ => text.into_owned(),
    }
}

/// The page with every character beyond ASCII (`…`, `→` in the help texts) as roff's
/// `\[uXXXX]`, which every groff device renders and none warns about.
fn roff_ascii(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

fn complete(shell: clap_complete::Shell, mut command: clap::Command, out: &mut Vec<u8>) {
    clap_complete::generate(shell, &mut command, "websocketd", out);
}

/// The DESCRIPTION section.
const DESCRIPTION: &str = r#".SH DESCRIPTION
\fBwebsocketd\fR serves WebSockets. For every connection it starts COMMAND (or, with
\fB\-\-dir\fR, the program its URL names); each line the program writes to stdout becomes a
text message to the client, and each message from the client becomes a line on the
program's stdin. \fB\-\-binary\fR and \fB\-\-framing=length\-prefixed\fR carry raw data. It
can also serve static files (\fB\-\-staticdir\fR), CGI scripts (\fB\-\-cgidir\fR) and a
console to try an endpoint in a browser (\fB\-\-devconsole\fR).
.PP
Flags may be written \fB\-flag\fR or \fB\-\-flag\fR, with \fB=value\fR or a separate value;
boolean flags take a value only as \fB\-\-flag=value\fR. Parsing stops at the first word that
is not a flag: everything after it is COMMAND and its arguments.
"#;

/// The sections after OPTIONS.
const SECTIONS: &str = r#".SH ENVIRONMENT
A program gets exactly these variables, CGI style, and nothing else of the server's
environment:
.TP
\fBSERVER_SOFTWARE\fR, \fBGATEWAY_INTERFACE\fR (CGI/1.1)
.TP
\fBSERVER_NAME\fR, \fBSERVER_PORT\fR, \fBSERVER_PROTOCOL\fR
from the Host header (or an absolute-form target); \fBHTTP/2.0\fR over \fB\-\-http2\fR.
.TP
\fBREMOTE_ADDR\fR, \fBREMOTE_HOST\fR, \fBREMOTE_PORT\fR
the client, after \fB\-\-trustedproxy\fR.
.TP
\fBREQUEST_METHOD\fR, \fBREQUEST_URI\fR, \fBQUERY_STRING\fR, \fBSCRIPT_NAME\fR, \fBPATH_INFO\fR, \fBPATH_TRANSLATED\fR
the request; \fBREQUEST_METHOD\fR is GET for every WebSocket.
.TP
\fBAUTH_TYPE\fR, \fBREMOTE_USER\fR
who access control found the client to be (\fBBasic\fR, \fBBearer\fR, \fBForward\fR,
\fBProxy\fR); empty otherwise. \fBREMOTE_IDENT\fR, \fBCONTENT_LENGTH\fR and \fBCONTENT_TYPE\fR
are empty.
.TP
\fBUNIQUE_ID\fR
the connection's identifier, as the log's \fBid\fR.
.TP
\fBHTTPS\fR, \fBSSL_CLIENT_S_DN\fR, \fBSSL_CLIENT_VERIFY\fR
with TLS, and with \fB\-\-sslca\fR.
.TP
\fBWEBSOCKET_SUBPROTOCOL\fR
the subprotocol chosen, if any.
.TP
\fBHTTP_*\fR
one per request header (never \fBHTTP_PROXY\fR).
.PP
Then the \fB\-\-passenv\fR variables (PATH and LD_LIBRARY_PATH by default) and the
\fB\-\-setenv\fR ones; with \fB\-\-pty\fR, \fBTERM=dumb\fR unless one of those gives TERM.
.SH TERMINATION
When the client leaves, the program's stdin is closed. If it has not exited 100 ms later its
process group gets SIGINT; 250 ms later SIGTERM; 500 ms later SIGKILL (each wait lengthened
by \fB\-\-closems\fR). When the program's output ends first, the client gets Close 1000 after
a zero exit status, 1011 with the status otherwise. On SIGINT or SIGTERM the server closes
every client with 1001 and sends every program down the same ladder, within
\fB\-\-shutdownms\fR. If the server itself dies, its guardian process
(\fBwebsocketd\-guardian\fR) sends the programs' groups SIGTERM, then SIGKILL 300 ms later.
.SH SIGNALS
.TP
\fBSIGINT\fR, \fBSIGTERM\fR
graceful shutdown; a second one kills what is left at once.
.TP
\fBSIGHUP\fR
reads the TLS certificate and key, the \fB\-\-htpasswd\fR and the \fB\-\-tokens\fR file
again; a file that cannot be used keeps the old contents.
.SH EXIT STATUS
.TP
\fB0\fR
help or version printed, or a clean shutdown.
.TP
\fB1\fR
invalid options (COMMAND not found, a flag without what it applies to, a bad file).
.TP
\fB2\fR
flag syntax.
.TP
\fB3\fR
cannot listen (or a bad certificate).
.TP
\fB4\fR
\fB\-\-devconsole\fR with \fB\-\-staticdir\fR or \fB\-\-cgidir\fR.
.SH EXAMPLES
Count to ten, one message a second, for every client of port 8080:
.PP
.RS
.nf
websocketd \-\-port=8080 sh \-c 'for i in $(seq 10); do echo $i; sleep 1; done'
.fi
.RE
.PP
Every executable in a directory, one per URL, behind nginx on a unix socket:
.PP
.RS
.nf
websocketd \-\-unixsocket=/run/websocketd.sock \-\-trustedproxy=unix \-\-dir=/srv/ws
.fi
.RE
.PP
A program that buffers its output, with a password file made by \fBhtpasswd \-B\fR:
.PP
.RS
.nf
websocketd \-\-port=8080 \-\-pty \-\-htpasswd=users python3 app.py
.fi
.RE
.SH SEE ALSO
The README, at https://github.com/websocketd\-rs/websocketd#readme.
"#;
