//! Benchmark support: filling a hosted repository fast, latency statistics, and what the
//! server benches share: the release proxy as a child process, the nginx reference
//! (`benches/nginx.conf`), wrk, and memory figures from `/proc`.

use anyhow::Context;
use hexyard_common::storage::StorageKey;
use hexyard_common::tarball::TarballBuilder;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The hosted repository of the server benches (nginx serves it as static files).
pub const HOSTED_REPO: &str = "bench_repo";
/// The mirror repository of the server benches (nginx: `proxy_cache`).
pub const MIRROR_REPO: &str = "bench_mirror";
/// The repository name the fake upstream signs into its files, as hex.pm does.
pub const UPSTREAM_NAME: &str = "hexpm";

/// Whether this is a measuring run: `cargo bench` passes `--bench`, while `cargo test
/// --all-targets` (CI) runs bench targets without it, and then the server benches only say how
/// to run them.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Seconds of each timed wrk run: `BENCH_SECS`, default 10.
pub fn bench_secs() -> u64 {
    env_or("BENCH_SECS", 10)
}

/// How many alternating rounds the wrk comparisons run (`BENCH_ROUNDS`, default 3): on a
/// shared or virtual machine one run can be 30 % off the next, so each side's median over the
/// rounds is the figure ([`median_each`]), and hexyard and the reference take turns so a slow spell hits both.
pub fn bench_rounds() -> usize {
    env_or("BENCH_ROUNDS", 3usize).max(1)
}

/// The median of each figure of `runs` taken separately (the lower middle one for an even
/// count), and the errors of all runs: the p99 shown is the median round's p99, not the p99 of
/// the round with the median requests/s, so one round's scheduling hiccup does not decide it.
pub fn median_each(runs: &[WrkRun]) -> WrkRun {
    let median = |f: fn(&WrkRun) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
    };
    WrkRun {
        rps: median(|r| r.rps),
        p50_ms: median(|r| r.p50_ms),
        p99_ms: median(|r| r.p99_ms),
        p999_ms: median(|r| r.p999_ms),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

/// `min-max` of the rounds' p99 in ms, to show how far one cell moves between rounds.
pub fn p99_range(runs: &[WrkRun]) -> String {
    let (lo, hi) = runs.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| {
        (lo.min(r.p99_ms), hi.max(r.p99_ms))
    });
    format!("{lo:.2}-{hi:.2}")
}

/// The number in environment variable `name`, or `default` when unset or not a number.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

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

/// `len` bytes that gzip cannot shrink (xorshift64 from `seed`).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A package tarball carrying `content` bytes of incompressible data (so it is a little
/// larger than `content`), different for every `seed`.
///
/// # Errors
/// When the builder refuses the input (it does not for valid names and versions).
pub fn sized_tarball(
    name: &str,
    version: &str,
    content: usize,
    seed: u64,
) -> anyhow::Result<Vec<u8>> {
    Ok(TarballBuilder::new(name, version)
        .description(format!("{name}: benchmark package"))
        .license("Apache-2.0")
        .file("priv/blob.bin", noise(content, seed))
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

/// Requests per second from a count and a duration.
pub fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

// ---------------------------------------------------------------------------------------------
// Processes and memory.

/// The release `hexyard-proxy` next to the bench executable (`target/release`), started on
/// `config`, listening on `addr`, with `RUST_LOG=warn` (no access log, as nginx in the benches).
/// `benches/run` builds it first; when running one bench alone, build it with
/// `cargo build --release --bins`.
pub fn start_proxy(config: &Path, addr: SocketAddr) -> hexyard_tests::Process {
    hexyard_tests::Process::start_with_env(
        "hexyard-proxy",
        config,
        addr,
        &[],
        &[("RUST_LOG".to_owned(), "warn".to_owned())],
    )
}

/// Which proxy binary the run uses and when it was built, so a stale one shows.
pub fn proxy_binary_note() -> String {
    let path = hexyard_tests::bin("hexyard-proxy");
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or_else(|| "?".to_owned(), |d| format!("{} s", d.as_secs()));
    format!("{} (built {age} ago)", path.display())
}

/// Resident memory of a process group, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: peak resident since the process started.
    pub peak_kib: u64,
}

impl std::ops::Add for Memory {
    type Output = Memory;
    fn add(self, o: Memory) -> Memory {
        Memory {
            rss_kib: self.rss_kib + o.rss_kib,
            peak_kib: self.peak_kib + o.peak_kib,
        }
    }
}

/// `VmRSS` and `VmHWM` of process `pid` (zero when it is gone).
pub fn memory(pid: u32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        peak_kib: field("VmHWM:"),
    }
}

/// Mebibytes with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The pids whose parent is `parent` (from `/proc/*/stat`).
fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// nginx running `benches/nginx.conf` in the foreground; stopped when dropped.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
}

/// The shipped configuration, with `@...@` placeholders.
pub const NGINX_CONF: &str = include_str!("../nginx.conf");

