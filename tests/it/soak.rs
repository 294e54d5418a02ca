//! Load with faults: hot reads (objects already stored), cold reads (mirror objects not stored
//! yet) and publishes through the proxy, while the mirror's upstream flaps (a [`TcpGate`] cut and
//! reopened every 2 s). Zero 5xx for stored objects; the RSS of the proxy and the publisher
//! stays bounded and does not keep growing; their open file descriptors do not grow.
//!
//! CI runs it for 20 s. The long run (10 minutes):
//!
//! ```sh
//! cargo build --workspace --bins
//! HEXYARD_SOAK_SECS=600 cargo test -p hexyard-tests --test it soak -- --nocapture
//! ```

use hexyard_tests::upstream::FakeUpstream;
use hexyard_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const M: &str = "mirror";
/// RSS bound per process (debug builds).
const RSS_BOUND_KB: u64 = 512 * 1024;
/// Open file descriptors a process may gain over the run.
const FD_SLACK: usize = 16;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Samples of one process: (RSS kB, open fds), one a second.
#[derive(Default)]
struct Samples(Vec<(u64, usize)>);

impl Samples {
    fn mean_rss(s: &[(u64, usize)]) -> u64 {
        s.iter().map(|x| x.0).sum::<u64>() / (s.len().max(1) as u64)
    }

    /// Asserts the bounds; returns the summary.
    fn check(&self, what: &str) -> String {
        let s = &self.0;
        assert!(s.len() >= 4, "{what}: too few samples");
        let max = s.iter().map(|x| x.0).max().unwrap_or(0);
        let (first, second) = s.split_at(s.len() / 2);
        let (m1, m2) = (Self::mean_rss(first), Self::mean_rss(second));
        let (fd0, fd1) = (s[0].1, s[s.len() - 1].1);
        let summary = format!(
            "{what}: RSS start {} kB, max {max} kB, end {} kB (mean 1st half {m1}, 2nd half {m2}); fds start {fd0}, end {fd1}",
            s[0].0,
            s[s.len() - 1].0
        );
        assert!(max < RSS_BOUND_KB, "{summary}: over {RSS_BOUND_KB} kB");
        // Steady growth: the second half well above the first (allocator slack allowed).
        assert!(
            m2 <= m1 + m1 / 4 + 16 * 1024,
            "{summary}: RSS keeps growing"
        );
        assert!(fd1 <= fd0 + FD_SLACK, "{summary}: file descriptors grow");
        summary
    }
}

#[test]
fn soak_mixed_reads_and_publishes_with_a_flapping_upstream() {
    let secs: u64 = std::env::var("HEXYARD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let up = FakeUpstream::fixture();
    let gate = TcpGate::start(up.addr);
    let env = TestEnv::new(EnvOptions {
        extra_repos: mirror_yaml(
            M,
            &up,
            "fixture_repo",
            &["package_ttl_secs: 1", "index_ttl_secs: 1"],
        )
        .replace(&up.url(), &gate.url()),
        ..EnvOptions::default()
    });
    let publisher = env.start_publisher();
    let proxy = env.start_proxy();
    let addr = proxy.addr;
    // Hot: hosted releases and some mirror objects, stored before the run.
    publish_fixtures(addr, &["fx_core-0.1.0", "fx_core-0.2.0", "fx_opt-1.0.0"]);
    let hot: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    for rel in [
        "names",
        "versions",
        "packages/fx_core",
        "tarballs/fx_core-0.1.0.tar",
        "tarballs/fx_opt-1.0.0.tar",
    ] {
        for repo in [REPO, M] {
            let p = format!("/repos/{repo}/{rel}");
            assert_eq!(get(addr, &p).status, 200, "{p}");
            hot.lock().unwrap().insert(p);
        }
    }
    // Cold: every other mirror object (each stays cold until a fill succeeds).
    let cold: Vec<String> = std::fs::read_dir(fixtures().join("registry/tarballs"))
        .unwrap()
        .flatten()
        .map(|e| format!("tarballs/{}", e.file_name().to_string_lossy()))
        .chain(
            ["fx_json", "fx_alias", "fx_erl", "fx_unicode", "fx_opt"]
                .iter()
                .map(|n| format!("packages/{n}")),
        )
        .map(|rel| format!("/repos/{M}/{rel}"))
        .collect();

    let stop = AtomicBool::new(false);
    let statuses: Mutex<BTreeMap<u16, usize>> = Mutex::new(BTreeMap::new());
    let hot_failures: Mutex<Vec<String>> = Mutex::new(vec![]);
    let (mut proxy_s, mut pub_s) = (Samples::default(), Samples::default());
    let (proxy_pid, pub_pid) = (proxy.child.id(), publisher.child.id());
    let count = |s: u16| *statuses.lock().unwrap().entry(s).or_default() += 1;
    let deadline = Instant::now() + Duration::from_secs(secs);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let paths: Vec<String> = hot.lock().unwrap().iter().cloned().collect();
                    let p = &paths[i % paths.len()];
                    i += 1;
                    let status = http::Request::new("GET", p)
                        .send(addr)
                        .map_or(0, |r| r.status);
                    count(status);
                    if status != 200 {
                        hot_failures.lock().unwrap().push(format!("{p}: {status}"));
                    }
                }
            });
        }
        s.spawn(|| {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let p = &cold[i % cold.len()];
                i += 1;
                let status = http::Request::new("GET", p)
                    .send(addr)
                    .map_or(0, |r| r.status);
                count(status);
                if status == 200 {
                    hot.lock().unwrap().insert(p.clone());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let version = format!("0.{n}.0");
                n += 1;
                let r = api("POST", "/api/packages/soak/releases", Some(WRITE_KEY))
                    .upload(package_tarball("soak", &version))
                    .send(addr);
                let status = r.as_ref().map_or(0, |r| r.status);
                count(status);
                if status == 201 {
                    hot.lock()
                        .unwrap()
                        .insert(format!("/repos/{REPO}/tarballs/soak-{version}.tar"));
                } else {
                    hot_failures
                        .lock()
                        .unwrap()
                        .push(format!("publish soak {version}: {status}"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(2));
                gate.set_up(!gate.is_up());
            }
        });
        while Instant::now() < deadline {
            proxy_s.0.push((rss_kb(proxy_pid), fds(proxy_pid)));
            pub_s.0.push((rss_kb(pub_pid), fds(pub_pid)));
            std::thread::sleep(Duration::from_secs(1));
        }
        stop.store(true, Ordering::Relaxed);
    });
    // Quiesced: the last sample, after in-flight requests ended.
    std::thread::sleep(Duration::from_millis(300));
    proxy_s.0.push((rss_kb(proxy_pid), fds(proxy_pid)));
    pub_s.0.push((rss_kb(pub_pid), fds(pub_pid)));
    let total: usize = statuses.lock().unwrap().values().sum();
    println!(
        "soak: {secs} s, {total} requests, by status {:?}, upstream hits {}",
        statuses.lock().unwrap(),
        up.total_hits()
    );
    let failures = hot_failures.into_inner().unwrap();
    println!("soak: {}", proxy_s.check("proxy"));
    println!("soak: {}", pub_s.check("publisher"));
    assert!(failures.is_empty(), "stored objects failed: {failures:#?}");
    assert!(total > secs as usize * 10, "too few requests");
}
