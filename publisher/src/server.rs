//! The HTTP server: accept loop, graceful shutdown, body limits, access log.

use crate::error::ApiError;
use crate::respond::{Format, Reply};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// What handles one request. Implemented by the publisher's `App`.
pub trait Handler: Send + Sync + 'static {
    /// Handles a request; never fails (errors are responses).
    fn handle(self: Arc<Self>, req: Request<Body>) -> impl Future<Output = Reply> + Send;
}

/// How [`serve`] runs.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// How long in-flight requests may go on after shutdown.
    pub grace: Duration,
    /// A connection that has not sent a whole request head within this is closed (slowloris).
    pub header_read_timeout: Duration,
    /// The most of a request body a handler left unread that is read and discarded.
    pub drain_bytes: u64,
    /// How long that may take.
    pub drain_time: Duration,
}

/// A request body. When the handler drops it before its end (a request refused before its
/// body is read: no key, a bad route), it goes back to [`serve`], which reads and discards the
/// rest in the background while the answer is sent, up to [`ServeOptions::drain_bytes`] and
/// [`ServeOptions::drain_time`]. hyper alone reads only what has already arrived and then stops
/// reading, and a connection closed with unread bytes is reset by the kernel; the reset can
/// destroy the answer on its way (through the proxy, whose connections to the publisher are
/// reused, a refused upload came back as a 502 "publisher not reachable").
#[derive(Debug)]
pub struct Body {
    inner: Option<Incoming>,
    /// Whether the handler read from the body. With `Expect: 100-continue` a body nobody read
    /// is never sent (hyper then sends no `100 Continue`): nothing to drain.
    polled: bool,
    expects_continue: bool,
    back: Option<oneshot::Sender<Incoming>>,
}

impl Body {
    /// Wraps the body of `req`; the receiver gets it back if it is dropped unfinished.
    fn wrap(req: Request<Incoming>) -> (Request<Body>, oneshot::Receiver<Incoming>) {
        let (tx, rx) = oneshot::channel();
        let expects_continue = expects_continue(req.headers());
        let req = req.map(|inner| Body {
            inner: Some(inner),
            polled: false,
            expects_continue,
            back: Some(tx),
        });
        (req, rx)
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.polled = true;
        match self.inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), hyper::body::Body::size_hint)
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if self.expects_continue && !self.polled {
            return;
        }
        if let (Some(inner), Some(back)) = (self.inner.take(), self.back.take())
            && !hyper::body::Body::is_end_stream(&inner)
        {
            let _ = back.send(inner);
        }
    }
}

/// Whether the client sent `Expect: 100-continue` (it waits for a `100 Continue` before the
/// body, which hyper sends only when the body is first read).
fn expects_continue(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

/// Reads and discards `body`, up to `max_bytes` and `max_time`; past them (or when its
/// `Content-Length` says it is longer) it is dropped, and hyper closes the connection after
/// the answer.
async fn drain(mut body: Incoming, max_bytes: u64, max_time: Duration) {
    if hyper::body::Body::size_hint(&body).lower() > max_bytes {
        return;
    }
    let mut read = 0u64;
    let _ = tokio::time::timeout(max_time, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                read = read.saturating_add(data.len() as u64);
                if read > max_bytes {
                    return;
                }
            }
        }
    })
    .await;
}

/// Serves `handler` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (see [`ServeOptions`]).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
    opts: ServeOptions,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let mut stop = stop_rx.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let (req, mut unread) = Body::wrap(req);
                            let reply = handler.handle(req).await;
                            if let Ok(rest) = unread.try_recv() {
                                tokio::spawn(drain(rest, opts.drain_bytes, opts.drain_time));
                            }
                            Ok::<_, Infallible>(into_response(reply))
                        }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(opts.header_read_timeout)
                        .max_buf_size(64 * 1024)
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        res = conn.as_mut() => {
                            if let Err(e) = res {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                            }
                        }
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(opts.grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(reply.body));
    *resp.status_mut() = reply.status;
    for (k, v) in reply.headers {
        if let Ok(v) = http::HeaderValue::from_str(&v) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

/// Reads a request body of at most `limit` bytes. A declared `Content-Length` over the limit
/// is refused before a byte is read, so a client that sent `Expect: 100-continue` gets the 413
/// instead of a `100 Continue` (hyper sends that only when the body is first polled).
pub async fn read_body(
    req: Request<Body>,
    limit: u64,
    what: &str,
) -> Result<(http::request::Parts, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let expects = expects_continue(&parts.headers);
    match declared {
        Some(n) if n > limit => {
            return Err(ApiError::too_large(format!(
                "{what} is {n} bytes, over the limit of {limit} bytes"
            ))
            .with_error("tar", "too big"));
        }
        None if expects => {
            return Err(ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "Expect: 100-continue needs a Content-Length",
            ));
        }
        _ => {}
    }
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, cap).collect().await {
        Ok(c) => Ok((parts, c.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(format!(
            "{what} is over the limit of {limit} bytes"
        ))
        .with_error("tar", "too big")),
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// The format a request asked for.
pub fn format_of(req: &Request<Body>) -> Format {
    Format::from_headers(req.headers())
}
