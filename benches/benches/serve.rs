//! bench-serve: hexyard against nginx on the same files, in one run.
//!
//! A hosted repo is filled with a ~2 KiB `packages/` file (one package, 20 releases) and a
//! 100 KiB tarball; the store directory is the very tree nginx serves (`root` = the store), so
//! both serve identical bytes. wrk drives each with the same load (`-t2 -c64`, fixed duration);
//! the table gives requests/s, p50/p99/p99.9 latency and the hexyard/nginx ratios.
//!
//! `cargo bench -p hexyard-benches --bench serve` (needs `nginx` and `wrk`: Debian packages
//! nginx-light and wrk). `BENCH_SECS` sets the duration of each run (default 10).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use hexyard_common::config::Config;
use hexyard_common::storage::{LocalStore, PutMode, StorageKey, Store};
use hexyard_common::tarball::TarballBuilder;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const REPO: &str = "bench_repo";

/// A child process killed when dropped (also when the bench panics).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One wrk result.
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
}

const WRK_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("HXSTATS %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"#;

fn wrk(url: &str, secs: u64, script: &Path) -> Run {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "-s"])
        .arg(script)
        .arg(url)
        .output()
        .expect("running wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("HXSTATS"))
        .unwrap_or_else(|| panic!("wrk output: {text}"));
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    Run {
        rps: f[0] / (f[1] / 1e6),
        p50_ms: f[2] / 1000.0,
        p99_ms: f[3] / 1000.0,
        p999_ms: f[4] / 1000.0,
        errors: f[5] as u64,
    }
}

fn wait_port(addr: &str) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{addr} did not come up");
}

fn fill(root: &Path) -> (String, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store: Arc<dyn Store> = Arc::new(LocalStore::new(root).unwrap());
    rt.block_on(async {
        // 20 small releases: a package file of about 2 KiB.
        for minor in 0..20 {
            let v = format!("1.{minor}.0");
            let t = TarballBuilder::new("bench_pkg", v.as_str())
                .file("lib/x.ex", b"x".to_vec())
                .build()
                .unwrap();
            let key = StorageKey::tarball(REPO, "bench_pkg", &v).unwrap();
            store.put(&key, t.into(), PutMode::Overwrite).await.unwrap();
        }
        // One release with 100 KiB of incompressible content.
        let mut noise = Vec::with_capacity(100 * 1024);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while noise.len() < 100 * 1024 - 2048 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.extend_from_slice(&x.to_le_bytes());
        }
        let t = TarballBuilder::new("bench_big", "1.0.0")
            .file("priv/blob.bin", noise)
            .build()
            .unwrap();
        let key = StorageKey::tarball(REPO, "bench_big", "1.0.0").unwrap();
        store.put(&key, t.into(), PutMode::Overwrite).await.unwrap();
    });
    (
        format!("repos/{REPO}/packages/bench_pkg"),
        format!("repos/{REPO}/tarballs/bench_big-1.0.0.tar"),
    )
}

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench-serve: run it with `cargo bench -p hexyard-benches --bench serve`");
        return;
    }
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let (pkg, tar) = fill(&root);
    let port = |l: std::net::TcpListener| l.local_addr().unwrap().port();
    let (hp, pp, np) = (
        port(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
        port(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
        port(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
    );
    let yaml = format!(
        "public_url: http://127.0.0.1:{hp}\nproxy: {{listen: 127.0.0.1:{hp}}}\npublisher: {{listen: 127.0.0.1:{pp}}}\n\
         metrics: {{listen: null}}\nstore: {{kind: local, root: ./store}}\nlog: {{level: warn}}\n\
         repos:\n  {REPO}: {{kind: hosted, private_key: ./key.pem}}\n"
    );
    let cfg_path = dir.path().join("hexyard.yaml");
    std::fs::write(&cfg_path, yaml).unwrap();
    let config = Config::load(&cfg_path).unwrap();

    // The publisher library builds the index (names/versions/packages) from the tarballs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { hexyard_publisher::build(&config).await.unwrap() });
    drop(rt);
    let pkg_size = std::fs::metadata(root.join(&pkg)).unwrap().len();
    let tar_size = std::fs::metadata(root.join(&tar)).unwrap().len();

    // hexyard, in this process (release build).
    let server = hexyard_proxy::build_server(&config, &cfg_path).unwrap();
    std::thread::spawn(move || server.run(pingora::server::RunArgs::default()));
    wait_port(&format!("127.0.0.1:{hp}"));

    // nginx on the same directory.
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "user root root; daemon off; worker_processes 2; pid {d}/nginx.pid; error_log {d}/nginx.err warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;\n\
             default_type application/octet-stream; etag on;\n\
             client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             server {{ listen 127.0.0.1:{np}; root {root}; }} }}\n",
            d = dir.path().display(),
            root = root.display()
        ),
    )
    .unwrap();
    let _nginx = Reaped(
        Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx (apt-get install nginx-light)"),
    );
    wait_port(&format!("127.0.0.1:{np}"));

    let script = dir.path().join("stats.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    // Same bytes from both, checked once.
    for p in [&pkg, &tar] {
        let a = Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{hp}/{p}")])
            .output()
            .unwrap()
            .stdout;
        let b = Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{np}/{p}")])
            .output()
            .unwrap()
            .stdout;
        assert!(
            !a.is_empty() && a == b,
            "{p}: hexyard and nginx serve different bytes: {:?} vs {:?}",
            String::from_utf8_lossy(&a[..a.len().min(200)]),
            String::from_utf8_lossy(&b[..b.len().min(200)])
        );
    }
    println!(
        "bench-serve: wrk -t2 -c64 -d{secs}s, hot files, same machine (2 cores shared by wrk and the server)"
    );
    println!(
        "{:<28} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "target", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
    );
    for (label, path, size) in [
        ("packages/ (2 KiB)", &pkg, pkg_size),
        ("tarball (100 KiB)", &tar, tar_size),
    ] {
        // Warm both.
        wrk(&format!("http://127.0.0.1:{hp}/{path}"), 1, &script);
        wrk(&format!("http://127.0.0.1:{np}/{path}"), 1, &script);
        let h = wrk(&format!("http://127.0.0.1:{hp}/{path}"), secs, &script);
        let n = wrk(&format!("http://127.0.0.1:{np}/{path}"), secs, &script);
        for (who, r) in [("hexyard", &h), ("nginx", &n)] {
            println!(
                "{:<28} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>7}",
                format!("{who} {label}"),
                r.rps,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.errors
            );
        }
        println!(
            "{:<28} {:>10.2} {:>9.2} {:>9.2} {:>9.2}   ({size} bytes)",
            "  ratio hexyard/nginx",
            h.rps / n.rps,
            h.p50_ms / n.p50_ms,
            h.p99_ms / n.p99_ms,
            h.p999_ms / n.p999_ms
        );
    }
    drop(_nginx);
    std::process::exit(0);
}
