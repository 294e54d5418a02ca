//! `Accept`: the proxy's listening service.
//!
//! The proxy binds `proxy.listen` once, at start-up, on the main thread ([`listen`]): a taken
//! address stops the start with a clear error instead of a panic in a service thread. Each
//! worker thread then runs one `Accept` service of its own, on its own copy (`dup`) of that
//! one listening socket: the threads race to accept, except that a thread holding more open
//! connections than the least loaded one (plus [`SLACK`]) waits ([`Balance`]), so connections
//! spread evenly; the thread that accepts a connection serves it to the end with the reactor it
//! registered it with (no readiness event crosses threads).
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

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

/// How many more open connections than the least loaded loop an accept loop may have and
/// still accept.
pub const SLACK: usize = 1;

/// The open connections of each accept loop on one socket. A loop holding more than [`SLACK`]
/// connections over the least loaded one stops accepting until that changes, so the
/// connections spread evenly over the threads. (Racing alone does not spread them: a burst
/// of 64 new connections split as unevenly as 16/49 over two threads, and the busier thread's
/// requests then wait longer.) The least loaded loop always accepts, so no connection waits on
/// this.
#[derive(Debug)]
pub struct Balance {
    open: Vec<AtomicUsize>,
    changed: Notify,
}

impl Balance {
    /// For `loops` accept loops.
    pub fn new(loops: usize) -> Arc<Self> {
        Arc::new(Balance {
            open: (0..loops).map(|_| AtomicUsize::new(0)).collect(),
            changed: Notify::new(),
        })
    }

    fn open(&self, i: usize) -> usize {
        self.open.get(i).map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Whether loop `i` may accept now.
    fn may_accept(&self, i: usize) -> bool {
        let least = (0..self.open.len())
            .map(|j| self.open(j))
            .min()
            .unwrap_or(0);
        self.open(i) <= least + SLACK
    }

    /// Waits until loop `i` may accept.
    async fn turn(&self, i: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.may_accept(i) {
                return;
            }
            changed.await;
        }
    }

    /// Counts a connection of loop `i` until the returned guard is dropped.
    fn enter(self: &Arc<Self>, i: usize) -> Open {
        if let Some(n) = self.open.get(i) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        self.changed.notify_waiters();
        Open(self.clone(), i)
    }
}

/// One open connection of an accept loop (see [`Balance`]).
struct Open(Arc<Balance>, usize);

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(n) = self.0.open.get(self.1) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
        self.0.changed.notify_waiters();
    }
}

/// One accept loop over `listener`, serving its connections with `front` on the service's
/// runtime: a single thread when `threads` is `Some(1)`. Loop `index` of those sharing
/// `balance`.
pub struct Accept {
    name: String,
    listener: Option<std::net::TcpListener>,
    front: Arc<Front>,
    threads: Option<usize>,
    balance: Arc<Balance>,
    index: usize,
}

impl Accept {
    pub fn new(
        name: String,
        listener: std::net::TcpListener,
        front: Front,
        threads: Option<usize>,
        balance: Arc<Balance>,
        index: usize,
    ) -> Self {
        Accept {
            name,
            listener: Some(listener),
            front: Arc::new(front),
            threads,
            balance,
            index,
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
                accepted = async {
                    self.balance.turn(self.index).await;
                    listener.accept().await
                } => match accepted {
                    Ok(mut stream) => {
                        if let Err(e) = stream.set_nodelay() {
                            tracing::debug!(error = %e, "TCP_NODELAY not set");
                        }
                        let front = self.front.clone();
                        let shutdown = shutdown.clone();
                        let open = self.balance.enter(self.index);
                        tokio::spawn(async move {
                            front.process_new(Box::new(stream), &shutdown).await;
                            drop(open);
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

#[cfg(test)]
mod tests {
    use super::Balance;
    use std::time::Duration;

    #[test]
    fn a_loop_over_the_least_loaded_one_by_more_than_the_slack_waits() {
        let b = Balance::new(2);
        assert!(b.may_accept(0) && b.may_accept(1));
        let first = b.enter(0);
        assert!(b.may_accept(0), "one over the least is within the slack");
        let second = b.enter(0);
        assert!(!b.may_accept(0), "two over the least");
        assert!(b.may_accept(1), "the least loaded loop always accepts");
        drop(first);
        assert!(b.may_accept(0));
        drop(second);
        let alone = Balance::new(1);
        let _held: Vec<_> = (0..10).map(|_| alone.enter(0)).collect();
        assert!(alone.may_accept(0), "a single loop is never held back");
    }

    #[tokio::test]
    async fn a_waiting_loop_resumes_when_another_loop_accepts_or_a_connection_closes() {
        let b = Balance::new(2);
        let held = [b.enter(0), b.enter(0)];
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.turn(0).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "loop 0 holds two more connections than loop 1"
        );
        let other = b.enter(1);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("loop 0 resumes once loop 1 accepted")
            .unwrap();
        drop(other);
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.turn(0).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("loop 0 resumes once its connections closed")
            .unwrap();
    }
}
