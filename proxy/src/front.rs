//! `Front`: the proxy's HTTP/1 connection loop, in front of pingora's `HttpProxy`.
//!
//! For each request on a connection it reads until the request line is in, and then:
//! - a `GET`/`HEAD` that is not for `/api` (repository files, health checks: almost every
//!   request) is answered here, on the core HTTP session, by the same code the proxy's
//!   `request_filter` runs ([`HexProxy::answer`]): no proxy session, module chain or upstream
//!   machinery is set up for a request that never goes upstream;
//! - anything else (`/api/...`, other methods, unusual request targets) goes to the
//!   `HttpProxy`, which forwards `/api` to the publisher and answers the rest the same way.
//!
//! The bytes read to see the request line are handed to the session as its first input
//! (pingora's pipelined-prefix hook), so nothing is read twice or lost.
//!
//! It also bounds the time a client takes to send a request head. pingora times out each read
//! of a head separately (60 s), so a client that trickles one byte a second (slowloris) would
//! hold a connection and a task for ever. Here each request on a connection must have its
//! whole head read within `limit` of the connection being ready for it (accepted, or done
//! with the previous response when kept alive), or the connection is closed without an
//! answer. On the proxy's path, the proxy marks a head as read in its first phase through
//! [`head_read`]; from then on the request runs unbounded by this timer (bodies and responses
//! have their own timeouts).

use crate::coalesce::Coalesce;
use crate::service::{Ctx, HexProxy};
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::prelude::*;
use pingora::protocols::Stream;
use pingora::protocols::http::ServerSession;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The first read's buffer (pingora's own initial request-head buffer is as large).
const READ_CHUNK: usize = 4096;
/// Past this many bytes without a line feed, the request goes to the proxy as it is (which
/// answers or refuses it as any other).
const LINE_LIMIT: usize = 8 * 1024;
/// The keep-alive pingora gives a new connection (seconds).
const KEEPALIVE_SECS: u64 = 60;

tokio::task_local! {
    /// Set once the head of the request being processed on this task has been read.
    static HEAD_READ: Arc<AtomicBool>;
}

/// Records that the current request's head has been read (called from the request phases of
/// the proxy; a no-op outside [`Front`]'s proxy path).
pub fn head_read() {
    let _ = HEAD_READ.try_with(|r| r.store(true, Ordering::Release));
}

/// The proxy's connection handler.
pub struct Front {
    pub hex: Arc<HexProxy>,
    pub proxy: Arc<HttpProxy<HexProxy>>,
    /// How long a client has to send a request head.
    pub limit: Duration,
    /// Notified when the service shuts down: idle kept-alive connections close at once.
    shutdown: Notify,
}

impl Front {
    pub fn new(hex: Arc<HexProxy>, proxy: Arc<HttpProxy<HexProxy>>, limit: Duration) -> Self {
        Front {
            hex,
            proxy,
            limit,
            shutdown: Notify::new(),
        }
    }

