//! `HexProxy`: the pingora `ProxyHttp` implementation. Thin: each phase delegates. Repository
//! files and health checks are answered in `request_filter` (returning `true`, nothing goes
//! upstream); `/api/...` goes to the publisher peer with the body streamed and
//! `Expect: 100-continue` passed through; `logging` writes the access line and the metrics.

use crate::range;
use crate::route::{self, Route};
use crate::serve::{Body, Failure, Hexyard, Outcome, Served};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use hexyard_common::auth::Access;
use hexyard_common::etf::{self, Term};
use http::header::{
    ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    HeaderName, HeaderValue, WWW_AUTHENTICATE,
};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::Instant;

/// Most header fields in a request head (the publisher's hyper refuses more with 431 too).
const MAX_HEADERS: usize = 100;
/// Most bytes in a request head (the publisher's read buffer).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Per-request state.
pub struct Ctx {
    start: Instant,
    route: &'static str,
    repo: Option<String>,
    repo_kind: &'static str,
    package: Option<String>,
    outcome: Outcome,
    status: u16,
    bytes: usize,
    /// A write through the API to this repo: invalidate its cache on success.
    api_write: Option<String>,
}

impl Ctx {
    pub fn new() -> Self {
        Ctx {
            start: Instant::now(),
            route: "invalid",
            repo: None,
            repo_kind: "none",
            package: None,
            outcome: Outcome::Ok,
            status: 0,
            bytes: 0,
            api_write: None,
        }
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Self::new()
    }
}

/// The proxy.
#[derive(Clone)]
pub struct HexProxy {
    pub y: Arc<Hexyard>,
    /// `host:port` of the publisher.
    pub publisher: String,
}

fn text(status: u16, msg: &str) -> (u16, Bytes) {
    (status, Bytes::from(format!("{msg}\n")))
}

/// Response header fields (typed: nothing to parse per request).
type Fields = Vec<(HeaderName, HeaderValue)>;

/// Room for the fields pingora adds to a response head (`date`, `connection`, ...), so that
/// its header map does not grow while being written.
const ADDED_FIELDS: usize = 4;

/// A response head: `fields` and `content-length: len`.
fn head(status: u16, fields: Fields, len: u64) -> Result<Box<ResponseHeader>> {
    let mut resp = ResponseHeader::build(status, Some(fields.len() + 1 + ADDED_FIELDS))?;
    for (k, v) in fields {
        resp.insert_header(k, v)?;
    }
    resp.insert_header(CONTENT_LENGTH, HeaderValue::from(len))?;
    Ok(Box::new(resp))
}

/// A header value from text made here (a quoted hash, a byte range): always valid.
fn value(v: String) -> Result<HeaderValue> {
    HeaderValue::try_from(v).or_err(ErrorType::InternalError, "invalid response header value")
}

async fn respond(
    session: &mut ServerSession,
    status: u16,
    fields: Fields,
    body: Bytes,
    ctx: &mut Ctx,
) -> Result<bool> {
    let head_only = session.req_header().method == http::Method::HEAD;
    let no_body = head_only || status == 304 || body.is_empty();
    session
        .write_response_header(head(status, fields, body.len() as u64)?)
        .await?;
    if !no_body {
        ctx.bytes = body.len();
        session.write_response_body(body, true).await?;
    }
    ctx.status = status;
    Ok(true)
}

async fn respond_text(
    session: &mut ServerSession,
    status: u16,
    msg: &str,
    ctx: &mut Ctx,
) -> Result<bool> {
    let (s, b) = text(status, msg);
    let mut h = vec![(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    )];
    if status == 401 {
        h.push((
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"hexyard\""),
        ));
    }
    if status == 405 {
        h.push((ALLOW, HeaderValue::from_static("GET, HEAD")));
    }
    respond(session, s, h, b, ctx).await
}

/// Whether `If-None-Match` names `etag` (an empty header counts as absent, as rebar3 sends one).
fn not_modified(session: &ServerSession, etag: &str) -> bool {
    let Some(v) = session
        .req_header()
        .headers
        .get(http::header::IF_NONE_MATCH)
    else {
        return false;
    };
    let Ok(v) = v.to_str() else { return false };
    let v = v.trim();
    if v.is_empty() || v == "\"\"" {
        return false;
    }
    v == "*"
        || v.split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag)
}

