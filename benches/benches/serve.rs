//! bench-serve: hexyard against nginx on the same files, in one run.
//!
//! Hosted: a hosted repo holds a ~2 KiB `packages/` file (one package, 20 releases) and a
//! 100 KiB tarball; the store directory is the very tree nginx serves as static files, so both
//! serve identical bytes. Mirror hit: a fake upstream (`FakeUpstream::synthetic`: real signed
//! registry files) holds the same releases; hexyard's mirror repo and nginx's `proxy_cache`
//! (`benches/nginx.conf`) sit in front of it, both warmed first, and the upstream's request
//! count is checked to stay still while measuring (every measured request is a cache hit).
//!
//! wrk drives both the same way (`-t2 -c64`, fixed duration); the table gives requests/s,
//! p50/p99/p99.9 latency and the hexyard/nginx ratios. Twice: at full load (each connection
//! sends its next request as soon as the answer is in, so the faster server is also sent more
//! requests, and its latency is taken under that larger load), then at the same load (each
//! connection waits `BENCH_THINK_MS`, default 2, after each answer; 0 skips this pass), where
//! both servers get about the same requests/s and their latencies compare like for like. A
//! last table puts the target per cell side by side: requests/s at full load, p99 at the same
//! load (and at full load). Then memory: the proxy's resident set at idle right after start-up
//! (`VmRSS`) and its peak over the runs (`VmHWM`), next to nginx's (master + workers, summed).
//!
//! `cargo build --release --bins && cargo bench -p hexyard-benches --bench serve` (the
//! release `hexyard-proxy` runs as a child process; needs `nginx` and `wrk`: Debian packages
//! nginx-light and wrk; `benches/run` does all of it). `BENCH_ROUNDS` (default 3) sets how
//! many alternating hexyard/nginx rounds each comparison runs (the median of each figure is shown);
//! `BENCH_SECS` sets the duration of each timed run (default 10).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use hexyard_benches::{
    HOSTED_REPO, Load, MIRROR_REPO, Nginx, UPSTREAM_NAME, WRK_LOAD, WrkRun, bench_rounds,
    bench_secs, env_or, median_each, memory, mib, p99_range, print_wrk_header, print_wrk_ratio,
    print_wrk_row, proxy_binary_note, sized_tarball, start_proxy, wrk,
};
use hexyard_common::config::Config;
use hexyard_common::storage::{LocalStore, PutMode, StorageKey, Store};
use hexyard_common::tarball::TarballBuilder;
use hexyard_tests::upstream::FakeUpstream;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The benchmark's releases: 20 small ones of `bench_pkg` (a `packages/` file of about 2 KiB)
/// and one `bench_big` of 100 KiB of incompressible content.
fn releases() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..20)
        .map(|minor| {
            TarballBuilder::new("bench_pkg", format!("1.{minor}.0"))
                .file("lib/x.ex", b"x".to_vec())
                .build()
                .unwrap()
        })
        .collect();
    out.push(sized_tarball("bench_big", "1.0.0", 100 * 1024 - 2048, 1).unwrap());
    out
}

/// Writes `tarballs` into the hosted repo of the local store at `root`.
fn fill(root: &Path, tarballs: &[Vec<u8>]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store: Arc<dyn Store> = Arc::new(LocalStore::new(root).unwrap());
    rt.block_on(async {
        for t in tarballs {
            let parsed = hexyard_common::tarball::parse(t, &Default::default()).unwrap();
            let key =
                StorageKey::tarball(HOSTED_REPO, &parsed.name, &parsed.metadata.version).unwrap();
            store
                .put(&key, t.clone().into(), PutMode::Overwrite)
                .await
                .unwrap();
        }
    });
}

/// GETs `path` from `addr` and checks the answer is a 200 with exactly `expected`.
fn check(who: &str, addr: SocketAddr, path: &str, expected: &[u8]) {
    let r = hexyard_tests::get(addr, path);
    assert_eq!(
        r.status,
        200,
        "{who} {path}: {}",
        hexyard_tests::body_text(&r)
    );
    assert!(
        r.body == expected,
        "{who} {path}: {} bytes differ from the expected {}",
        r.body.len(),
        expected.len()
    );
}

