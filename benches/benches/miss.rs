//! bench-miss: cold-cache fetches through the mirror, against nginx `proxy_cache` in the same
//! run.
//!
//! A fake upstream on loopback (`FakeUpstream::synthetic`: signed package files whose outer
//! checksums match) holds 1,000 distinct packages of one release each (20 KiB of
//! incompressible content, a ~25 KiB tarball), plus one more for the herd. hexyard's mirror
//! repo starts on an empty store; nginx (`benches/nginx.conf`, `proxy_cache_lock on`) on an
//! empty cache.
//!
//! (a) Fetch all 1,000 tarballs once with 32 concurrent clients (one connection per request):
//!     throughput (tarballs/s, MB/s) and the upstream requests, which for tarballs must equal
//!     1,000 (asserted for hexyard, which also fetches each package file, at the same time,
//!     and checks the tarball against it; nginx verifies nothing). Every answer is checked byte for byte, and hexyard's store
//!     must then hold every tarball.
//! (b) 200 concurrent requests for one cold tarball, the upstream answering after a delay
//!     (50 ms) so that they all arrive while the first fetch is in flight: wall time and the
//!     upstream requests for that tarball (hexyard: must be 1).
//! (c) As mix and rebar3 fetch: for 1,000 other packages, each client gets the package file,
//!     then the tarball (32 clients). Both servers then fetch both objects from the upstream
//!     (hexyard: exactly one request each, asserted), and hexyard's tarball fill finds the
//!     package file it verifies against already stored.
//!
//! `cargo build --release --bins && cargo bench -p hexyard-benches --bench miss` (`benches/run`
//! does all of it). `BENCH_MISS_PACKAGES` (1000), `BENCH_MISS_KIB` (20), `BENCH_MISS_CLIENTS`
//! (32), `BENCH_HERD` (200) and `BENCH_HERD_DELAY_MS` (50) change the shape.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use hexyard_benches::{
    MIRROR_REPO, Nginx, UPSTREAM_NAME, env_or, package_name, per_sec, proxy_binary_note,
    sized_tarball, start_proxy,
};
use hexyard_tests::upstream::FakeUpstream;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const HOT: &str = "bench_hot";

/// GET `path` from `addr`: panics unless it is a 200 with exactly `expected`.
fn fetch(who: &str, addr: SocketAddr, path: &str, expected: &[u8]) {
    let r = hexyard_tests::http::Request::new("GET", path)
        .send(addr)
        .unwrap_or_else(|e| panic!("{who} GET {path}: {e}"));
    assert_eq!(
        r.status,
        200,
        "{who} {path}: {}",
        hexyard_tests::body_text(&r)
    );
    assert!(
        r.body == expected,
        "{who} {path}: {} bytes, not the upstream's {}",
        r.body.len(),
        expected.len()
    );
}

/// One client's errand: `(path, bytes)` fetched in order.
type Errand = Vec<(String, Vec<u8>)>;

/// Runs every errand once with `clients` threads, each taking the next errand when done with
/// one; the wall time.
fn fetch_all(
    who: &'static str,
    addr: SocketAddr,
    errands: Arc<Vec<Errand>>,
    clients: usize,
) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (errands, next) = (errands.clone(), next.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(errand) = errands.get(i) else {
                        break;
                    };
                    for (path, body) in errand {
                        fetch(who, addr, path, body);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    start.elapsed()
}

/// `n` clients GET `path` at the same moment; the wall time until the last has its answer.
fn herd(who: &'static str, addr: SocketAddr, path: &str, body: &[u8], n: usize) -> Duration {
    let gate = Arc::new(Barrier::new(n + 1));
    let (path, body) = (Arc::new(path.to_owned()), Arc::new(body.to_vec()));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (gate, path, body) = (gate.clone(), path.clone(), body.clone());
            std::thread::spawn(move || {
                gate.wait();
                fetch(who, addr, &path, &body);
            })
        })
        .collect();
    gate.wait();
    let start = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    start.elapsed()
}

struct Fill {
    wall: Duration,
    tarballs: usize,
    packages: usize,
    total: usize,
}

struct Herd {
    wall: Duration,
    tarball: usize,
    package: usize,
}

