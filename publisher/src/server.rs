//! The HTTP server: accept loop, graceful shutdown, body limits, access log.

use crate::error::ApiError;
use crate::respond::{Format, Reply};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What handles one request. Implemented by the publisher's `App`.
pub trait Handler: Send + Sync + 'static {
    /// Handles a request; never fails (errors are responses).
    fn handle(self: Arc<Self>, req: Request<Incoming>) -> impl Future<Output = Reply> + Send;
}

/// Serves `handler` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (up to `grace`). A connection that has not sent a whole request head within
/// `header_read_timeout` is closed (slowloris).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    header_read_timeout: Duration,
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
                            let reply = handler.handle(req).await;
                            Ok::<_, Infallible>(into_response(reply))
                        }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_read_timeout)
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
    let _ = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
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
    req: Request<Incoming>,
    limit: u64,
    what: &str,
) -> Result<(http::request::Parts, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let expects = parts
        .headers
        .get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
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
pub fn format_of(req: &Request<Incoming>) -> Format {
    Format::from_headers(req.headers())
}
