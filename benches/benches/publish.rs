//! Publish latency into a pre-filled hosted repository, over HTTP, as mix publishes
//! (`expect: 100-continue`, one connection per request).
//!
//! For 100, 1,000 and 10,000 packages (3 releases each): fill the store with tarballs, start
//! the publisher library in-process (which rebuilds the missing index), run a full `rebuild`,
//! then publish N new releases sequentially. One table at the end gives, per size, publish
//! p50/p99/max next to the full rebuild of the same repo, and how p50 grew from the smallest
//! size (against how the repo grew). Target: p50 under 20 ms at 10,000 packages, growth well
//! below linear.
//!
//! `cargo bench -p hexyard-benches --bench publish` (`BENCH_PUBLISHES=N` to change N,
//! `BENCH_SIZES=100,1000` to choose sizes, `BENCH_STORE=s3` to run on an S3 bucket of a moto
//! server started for the run instead of a local directory, `BENCH_STORE=both` for both).
//!
//! On S3 the tarballs are pre-filled with `PutObject` (16 at a time), and the requests the
//! timed publishes send are counted from moto's request log, per method and object kind
//! (`names`, `versions`, `packages`, `tarballs`), and printed per publish. moto answers in
//! about a millisecond; `HEXYARD_MOTO_LATENCY_MS=10` in the environment delays each of its
//! answers by 10 ms, as a network round trip to S3 would, which shows what the number of
//! sequential requests costs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hexyard_benches::{ms, package_name, percentile, prefill, tarball};
use hexyard_common::config::Config;
use hexyard_common::storage::{LocalStore, PutMode, S3Store, StorageKey, Store};
use hexyard_common::testing::s3::MotoServer;
use hexyard_tests::http::Request;
use std::collections::BTreeMap;
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

/// Writes the same tarballs as [`prefill`] into `store` (16 concurrent puts).
async fn prefill_store(store: Arc<dyn Store>, packages: usize) {
    let mut jobs = Vec::new();
    for i in 0..packages {
        for r in 0..RELEASES_PER_PACKAGE {
            jobs.push((package_name(i), format!("1.{r}.0")));
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for (name, version) in jobs {
        if set.len() >= 16 {
            set.join_next().await.unwrap().unwrap();
        }
        let store = store.clone();
        set.spawn(async move {
            let body = tarball(&name, &version).unwrap();
            let key = StorageKey::tarball(REPO, &name, &version).unwrap();
            store
                .put(&key, body.into(), PutMode::CreateOnly)
                .await
                .unwrap();
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

/// Requests in moto's log lines, per `METHOD kind` (kind: the first component after
/// `repos/<repo>/`).
fn count_requests(log: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        let Some(req) = line.split('"').nth(1) else {
            continue;
        };
        let mut parts = req.split(' ');
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            continue;
        };
        let path = path.split('?').next().unwrap_or(path);
        let kind = path
            .split_once(&format!("/repos/{REPO}/"))
            .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_owned())
            .unwrap_or_else(|| "other".to_owned());
        *out.entry(format!("{method} {kind}")).or_default() += 1;
    }
    out
}

/// One size's figures.
struct Row {
    store: &'static str,
    packages: usize,
    publishes: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    startup: Duration,
    rebuild: Duration,
}

fn run(packages: usize, publishes: usize, s3: bool) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let root = config.store.root.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let moto = s3.then(MotoServer::start);
    let t = Instant::now();
    let store: Arc<dyn Store> = match &moto {
        None => {
            prefill(&root, REPO, packages, RELEASES_PER_PACKAGE).unwrap();
            Arc::new(LocalStore::new(&root).unwrap())
        }
        Some(moto) => {
            rt.block_on(moto.create_bucket("hexyard-bench"));
            let s3 = moto.s3_config("hexyard-bench", "");
            config.store.kind = hexyard_common::config::StoreKind::S3;
            config.store.s3 = Some(s3.clone());
            let store: Arc<dyn Store> = Arc::new(S3Store::new(&s3).unwrap());
            rt.block_on(prefill_store(store.clone(), packages));
            store
        }
    };
    let fill = t.elapsed();
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
    let log_start = moto.as_ref().map_or(0, |m| m.log_text().len());
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
    let requests = moto
        .as_ref()
        .map(|m| count_requests(m.log_text().get(log_start..).unwrap_or_default()));
    let _ = stop.send(());
    rt.block_on(server).unwrap().unwrap();

    let row = Row {
        store: if s3 { "s3" } else { "local" },
        packages,
        publishes,
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
        max: samples.iter().max().copied().unwrap_or(Duration::ZERO),
        startup,
        rebuild,
    };
    println!(
        "{:>5} {packages:>6} packages ({:>6} releases): publish p50 {} p99 {} max {} \
         (n={publishes}); fill {} start-up (index rebuild) {} full rebuild {}",
        row.store,
        packages * RELEASES_PER_PACKAGE,
        ms(row.p50),
        ms(row.p99),
        ms(row.max),
        ms(fill),
        ms(startup),
        ms(rebuild),
    );
    if let Some(requests) = requests {
        let total: usize = requests.values().sum();
        println!(
            "      S3 requests per publish: {:.2} in all",
            total as f64 / publishes as f64
        );
        for (what, n) in requests {
            println!("        {what:<22} {:.2}", n as f64 / publishes as f64);
        }
    }
    row
}

/// The summary: one line per store and size, growth relative to the store's smallest size.
fn print_table(rows: &[Row]) {
    println!(
        "bench-publish: sequential publishes over HTTP (expect: 100-continue), {RELEASES_PER_PACKAGE} releases per package"
    );
    println!(
        "{:<6} {:>8} {:>9} {:>5} {:>10} {:>10} {:>10} {:>12} {:>12} {:>16}",
        "store",
        "packages",
        "releases",
        "n",
        "p50",
        "p99",
        "max",
        "rebuild",
        "start-up",
        "p50 growth"
    );
    for r in rows {
        let base = rows
            .iter()
            .filter(|b| b.store == r.store)
            .min_by_key(|b| b.packages)
            .unwrap_or(r);
        println!(
            "{:<6} {:>8} {:>9} {:>5} {:>10} {:>10} {:>10} {:>12} {:>12} {:>16}",
            r.store,
            r.packages,
            r.packages * RELEASES_PER_PACKAGE,
            r.publishes,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            ms(r.rebuild),
            ms(r.startup),
            format!(
                "x{:.2} (repo x{})",
                r.p50.as_secs_f64() / base.p50.as_secs_f64().max(1e-9),
                r.packages / base.packages.max(1)
            ),
        );
    }
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
    let store = std::env::var("BENCH_STORE").unwrap_or_else(|_| "local".to_owned());
    let backends: &[bool] = match store.as_str() {
        "s3" => &[true],
        "both" => &[false, true],
        _ => &[false],
    };
    let mut rows = Vec::new();
    for &s3 in backends {
        for &packages in &sizes {
            rows.push(run(packages, publishes, s3));
        }
    }
    print_table(&rows);
}
