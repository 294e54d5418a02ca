//! Immutability: re-publishing, `replace=true`, the replace window, and revert.

use hexyard_tests::*;
use std::time::Duration;

/// Two different builds of `imm 1.0.0`.
fn build(variant: &str) -> Vec<u8> {
    hexyard_common::tarball::TarballBuilder::new("imm", "1.0.0")
        .description("immutability test")
        .file("lib/imm.ex", format!("# {variant}\n").into_bytes())
        .build()
        .unwrap()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

fn publish(env: &TestEnv, body: Vec<u8>, replace: &str) -> hexyard_tests::http::Response {
    upload(
        env.publisher_addr,
        &format!("/api/packages/imm/releases?replace={replace}"),
        Some(WRITE_KEY),
        body,
    )
}

#[test]
fn republish_without_replace_is_refused_and_changes_nothing() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    assert_eq!(publish(&env, build("a"), "false").status, 201);
    let before = env.snapshot();
    // Different bytes, and the very same bytes: both refused.
    for body in [build("b"), build("a")] {
        let r = publish(&env, body, "false");
        assert_validation(
            &r,
            "inserted_at",
            "must include the --replace flag to update an existing release",
        );
        assert_eq!(env.snapshot(), before);
    }
}

#[test]
fn replace_keeps_exactly_one_entry_per_version() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    let (a, b) = (build("a"), build("b"));
    assert_eq!(publish(&env, a.clone(), "false").status, 201);
    let first = env.package(REPO, "imm").unwrap().releases[0].published_at;
    let r = publish(&env, b.clone(), "true");
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let sha_b = hex::encode(sha256(&b));
    assert_eq!(r.term_str("checksum"), Some(sha_b.clone()));
    // Again (mini_repo appended a second entry on every replace).
    let r = publish(&env, b.clone(), "true");
    assert_eq!(r.status, 200, "{}", body_text(&r));

    let pkg = env.package(REPO, "imm").unwrap();
    assert_eq!(pkg.releases.len(), 1, "{pkg:?}");
    assert_eq!(pkg.releases[0].version, "1.0.0");
    assert_eq!(pkg.releases[0].outer_checksum, Some(sha256(&b)));
    // The window counts from the first publish.
    assert_eq!(pkg.releases[0].published_at, first);
    assert_eq!(env.versions_of(REPO, "imm").unwrap().versions, ["1.0.0"]);
    assert_eq!(env.name_list(REPO), ["imm"]);
    assert_eq!(env.object(REPO, "tarballs/imm-1.0.0.tar"), Some(b));
}

#[test]
fn replace_and_revert_outside_the_window_are_refused() {
    let env = env(EnvOptions {
        replace_window: "1".into(),
        ..crate::opts()
    });
    let _p = env.start_publisher();
    assert_eq!(publish(&env, build("a"), "false").status, 201);
    // Time is the point here: let the 1 s window pass.
    std::thread::sleep(Duration::from_millis(2100));
    let before = env.snapshot();
    let r = publish(&env, build("b"), "true");
    assert_validation(
        &r,
        "inserted_at",
        "can only modify a release up to 1 second after publication",
    );
    assert_eq!(env.snapshot(), before);
    let r = send(
        &api(
            "DELETE",
            "/api/packages/imm/releases/1.0.0",
            Some(WRITE_KEY),
        ),
        env.publisher_addr,
    );
    assert_validation(
        &r,
        "inserted_at",
        "can only delete a release up to 1 second after publication",
    );
    assert_eq!(env.snapshot(), before);
    // Without replace the message is still about the flag.
    let r = publish(&env, build("b"), "false");
    assert_validation(&r, "inserted_at", "--replace");
}

