//! Crash consistency: 200 publishes against a publisher that another thread kills with SIGKILL
//! at random moments and restarts on the same port. Afterwards `verify` passes, every
//! acknowledged release is in the signed indexes with its tarball stored byte for byte, and
//! every other release is either absent everywhere or complete.
//!
//! The kill times come from a seeded generator; the seed is printed, and
//! `HEXYARD_CRASH_SEED=<seed> cargo test -p hexyard-tests --test it crash -- --nocapture`
//! replays the same schedule (the interleaving with the publishes still varies).

use crate::publish_concurrency::assert_index_holds;
use hexyard_tests::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// splitmix64: small, seedable, good enough to spread kill times.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `var` when set, else from the clock; prints the seed.
    pub fn from_env(var: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("seed: {seed} (replay with {var}={seed})");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }
}

/// One publish of the run and what became of it.
struct Job {
    name: String,
    version: String,
    body: Vec<u8>,
    /// The HTTP status, or `None` when the connection failed after the request was sent.
    status: Option<u16>,
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// Sends one publish; a refused connection (publisher down, nothing sent) is retried.
fn publish_once(addr: std::net::SocketAddr, job: &Job) -> Option<u16> {
    let req = api(
        "POST",
        &format!("/api/packages/{}/releases?replace=false", job.name),
        Some(WRITE_KEY),
    )
    .upload(job.body.clone());
    loop {
        match req.send(addr) {
            Ok(r) => return Some(r.status),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return None,
        }
    }
}

/// Every file under the store root: object paths under `repos/` must be objects (no temporary
/// or partial files); returns the left-over temporary files in `.tmp/`.
fn assert_tree_clean(env: &TestEnv) -> Vec<std::path::PathBuf> {
    let root = env.store_root();
    let mut leftovers = vec![];
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if rel.starts_with(".locks/") {
                continue;
            }
            if rel.starts_with(".tmp/") {
                leftovers.push(p);
                continue;
            }
            let obj = rel.strip_prefix(&format!("repos/{REPO}/")).unwrap_or("");
            let ok = matches!(obj, "names" | "versions" | "public_key")
                || obj
                    .strip_prefix("packages/")
                    .is_some_and(|n| n.starts_with("crash_") && !n.contains('.'))
                || obj
                    .strip_prefix("tarballs/crash_")
                    .is_some_and(|t| t.ends_with(".tar") && !t.contains(".tmp"));
            assert!(
                ok || rel == "repos/other_repo/public_key",
                "unexpected file in the store: {rel}"
            );
        }
    }
    leftovers
}

/// Sets a file's mtime `by` into the past (time passing, without waiting for it).
fn backdate(path: &std::path::Path, by: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - by).unwrap();
}