struct Case {
    section: &'static str,
    label: &'static str,
    path: String,
    size: usize,
}

/// The target per cell: requests/s at full load, and p99 at the same load (the full load's
/// p99 is shown too: there the faster server carries more requests). `full` and `same` hold
/// (hexyard, nginx) medians in the order of `cases`.
fn print_target(cases: &[Case], full: &[(WrkRun, WrkRun)], same: &[(WrkRun, WrkRun)]) {
    println!(
        "== target: hexyard >= nginx on requests/s (full load) and <= on p99 (same load), ratios hexyard/nginx"
    );
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>5}",
        "cell", "req/s full", "p99 same", "p99 full", "met"
    );
    for (i, case) in cases.iter().enumerate() {
        let ratio = |runs: &[(WrkRun, WrkRun)], f: fn(&WrkRun) -> f64| {
            runs.get(i).map_or(f64::NAN, |(h, n)| f(h) / f(n))
        };
        let rps = ratio(full, |r| r.rps);
        let p99_same = ratio(same, |r| r.p99_ms);
        println!(
            "{:<34} {:>10.2} {:>9.2} {:>9.2} {:>5}",
            format!("{} {}", case.section, case.label),
            rps,
            p99_same,
            ratio(full, |r| r.p99_ms),
            if rps >= 1.0 && p99_same <= 1.0 {
                "yes"
            } else {
                "no"
            }
        );
    }
}

