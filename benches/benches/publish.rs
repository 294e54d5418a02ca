//! Publish latency into a pre-filled hosted repository, over HTTP, as mix publishes
//! (`expect: 100-continue`, one connection per request).
//!
//! For 100, 1,000 and 10,000 packages (3 releases each): fill the store with tarballs, start
//! the publisher library in-process (which rebuilds the missing index), run a full `rebuild`,
//! then publish N new releases sequentially and print p50/p99/max.
//!
//! `cargo bench -p hexyard-benches --bench publish` (`BENCH_PUBLISHES=N` to change N,
//! `BENCH_SIZES=100,1000` to choose sizes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hexyard_benches::{ms, package_name, percentile, prefill, tarball};
use hexyard_common::config::Config;
use hexyard_common::storage::{LocalStore, Store};
use hexyard_tests::http::Request;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REPO: &str = "bench";
const KEY: &str = "bench-key";
const RELEASES_PER_PACKAGE: usize = 3;

fn config(dir: &std::path::Path) -> Config {
    std::fs::copy(
        hexyard_common::testing::fixtures_dir().join("keys/private_key.pem"),
        dir.join("bench.pem"),
    )
    .unwrap();
    let hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        KEY.as_bytes(),
    ));
    let yaml = format!(
        r#"public_url: http://127.0.0.1:1
default_repo: {REPO}
publisher:
  listen: 127.0.0.1:0
metrics: {{listen: null}}
store:
  kind: local
  root: ./data
keys:
  - name: bench
    sha256: {hash}
    grants: [{{repo: {REPO}, access: write}}]
repos:
  {REPO}:
    kind: hosted
    private_key: ./bench.pem
"#
    );
    Config::from_yaml_str(&yaml, dir).unwrap()
}

fn run(packages: usize, publishes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let root = config.store.root.clone();
    let t = Instant::now();
    prefill(&root, REPO, packages, RELEASES_PER_PACKAGE).unwrap();
    let fill = t.elapsed();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(LocalStore::new(&root).unwrap());
    let t = Instant::now();
    let app = rt
        .block_on(hexyard_publisher::build_with_store(&config, store))
        .unwrap();
    let startup = t.elapsed();
    let repo = app.hosted.get(REPO).unwrap().clone();
    let t = Instant::now();
    let report = rt
        .block_on(hexyard_publisher::rebuild::rebuild(&app, &repo))
        .unwrap();
    let rebuild = t.elapsed();
    assert_eq!(report.packages, packages);
    assert_eq!(report.releases, packages * RELEASES_PER_PACKAGE);

    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(hexyard_publisher::run(app, listener, async {
        let _ = stopped.await;
    }));

    // New releases of existing packages spread over the repo, built before timing.
    let bodies: Vec<(String, Vec<u8>)> = (0..publishes)
        .map(|i| {
            let name = package_name((i * 7919) % packages);
            let body = tarball(&name, &format!("2.{i}.0")).unwrap();
            (name, body)
        })
        .collect();
    let mut samples = Vec::with_capacity(publishes);
    for (name, body) in bodies {
        let req = Request::new(
            "POST",
            &format!("/api/packages/{name}/releases?replace=false"),
        )
        .hex_api(Some(KEY))
        .upload(body);
        let t = Instant::now();
        let r = req.send(addr).unwrap();
        samples.push(t.elapsed());
        assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    }
    let _ = stop.send(());
    rt.block_on(server).unwrap().unwrap();

    println!(
        "{packages:>6} packages ({:>6} releases): publish p50 {} p99 {} max {} (n={publishes}); \
         fill {} start-up (index rebuild) {} full rebuild {}",
        packages * RELEASES_PER_PACKAGE,
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples.iter().max().copied().unwrap_or(Duration::ZERO)),
        ms(fill),
        ms(startup),
        ms(rebuild),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this as a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let publishes = std::env::var("BENCH_PUBLISHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 5 } else { 200 });
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if smoke {
                vec![20]
            } else {
                vec![100, 1_000, 10_000]
            }
        });
    for packages in sizes {
        run(packages, publishes);
    }
}
