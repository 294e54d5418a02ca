//! The fuzz targets' invariants on stable Rust: every saved fuzz finding
//! (`tests/fuzz/regressions/<target>/`) and every fixture seed goes through the same check
//! function the fuzz target calls (`hexyard_common::testing::fuzz`). The seeds are the ones
//! `tests/fuzz/seed` puts in the corpora.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};

use hexyard_common::testing::{fixtures_dir, fuzz};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz")
}

/// The files of `dir` (sorted), with their names; empty when the directory does not exist.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

fn fixture_files(sub: &str, suffix: &str) -> Vec<(String, Vec<u8>)> {
    let v: Vec<_> = files(&fixtures_dir().join(sub))
        .into_iter()
        .filter(|(n, _)| n.ends_with(suffix))
        .collect();
    assert!(!v.is_empty(), "no fixtures in {sub}");
    v
}

/// Runs `check` on every input, printing which one fails.
fn run(target: &str, seeds: Vec<(String, Vec<u8>)>, check: fn(&[u8])) {
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    let total = seeds.len() + regressions.len();
    for (name, data) in seeds.into_iter().chain(regressions) {
        eprintln!("{target}: {name}");
        check(&data);
    }
    eprintln!("{target}: {total} inputs");
}

fn tarballs() -> Vec<(String, Vec<u8>)> {
    let mut v = fixture_files("publish", ".tar");
    v.extend(fixture_files("registry/tarballs", ".tar"));
    v.extend(fixture_files("bad", ".tar"));
    v
}

/// The bytes of entry `name` in the tar `data`.
fn tar_entry(data: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut a = tar::Archive::new(data);
    for e in a.entries().ok()? {
        let mut e = e.ok()?;
        if e.path_bytes().as_ref() == name.as_bytes() {
            let mut out = Vec::new();
            e.read_to_end(&mut out).ok()?;
            return Some(out);
        }
    }
    None
}

#[test]
fn tarball() {
    let seeds = tarballs();
    // The good ones are accepted, so the deep checks ran on them.
    let limits = fuzz::tarball_limits();
    let ok = seeds
        .iter()
        .filter(|(_, d)| hexyard_common::tarball::parse(d, &limits).is_ok())
        .count();
    assert_eq!(ok, 16, "publish/ and registry/tarballs/ parse");
    // A header checksum written as a signed byte sum is accepted, as erl_tar and GNU tar
    // accept it (and the check's independent reader then sees it normalised).
    let signed = std::fs::read(fuzz_dir().join("regressions/tarball/signed_header_checksum.tar"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(hexyard_common::tarball::parse(&signed, &limits).is_ok());
    run("tarball", seeds, fuzz::tarball);
}

#[test]
fn metadata() {
    let seeds: Vec<_> = tarballs()
        .into_iter()
        .filter_map(|(n, d)| Some((n, tar_entry(&d, "metadata.config")?)))
        .collect();
    assert!(seeds.len() >= 16);
    run("metadata", seeds, fuzz::metadata);
}

#[test]
fn etf() {
    let seeds = files(&fuzz_dir().join("seeds/etf"));
    assert!(seeds.len() >= 10);
    run("etf", seeds, fuzz::etf);
}

#[test]
fn registry() {
    let mut seeds: Vec<_> = ["names", "versions"]
        .into_iter()
        .map(|n| {
            let p = fixtures_dir().join("registry").join(n);
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    seeds.extend(fixture_files("registry/packages", ""));
    assert_eq!(seeds.len(), 8, "names, versions, 6 packages");
    let gunzipped: Vec<_> = seeds
        .iter()
        .map(|(n, d)| {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(d.as_slice())
                .read_to_end(&mut out)
                .unwrap();
            (format!("{n} (gunzipped)"), out)
        })
        .collect();
    seeds.extend(gunzipped);
    run("registry", seeds, fuzz::registry);
}

#[test]
fn lockfile() {
    let mut seeds = fixture_files("verify", ".lock");
    let fx_erl = std::fs::read(fixtures_dir().join("publish/fx_erl-0.1.0.tar")).unwrap();
    let contents = tar_entry(&fx_erl, "contents.tar.gz").unwrap();
    let mut inner = Vec::new();
    flate2::read::GzDecoder::new(contents.as_slice())
        .read_to_end(&mut inner)
        .unwrap();
    seeds.push((
        "fx_erl rebar.lock".into(),
        tar_entry(&inner, "rebar.lock").unwrap(),
    ));
    run("lockfile", seeds, fuzz::lockfile);
}