fn main() {
    if !hexyard_benches::measuring() {
        println!("bench-miss: run it with `cargo bench -p hexyard-benches --bench miss`");
        return;
    }
    let n: usize = env_or("BENCH_MISS_PACKAGES", 1000);
    let kib: usize = env_or("BENCH_MISS_KIB", 20);
    let clients: usize = env_or("BENCH_MISS_CLIENTS", 32);
    let herd_n: usize = env_or("BENCH_HERD", 200);
    let delay_ms: u64 = env_or("BENCH_HERD_DELAY_MS", 50);

    // Packages 0..n for (a), n..2n for (c).
    let mut tarballs: Vec<Vec<u8>> = (0..2 * n)
        .map(|i| sized_tarball(&package_name(i), "1.0.0", kib * 1024, i as u64 + 1).unwrap())
        .collect();
    tarballs.push(sized_tarball(HOT, "1.0.0", kib * 1024, 0).unwrap());
    let upstream = FakeUpstream::synthetic(UPSTREAM_NAME, tarballs);
    let rel = |i: usize| format!("tarballs/{}-1.0.0.tar", package_name(i));
    let pkg_rel = |i: usize| format!("packages/{}", package_name(i));
    let get = |rel: String| {
        let body = upstream.file(&rel).unwrap().to_vec();
        (format!("/repos/{MIRROR_REPO}/{rel}"), body)
    };
    let files: Arc<Vec<Errand>> = Arc::new((0..n).map(|i| vec![get(rel(i))]).collect());
    let bytes: usize = files.iter().flatten().map(|(_, b)| b.len()).sum();
    let client_flow: Arc<Vec<Errand>> = Arc::new(
        (n..2 * n)
            .map(|i| vec![get(pkg_rel(i)), get(rel(i))])
            .collect(),
    );
    let flow_bytes: usize = client_flow
        .iter()
        .filter_map(|e| e.last())
        .map(|(_, b)| b.len())
        .sum();
    let hot_rel = format!("tarballs/{HOT}-1.0.0.tar");
    let hot_body = upstream.file(&hot_rel).unwrap().to_vec();
    let hot_path = format!("/repos/{MIRROR_REPO}/{hot_rel}");

    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], hexyard_tests::free_port()));
    let publisher_port = hexyard_tests::free_port();
    let mirror = hexyard_tests::mirror_yaml(MIRROR_REPO, &upstream, UPSTREAM_NAME, &[]);
    let cfg_path = dir.path().join("hexyard.yaml");
    std::fs::write(
        &cfg_path,
        format!(
            "public_url: http://{addr}\nproxy: {{listen: \"{addr}\"}}\n\
             publisher: {{listen: \"127.0.0.1:{publisher_port}\"}}\nmetrics: {{listen: null}}\n\
             store: {{kind: local, root: ./store}}\nlog: {{level: warn}}\nrepos:\n{mirror}"
        ),
    )
    .unwrap();
    let proxy = start_proxy(&cfg_path, addr);
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let nginx = Nginx::start(&dir.path().join("nginx"), &empty, upstream.addr);

    // Runs `errands` (about packages `range`) on hexyard, then on nginx, counting what each
    // asked the upstream for.
    let fill = |errands: &Arc<Vec<Errand>>, range: std::ops::Range<usize>| -> Vec<Fill> {
        [("hexyard", addr), ("nginx", nginx.addr)]
            .into_iter()
            .map(|(who, at)| {
                upstream.reset_hits();
                let wall = fetch_all(who, at, errands.clone(), clients);
                Fill {
                    wall,
                    tarballs: range.clone().map(|i| upstream.hits(&rel(i))).sum(),
                    packages: range.clone().map(|i| upstream.hits(&pkg_rel(i))).sum(),
                    total: upstream.total_hits(),
                }
            })
            .collect()
    };

    // (a) 1,000 distinct cold tarballs.
    let fills = fill(&files, 0..n);
    let stored = std::fs::read_dir(
        dir.path()
            .join(format!("store/repos/{MIRROR_REPO}/tarballs")),
    )
    .map(|d| d.flatten().count())
    .unwrap_or(0);

    // (c) the clients' order: package file, then tarball.
    let flows = fill(&client_flow, n..2 * n);

    // (b) the herd on one cold tarball.
    upstream.set_delay(Duration::from_millis(delay_ms));
    let mut herds = Vec::new();
    for (who, at) in [("hexyard", addr), ("nginx", nginx.addr)] {
        upstream.reset_hits();
        let wall = herd(who, at, &hot_path, &hot_body, herd_n);
        herds.push(Herd {
            wall,
            tarball: upstream.hits(&hot_rel),
            package: upstream.hits(&format!("packages/{HOT}")),
        });
    }
    upstream.set_delay(Duration::ZERO);

    println!(
        "bench-miss: cold mirror, fake upstream on loopback; hexyard: {}",
        proxy_binary_note()
    );
    println!(
        "-- (a) {n} distinct tarballs ({:.1} KiB each, {:.1} MB in all), {clients} concurrent clients, one connection per request",
        bytes as f64 / n.max(1) as f64 / 1024.0,
        bytes as f64 / 1e6
    );
    print_fills(
        &fills,
        n,
        bytes,
        "hexyard also fetches and verifies each package file",
    );
    println!(
        "-- (b) {herd_n} concurrent requests for one cold tarball, upstream delay {delay_ms} ms"
    );
    println!(
        "{:<20} {:>9} {:>25} {:>25}",
        "target", "wall ms", "upstream tarball requests", "upstream package requests"
    );
    for (who, h) in ["hexyard", "nginx proxy_cache"].iter().zip(&herds) {
        println!(
            "{:<20} {:>9.1} {:>25} {:>25}",
            who,
            h.wall.as_secs_f64() * 1000.0,
            h.tarball,
            h.package
        );
    }
    println!(
        "{:<20} {:>9.2}",
        "  ratio hexyard/nginx",
        herds[0].wall.as_secs_f64() / herds[1].wall.as_secs_f64()
    );
    println!(
        "-- (c) as mix and rebar3 fetch: {n} other packages, each its package file then its tarball, {clients} concurrent clients"
    );
    print_fills(
        &flows,
        n,
        flow_bytes,
        "both fetch both objects; hexyard verifies each tarball against the stored package file",
    );

    assert_eq!(
        fills[0].tarballs, n,
        "hexyard asked the upstream for {} tarballs, not one per distinct object",
        fills[0].tarballs
    );
    assert_eq!(
        stored, n,
        "hexyard's store holds {stored} tarballs after the cold fill of {n}"
    );
    assert_eq!(
        (flows[0].packages, flows[0].tarballs),
        (n, n),
        "hexyard in the clients' order: upstream package files and tarballs, not one each"
    );
    assert_eq!(
        herds[0].tarball, 1,
        "hexyard asked the upstream {} times for one tarball under {herd_n} concurrent misses",
        herds[0].tarball
    );
    drop(nginx);
    drop(proxy);
}

