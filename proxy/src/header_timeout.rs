//! A bound on the time a client takes to send a request head (request line and headers).
//!
//! pingora times out each read of a request head separately (60 s), so a client that trickles
//! one byte a second (slowloris) holds a connection and a task for ever. [`HeaderTimeout`]
//! wraps the proxy app: each request on a connection must have its whole head read within
//! `limit` of the connection being ready for it (accepted, or done with the previous response
//! when kept alive), or the connection is closed without an answer. The proxy marks a head as
//! read in its first phase through [`head_read`]; from then on the request runs unbounded by
//! this timer (bodies and responses have their own timeouts).

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::H2Options;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

tokio::task_local! {
    /// Set once the head of the request being processed on this task has been read.
    static HEAD_READ: Arc<AtomicBool>;
}

/// Records that the current request's head has been read (called from the request phases of
/// the wrapped app; a no-op outside a [`HeaderTimeout`]).
pub fn head_read() {
    let _ = HEAD_READ.try_with(|r| r.store(true, Ordering::Release));
}

/// An HTTP app whose requests must send their head within `limit`.
pub struct HeaderTimeout<A> {
    pub inner: Arc<A>,
    pub limit: Duration,
}

#[async_trait]
impl<A> HttpServerApp for HeaderTimeout<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let read = Arc::new(AtomicBool::new(false));
        let work = HEAD_READ.scope(read.clone(), self.inner.process_new_http(session, shutdown));
        tokio::pin!(work);
        tokio::select! {
            done = &mut work => done,
            () = tokio::time::sleep(self.limit) => {
                if read.load(Ordering::Acquire) {
                    work.await
                } else {
                    tracing::debug!(limit_ms = self.limit.as_millis(),
                        "request head not received in time: connection closed");
                    None
                }
            }
        }
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.inner.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await;
    }
}