impl HexProxy {
    /// Refuses a head over the limits the publisher has: answers 431, and the error ends the
    /// request and closes the connection.
    pub async fn check_head(&self, session: &mut ServerSession, ctx: &mut Ctx) -> Result<()> {
        let req = session.req_header();
        let count = req.headers.len();
        let bytes = req.headers.iter().fold(
            req.method.as_str().len() + req.raw_path().len(),
            |n, (k, v)| n + k.as_str().len() + v.len() + 4,
        );
        if count <= MAX_HEADERS && bytes <= MAX_HEAD_BYTES {
            return Ok(());
        }
        ctx.outcome = Outcome::Invalid;
        let msg = format!(
            "request header fields too large: {count} fields, {bytes} bytes (at most \
             {MAX_HEADERS} fields, {MAX_HEAD_BYTES} bytes)"
        );
        respond_text(session, 431, &msg, ctx).await?;
        Error::e_explain(ErrorType::HTTPStatus(431), msg)
    }

    /// Answers a request whose head has been read, unless it is for `/api`: `Ok(true)` when
    /// the answer is written, `Ok(false)` for `/api` (to be forwarded to the publisher).
    pub async fn answer(&self, session: &mut ServerSession, ctx: &mut Ctx) -> Result<bool> {
        let r = route::route(session.req_header().uri.path());
        ctx.route = r.class();
        match r {
            Route::Api => {
                ctx.outcome = Outcome::Forwarded;
                let m = &session.req_header().method;
                if m != http::Method::GET && m != http::Method::HEAD {
                    ctx.api_write = self.api_repo(session.req_header().uri.path());
                }
                Ok(false)
            }
            Route::Healthz => respond_text(session, 200, "ok", ctx).await,
            Route::Readyz => match self.y.ready().await {
                Ok(store) => {
                    respond_text(session, 200, &format!("ready: store {store}"), ctx).await
                }
                Err(e) => {
                    ctx.outcome = Outcome::StoreError;
                    respond_text(
                        session,
                        503,
                        &format!("not ready: store unreachable: {e}"),
                        ctx,
                    )
                    .await
                }
            },
            Route::NotFound(m) => {
                ctx.outcome = Outcome::NotFound;
                respond_text(session, 404, m, ctx).await
            }
            Route::BadRequest(m) => {
                ctx.outcome = Outcome::Invalid;
                respond_text(session, 400, &format!("bad request: {m}"), ctx).await
            }
            Route::Repo { repo, object } => self.repo_request(session, ctx, repo, object).await,
        }
    }

    /// The access line and the metrics of a finished request.
    pub fn log(&self, session: &ServerSession, e: Option<&Error>, ctx: &Ctx) {
        let status = session
            .response_written()
            .map_or(ctx.status, |r| r.status.as_u16());
        let elapsed = ctx.start.elapsed();
        self.y.metrics.request(
            ctx.repo_kind,
            ctx.route,
            ctx.outcome.as_str(),
            ctx.bytes,
            elapsed,
        );
        let req = session.req_header();
        tracing::info!(
            target: "hexyard::access",
            method = %req.method,
            path = %req.uri.path(),
            repo = ctx.repo.as_deref().unwrap_or("-"),
            package = ctx.package.as_deref().unwrap_or("-"),
            route = ctx.route,
            outcome = ctx.outcome.as_str(),
            status,
            bytes = ctx.bytes,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            error = e.map(|e| e.to_string()).unwrap_or_default(),
            "request"
        );
    }

    /// The repository a `/api` path targets (for cache invalidation after writes).
    fn api_repo(&self, path: &str) -> Option<String> {
        let mut segs = path.split('/').filter(|s| !s.is_empty());
        segs.next(); // api
        match (segs.next(), segs.next()) {
            (Some("repos"), Some(r)) => Some(r.to_owned()),
            _ => self.y.default_repo.clone(),
        }
    }

