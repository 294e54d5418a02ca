//! Benchmarks of hexyard; see `benches/` and docs/PERFORMANCE.md.
