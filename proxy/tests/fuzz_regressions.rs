//! The `route` fuzz target's invariants on stable Rust: every saved finding
//! (`tests/fuzz/regressions/route/`) and every seed path (the paths the clients requested in
//! the fixtures, and `tests/fuzz/seeds/route.txt`) goes through `route::fuzz::check`, the
//! function the fuzz target calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use hexyard_common::testing::fixtures_dir;
use hexyard_proxy::route::fuzz::check;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz")
}

fn seed_paths() -> Vec<String> {
    let fx = fixtures_dir();
    let mut paths = Vec::new();
    let requests = std::fs::read_to_string(fx.join("publish/requests.jsonl")).unwrap();
    for line in requests.lines() {
        let after = line.split_once("\"path\": \"").unwrap().1;
        let path = after.split('"').next().unwrap();
        paths.push(path.split('?').next().unwrap().to_owned());
    }
    let log = std::fs::read_to_string(fx.join("verify/repo-requests.log")).unwrap();
    for line in log.lines() {
        let p = line.split(' ').nth(1).unwrap();
        paths.push(p.to_owned());
        paths.push(format!("/repos/fixture_repo{p}"));
    }
    let typical = std::fs::read_to_string(fuzz_dir().join("seeds/route.txt")).unwrap();
    paths.extend(typical.lines().map(str::to_owned));
    paths
}

#[test]
fn route_seeds_and_regressions() {
    let seeds = seed_paths();
    assert!(seeds.len() > 50, "{} seed paths", seeds.len());
    for p in &seeds {
        check(p);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(fuzz_dir().join("regressions/route"))
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in &files {
        let data = std::fs::read(path).unwrap();
        // The fuzz target routes only UTF-8 (a request path always is).
        if let Ok(p) = std::str::from_utf8(&data) {
            eprintln!("route: {}", path.display());
            check(p);
        }
    }
    eprintln!("route: {} seeds, {} regressions", seeds.len(), files.len());
}
