//! Mirror repositories: fill from the upstream, verification, single flight, freshness,
//! stale-if-error, offline, allowlists.

use hexyard_common::registry::{self, proto};
use hexyard_tests::upstream::{FakeUpstream, Fault, sign_package};
use hexyard_tests::*;
use prost::Message;
use std::time::Duration;

const M: &str = "mirror";

fn env_with(up: &FakeUpstream, extra: &[&str]) -> TestEnv {
    TestEnv::new(EnvOptions {
        extra_repos: mirror_yaml(M, up, "fixture_repo", extra),
        ..crate::opts()
    })
}

fn path(rel: &str) -> String {
    format!("/repos/{M}/{rel}")
}

/// A mirror of the fixture upstream, which answers after 300 ms: long enough that requests
/// sent together overlap there.
fn slow_upstream() -> (FakeUpstream, TestEnv) {
    let up = FakeUpstream::fixture();
    up.set_delay(Duration::from_millis(300));
    let env = env_with(&up, &[]);
    (up, env)
}

#[test]
fn fills_from_the_upstream_once_and_passes_files_through_byte_for_byte() {
    let up = FakeUpstream::fixture();
    let env = env_with(&up, &[]);
    let proxy = env.start_proxy();
    for rel in [
        "names",
        "versions",
        "packages/fx_core",
        "packages/fx_json",
        "tarballs/fx_core-0.2.0.tar",
    ] {
        let r = get(proxy.addr, &path(rel));
        assert_eq!(r.status, 200, "{rel}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            r.body,
            fixture(&format!("registry/{rel}")),
            "{rel}: not byte for byte"
        );
        assert_eq!(env.object(M, rel).unwrap(), r.body, "{rel}: not stored");
        assert!(r.header("etag").is_some());
        assert_eq!(r.header("content-encoding"), None);
    }
    let hits = up.total_hits();
    // Again: served from memory or the store, no upstream request.
    for rel in [
        "names",
        "versions",
        "packages/fx_core",
        "tarballs/fx_core-0.2.0.tar",
    ] {
        assert_eq!(get(proxy.addr, &path(rel)).status, 200);
    }
    assert_eq!(up.total_hits(), hits);
    // A release the upstream does not have.
    assert_eq!(
        get(proxy.addr, &path("tarballs/fx_core-9.9.9.tar")).status,
        404
    );
    assert_eq!(get(proxy.addr, &path("packages/nope")).status, 404);
}

#[test]
fn the_mirror_public_key_is_the_upstream_key() {
    let up = FakeUpstream::fixture();
    let env = env_with(&up, &[]);
    let proxy = env.start_proxy();
    let r = get(proxy.addr, &path("public_key"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fixture("keys/public_key.pem"));
}

#[test]
fn what_fails_verification_is_neither_stored_nor_served() {
    let up = FakeUpstream::fixture();
    let env = env_with(&up, &[]);
    let proxy = env.start_proxy();
    // A signature by another key.
    let mut tampered = fixture("registry/packages/fx_core");
    let signed = registry::open_signed(&tampered, 1 << 20).unwrap();
    let mut pkg = proto::Package::decode(signed.payload.as_slice()).unwrap();
    pkg.releases.pop();
    let other = hexyard_common::signing::SigningKey::generate().unwrap();
    tampered = registry::encode_signed(&pkg, &other).unwrap();
    up.set_file("packages/fx_core", tampered);
    // The right key but the wrong repository name.
    up.set_resigned_as("packages/fx_opt", "evil_repo");
    // A package file served under another package's name.
    up.set_file("packages/fx_alias", fixture("registry/packages/fx_json"));
    for (rel, why) in [
        ("packages/fx_core", "failed verification"),
        ("packages/fx_opt", "evil_repo"),
        ("packages/fx_alias", "fx_json"),
    ] {
        let r = get(proxy.addr, &path(rel));
        assert_eq!(r.status, 502, "{rel}");
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains(why), "{rel}: {body}");
        assert!(env.object(M, rel).is_none(), "{rel} was stored");
    }
    // A tarball whose bytes do not match the signed outer checksum.
    let mut bad = fixture("registry/tarballs/fx_json-0.3.0.tar");
    let last = bad.len() - 1;
    bad[last] ^= 1;
    up.set_file("tarballs/fx_json-0.3.0.tar", bad);
    let r = get(proxy.addr, &path("tarballs/fx_json-0.3.0.tar"));
    assert_eq!(r.status, 502);
    assert!(String::from_utf8_lossy(&r.body).contains("outer checksum"));
    assert!(env.object(M, "tarballs/fx_json-0.3.0.tar").is_none());
    // The package file itself was fine and is kept.
    assert_eq!(
        env.object(M, "packages/fx_json").unwrap(),
        fixture("registry/packages/fx_json")
    );
}

