//! The proxy's Prometheus metrics (`hexyard_proxy_*`). Labels come from bounded sets (repo
//! kind, route class, outcome); never package names.

use crate::upstream::UpstreamError;
use hexyard_common::metrics::LATENCY_BUCKETS;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use std::time::Duration;

/// Every metric of the proxy.
#[derive(Clone)]
pub struct ProxyMetrics {
    pub registry: Registry,
    /// Requests by repo kind, route class and outcome.
    requests: IntCounterVec,
    /// Response body bytes by repo kind and route class.
    bytes: IntCounterVec,
    /// Request latency by route class and outcome.
    latency: HistogramVec,
    /// Hot cache size.
    pub cache_bytes: IntGauge,
    pub cache_entries: IntGauge,
    /// Upstream request latency.
    upstream_latency: Histogram,
    /// Upstream failures by kind.
    upstream_errors: IntCounterVec,
    /// Upstream objects that failed verification.
    pub verify_failed: IntCounter,
    /// Stored copies served because the upstream failed.
    pub stale: IntCounter,
    /// Requests refused by an allowlist.
    pub denied: IntCounter,
}

impl ProxyMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "hexyard_proxy_requests_total",
                "Requests by repo kind, route class and outcome",
            ),
            &["repo_kind", "route", "outcome"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                "hexyard_proxy_response_bytes_total",
                "Response body bytes by repo kind and route class",
            ),
            &["repo_kind", "route"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "hexyard_proxy_request_duration_seconds",
                "Request latency by route class and outcome",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "outcome"],
        )?;
        let cache_bytes =
            IntGauge::new("hexyard_proxy_cache_bytes", "Bytes held by the hot cache")?;
        let cache_entries = IntGauge::new(
            "hexyard_proxy_cache_entries",
            "Objects held by the hot cache",
        )?;
        let upstream_latency = Histogram::with_opts(
            HistogramOpts::new(
                "hexyard_proxy_upstream_request_duration_seconds",
                "Upstream request latency",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "hexyard_proxy_upstream_errors_total",
                "Upstream failures by kind",
            ),
            &["kind"],
        )?;
        let verify_failed = IntCounter::new(
            "hexyard_proxy_verify_failed_total",
            "Upstream objects refused because they failed verification",
        )?;
        let stale = IntCounter::new(
            "hexyard_proxy_stale_served_total",
            "Stored copies served because the upstream failed",
        )?;
        let denied = IntCounter::new(
            "hexyard_proxy_denied_total",
            "Requests refused by a mirror allowlist",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(cache_bytes.clone()))?;
        registry.register(Box::new(cache_entries.clone()))?;
        registry.register(Box::new(upstream_latency.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(verify_failed.clone()))?;
        registry.register(Box::new(stale.clone()))?;
        registry.register(Box::new(denied.clone()))?;
        Ok(ProxyMetrics {
            registry,
            requests,
            bytes,
            latency,
            cache_bytes,
            cache_entries,
            upstream_latency,
            upstream_errors,
            verify_failed,
            stale,
            denied,
        })
    }

    /// Records one finished request.
    pub fn request(
        &self,
        repo_kind: &str,
        route: &str,
        outcome: &str,
        bytes: usize,
        elapsed: Duration,
    ) {
        self.requests
            .with_label_values(&[repo_kind, route, outcome])
            .inc();
        self.bytes
            .with_label_values(&[repo_kind, route])
            .inc_by(bytes as u64);
        self.latency
            .with_label_values(&[route, outcome])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one upstream request.
    pub fn upstream(&self, elapsed: Duration, error: Option<&UpstreamError>) {
        self.upstream_latency.observe(elapsed.as_secs_f64());
        if let Some(e) = error {
            let kind = match e {
                UpstreamError::Timeout(_) => "timeout",
                UpstreamError::Transport(_) => "transport",
                UpstreamError::Status(_) => "status",
                UpstreamError::TooLarge(_) => "too_large",
                UpstreamError::Client(_) => "client",
            };
            self.upstream_errors.with_label_values(&[kind]).inc();
        }
    }
}
