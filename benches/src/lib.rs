//! Benchmark support: filling a hosted repository fast, and latency statistics.

use anyhow::Context;
use hexyard_common::storage::StorageKey;
use hexyard_common::tarball::TarballBuilder;
use std::path::Path;
use std::time::Duration;

/// Name of the `i`-th pre-filled package.
pub fn package_name(i: usize) -> String {
    format!("bench_pkg_{i:05}")
}

/// Writes `packages` × `releases` tarballs (versions `1.0.0`, `1.1.0`, ...) straight into a
/// local store's layout under `root` (no index: the publisher rebuilds it at start-up), using
/// every core. Plain file writes: the fill is set-up, not what is measured.
///
/// # Errors
/// A tarball that cannot be built or a file that cannot be written.
pub fn prefill(root: &Path, repo: &str, packages: usize, releases: usize) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> anyhow::Result<()> {
                    for i in (t..packages).step_by(threads) {
                        let name = package_name(i);
                        for r in 0..releases {
                            let version = format!("1.{r}.0");
                            let body = tarball(&name, &version)?;
                            let key = StorageKey::tarball(repo, &name, &version)?;
                            let path = root.join(key.path());
                            if let Some(dir) = path.parent() {
                                std::fs::create_dir_all(dir)?;
                            }
                            std::fs::write(&path, body)
                                .with_context(|| format!("writing {}", path.display()))?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a fill thread panicked"))??;
        }
        Ok(())
    })
}

/// A small but complete package tarball.
///
/// # Errors
/// When the builder refuses the input (it does not for these names).
pub fn tarball(name: &str, version: &str) -> anyhow::Result<Vec<u8>> {
    Ok(TarballBuilder::new(name, version)
        .description(format!("{name}: benchmark package"))
        .license("Apache-2.0")
        .link("Source", format!("https://example.invalid/{name}"))
        .file(
            format!("lib/{name}.ex"),
            format!("defmodule Bench do\n  def v, do: \"{version}\"\nend\n").into_bytes(),
        )
        .build()?)
}

/// The `p`-th percentile (0..=100, nearest rank) of `samples`; zero when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut s = samples.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s.get(rank.saturating_sub(1).min(s.len() - 1))
        .copied()
        .unwrap_or_default()
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
