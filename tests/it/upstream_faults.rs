//! Upstream faults not covered by `proxy_mirror`: a slow upstream within the timeout, every
//! transport fault on an object with no stored copy (nothing may be stored), and a revalidation
//! whose answer fails verification (the stored copy is served and kept).
//!
//! Covered in `proxy_mirror`: 5xx / refused / cut body / timeout with a stored copy (stale, 200)
//! and without (502 / 504 "no copy is stored") in
//! `serves_stored_copies_when_the_upstream_fails_and_reports_errors_otherwise`; bad signature,
//! wrong `repository`, wrong name and tarball checksum mismatch on a cold fill (502, nothing
//! stored) in `what_fails_verification_is_neither_stored_nor_served`.

use hexyard_common::registry::{self, proto};
use hexyard_tests::upstream::{FakeUpstream, Fault};
use hexyard_tests::*;
use prost::Message;
use std::time::Duration;

const M: &str = "mirror";

fn env_with(up: &FakeUpstream, extra: &[&str]) -> TestEnv {
    TestEnv::new(EnvOptions {
        extra_repos: mirror_yaml(M, up, "fixture_repo", extra),
        ..EnvOptions::default()
    })
}

fn path(rel: &str) -> String {
    format!("/repos/{M}/{rel}")
}

/// What the store holds for the mirror.
fn mirror_objects(env: &TestEnv) -> Vec<String> {
    env.snapshot()
        .into_keys()
        .filter(|k| k.starts_with("mirror/"))
        .collect()
}

#[test]
fn a_slow_upstream_within_the_timeout_is_served_and_stored() {
    let up = FakeUpstream::fixture();
    up.set_delay(Duration::from_millis(1200)); // timeout_ms: 2000
    let env = env_with(&up, &[]);
    let proxy = env.start_proxy();
    for rel in ["packages/fx_opt", "tarballs/fx_opt-1.0.0.tar"] {
        let r = get(proxy.addr, &path(rel));
        assert_eq!(r.status, 200, "{rel}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.body, fixture(&format!("registry/{rel}")), "{rel}");
        assert_eq!(env.object(M, rel).unwrap(), r.body, "{rel} not stored");
    }
}

#[test]
fn transport_faults_on_an_object_without_a_stored_copy_store_nothing() {
    let up = FakeUpstream::fixture();
    let env = env_with(&up, &[]);
    let proxy = env.start_proxy();
    let cases: [(Fault, Duration, u16); 5] = [
        (Fault::Status(500), Duration::ZERO, 502),
        (Fault::Status(503), Duration::ZERO, 502),
        (Fault::Refuse, Duration::ZERO, 502),
        (Fault::CutBody, Duration::ZERO, 502),
        (Fault::None, Duration::from_millis(2500), 504),
    ];
    for (fault, delay, status) in cases {
        up.set_fault(fault.clone());
        up.set_delay(delay);
        for rel in ["names", "packages/fx_json", "tarballs/fx_json-0.3.0.tar"] {
            let r = get(proxy.addr, &path(rel));
            let body = String::from_utf8_lossy(&r.body);
            assert_eq!(r.status, status, "{fault:?} {delay:?} {rel}: {body}");
            assert!(
                body.contains("could not be fetched") && body.contains("no copy is stored"),
                "{fault:?} {rel}: {body}"
            );
        }
        assert_eq!(mirror_objects(&env), Vec::<String>::new(), "{fault:?}");
    }
    // The upstream recovers: the same objects fill normally.
    up.set_fault(Fault::None);
    up.set_delay(Duration::ZERO);
    let r = get(proxy.addr, &path("tarballs/fx_json-0.3.0.tar"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fixture("registry/tarballs/fx_json-0.3.0.tar"));
}

#[test]
fn a_revalidation_that_fails_verification_serves_and_keeps_the_stored_copy() {
    let up = FakeUpstream::fixture();
    let env = env_with(&up, &["package_ttl_secs: 0", "index_ttl_secs: 0"]);
    let proxy = env.start_proxy();
    for rel in ["names", "packages/fx_core", "packages/fx_opt"] {
        assert_eq!(get(proxy.addr, &path(rel)).status, 200, "{rel}");
    }
    let before = env.snapshot();
    // Signed by another key; signed by the right key for another repository.
    let signed = registry::open_signed(&fixture("registry/packages/fx_core"), 1 << 20).unwrap();
    let mut pkg = proto::Package::decode(signed.payload.as_slice()).unwrap();
    pkg.releases.pop();
    let other = hexyard_common::signing::SigningKey::generate().unwrap();
    up.set_file(
        "packages/fx_core",
        registry::encode_signed(&pkg, &other).unwrap(),
    );
    up.set_resigned_as("packages/fx_opt", "evil_repo");
    up.set_resigned_as("names", "evil_repo");
    up.reset_hits();
    for rel in ["names", "packages/fx_core", "packages/fx_opt"] {
        let r = get(proxy.addr, &path(rel));
        assert_eq!(r.status, 200, "{rel}: stale copy expected");
        assert_eq!(r.body, fixture(&format!("registry/{rel}")), "{rel}");
        assert_eq!(up.hits(rel), 1, "{rel}: the upstream was asked");
    }
    assert_eq!(
        env.snapshot(),
        before,
        "a bad upstream answer changed the store"
    );
    let log = proxy.log_text();
    assert!(
        log.contains("upstream registry file does not verify"),
        "{log}"
    );
    assert!(log.contains("verification failed"), "{log}");
}