#[test]
fn two_hundred_concurrent_misses_share_one_upstream_request() {
    let (up, env) = slow_upstream();
    let proxy = env.start_proxy();
    let addr = proxy.addr;
    let expected = fixture("registry/tarballs/fx_core-0.1.0.tar");
    let threads: Vec<_> = (0..200)
        .map(|_| std::thread::spawn(move || get(addr, "/repos/mirror/tarballs/fx_core-0.1.0.tar")))
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, expected);
    }
    assert_eq!(up.hits("tarballs/fx_core-0.1.0.tar"), 1);
    assert_eq!(up.hits("packages/fx_core"), 1);
}

#[test]
fn a_cold_tarball_and_its_package_file_are_asked_for_at_once() {
    let (up, env) = slow_upstream();
    let proxy = env.start_proxy();
    let rel = "tarballs/fx_core-0.1.0.tar";
    let r = get(proxy.addr, &path(rel));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, fixture(&format!("registry/{rel}")));
    assert_eq!(env.object(M, rel).unwrap(), r.body);
    assert_eq!(up.hits("packages/fx_core"), 1);
    assert_eq!(up.hits(rel), 1);
    assert_eq!(
        up.peak_in_flight(),
        2,
        "the package file and the tarball were asked for one after the other"
    );
    // With the package file confirmed within its TTL, another tarball is one request.
    up.reset_hits();
    let r = get(proxy.addr, &path("tarballs/fx_core-0.2.0.tar"));
    assert_eq!(r.status, 200);
    assert_eq!(up.hits("packages/fx_core"), 0);
    assert_eq!(up.hits("tarballs/fx_core-0.2.0.tar"), 1);
    // A tarball fetched alongside a package file that does not verify is not kept.
    up.set_resigned_as("packages/fx_opt", "evil_repo");
    let rel = "tarballs/fx_opt-1.0.0.tar";
    let r = get(proxy.addr, &path(rel));
    assert_eq!(r.status, 502);
    assert!(String::from_utf8_lossy(&r.body).contains("evil_repo"));
    assert_eq!(up.hits(rel), 1);
    assert!(env.object(M, rel).is_none(), "{rel} was stored");
    assert!(env.object(M, "packages/fx_opt").is_none());
}

#[test]
fn revalidates_package_files_after_their_ttl_and_on_unknown_versions() {
    let up = FakeUpstream::fixture();
    // First the upstream knows only fx_core 0.1.0.
    let signed = registry::open_signed(&fixture("registry/packages/fx_core"), 1 << 20).unwrap();
    let full = proto::Package::decode(signed.payload.as_slice()).unwrap();
    let mut old = full.clone();
    old.releases.truncate(1);
    up.set_file("packages/fx_core", sign_package(&old));
    let env = env_with(&up, &["package_ttl_secs: 3600"]);
    let proxy = env.start_proxy();
    let key = hexyard_common::signing::VerifyingKey::from_pem(
        &String::from_utf8(fixture("keys/public_key.pem")).unwrap(),
    )
    .unwrap();
    let r = get(proxy.addr, &path("packages/fx_core"));
    assert_eq!(
        registry::decode_package(&r.body, &key, "fixture_repo", "fx_core")
            .unwrap()
            .releases
            .len(),
        1
    );
    // The upstream publishes 0.2.0; within the TTL the package file is not refetched...
    up.set_file("packages/fx_core", fixture("registry/packages/fx_core"));
    let r = get(proxy.addr, &path("packages/fx_core"));
    assert_eq!(
        registry::decode_package(&r.body, &key, "fixture_repo", "fx_core")
            .unwrap()
            .releases
            .len(),
        1
    );
    assert_eq!(up.hits("packages/fx_core"), 1);
    // ...but asking for the new tarball revalidates it at once.
    let t = get(proxy.addr, &path("tarballs/fx_core-0.2.0.tar"));
    assert_eq!(t.status, 200);
    assert_eq!(t.body, fixture("registry/tarballs/fx_core-0.2.0.tar"));
    assert_eq!(up.hits("packages/fx_core"), 2);
    let r = get(proxy.addr, &path("packages/fx_core"));
    assert_eq!(r.body, fixture("registry/packages/fx_core"));
}