    async fn repo_request(
        &self,
        session: &mut ServerSession,
        ctx: &mut Ctx,
        repo: Option<String>,
        object: route::Object,
    ) -> Result<bool> {
        let method = &session.req_header().method;
        if method != http::Method::GET && method != http::Method::HEAD {
            ctx.outcome = Outcome::Invalid;
            return respond_text(
                session,
                405,
                "method not allowed: repository files are read-only",
                ctx,
            )
            .await;
        }
        ctx.package = object.package().map(str::to_owned);
        let Some(repo) = repo.or_else(|| self.y.default_repo.clone()) else {
            ctx.outcome = Outcome::NotFound;
            return respond_text(
                session,
                404,
                "not found: no repository in the path and no default_repo",
                ctx,
            )
            .await;
        };
        ctx.repo = Some(repo.clone());
        let Some(r) = self.y.repos.get(&repo) else {
            ctx.outcome = Outcome::NotFound;
            return respond_text(session, 404, &format!("unknown repository {repo:?}"), ctx).await;
        };
        ctx.repo_kind = r.kind();
        if !r.public() {
            let header = session
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            match self.y.auth.authenticate(header) {
                Err(_) => {
                    ctx.outcome = Outcome::Unauthorized;
                    return respond_text(
                        session,
                        401,
                        &format!("invalid API key for private repository {repo:?}"),
                        ctx,
                    )
                    .await;
                }
                Ok(None) => {
                    ctx.outcome = Outcome::Unauthorized;
                    return respond_text(
                        session,
                        401,
                        &format!("repository {repo:?} is private: send a key with read access"),
                        ctx,
                    )
                    .await;
                }
                Ok(Some(p)) if !p.allows(&repo, Access::Read) => {
                    ctx.outcome = Outcome::Forbidden;
                    return respond_text(
                        session,
                        403,
                        &format!("key {:?} has no read access to repository {repo:?}", p.name),
                        ctx,
                    )
                    .await;
                }
                Ok(Some(_)) => {}
            }
        }
        match self.y.serve(&repo, &object).await {
            Ok(served) => self.send_file(session, served, ctx).await,
            Err(f) => fail(session, f, ctx).await,
        }
    }

    /// Sends a repository file: 304 for a matching `If-None-Match`, 206/416 for a `Range`,
    /// else 200; a large stored object streamed chunk by chunk.
    async fn send_file(
        &self,
        session: &mut ServerSession,
        served: Served,
        ctx: &mut Ctx,
    ) -> Result<bool> {
        let Served {
            loaded,
            content_type,
            cache_control,
        } = served;
        ctx.outcome = loaded.outcome;
        let mut etag = loaded.etag;
        let mut len = loaded.body.len();
        // content-type, cache-control, etag, and content-range and accept-ranges to come.
        let mut headers = Vec::with_capacity(5);
        headers.extend([
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static(cache_control)),
            (ETAG, value(etag.clone())?),
        ]);
        if not_modified(session, &etag) {
            return respond(session, 304, headers, Bytes::new(), ctx).await;
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        let mut chunks = None;
        if let Body::Large(l) = &loaded.body
            && !head_only
        {
            match self.y.open_large(l).await {
                Ok((size, new_etag, s)) => {
                    len = size;
                    if let Some(e) = new_etag {
                        etag = e;
                        headers[2].1 = value(etag.clone())?;
                    }
                    chunks = Some(s);
                }
                Err(f) => return fail(session, f, ctx).await,
            }
        }
        let h = &session.req_header().headers;
        let header = |name: http::header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
        let plan = range::plan(
            header(http::header::RANGE),
            header(http::header::IF_RANGE),
            &etag,
            len,
        );
        let (status, start, end) = match plan {
            range::Plan::Whole => (200, 0, len),
            range::Plan::Part { start, end } => {
                headers.push((CONTENT_RANGE, value(format!("bytes {start}-{end}/{len}"))?));
                (206, start, end + 1)
            }
            range::Plan::Unsatisfiable => {
                headers.push((CONTENT_RANGE, value(format!("bytes */{len}"))?));
                return respond(session, 416, headers, Bytes::new(), ctx).await;
            }
        };
        headers.push((ACCEPT_RANGES, HeaderValue::from_static("bytes")));
        let Some(mut chunks) = chunks else {
            let body = match &loaded.body {
                Body::Full(b) => b.slice(bounds(start, end, b.len())),
                // HEAD of a large object: only the headers.
                Body::Large(_) => {
                    return respond_head(session, status, headers, end - start, ctx).await;
                }
            };
            return respond(session, status, headers, body, ctx).await;
        };
        // A large object: headers, then the chunks inside [start, end).
        session
            .write_response_header(head(status, headers, end - start)?)
            .await?;
        ctx.status = status;
        let mut offset = 0u64;
        while offset < end {
            let chunk = match chunks.next().await {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    tracing::error!(error = %e, "store stream failed mid-body");
                    ctx.outcome = Outcome::StoreError;
                    return Error::e_explain(ErrorType::WriteError, "store stream cut short");
                }
                None => {
                    ctx.outcome = Outcome::StoreError;
                    return Error::e_explain(ErrorType::WriteError, "store stream ended early");
                }
            };
            let at = offset;
            offset += chunk.len() as u64;
            if offset <= start {
                continue;
            }
            let lo = start.saturating_sub(at);
            let hi = (end - at).min(chunk.len() as u64);
            let piece = chunk.slice(bounds(lo, hi, chunk.len()));
            ctx.bytes += piece.len();
            session.write_response_body(piece, offset >= end).await?;
        }
        Ok(true)
    }
}

