//! The publisher's Prometheus metrics (`hexyard_publisher_*`), served on its metrics port.
//! Labels are bounded: route class, status class, rejection reason; never package names.

use hexyard_common::metrics::LATENCY_BUCKETS;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use std::time::Duration;

/// Every metric of the publisher.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Requests by route class and status class (2xx, 4xx, ...).
    requests: IntCounterVec,
    /// Request latency by route class.
    latency: HistogramVec,
    /// Releases published (new or replaced).
    pub publishes: IntCounter,
    /// Uploads refused, by reason (the tarball error kind, `auth`, `exists`, ...).
    pub rejections: IntCounterVec,
    /// Duration of full index rebuilds.
    pub rebuild_seconds: Histogram,
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "hexyard_publisher_requests_total",
                "API requests by route class and status class",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "hexyard_publisher_request_duration_seconds",
                "API request latency by route class",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let publishes = IntCounter::new(
            "hexyard_publisher_publishes_total",
            "Releases published (new or replaced)",
        )?;
        let rejections = IntCounterVec::new(
            Opts::new(
                "hexyard_publisher_rejections_total",
                "Uploads refused, by reason",
            ),
            &["reason"],
        )?;
        let rebuild_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "hexyard_publisher_index_rebuild_duration_seconds",
                "Duration of full index rebuilds",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(publishes.clone()))?;
        registry.register(Box::new(rejections.clone()))?;
        registry.register(Box::new(rebuild_seconds.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            publishes,
            rejections,
            rebuild_seconds,
        })
    }

    /// Records one finished request.
    pub fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.with_label_values(&[route, class]).inc();
        self.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a refused upload.
    pub fn reject(&self, reason: &str) {
        self.rejections.with_label_values(&[reason]).inc();
    }
}