/// The table of a fill: per server, wall time, tarballs/s, MB/s (of tarballs) and the upstream
/// requests; then the ratios.
fn print_fills(fills: &[Fill], n: usize, bytes: usize, note: &str) {
    println!(
        "{:<20} {:>9} {:>11} {:>8} {:>17} {:>17} {:>15}",
        "target",
        "wall s",
        "tarballs/s",
        "MB/s",
        "upstream tarballs",
        "upstream packages",
        "upstream total"
    );
    for (who, f) in ["hexyard", "nginx proxy_cache"].iter().zip(fills) {
        println!(
            "{:<20} {:>9.3} {:>11.0} {:>8.1} {:>17} {:>17} {:>15}",
            who,
            f.wall.as_secs_f64(),
            per_sec(n, f.wall),
            bytes as f64 / 1e6 / f.wall.as_secs_f64(),
            f.tarballs,
            f.packages,
            f.total
        );
    }
    println!(
        "{:<20} {:>9.2} {:>11.2}   (wall and throughput, hexyard/nginx; {note})",
        "  ratio hexyard/nginx",
        fills[0].wall.as_secs_f64() / fills[1].wall.as_secs_f64(),
        fills[1].wall.as_secs_f64() / fills[0].wall.as_secs_f64(),
    );
}
