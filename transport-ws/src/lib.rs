//! websocketd's network side: listeners, HTTP/1.1 through hyper, and the WebSocket upgrade.
//!
//! - [`activation`]: systemd socket activation, the listeners handed over.
//! - [`listener`]: binding TCP addresses and unix sockets, and the accept loop.
//! - [`router`]: what each request gets: the upgrade to a session, or a plain HTTP answer.
//! - [`path`]: cleaning request paths, as Go's mux does.
//! - [`scripts`]: `--dir`, which script a URL runs.
//! - [`proxy`]: `--trustedproxy`, the real client and scheme behind a trusted reverse proxy.
//! - [`readahead`]: large reads from a WebSocket only while its bytes flow.
//! - [`redirect`]: `--redirport`, the plain-HTTP listener that redirects to the main port.
//! - [`console`]: `--devconsole`, the page for trying an endpoint in a browser.
//! - [`files`]: `--staticdir`, static files.
//! - [`cgi`]: `--cgidir`, CGI/1.1 scripts.

pub mod activation;
pub mod cgi;
pub mod conn;
pub mod console;
pub mod endpoint;
pub mod error;
pub mod files;
pub mod forks;
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
