//! `Accept`: the proxy's listening service.
//!
//! The proxy binds `proxy.listen` once, at start-up, on the main thread ([`listen`]): a taken
//! address stops the start with a clear error instead of a panic in a service thread. Each
//! worker thread then runs one `Accept` service of its own, on its own copy (`dup`) of that
//! one listening socket: the threads race to accept, so a new connection goes to whichever
//! thread is free first, and that thread serves it to the end with the reactor it registered
//! it with (no readiness event crosses threads).
//!
//! The alternatives this replaces: pingora's listening service with N threads accepts on one
//! thread and spawns the connections on random threads, so every readiness event of half of
//! them crosses over with a wake-up; one service per thread with SO_REUSEPORT sockets splits
//! connections by a hash of their addresses, blind to how busy each thread is. (And pingora
//! keeps one socket per address string for all its services and closes it once per service.)

use crate::front::Front;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::l4::listener::Listener;
use pingora::server::ListenFds;
use pingora::server::ShutdownWatch;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The listen backlog (pingora's own; the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 65_535;
/// How long the accept loop pauses after a failed `accept` (out of file descriptors, say),
/// so that it does not spin on an error that repeats until a connection closes.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Binds `addr` for listening (address reuse on, non-blocking).
pub fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// One accept loop over `listener`, serving its connections with `front` on the service's
/// runtime: a single thread when `threads` is `Some(1)`.
pub struct Accept {
    name: String,
    listener: Option<std::net::TcpListener>,
    front: Arc<Front>,
    threads: Option<usize>,
}

impl Accept {
    pub fn new(
        name: String,
        listener: std::net::TcpListener,
        front: Front,
        threads: Option<usize>,
    ) -> Self {
        Accept {
            name,
            listener: Some(listener),
            front: Arc::new(front),
            threads,
        }
    }
}

#[async_trait]
impl pingora::services::Service for Accept {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => Listener::from(l),
            Err(e) => {
                tracing::error!(service = %self.name, error = %e, "cannot accept on the listening socket");
                return;
            }
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(mut stream) => {
                        if let Err(e) = stream.set_nodelay() {
                            tracing::debug!(error = %e, "TCP_NODELAY not set");
                        }
                        let front = self.front.clone();
                        let shutdown = shutdown.clone();
                        tokio::spawn(async move {
                            front.process_new(Box::new(stream), &shutdown).await;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(service = %self.name, error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        tracing::debug!(service = %self.name, "stopped accepting");
        self.front.cleanup().await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}