fn main() {
    if !hexyard_benches::measuring() {
        println!("bench-serve: run it with `cargo bench -p hexyard-benches --bench serve`");
        return;
    }
    let secs = bench_secs();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let tarballs = releases();
    fill(&root, &tarballs);
    let upstream = FakeUpstream::synthetic(UPSTREAM_NAME, tarballs);

    let addr = SocketAddr::from(([127, 0, 0, 1], hexyard_tests::free_port()));
    let publisher_port = hexyard_tests::free_port();
    let mirror = hexyard_tests::mirror_yaml(
        MIRROR_REPO,
        &upstream,
        UPSTREAM_NAME,
        &["package_ttl_secs: 86400", "index_ttl_secs: 86400"],
    );
    let yaml = format!(
        "public_url: http://{addr}\nproxy: {{listen: \"{addr}\"}}\n\
         publisher: {{listen: \"127.0.0.1:{publisher_port}\"}}\nmetrics: {{listen: null}}\n\
         store: {{kind: local, root: ./store}}\nlog: {{level: warn}}\n\
         repos:\n  {HOSTED_REPO}: {{kind: hosted, private_key: ./key.pem}}\n{mirror}"
    );
    let cfg_path = dir.path().join("hexyard.yaml");
    std::fs::write(&cfg_path, yaml).unwrap();
    let config = Config::load(&cfg_path).unwrap();
    // The publisher library builds the hosted index (names/versions/packages) from the tarballs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { hexyard_publisher::build(&config).await.unwrap() });
    drop(rt);

    let proxy = start_proxy(&cfg_path, addr);
    std::thread::sleep(Duration::from_millis(300));
    let proxy_idle = memory(proxy.child.id());
    let nginx = Nginx::start(&dir.path().join("nginx"), &root, upstream.addr);
    std::thread::sleep(Duration::from_millis(300));
    let nginx_idle = nginx.memory();

    // Same bytes from both, checked once; for the mirror this also warms both caches.
    let mut cases = Vec::new();
    for (label, rel) in [
        ("packages/ (2 KiB)", "packages/bench_pkg"),
        ("tarball (100 KiB)", "tarballs/bench_big-1.0.0.tar"),
    ] {
        let file = std::fs::read(root.join(format!("repos/{HOSTED_REPO}/{rel}"))).unwrap();
        let path = format!("/repos/{HOSTED_REPO}/{rel}");
        check("hexyard", addr, &path, &file);
        check("nginx", nginx.addr, &path, &file);
        cases.push(Case {
            section: "hosted",
            label,
            path,
            size: file.len(),
        });
    }
    for (label, rel) in [
        ("packages/ (2 KiB)", "packages/bench_pkg"),
        ("tarball (100 KiB)", "tarballs/bench_big-1.0.0.tar"),
    ] {
        let file = upstream.file(rel).unwrap();
        let path = format!("/repos/{MIRROR_REPO}/{rel}");
        check("hexyard", addr, &path, &file);
        check("nginx", nginx.addr, &path, &file);
        cases.push(Case {
            section: "mirror hit",
            label,
            path,
            size: file.len(),
        });
    }
    let upstream_before = upstream.total_hits();

    let rounds = bench_rounds();
    println!(
        "bench-serve: wrk {WRK_LOAD} -d{secs}s per run, after a 1 s warm-up run each; {rounds} alternating rounds, median of each figure shown"
    );
    println!(
        "  hexyard: {} (threads: {}), nginx: {} child processes (workers, cache manager and loader); client and servers share the machine's {} cores",
        proxy_binary_note(),
        config
            .proxy
            .threads
            .map_or_else(|| "one per core".to_owned(), |t| t.to_string()),
        nginx.workers(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let think = env_or("BENCH_THINK_MS", 2u64);
    let mut loads = vec![Load::Full];
    if think > 0 {
        loads.push(Load::Think(think));
    }
    let (mut full, mut same) = (Vec::new(), Vec::new());
    for &load in &loads {
        match load {
            Load::Full => println!(
                "== full load: each connection sends its next request as soon as the answer is in \
                 (the faster server also gets more requests)"
            ),
            Load::Think(ms) => println!(
                "== same load: each connection waits {ms} ms after an answer (wrk's `delay`), \
                 so both servers get about the same requests/s"
            ),
        }
        print_wrk_header();
        let mut section = "";
        for case in &cases {
            if case.section != section {
                section = case.section;
                println!(
                    "-- {section}{}",
                    if section == "hosted" {
                        " (nginx: static files from the same store directory)"
                    } else {
                        " (nginx: proxy_cache; both warmed, upstream untouched while measuring)"
                    }
                );
            }
            let h_url = format!("http://{addr}{}", case.path);
            let n_url = format!("http://{}{}", nginx.addr, case.path);
            wrk(&h_url, 1, dir.path(), load);
            wrk(&n_url, 1, dir.path(), load);
            let (mut hs, mut ns) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                hs.push(wrk(&h_url, secs, dir.path(), load));
                ns.push(wrk(&n_url, secs, dir.path(), load));
            }
            let h: WrkRun = median_each(&hs);
            let n: WrkRun = median_each(&ns);
            print_wrk_row(&format!("hexyard {}", case.label), &h);
            print_wrk_row(&format!("nginx   {}", case.label), &n);
            print_wrk_ratio(
                &h,
                &n,
                &format!(
                    "({} bytes; p99 per round: hexyard {} ms, nginx {} ms)",
                    case.size,
                    p99_range(&hs),
                    p99_range(&ns)
                ),
            );
            match load {
                Load::Full => full.push((h, n)),
                Load::Think(_) => same.push((h, n)),
            }
        }
    }
    print_target(&cases, &full, &same);
    let upstream_after = upstream.total_hits();
    assert_eq!(
        upstream_after,
        upstream_before,
        "the upstream was asked {} times while measuring cache hits",
        upstream_after - upstream_before
    );
    let proxy_after = memory(proxy.child.id());
    let nginx_after = nginx.memory();
    println!("-- memory (resident; nginx = master + children, summed)");
    println!(
        "{:<34} {:>12} {:>18} {:>12}",
        "process", "idle (RSS)", "peak (HWM) in run", "RSS after"
    );
    for (who, idle, after) in [
        ("hexyard-proxy", proxy_idle, proxy_after),
        ("nginx", nginx_idle, nginx_after),
    ] {
        println!(
            "{:<34} {:>12} {:>18} {:>12}",
            who,
            mib(idle.rss_kib),
            mib(after.peak_kib),
            mib(after.rss_kib)
        );
    }
    drop(nginx);
    drop(proxy);
}
