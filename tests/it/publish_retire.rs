//! Retire and unretire, with the Erlang-term body mix sends.

use hexyard_common::etf::{self, Term};
use hexyard_common::registry::proto;
use hexyard_tests::*;

fn retire_body(reason: &str, message: &str) -> Vec<u8> {
    etf::encode(&Term::map([
        ("reason", Term::bin(reason)),
        ("message", Term::bin(message)),
    ]))
}

fn retire(env: &TestEnv, version: &str, body: Vec<u8>) -> hexyard_tests::http::Response {
    send(
        &api(
            "POST",
            &format!("/api/packages/fx_core/releases/{version}/retire"),
            Some(WRITE_KEY),
        )
        .header("content-type", "application/vnd.hex+erlang")
        .body(body),
        env.publisher_addr,
    )
}

/// fx_core 0.1.0, 0.2.0 and 1.0.0-rc.1, published out of order.
fn three_versions() -> (TestEnv, Process) {
    let env = env(crate::opts());
    let p = env.start_publisher();
    publish_fixtures(
        env.publisher_addr,
        &["fx_core-0.2.0", "fx_core-1.0.0-rc.1", "fx_core-0.1.0"],
    );
    (env, p)
}

#[test]
fn retire_indexes_the_sorted_versions_and_unretire_clears() {
    let (env, _p) = three_versions();
    let r = retire(&env, "0.2.0", retire_body("security", "CVE-1"));
    assert_eq!(r.status, 204, "{}", body_text(&r));

    let v = env.versions_of(REPO, "fx_core").unwrap();
    assert_eq!(v.versions, ["0.1.0", "0.2.0", "1.0.0-rc.1"]);
    assert_eq!(v.retired, [1]);
    let pkg = env.package(REPO, "fx_core").unwrap();
    let retired: Vec<_> = pkg
        .releases
        .iter()
        .map(|r| (r.version.as_str(), r.retired.clone()))
        .collect();
    assert_eq!(
        retired,
        [
            ("0.1.0", None),
            (
                "0.2.0",
                Some(proto::RetirementStatus {
                    reason: proto::RetirementReason::RetiredSecurity as i32,
                    message: Some("CVE-1".into()),
                })
            ),
            ("1.0.0-rc.1", None),
        ]
    );

    // What mix hex.info shows.
    let rel = send(
        &api("GET", "/api/packages/fx_core/releases/0.2.0", None),
        env.publisher_addr,
    );
    assert_eq!(
        rel.term().get("retirement"),
        Some(&Term::map([
            ("reason", Term::bin("security")),
            ("message", Term::bin("CVE-1")),
        ]))
    );
    let rel = send(
        &api("GET", "/api/packages/fx_core/releases/0.1.0", None),
        env.publisher_addr,
    );
    assert_eq!(rel.term().get("retirement"), Some(&Term::nil()));
    let pkg = send(
        &api("GET", "/api/packages/fx_core", None),
        env.publisher_addr,
    );
    assert_eq!(
        pkg.term().get("retirements"),
        Some(&Term::map([(
            "0.2.0",
            Term::map([
                ("reason", Term::bin("security")),
                ("message", Term::bin("CVE-1")),
            ])
        )]))
    );

    // Retiring the pre-release as well: indexes stay in sorted order.
    let r = retire(&env, "1.0.0-rc.1", retire_body("deprecated", "use 0.2"));
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert_eq!(env.versions_of(REPO, "fx_core").unwrap().retired, [1, 2]);

    // Unretire.
    let r = send(
        &api(
            "DELETE",
            "/api/packages/fx_core/releases/0.2.0/retire",
            Some(WRITE_KEY),
        ),
        env.publisher_addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert_eq!(env.versions_of(REPO, "fx_core").unwrap().retired, [2]);
    let pkg = env.package(REPO, "fx_core").unwrap();
    assert_eq!(pkg.releases[1].retired, None);
    assert!(pkg.releases[2].retired.is_some());

    // A retirement survives a later publish of another version (index shifts with it).
    let r = upload(
        env.publisher_addr,
        "/api/packages/fx_core/releases",
        Some(WRITE_KEY),
        hexyard_common::tarball::TarballBuilder::new("fx_core", "0.0.1")
            .file("lib/a.ex", "x")
            .build()
            .unwrap(),
    );
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let v = env.versions_of(REPO, "fx_core").unwrap();
    assert_eq!(v.versions, ["0.0.1", "0.1.0", "0.2.0", "1.0.0-rc.1"]);
    assert_eq!(v.retired, [3]);
}

#[test]
fn retire_refuses_bad_reasons_messages_and_unknown_releases() {
    let (env, _p) = three_versions();
    let before = env.snapshot();
    let r = retire(&env, "0.2.0", retire_body("bored", "CVE-1"));
    assert_validation(
        &r,
        "reason",
        "\"bored\" is not one of other, invalid, security, deprecated, renamed",
    );
    let r = retire(&env, "0.2.0", retire_body("security", "x"));
    assert_validation(&r, "message", "should be 3 to 140 characters long");
    let r = retire(
        &env,
        "0.2.0",
        etf::encode(&Term::map([("message", Term::bin("CVE-1"))])),
    );
    assert_validation(&r, "reason", "is required");
    let r = retire(&env, "0.2.0", b"not a term".to_vec());
    assert_error(&r, 400, "invalid retire body");
    let r = retire(&env, "9.9.9", retire_body("security", "CVE-1"));
    assert_error(&r, 404, "Page not found");
    let r = retire(&env, "1.0", retire_body("security", "CVE-1"));
    assert_error(&r, 400, "invalid version");
    let r = send(
        &api(
            "DELETE",
            "/api/packages/nothing/releases/0.1.0/retire",
            Some(WRITE_KEY),
        ),
        env.publisher_addr,
    );
    assert_error(&r, 404, "Page not found");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn retire_accepts_every_reason_and_a_json_body() {
    let (env, _p) = three_versions();
    for (i, reason) in ["other", "invalid", "security", "deprecated", "renamed"]
        .iter()
        .enumerate()
    {
        let r = retire(&env, "0.1.0", retire_body(reason, "why not"));
        assert_eq!(r.status, 204, "{reason}: {}", body_text(&r));
        let pkg = env.package(REPO, "fx_core").unwrap();
        assert_eq!(
            pkg.releases[0].retired.as_ref().map(|s| s.reason),
            Some(i as i32),
            "{reason}"
        );
    }
    let r = send(
        &api(
            "POST",
            "/api/packages/fx_core/releases/0.2.0/retire",
            Some(WRITE_KEY),
        )
        .header("content-type", "application/json")
        .body(br#"{"reason":"renamed","message":"now fx_kernel"}"#.to_vec()),
        env.publisher_addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert_eq!(env.versions_of(REPO, "fx_core").unwrap().retired, [0, 1]);
}
