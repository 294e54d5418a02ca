//! Hostile and broken uploads: every file in `bad/` and over-limit bodies are refused with a
//! message naming the defect, and the store is left byte-for-byte unchanged.

use hexyard_tests::*;

/// `bad/<file>` and a text the `errors.tar` message must contain.
const BAD: &[(&str, &str)] = &[
    ("bad_checksum.tar", "inner checksum mismatch"),
    (
        "path_traversal.tar",
        "\"../evil\" points above the package directory",
    ),
    ("invalid_name.tar", "package name \"Bad-Name\""),
    (
        "invalid_version.tar",
        "invalid version \"1.0\": not MAJOR.MINOR.PATCH",
    ),
    ("truncated.tar", "tarball is truncated"),
    ("empty.tar", "tarball is empty"),
    (
        "metadata_not_erlang.tar",
        "metadata.config is not valid Erlang terms",
    ),
    (
        "gzip_bomb.tar",
        "contents.tar.gz inflates to more than 134217728 bytes",
    ),
    ("extra_entry.tar", "unexpected entry \"extra.txt\""),
    ("missing_version.tar", "no VERSION entry"),
    ("version_2.tar", "unsupported tarball version \"2\""),
    ("absolute_path.tar", "\"/tmp/fx_evil\" has an absolute path"),
    (
        "symlink_escape.tar",
        "symlink \"lib/escape\" -> \"../../../../../etc/passwd\" points outside",
    ),
];

#[test]
fn every_bad_upload_is_refused_with_its_defect_and_changes_nothing() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    // Something stored already, so "unchanged" covers existing index files too.
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0"]);
    let listed: Vec<String> = std::fs::read_dir(fixtures().join("bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar"))
        .collect();
    assert_eq!(
        listed.len(),
        BAD.len(),
        "a bad/ file is not covered: {listed:?}"
    );
    let before = env.snapshot();
    for (file, defect) in BAD {
        // The URL names what the metadata says where it can be read (fx_opt); a mismatch
        // must not be what is reported.
        let name = if *file == "invalid_name.tar" {
            "Bad-Name"
        } else {
            "fx_opt"
        };
        let r = upload(
            env.publisher_addr,
            &format!("/api/packages/{name}/releases?replace=false"),
            Some(WRITE_KEY),
            fixture(&format!("bad/{file}")),
        );
        let body_len = fixture(&format!("bad/{file}")).len();
        assert_eq!(r.continued, body_len > 0, "{file}: 100 Continue");
        assert_eq!(r.status, 422, "{file}: {}", body_text(&r));
        let (status, message, errors) = error_of(&r);
        assert_eq!(status, 422, "{file}");
        assert_eq!(message, "Validation error(s)", "{file}");
        let tar = errors
            .iter()
            .find(|(k, _)| k == "tar")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{file}: no errors.tar in {errors:?}"));
        assert!(
            tar.contains(defect),
            "{file}: {tar:?} does not name {defect:?}"
        );
        assert_eq!(env.snapshot(), before, "{file} changed the store");
    }
    // The legacy route validates the same way.
    let r = upload(
        env.publisher_addr,
        "/api/publish?replace=false",
        Some(WRITE_KEY),
        fixture("bad/bad_checksum.tar"),
    );
    assert_validation(&r, "tar", "inner checksum mismatch");
    assert_eq!(env.snapshot(), before);
}

fn small_limit_env() -> TestEnv {
    env(EnvOptions {
        limits: "{tarball_bytes: 6000}".into(),
        ..crate::opts()
    })
}

#[test]
fn over_limit_upload_with_expect_is_refused_before_the_body() {
    let env = small_limit_env();
    let _p = env.start_publisher();
    let body = fixture("publish/fx_core-0.1.0.tar");
    assert!(body.len() > 6000);
    let before = env.snapshot();
    let r = upload(
        env.publisher_addr,
        "/api/packages/fx_core/releases?replace=false",
        Some(WRITE_KEY),
        body.clone(),
    );
    assert!(!r.continued, "100 Continue was sent for an over-limit body");
    let errors = assert_error(
        &r,
        413,
        &format!(
            "tarball is {} bytes, over the limit of 6000 bytes",
            body.len()
        ),
    );
    assert_eq!(errors, [("tar".to_owned(), "too big".to_owned())]);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn over_limit_upload_without_expect_is_refused() {
    let env = small_limit_env();
    let _p = env.start_publisher();
    let body = fixture("publish/fx_core-0.1.0.tar");
    let before = env.snapshot();
    let r = send(
        &api(
            "POST",
            "/api/packages/fx_core/releases?replace=false",
            Some(WRITE_KEY),
        )
        .header("content-type", "application/octet-stream")
        .body(body),
        env.publisher_addr,
    );
    let errors = assert_error(&r, 413, "over the limit of 6000 bytes");
    assert_eq!(errors, [("tar".to_owned(), "too big".to_owned())]);
    assert_eq!(env.snapshot(), before);
    // A body under the limit still goes through the same server.
    let small = fixture("publish/fx_opt-1.0.0.tar");
    assert!(small.len() <= 6000);
    let r = upload(
        env.publisher_addr,
        "/api/packages/fx_opt/releases",
        Some(WRITE_KEY),
        small,
    );
    assert_eq!(r.status, 201, "{}", body_text(&r));
}
