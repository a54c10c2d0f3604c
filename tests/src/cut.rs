//! A TCP proxy on loopback whose connections a test cuts at will, as a network that goes
//! away: the client's side gets a reset, the server's side an end of stream.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::wait::{STEP, within};

/// A TCP proxy in front of `upstream` whose open connections [`CutProxy::cut`] drops.
#[derive(Debug)]
pub struct CutProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// Listens on 127.0.0.1 (bound before it returns) and forwards every connection to
    /// `upstream`.
    pub async fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let cuts = watch::Sender::new(0u64);
        let watching = cuts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut cut = watching.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = within(STEP, TcpStream::connect(upstream)).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {
                            let _ = client.set_zero_linger();
                        }
                    }
                });
            }
        });
        CutProxy { addr, cuts, task }
    }

    /// Drops every open connection: a reset to the client, an end of stream to the server.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
