//! Fetching from a mirror's upstream (repo.hex.pm by default): timeouts, retries with
//! exponential backoff and jitter on transport errors and 5xx, an optional HTTP(S) proxy, a cap
//! on the body size, conditional requests with `If-None-Match`. Never asks for compression.

use bytes::{Bytes, BytesMut};
use hexyard_common::config::UpstreamConfig;
use std::time::Duration;

/// What the upstream answered.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// 200 with the body and the upstream ETag, if any.
    Ok { body: Bytes, etag: Option<String> },
    /// 304 to a conditional request.
    NotModified,
    /// 404 (or 403: hex.pm answers 403 for missing objects on its CDN).
    NotFound,
}

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream timed out: {0}")]
    Timeout(String),
    #[error("upstream unreachable: {0}")]
    Transport(String),
    #[error("upstream answered {0}")]
    Status(u16),
    #[error("upstream body over {0} bytes")]
    TooLarge(u64),
    #[error("upstream client: {0}")]
    Client(String),
}

impl UpstreamError {
    /// The status a client gets when nothing stored can stand in: 504 for timeouts, else 502.
    pub fn status(&self) -> u16 {
        match self {
            UpstreamError::Timeout(_) => 504,
            _ => 502,
        }
    }
}

/// A client for one upstream.
pub struct Upstream {
    client: reqwest::Client,
    base: String,
    retries: u32,
}

impl Upstream {
    /// Builds the client from a mirror's upstream config.
    pub fn new(cfg: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("hexyard/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(3));
        b = match &cfg.effective_proxy {
            Some(p) => {
                b.proxy(reqwest::Proxy::all(p).map_err(|e| UpstreamError::Client(e.to_string()))?)
            }
            None => b.no_proxy(),
        };
        let client = b
            .build()
            .map_err(|e| UpstreamError::Client(e.to_string()))?;
        Ok(Upstream {
            client,
            base: cfg.url.trim_end_matches('/').to_owned(),
            retries: cfg.retries,
        })
    }

    /// GETs `base/rel` (`rel` like `packages/foo`), at most `limit` bytes of body.
    pub async fn get(
        &self,
        rel: &str,
        if_none_match: Option<&str>,
        limit: u64,
    ) -> Result<Fetched, UpstreamError> {
        let url = format!("{}/{rel}", self.base);
        let mut attempt = 0;
        loop {
            match self.once(&url, if_none_match, limit).await {
                Ok(f) => return Ok(f),
                Err(e) => {
                    let retryable =
                        matches!(e, UpstreamError::Timeout(_) | UpstreamError::Transport(_))
                            || matches!(e, UpstreamError::Status(s) if s >= 500);
                    if !retryable || attempt >= self.retries {
                        return Err(e);
                    }
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }

    async fn once(
        &self,
        url: &str,
        if_none_match: Option<&str>,
        limit: u64,
    ) -> Result<Fetched, UpstreamError> {
        let mut req = self.client.get(url);
        if let Some(etag) = if_none_match {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let mut resp = req.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            304 => return Ok(Fetched::NotModified),
            403 | 404 => return Ok(Fetched::NotFound),
            s => return Err(UpstreamError::Status(s)),
        }
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(UpstreamError::TooLarge(limit));
        }
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(UpstreamError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Ok {
            body: body.freeze(),
            etag,
        })
    }
}

fn classify(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout(e.to_string())
    } else {
        UpstreamError::Transport(e.to_string())
    }
}

/// 100 ms, 200 ms, 400 ms, ... (capped at 5 s), plus up to 50% jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(6)).min(5_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = u64::from(nanos) % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(1) >= Duration::from_millis(200) && backoff(1) <= Duration::from_millis(300)
        );
        assert!(backoff(10) <= Duration::from_millis(7_500));
    }
}