#[test]
fn sigkill_at_random_moments_during_200_publishes_loses_no_acknowledged_release() {
    let mut rng = Rng::from_env("HEXYARD_CRASH_SEED");
    let env = env(EnvOptions::default());
    // 40 packages x 5 versions, interleaved so that every package gets a new version while
    // others are published, from 4 client threads.
    let jobs: Vec<Mutex<Job>> = (0..200)
        .map(|i| {
            let (name, version) = (format!("crash_{:02}", i % 40), format!("1.{}.0", i / 40));
            let body = package_tarball(&name, &version);
            Mutex::new(Job {
                name,
                version,
                body,
                status: None,
            })
        })
        .collect();
    let publisher = Mutex::new(env.start_publisher());
    let addr = env.publisher_addr;
    let next = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let kills = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    // One version after the other per package: a client thread takes the next job.
                    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::SeqCst)) {
                        let mut job = job.lock().unwrap();
                        job.status = publish_once(addr, &job);
                    }
                })
            })
            .collect();
        let killer = s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                // Often enough for a dozen kills or more: the 200 publishes take ~1.5 s of
                // the publisher's uptime (a 50-400 ms gap left as few as 4 kills).
                std::thread::sleep(rng.millis(20, 150));
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let mut p = publisher.lock().unwrap();
                p.kill();
                kills.fetch_add(1, Ordering::SeqCst);
                // Sometimes stay down a moment: clients then see refused connections.
                std::thread::sleep(rng.millis(0, 40));
                *p = env.start_publisher();
            }
        });
        for c in clients {
            c.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        killer.join().unwrap();
    });
    let jobs: Vec<Job> = jobs.into_iter().map(|j| j.into_inner().unwrap()).collect();
    let acked: Vec<(String, String)> = jobs
        .iter()
        .filter(|j| j.status == Some(201))
        .map(|j| (j.name.clone(), j.version.clone()))
        .collect();
    let others: Vec<String> = jobs
        .iter()
        .filter(|j| j.status.is_some_and(|s| s != 201))
        .map(|j| format!("{} {}: {:?}", j.name, j.version, j.status))
        .collect();
    let cut = jobs.iter().filter(|j| j.status.is_none()).count();
    println!(
        "crash: 200 publishes in {:?}, {} kills: {} acknowledged, {cut} cut by a kill",
        started.elapsed(),
        kills.load(Ordering::SeqCst),
        acked.len()
    );
    // A kill cuts a connection; it never turns into an error answer.
    assert!(others.is_empty(), "{others:#?}");
    assert!(
        kills.load(Ordering::SeqCst) >= 5,
        "too few kills to mean anything"
    );
    assert!(acked.len() >= 30, "too few publishes got through");

    // Nothing but objects under repos/. A temporary file of a killed writer may remain in .tmp/;
    // a later start removes it once it is old enough to belong to no live writer.
    let leftovers = assert_tree_clean(&env);
    println!("crash: {} temporary files left by kills", leftovers.len());
    // A kill between the tarball write and the package file write leaves an orphan tarball
    // (no package file lists it). A start removes it once it is older than a publish in flight
    // elsewhere could be (30 s); let that time pass for the orphans and the temporary files.
    drop(publisher);
    let orphans: Vec<&Job> = jobs
        .iter()
        .filter(|j| {
            env.object_path(REPO, &format!("tarballs/{}-{}.tar", j.name, j.version))
                .exists()
                && !env
                    .package(REPO, &j.name)
                    .is_some_and(|p| p.releases.iter().any(|r| r.version == j.version))
        })
        .collect();
    println!("crash: {} orphan tarballs left by kills", orphans.len());
    for j in &orphans {
        assert_ne!(j.status, Some(201), "{} {} acknowledged", j.name, j.version);
        let p = env.object_path(REPO, &format!("tarballs/{}-{}.tar", j.name, j.version));
        backdate(&p, Duration::from_secs(60));
    }
    for p in &leftovers {
        backdate(p, Duration::from_secs(2 * 3600));
    }
    let _p = env.start_publisher();
    assert!(
        assert_tree_clean(&env).is_empty(),
        "stale temporary files kept"
    );
    for j in &orphans {
        assert!(
            env.object(REPO, &format!("tarballs/{}-{}.tar", j.name, j.version))
                .is_none(),
            "orphan {} {} kept",
            j.name,
            j.version
        );
    }

    let (ok, out) = env.publisher_command(&["verify"]);
    assert!(ok, "verify failed:\n{out}");
    assert!(out.contains("verify: ok"), "{out}");

    assert_index_holds(&env, &acked);
    let names = env.name_list(REPO);
    for j in &jobs {
        let tarball = env.object(REPO, &format!("tarballs/{}-{}.tar", j.name, j.version));
        let release = env
            .package(REPO, &j.name)
            .and_then(|p| p.releases.into_iter().find(|r| r.version == j.version));
        let in_versions = env
            .versions_of(REPO, &j.name)
            .is_some_and(|v| v.versions.contains(&j.version));
        let complete = match (&tarball, &release) {
            (Some(t), Some(r)) => {
                assert_eq!(t, &j.body, "{} {}: tarball bytes differ", j.name, j.version);
                assert_eq!(
                    r.outer_checksum.as_deref(),
                    Some(sha256(&j.body).as_slice()),
                    "{} {}: outer checksum",
                    j.name,
                    j.version
                );
                in_versions && names.contains(&j.name)
            }
            _ => false,
        };
        let absent = tarball.is_none() && release.is_none() && !in_versions;
        if j.status == Some(201) {
            assert!(
                complete,
                "{} {} acknowledged but incomplete",
                j.name, j.version
            );
        } else {
            assert!(
                complete || absent,
                "{} {} (not acknowledged) is half there: tarball {}, package file {}, versions {}",
                j.name,
                j.version,
                tarball.is_some(),
                release.is_some(),
                in_versions
            );
        }
    }
}
