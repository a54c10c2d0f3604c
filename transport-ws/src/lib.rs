//! websocketd's network side: listeners, HTTP/1.1 through hyper, and the WebSocket upgrade.
//!
//! A request goes listener → router → endpoint (an upgrade, handed to the session) or one
//! of console, cgi, files (plain HTTP); the other modules are what those use.
//!
//! - [`listener`]: binding TCP addresses and unix sockets, and the accept loop.
//! - [`activation`]: systemd socket activation, the listeners handed over.
//! - [`conn`]: what is known of a connection (peer, TLS) and its client.
//! - [`proxy`]: `--trustedproxy`, the real client and scheme behind a trusted reverse proxy.
//! - [`edge`]: what every request must be (RFC 9112's Host and framing rules), and what is
//!   refused before a program would fail on it.
//! - [`router`]: what each request gets (the dispatch), and the settings it is made from.
//! - [`endpoint`]: the WebSocket endpoint: slot, script, checks, session, 101.
//! - [`forks`]: `--maxforks` and `--maxforksperip`, the slots sessions and CGI scripts share.
//! - [`access`]: `--htpasswd`, `--tokens`, `--authurl`, `--remoteuserheader`: who may be
//!   served, checked before anything else is done with a request.
//! - [`limits`]: the client address the limits count, and `--ratelimit`.
//! - [`origin`]: `--origin` and `--sameorigin`.
//! - [`scripts`]: `--dir` and `--cgidir`, which script a URL runs.
//! - [`path`]: cleaning request paths, as Go's mux does.
//! - [`readahead`]: large reads from a WebSocket only while its bytes flow.
//! - [`console`]: `--devconsole`, the page for trying an endpoint in a browser.
//! - [`cgi`]: `--cgidir`, CGI/1.1 scripts.
//! - [`files`]: `--staticdir`, static files.
//! - [`redirect`]: `--redirport`, the plain-HTTP listener that redirects to the main port.
//! - [`admin`]: `--adminaddress`, the listener for `/metrics`, `/healthz` and `/readyz`.
//! - [`response`]: the pieces of every response, and the `--header*` headers.
//! - [`error`]: the crate's error type.

pub mod access;
pub mod activation;
pub mod admin;
pub mod cgi;
pub mod conn;
pub mod console;
pub mod edge;
pub mod endpoint;
pub mod error;
pub mod files;
pub mod forks;
pub mod limits;
pub mod listener;
pub mod origin;
pub mod path;
pub mod proxy;
pub mod readahead;
pub mod redirect;
pub mod response;
pub mod router;
pub mod scripts;

pub use error::Error;
pub use listener::{Listener, bind, bind_unix};
pub use router::{App, Settings};