    /// Reads from `stream` until the request line is in (a line feed, or [`LINE_LIMIT`]
    /// bytes). `None`: the client closed or failed, the deadline passed, or the service is
    /// shutting down.
    async fn read_line(&self, stream: &mut Stream, deadline: Instant) -> Option<BytesMut> {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            let read = tokio::select! {
                biased;
                r = stream.read_buf(&mut buf) => r,
                () = tokio::time::sleep_until(deadline) => {
                    tracing::debug!(limit_ms = self.limit.as_millis(),
                        "request head not received in time: connection closed");
                    return None;
                }
                () = self.shutdown.notified() => return None,
            };
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            if buf.contains(&b'\n') || buf.len() >= LINE_LIMIT {
                return Some(buf);
            }
        }
    }

    /// Answers a request here (see [`direct`]).
    async fn answer(
        &self,
        mut session: ServerSession,
        deadline: Instant,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match tokio::time::timeout_at(deadline, session.read_request()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return None,
            Ok(Err(e)) => {
                if matches!(e.etype(), ErrorType::InvalidHTTPHeader) {
                    let _ = session.respond_error(400).await;
                }
                session.shutdown().await;
                return None;
            }
            Err(_) => {
                tracing::debug!(
                    limit_ms = self.limit.as_millis(),
                    "request head not received in time: connection closed"
                );
                return None;
            }
        }
        if *shutdown.borrow() {
            // The service stops soon: no further request on this connection.
            session.set_keepalive(None);
        }
        let mut ctx = Ctx::new();
        let answered = match self.hex.check_head(&mut session, &mut ctx).await {
            Ok(()) => self.hex.answer(&mut session, &mut ctx).await,
            Err(e) => Err(e),
        };
        let error = match answered {
            Ok(true) => {
                self.hex.log(&session, None, &ctx);
                let settings = HttpPersistentSettings::for_session(&session);
                return session
                    .finish()
                    .await
                    .ok()
                    .flatten()
                    .map(|s| ReusedHttpStream::from_reusable_stream(s, settings));
            }
            // `direct` keeps `/api` away from here; should one arrive, it is not forwarded
            // (its head is consumed) but refused, and the connection closed.
            Ok(false) => Error::explain(
                ErrorType::HTTPStatus(500),
                "an /api request reached the local path",
            ),
            Err(e) => e,
        };
        if session.response_written().is_none() {
            let status = match error.etype() {
                ErrorType::HTTPStatus(s) => *s,
                _ => 500,
            };
            let _ = session
                .respond_error_with_body(status, bytes::Bytes::from_static(b"internal error\n"))
                .await;
        }
        self.hex.log(&session, Some(&error), &ctx);
        session.shutdown().await;
        None
    }

    /// Hands a request to the proxy, with the rest of the head-read deadline.
    async fn forward(
        &self,
        session: ServerSession,
        deadline: Instant,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let read = Arc::new(AtomicBool::new(false));
        let work = HEAD_READ.scope(read.clone(), self.proxy.process_new_http(session, shutdown));
        tokio::pin!(work);
        tokio::select! {
            done = &mut work => done,
            () = tokio::time::sleep_until(deadline) => {
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
}

/// Whether the request starting with `head` is answered by [`Front`] itself: a `GET` or
/// `HEAD` of an origin-form target made only of visible ASCII without `%` or `#` (so that the
/// path pingora parses is these very bytes, and routes the same) whose first segment is not
/// `api`.
pub fn direct(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return false;
    };
    if method != b"GET" && method != b"HEAD" {
        return false;
    }
    if target.first() != Some(&b'/')
        || !target
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'%' && b != b'#')
    {
        return false;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    path.split(|&b| b == b'/').find(|s| !s.is_empty()) != Some(b"api".as_slice())
}

#[async_trait]
impl ServerApp for Front {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut stream: Stream = Box::new(Coalesce::new(stream));
        let mut settings: Option<HttpPersistentSettings> = None;
        loop {
            let deadline = Instant::now() + self.limit;
            let head = self.read_line(&mut stream, deadline).await?;
            let local = direct(&head);
            let mut session = ServerSession::new_http1(stream);
            match settings.take() {
                Some(s) => s.apply_to_session(&mut session),
                None => session.set_keepalive((!*shutdown.borrow()).then_some(KEEPALIVE_SECS)),
            }
            session.set_pipelined_prefix(head);
            let reused = if local {
                self.answer(session, deadline, shutdown).await
            } else {
                self.forward(session, deadline, shutdown).await
            }?;
            (stream, settings) = reused.consume();
        }
    }

    async fn cleanup(&self) {
        self.shutdown.notify_waiters();
        self.proxy.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::direct;

    #[test]
    fn only_plain_reads_outside_api_are_direct() {
        for yes in [
            "GET /repos/hexpm/packages/jason HTTP/1.1\r\n",
            "HEAD /tarballs/jason-1.4.0.tar HTTP/1.1\r\n",
            "GET /healthz HTTP/1.1\r\n",
            "GET /names?x=1 HTTP/1.1\r\n",
            "GET //repos//r/names HTTP/1.1",
            "GET /apis/x HTTP/1.1\r\n",
        ] {
            assert!(direct(yes.as_bytes()), "{yes:?}");
        }
        for no in [
            "GET /api/packages/x HTTP/1.1\r\n",
            "GET //api HTTP/1.1\r\n",
            "GET /api?x HTTP/1.1\r\n",
            "POST /repos/r/names HTTP/1.1\r\n",
            "PUT /api/packages HTTP/1.1\r\n",
            "GET /%61pi/packages/x HTTP/1.1\r\n",
            "GET http://example.com/api/x HTTP/1.1\r\n",
            "GET /names#x HTTP/1.1\r\n",
            "GET /n\u{e9}mes HTTP/1.1\r\n",
            "get /names HTTP/1.1\r\n",
            "GET",
            "",
        ] {
            assert!(!direct(no.as_bytes()), "{no:?}");
        }
    }
}