/// `start..end` as a slice range of a buffer of `len` bytes (clamped).
fn bounds(start: u64, end: u64, len: usize) -> std::ops::Range<usize> {
    let end = usize::try_from(end).unwrap_or(len).min(len);
    let start = usize::try_from(start).unwrap_or(end).min(end);
    start..end
}

/// The headers of a response whose body is not sent (HEAD), with its length.
async fn respond_head(
    session: &mut ServerSession,
    status: u16,
    fields: Fields,
    len: u64,
    ctx: &mut Ctx,
) -> Result<bool> {
    session
        .write_response_header(head(status, fields, len)?)
        .await?;
    ctx.status = status;
    Ok(true)
}

async fn fail(session: &mut ServerSession, f: Failure, ctx: &mut Ctx) -> Result<bool> {
    ctx.outcome = f.outcome;
    respond_text(session, f.status, &f.message, ctx).await
}

#[async_trait]
impl ProxyHttp for HexProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    /// The head has been read: stops the header timer (see [`crate::front`]), and refuses a
    /// head over the publisher's limits.
    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        crate::front::head_read();
        self.check_head(session.as_downstream_mut(), ctx).await
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        self.answer(session.as_downstream_mut(), ctx).await
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.publisher.as_str(),
            false,
            String::new(),
        )))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
            let ip = addr.ip().to_string();
            let forwarded = match upstream_request
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip,
            };
            upstream_request.insert_header("x-forwarded-for", forwarded)?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        if status >= 200 {
            ctx.status = status;
        }
        if (200..300).contains(&status)
            && let Some(repo) = &ctx.api_write
        {
            // Read-your-writes: the publisher changed this repo's files.
            self.y.invalidate_repo(repo);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.outcome == Outcome::Forwarded
            && let Some(b) = body
        {
            ctx.bytes += b.len();
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        ctx.status = code;
        if code > 0 {
            let term = Term::map([
                ("status", Term::Int(i64::from(code))),
                (
                    "message",
                    Term::bin("the hexyard publisher is not reachable; try again"),
                ),
            ]);
            let body = Bytes::from(etf::encode(&term));
            if let Ok(mut resp) = ResponseHeader::build(code, Some(2)) {
                let _ = resp.insert_header("content-type", "application/vnd.hex+erlang");
                let _ = resp.insert_header("content-length", body.len().to_string());
                if session
                    .write_response_header(Box::new(resp), false)
                    .await
                    .is_ok()
                {
                    let _ = session.write_response_body(Some(body), true).await;
                }
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        self.log(session.as_downstream(), e, ctx);
    }
}
