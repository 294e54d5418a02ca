//! Prometheus building blocks shared by both processes.
//!
//! Each process declares its own metrics struct (names `hexyard_<process>_...`, labels from
//! bounded sets only, never package names) and registers it in a [`prometheus::Registry`];
//! this module holds the pieces they share: latency buckets and the text encoding.

use prometheus::{Encoder, Registry, TextEncoder};

/// Latency buckets in seconds, from 100 µs (a hot cache hit) to 30 s (a slow upstream).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The content type of the text exposition format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Renders every metric of `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding into a Vec only fails on a malformed metric family, which the typed
    // prometheus API cannot produce; an empty page is the safe answer if it ever does.
    if TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .is_err()
    {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

    #[test]
    fn renders_registered_metrics() {
        let r = Registry::new();
        let c =
            IntCounterVec::new(Opts::new("hexyard_test_total", "help text"), &["outcome"]).unwrap();
        let h = HistogramVec::new(
            HistogramOpts::new("hexyard_test_seconds", "latency").buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .unwrap();
        r.register(Box::new(c.clone())).unwrap();
        r.register(Box::new(h.clone())).unwrap();
        c.with_label_values(&["hit"]).inc_by(3);
        h.with_label_values(&["tarball"]).observe(0.002);
        let text = String::from_utf8(render(&r)).unwrap();
        assert!(
            text.contains("# HELP hexyard_test_total help text"),
            "{text}"
        );
        assert!(
            text.contains("hexyard_test_total{outcome=\"hit\"} 3"),
            "{text}"
        );
        assert!(text.contains("hexyard_test_seconds_bucket{route=\"tarball\",le=\"0.0025\"} 1"));
        assert!(text.contains("hexyard_test_seconds_bucket{route=\"tarball\",le=\"0.001\"} 0"));
    }
}