#[test]
fn unlimited_window_allows_late_replace_and_revert() {
    let env = env(EnvOptions {
        replace_window: "unlimited".into(),
        ..crate::opts()
    });
    let _p = env.start_publisher();
    assert_eq!(publish(&env, build("a"), "false").status, 201);
    std::thread::sleep(Duration::from_millis(2100));
    let r = publish(&env, build("b"), "true");
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let r = send(
        &api(
            "DELETE",
            "/api/packages/imm/releases/1.0.0",
            Some(WRITE_KEY),
        ),
        env.publisher_addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert!(env.package(REPO, "imm").is_none());
}

#[test]
fn revert_removes_the_release_its_tarball_and_docs() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    publish_fixtures(
        env.publisher_addr,
        &["fx_core-0.1.0", "fx_core-0.2.0", "fx_opt-1.0.0"],
    );
    let docs = fixture("publish/fx_json-0.3.0-docs.tar.gz");
    let r = send(
        &api(
            "POST",
            "/api/packages/fx_core/releases/0.2.0/docs",
            Some(WRITE_KEY),
        )
        .header("content-type", "application/octet-stream")
        .body(docs),
        env.publisher_addr,
    );
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let opt_before = env.object(REPO, "packages/fx_opt").unwrap();

    let r = send(
        &api(
            "DELETE",
            "/api/packages/fx_core/releases/0.2.0",
            Some(WRITE_KEY),
        ),
        env.publisher_addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert!(r.body.is_empty());
    let pkg = env.package(REPO, "fx_core").unwrap();
    assert_eq!(
        pkg.releases
            .iter()
            .map(|r| r.version.as_str())
            .collect::<Vec<_>>(),
        ["0.1.0"]
    );
    assert_eq!(
        env.versions_of(REPO, "fx_core").unwrap().versions,
        ["0.1.0"]
    );
    assert_eq!(env.name_list(REPO), ["fx_core", "fx_opt"]);
    assert_eq!(env.object(REPO, "tarballs/fx_core-0.2.0.tar"), None);
    assert_eq!(env.object(REPO, "docs/fx_core-0.2.0.tar.gz"), None);
    assert!(env.object(REPO, "tarballs/fx_core-0.1.0.tar").is_some());
    // Other packages are untouched.
    assert_eq!(env.object(REPO, "packages/fx_opt").unwrap(), opt_before);
    let r = send(
        &api("GET", "/api/packages/fx_core/releases/0.2.0", None),
        env.publisher_addr,
    );
    assert_error(&r, 404, "Page not found");

    // Reverting the last release removes the package everywhere.
    let r = send(
        &api(
            "DELETE",
            "/api/packages/fx_core/releases/0.1.0",
            Some(WRITE_KEY),
        ),
        env.publisher_addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert!(env.object(REPO, "packages/fx_core").is_none());
    assert_eq!(env.name_list(REPO), ["fx_opt"]);
    let versions = env.versions(REPO).unwrap();
    assert_eq!(
        versions
            .packages
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["fx_opt"]
    );
    assert_eq!(env.object(REPO, "tarballs/fx_core-0.1.0.tar"), None);
    let r = send(
        &api("GET", "/api/packages/fx_core", None),
        env.publisher_addr,
    );
    assert_error(&r, 404, "Page not found");

    // And it can be published again.
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0"]);
    assert_eq!(env.name_list(REPO), ["fx_core", "fx_opt"]);
}

#[test]
fn revert_of_unknown_release_is_404_and_bad_version_400() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0"]);
    let before = env.snapshot();
    for path in [
        "/api/packages/fx_core/releases/9.9.9",
        "/api/packages/nothing_here/releases/0.1.0",
    ] {
        let r = send(&api("DELETE", path, Some(WRITE_KEY)), env.publisher_addr);
        assert_error(&r, 404, "Page not found");
    }
    let r = send(
        &api(
            "DELETE",
            "/api/packages/fx_core/releases/1.0",
            Some(WRITE_KEY),
        ),
        env.publisher_addr,
    );
    assert_error(&r, 400, "invalid version");
    assert_eq!(env.snapshot(), before);
}