#[test]
fn after_the_ttl_a_conditional_request_revalidates() {
    let up = FakeUpstream::fixture();
    let env = env_with(&up, &["package_ttl_secs: 0", "index_ttl_secs: 0"]);
    let proxy = env.start_proxy();
    assert_eq!(get(proxy.addr, &path("packages/fx_opt")).status, 200);
    let stored = env.object_stamp(M, "packages/fx_opt");
    // TTL 0: every request asks the upstream, with If-None-Match; the 304 leaves the store alone.
    // (S3's LastModified has one-second resolution: wait past it there.)
    let pause = if env.moto.is_some() { 1100 } else { 20 };
    std::thread::sleep(Duration::from_millis(pause));
    let r = get(proxy.addr, &path("packages/fx_opt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fixture("registry/packages/fx_opt"));
    assert_eq!(up.hits("packages/fx_opt"), 2);
    assert_eq!(env.object_stamp(M, "packages/fx_opt"), stored);
}

#[test]
fn serves_stored_copies_when_the_upstream_fails_and_reports_errors_otherwise() {
    let up = FakeUpstream::fixture();
    let env = env_with(&up, &["package_ttl_secs: 0"]);
    let proxy = env.start_proxy();
    assert_eq!(get(proxy.addr, &path("packages/fx_core")).status, 200);
    assert_eq!(
        get(proxy.addr, &path("tarballs/fx_core-0.1.0.tar")).status,
        200
    );
    for fault in [
        Fault::Status(500),
        Fault::Status(503),
        Fault::Refuse,
        Fault::CutBody,
    ] {
        up.set_fault(fault.clone());
        let r = get(proxy.addr, &path("packages/fx_core"));
        assert_eq!(r.status, 200, "{fault:?}: stale-if-error");
        assert_eq!(r.body, fixture("registry/packages/fx_core"));
        assert_eq!(
            get(proxy.addr, &path("tarballs/fx_core-0.1.0.tar")).status,
            200
        );
        // Nothing stored: a clear 502.
        let r = get(proxy.addr, &path("packages/fx_json"));
        assert_eq!(r.status, 502, "{fault:?}");
        assert!(String::from_utf8_lossy(&r.body).contains("no copy is stored"));
    }
    // Slower than the timeout: 504.
    up.set_fault(Fault::None);
    up.set_delay(Duration::from_millis(2500));
    let r = get(proxy.addr, &path("packages/fx_erl"));
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    let r = get(proxy.addr, &path("packages/fx_core"));
    assert_eq!(r.status, 200, "stale on timeout");
    let metrics = std::fs::read_to_string(&proxy.log).unwrap();
    assert!(
        metrics.contains("outcome=\"stale\""),
        "stale outcomes are logged"
    );
}

#[test]
fn an_offline_mirror_never_calls_the_upstream() {
    let up = FakeUpstream::fixture();
    let env = env_with(&up, &[]);
    {
        let proxy = env.start_proxy();
        assert_eq!(get(proxy.addr, &path("packages/fx_core")).status, 200);
        assert_eq!(
            get(proxy.addr, &path("tarballs/fx_core-0.1.0.tar")).status,
            200
        );
    }
    // Same store, now offline.
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        text.replace(
            "    kind: mirror\n",
            "    kind: mirror\n    offline: true\n",
        ),
    )
    .unwrap();
    up.reset_hits();
    let proxy = env.start_proxy();
    assert_eq!(
        get(proxy.addr, &path("packages/fx_core")).body,
        fixture("registry/packages/fx_core")
    );
    assert_eq!(
        get(proxy.addr, &path("tarballs/fx_core-0.1.0.tar")).status,
        200
    );
    let r = get(proxy.addr, &path("packages/fx_json"));
    assert_eq!(r.status, 404);
    assert!(String::from_utf8_lossy(&r.body).contains("offline"));
    assert_eq!(
        get(proxy.addr, &path("tarballs/fx_core-0.2.0.tar")).status,
        404
    );
    assert_eq!(up.total_hits(), 0);
}

#[test]
fn allowlist_follows_dependencies_and_deny_wins() {
    let up = FakeUpstream::fixture();
    let env = env_with(
        &up,
        &["allow: [fx_json]", "deny: [fx_opt]", "follow_deps: true"],
    );
    let proxy = env.start_proxy();
    for (name, status) in [
        ("fx_json", 200),
        ("fx_core", 200),  // a dependency of fx_json
        ("fx_alias", 200), // a dependency with another app name
        ("fx_opt", 403),   // an optional dependency, but denied
        ("fx_erl", 403),
        ("fx_unicode", 403),
    ] {
        let r = get(proxy.addr, &path(&format!("packages/{name}")));
        assert_eq!(
            r.status,
            status,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        if status == 403 {
            assert!(env.object(M, &format!("packages/{name}")).is_none());
        }
    }
    let r = get(proxy.addr, &path("packages/fx_opt"));
    assert!(String::from_utf8_lossy(&r.body).contains("denied by rule \"fx_opt\""));
    let r = get(proxy.addr, &path("tarballs/fx_erl-0.1.0.tar"));
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("not allowed by mirror"));
    assert_eq!(up.hits("tarballs/fx_erl-0.1.0.tar"), 0);
    assert_eq!(
        get(proxy.addr, &path("tarballs/fx_core-0.2.0.tar")).status,
        200
    );
}

#[test]
fn allowlist_globs_and_no_dependency_following() {
    let up = FakeUpstream::fixture();
    let env = env_with(&up, &["allow: [\"fx_j*\", fx_opt]", "follow_deps: false"]);
    let proxy = env.start_proxy();
    assert_eq!(get(proxy.addr, &path("packages/fx_json")).status, 200);
    assert_eq!(get(proxy.addr, &path("packages/fx_opt")).status, 200);
    assert_eq!(get(proxy.addr, &path("packages/fx_core")).status, 403);
}