impl Nginx {
    /// Starts nginx with its state in `dir`, serving `static_root` (a store directory) under
    /// `/repos/bench_repo/` and caching `upstream` under `/repos/bench_mirror/`; waits until it
    /// listens. Panics when nginx is missing (`apt-get install nginx-light`) or fails.
    pub fn start(dir: &Path, static_root: &Path, upstream: SocketAddr) -> Nginx {
        let port = hexyard_tests::free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        std::fs::create_dir_all(dir.join("tmp"))
            .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let conf = NGINX_CONF
            .replace("@DIR@", &dir.display().to_string())
            .replace("@PORT@", &port.to_string())
            .replace("@STATIC_ROOT@", &static_root.display().to_string())
            .replace("@UPSTREAM@", &upstream.to_string());
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap_or_else(|e| panic!("writing nginx.conf: {e}"));
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting nginx (apt-get install nginx-light): {e}"));
        let mut nginx = Nginx { child, addr };
        wait_listening(addr, &mut nginx.child, &dir.join("nginx.err"));
        // The workers start right after the master listens.
        for _ in 0..100 {
            if !children(nginx.child.id()).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// Memory of the master and its children (workers, cache manager, cache loader while it
    /// runs), summed (pages they share count once per process, so this overstates nginx).
    pub fn memory(&self) -> Memory {
        let master = self.child.id();
        children(master)
            .into_iter()
            .map(memory)
            .fold(memory(master), |a, b| a + b)
    }

    /// The number of child processes (workers, and the cache manager and loader).
    pub fn workers(&self) -> usize {
        children(self.child.id()).len()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers and exits; SIGKILL only if it does not.
        let master = self.child.id();
        let workers = children(master);
        let _ = Command::new("kill")
            .args(["-TERM", &master.to_string()])
            .status();
        for _ in 0..250 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in children(master).into_iter().chain(workers) {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

fn wait_listening(addr: SocketAddr, child: &mut Child, log: &Path) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "nginx exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nginx did not listen on {addr}");
}

// ---------------------------------------------------------------------------------------------
// wrk.

/// One wrk result.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Socket errors, timeouts and non-2xx/3xx answers.
    pub errors: u64,
}

/// wrk's Lua hook that prints the figures on one machine-readable line.
const WRK_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("HXSTATS %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"#;

/// The wrk load of every serve comparison: 2 threads, 64 connections.
pub const WRK_LOAD: &str = "-t2 -c64";

/// How each of wrk's connections paces its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// The next request as soon as the answer is in: a closed loop at saturation, so the
    /// faster server also gets more requests, and its latency is measured under more load.
    Full,
    /// The next request that many milliseconds after the answer (wrk's `delay` hook): when the
    /// pause is long against the answer time, both servers get about the same requests/s, and
    /// their latencies compare under the same load.
    Think(u64),
}

/// Runs `wrk -t2 -c64 -d<secs>s` on `url` at `load`; `dir` holds the Lua script. Panics when
/// wrk is missing (`apt-get install wrk`) or prints no figures.
pub fn wrk(url: &str, secs: u64, dir: &Path, load: Load) -> WrkRun {
    let (name, pacing) = match load {
        Load::Full => ("hxstats.lua".to_owned(), String::new()),
        Load::Think(ms) => (
            format!("hxstats-think{ms}.lua"),
            format!("delay = function() return {ms} end\n"),
        ),
    };
    let script: PathBuf = dir.join(name);
    if !script.exists() {
        std::fs::write(&script, format!("{WRK_SCRIPT}{pacing}"))
            .unwrap_or_else(|e| panic!("writing {e}"));
    }
    let out = Command::new("wrk")
        .args(WRK_LOAD.split(' '))
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("running wrk (apt-get install wrk): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("HXSTATS "))
        .unwrap_or_else(|| panic!("no figures from wrk: {text}"))
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [requests, micros, p50, p99, p999, errors] = f[..] else {
        panic!("wrk figures: {f:?}");
    };
    WrkRun {
        rps: requests / (micros / 1e6),
        p50_ms: p50 / 1000.0,
        p99_ms: p99 / 1000.0,
        p999_ms: p999 / 1000.0,
        errors: errors as u64,
    }
}

/// The header of a wrk table.
pub fn print_wrk_header() {
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "target", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
    );
}

/// One row of a wrk table.
pub fn print_wrk_row(label: &str, r: &WrkRun) {
    println!(
        "{:<34} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>7}",
        label, r.rps, r.p50_ms, r.p99_ms, r.p999_ms, r.errors
    );
}

/// The hexyard/reference ratio row (req/s: higher is better; latencies: lower is better).
pub fn print_wrk_ratio(h: &WrkRun, n: &WrkRun, note: &str) {
    println!(
        "{:<34} {:>10.2} {:>9.2} {:>9.2} {:>9.2}   {note}",
        "  ratio hexyard/nginx",
        h.rps / n.rps,
        h.p50_ms / n.p50_ms,
        h.p99_ms / n.p99_ms,
        h.p999_ms / n.p999_ms
    );
}
