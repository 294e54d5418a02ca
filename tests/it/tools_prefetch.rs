//! `prefetch` with the real binary against the fake hex.pm: lock files, named packages with
//! their closure, resumability, retries, lock checksum mismatches, offline refusal.

use crate::tools_util::*;
use hexyard_tests::upstream::{FakeUpstream, Fault};
use hexyard_tests::*;
use std::time::Duration;

const M: &str = "hexpm_mirror";

#[test]
fn a_rebar_lock_fetches_exactly_its_releases_and_a_rerun_fetches_nothing() {
    let up = FakeUpstream::as_hexpm();
    let env = mirror_env(&up, &[]);
    let args = [
        "prefetch",
        "--mirror",
        M,
        "--lock",
        &lock("rebar3_fx_json.rebar.lock"),
    ];
    let (code, out) = proxy_cmd(&env, &args);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("8 fetched, 0 already present, 0 skipped, 0 failed"),
        "{out}"
    );
    // Not a terminal: one plain line per object.
    assert!(
        out.contains("prefetch: fetched repos/hexpm_mirror/tarballs/fx_opt-1.0.0.tar\n"),
        "{out}"
    );
    assert_eq!(
        mirror_objects(&env),
        [
            "packages/fx_alias",
            "packages/fx_core",
            "packages/fx_json",
            "packages/fx_opt",
            "tarballs/fx_alias-0.1.0.tar",
            "tarballs/fx_core-0.2.0.tar",
            "tarballs/fx_json-0.3.0.tar",
            "tarballs/fx_opt-1.0.0.tar",
        ]
    );
    for rel in mirror_objects(&env) {
        assert_eq!(
            env.object(M, &rel).unwrap(),
            up.file(&rel).unwrap().to_vec(),
            "{rel}"
        );
    }
    let hits = up.total_hits();
    let (code, out) = proxy_cmd(&env, &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 fetched, 8 already present"), "{out}");
    assert_eq!(up.total_hits(), hits, "a rerun asked the upstream");
}

#[test]
fn a_package_requirement_brings_its_non_optional_closure() {
    let up = FakeUpstream::as_hexpm();
    let env = mirror_env(&up, &[]);
    let (code, out) = proxy_cmd(
        &env,
        &[
            "prefetch",
            "--mirror",
            M,
            "--package",
            "fx_json@~> 0.3",
            "--jobs",
            "2",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        mirror_objects(&env),
        [
            "packages/fx_alias",
            "packages/fx_core",
            "packages/fx_json",
            "tarballs/fx_alias-0.1.0.tar",
            "tarballs/fx_core-0.2.0.tar",
            "tarballs/fx_json-0.3.0.tar",
        ]
    );
}

#[test]
fn upstream_failures_are_retried_with_backoff() {
    let up = FakeUpstream::as_hexpm();
    let env = mirror_env(&up, &[]);
    up.set_fault(Fault::Status(503));
    let up_ref = std::sync::Arc::new(up);
    let u2 = up_ref.clone();
    let healer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        u2.set_fault(Fault::None);
    });
    let (code, out) = proxy_cmd(
        &env,
        &["prefetch", "--mirror", M, "--package", "fx_core@0.2.0"],
    );
    healer.join().unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(up_ref.hits("packages/fx_core") >= 2, "no retry happened");
    assert_eq!(
        mirror_objects(&env),
        ["packages/fx_core", "tarballs/fx_core-0.2.0.tar"]
    );
}

#[test]
fn a_lock_checksum_that_disagrees_fails_and_exits_1() {
    let up = FakeUpstream::as_hexpm();
    let env = mirror_env(&up, &[]);
    let text = String::from_utf8(fixture("verify/rebar3_fx_erl.rebar.lock")).unwrap();
    let bad = text.replace(
        "ECB3764D8A5388B15A2BD2BC676CAE511326E6F08BF017286E9F709F59BDC676",
        "ECB3764D8A5388B15A2BD2BC676CAE511326E6F08BF017286E9F709F59BDC677",
    );
    assert_ne!(bad, text);
    let path = env.dir.path().join("rebar.lock");
    std::fs::write(&path, bad).unwrap();
    let (code, out) = proxy_cmd(
        &env,
        &["prefetch", "--mirror", M, "--lock", path.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAILED repos/hexpm_mirror/tarballs/fx_erl-0.1.0.tar: SHA-256 ecb3764d8a5388b15a2bd2bc676cae511326e6f08bf017286e9f709f59bdc676 differs from the lock"),
        "{out}"
    );
    assert!(out.contains("1 failed"), "{out}");
}

#[test]
fn offline_mirrors_unknown_repos_and_usage_errors_have_their_exit_codes() {
    let up = FakeUpstream::as_hexpm();
    let env = mirror_env(&up, &["offline: true"]);
    let (code, out) = proxy_cmd(&env, &["prefetch", "--mirror", M, "--package", "fx_core"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is offline"), "{out}");
    let (code, out) = proxy_cmd(
        &env,
        &["prefetch", "--mirror", "fixture_repo", "--package", "x"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("hosted repository"), "{out}");
    let (code, out) = proxy_cmd(&env, &["prefetch", "--bogus"]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(up.total_hits(), 0);
}
