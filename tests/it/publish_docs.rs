//! Documentation uploads: `POST`/`DELETE .../releases/VERSION/docs`.

use hexyard_common::etf::Term;
use hexyard_tests::*;

fn post_docs(
    env: &TestEnv,
    name: &str,
    version: &str,
    body: Vec<u8>,
) -> hexyard_tests::http::Response {
    send(
        &api(
            "POST",
            &format!("/api/packages/{name}/releases/{version}/docs"),
            Some(WRITE_KEY),
        )
        .header("content-type", "application/octet-stream")
        .body(body),
        env.publisher_addr,
    )
}

fn has_docs(env: &TestEnv, name: &str, version: &str) -> Term {
    let r = send(
        &api(
            "GET",
            &format!("/api/packages/{name}/releases/{version}"),
            None,
        ),
        env.publisher_addr,
    );
    assert_eq!(r.status, 200, "{}", body_text(&r));
    r.term().get("has_docs").cloned().unwrap()
}

#[test]
fn fixture_docs_are_stored_byte_exact_and_can_be_deleted() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    publish_fixtures(env.publisher_addr, FIXTURE_ORDER);
    for (name, version) in [("fx_json", "0.3.0"), ("fx_erl", "0.1.0")] {
        let body = fixture(&format!("publish/{name}-{version}-docs.tar.gz"));
        assert_eq!(has_docs(&env, name, version), Term::bool(false));
        let r = post_docs(&env, name, version, body.clone());
        assert_eq!(r.status, 201, "{name}: {}", body_text(&r));
        assert!(r.body.is_empty());
        assert_eq!(
            r.header("location"),
            Some(
                format!(
                    "http://{}/repos/fixture_repo/docs/{name}-{version}.tar.gz",
                    env.proxy_addr
                )
                .as_str()
            )
        );
        assert_eq!(
            env.object(REPO, &format!("docs/{name}-{version}.tar.gz")),
            Some(body)
        );
        assert_eq!(has_docs(&env, name, version), Term::bool(true));
    }
    // In the package view too.
    let pkg = send(
        &api("GET", "/api/packages/fx_json", None),
        env.publisher_addr,
    );
    let Some(Term::List(releases)) = pkg.term().get("releases").cloned() else {
        panic!("no releases: {}", body_text(&pkg));
    };
    assert_eq!(releases[0].get("has_docs"), Some(&Term::bool(true)));

    let del = |name: &str, version: &str| {
        send(
            &api(
                "DELETE",
                &format!("/api/packages/{name}/releases/{version}/docs"),
                Some(WRITE_KEY),
            ),
            env.publisher_addr,
        )
    };
    let r = del("fx_json", "0.3.0");
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert_eq!(env.object(REPO, "docs/fx_json-0.3.0.tar.gz"), None);
    assert_eq!(has_docs(&env, "fx_json", "0.3.0"), Term::bool(false));
    let r = del("fx_json", "0.3.0");
    assert_error(&r, 404, "Page not found");
    // The other release's docs stay.
    assert!(env.object(REPO, "docs/fx_erl-0.1.0.tar.gz").is_some());
}

#[test]
fn docs_for_a_missing_release_are_404() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0"]);
    let before = env.snapshot();
    let body = fixture("publish/fx_json-0.3.0-docs.tar.gz");
    for (name, version) in [("fx_core", "0.9.0"), ("fx_json", "0.3.0")] {
        let r = post_docs(&env, name, version, body.clone());
        assert_error(&r, 404, "Page not found");
    }
    assert_eq!(env.snapshot(), before);
}

#[test]
fn bad_docs_are_422_and_change_nothing() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0"]);
    let before = env.snapshot();
    let r = post_docs(&env, "fx_core", "0.1.0", b"<html>not gzip</html>".to_vec());
    assert_validation(&r, "tar", "docs tarball is not valid gzip or tar");
    let traversal = hexyard_common::tarball::build::build_contents([
        ("index.html", &b"<html></html>"[..]),
        ("../evil.html", &b"x"[..]),
    ])
    .unwrap();
    let r = post_docs(&env, "fx_core", "0.1.0", traversal);
    assert_validation(&r, "tar", "\"../evil.html\" has an unsafe path");
    assert_eq!(env.snapshot(), before);
}
