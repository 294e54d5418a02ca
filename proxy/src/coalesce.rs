//! `Coalesce`: the write side of a client connection, so that a response leaves in as few
//! system calls (and client wake-ups) as it can.
//!
//! Small writes (a response header, a registry file) are gathered up to [`CAPACITY`] bytes
//! and sent at the next flush (pingora flushes at the end of every response). A large write
//! goes out together with what is gathered in one vectored write: a 100 KiB tarball and its
//! header leave in one `writev`, where a plain buffered writer would send the header alone
//! first (one more system call, and a wake-up of the client for 250 bytes).
//!
//! Reads and pingora's connection traits pass through to the wrapped stream.

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How many bytes of small writes are gathered before they are sent.
pub const CAPACITY: usize = 16 * 1024;

/// A client connection whose writes are coalesced (see the module documentation).
#[derive(Debug)]
pub struct Coalesce {
    inner: Stream,
    /// Gathered bytes; those before `sent` have been written already.
    pending: Vec<u8>,
    sent: usize,
}

impl Coalesce {
    pub fn new(inner: Stream) -> Self {
        Coalesce {
            inner,
            pending: Vec::new(),
            sent: 0,
        }
    }

    fn queued(&self) -> &[u8] {
        rest(&self.pending, self.sent)
    }

    fn clear(&mut self) {
        self.pending.clear();
        self.sent = 0;
    }

    /// Writes out every gathered byte.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.queued().is_empty() {
            let queued = rest(&self.pending, self.sent);
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, queued))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.clear();
        Poll::Ready(Ok(()))
    }
}

/// The bytes of `pending` from `sent` on.
fn rest(pending: &[u8], sent: usize) -> &[u8] {
    pending.get(sent..).unwrap_or_default()
}

impl AsyncWrite for Coalesce {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let queued = this.queued().len();
            if queued + buf.len() <= CAPACITY {
                this.pending.drain(..this.sent);
                this.sent = 0;
                this.pending.extend_from_slice(buf);
                return Poll::Ready(Ok(buf.len()));
            }
            if queued == 0 {
                this.clear();
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            }
            let bufs = [
                IoSlice::new(rest(&this.pending, this.sent)),
                IoSlice::new(buf),
            ];
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n <= queued {
                // Only gathered bytes went out (all of them, or part): go on with the rest.
                this.sent += n;
                continue;
            }
            this.clear();
            return Poll::Ready(Ok(n - queued));
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for Coalesce {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

#[async_trait]
impl Shutdown for Coalesce {
    async fn shutdown(&mut self) {
        // What is gathered goes out first (best effort: the connection is closing).
        let _ = std::future::poll_fn(|cx| self.poll_drain(cx)).await;
        self.inner.shutdown().await;
    }
}

impl UniqueID for Coalesce {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Coalesce {}

impl GetTimingDigest for Coalesce {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Coalesce {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Coalesce {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Coalesce {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::AsyncWriteExt;

    /// A connection that accepts at most `limit` bytes per write and records each write.
    #[derive(Debug, Default)]
    struct Recorder {
        limit: usize,
        out: Arc<Mutex<(Vec<u8>, Vec<usize>)>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut out = self.out.lock().unwrap();
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.limit - n);
                out.0.extend_from_slice(&b[..take]);
                n += take;
            }
            out.1.push(n);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    impl AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    #[async_trait]
    impl Shutdown for Recorder {
        async fn shutdown(&mut self) {}
    }
    impl UniqueID for Recorder {
        fn id(&self) -> UniqueIDType {
            0
        }
    }
    impl Ssl for Recorder {}
    impl GetTimingDigest for Recorder {
        fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
            vec![]
        }
    }
    impl GetProxyDigest for Recorder {
        fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
            None
        }
    }
    impl GetSocketDigest for Recorder {
        fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
            None
        }
    }
    impl Peek for Recorder {}

    type Out = Arc<Mutex<(Vec<u8>, Vec<usize>)>>;

    fn coalesce(limit: usize) -> (Coalesce, Out) {
        let r = Recorder {
            limit,
            ..Recorder::default()
        };
        let out = r.out.clone();
        (Coalesce::new(Box::new(r)), out)
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[tokio::test]
    async fn a_header_and_a_large_body_leave_in_one_write() {
        let (mut c, out) = coalesce(usize::MAX);
        let (head, body) = (bytes(244, 1), bytes(100 * 1024, 2));
        c.write_all(&head).await.unwrap();
        c.write_all(&body).await.unwrap();
        c.flush().await.unwrap();
        let out = out.lock().unwrap();
        assert_eq!(out.1, vec![head.len() + body.len()]);
        assert_eq!(out.0, [head, body].concat());
    }

    #[tokio::test]
    async fn small_writes_are_gathered_until_the_flush() {
        let (mut c, out) = coalesce(usize::MAX);
        c.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        c.write_all(&bytes(2000, 3)).await.unwrap();
        assert!(
            out.lock().unwrap().1.is_empty(),
            "nothing is sent before the flush"
        );
        c.flush().await.unwrap();
        assert_eq!(out.lock().unwrap().1, vec![19 + 2000]);
        c.write_all(b"next").await.unwrap();
        c.flush().await.unwrap();
        assert_eq!(out.lock().unwrap().1, vec![19 + 2000, 4]);
    }

    #[tokio::test]
    async fn short_writes_lose_and_reorder_nothing() {
        for limit in [1, 7, 300, CAPACITY - 1, CAPACITY + 5] {
            let (mut c, out) = coalesce(limit);
            let chunks: Vec<Vec<u8>> = [10, CAPACITY, 3, 2 * CAPACITY + 1, 0, 500, CAPACITY]
                .iter()
                .enumerate()
                .map(|(i, &n)| bytes(n, i as u8))
                .collect();
            for ch in &chunks {
                c.write_all(ch).await.unwrap();
            }
            c.flush().await.unwrap();
            assert!(out.lock().unwrap().0 == chunks.concat(), "limit {limit}");
        }
    }
}
