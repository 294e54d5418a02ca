//! Every route of the publisher API, under `/api/...` (the default repo) and
//! `/api/repos/<repo>/...`; repository resolution failures; the legacy `POST /publish`; the
//! publish checks on names and dependencies.

use hexyard_common::etf::{self, Term};
use hexyard_tests::*;

/// Runs every route once, successfully, under `prefix`, and checks each answer and side effect.
fn every_route_succeeds_under(prefix: &str) {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    let addr = env.publisher_addr;
    let w = Some(WRITE_KEY);

    // GET /users/me
    let me = send(&api("GET", &format!("{prefix}/users/me"), w), addr);
    assert_eq!(me.status, 200, "{}", body_text(&me));
    assert_eq!(me.term().get("organizations"), Some(&Term::List(vec![])));
    assert_eq!(me.term_str("username").as_deref(), Some("writer"));

    // POST /packages/NAME/releases
    let r = publish_fixture_at(addr, prefix, "fx_core-0.1.0");
    assert_eq!(r.status, 201, "{}", body_text(&r));
    assert!(r.continued);
    assert_eq!(
        r.header("location"),
        Some("/api/repos/fixture_repo/packages/fx_core/releases/0.1.0")
    );
    assert_eq!(
        r.term_str("url"),
        Some(format!(
            "http://{}/api/repos/fixture_repo/packages/fx_core/releases/0.1.0",
            env.proxy_addr
        ))
    );
    let r = publish_fixture_at(addr, prefix, "fx_core-0.2.0");
    assert_eq!(r.status, 201, "{}", body_text(&r));
    assert_eq!(
        env.package(REPO, "fx_core")
            .unwrap()
            .releases
            .iter()
            .map(|r| r.version.as_str())
            .collect::<Vec<_>>(),
        ["0.1.0", "0.2.0"]
    );

    // GET /packages/NAME, /packages/NAME/releases/V, /packages?search=
    let pkg = send(
        &api("GET", &format!("{prefix}/packages/fx_core"), None),
        addr,
    );
    assert_eq!(pkg.status, 200, "{}", body_text(&pkg));
    assert_eq!(pkg.term_str("name").as_deref(), Some("fx_core"));
    assert_eq!(pkg.term_str("repository").as_deref(), Some(REPO));
    let rel = send(
        &api(
            "GET",
            &format!("{prefix}/packages/fx_core/releases/0.1.0"),
            None,
        ),
        addr,
    );
    assert_eq!(rel.status, 200, "{}", body_text(&rel));
    assert_eq!(rel.term_str("version").as_deref(), Some("0.1.0"));
    let search = send(
        &api("GET", &format!("{prefix}/packages?search=core"), None),
        addr,
    );
    assert_eq!(search.status, 200);
    match search.term() {
        Term::List(l) => {
            assert_eq!(l.len(), 1);
            assert_eq!(l[0].get("name").and_then(Term::as_str), Some("fx_core"));
        }
        other => panic!("search did not answer a list: {other:?}"),
    }

    // retire / unretire
    let body = etf::encode(&Term::map([
        ("reason", Term::bin("security")),
        ("message", Term::bin("CVE-1")),
    ]));
    let r = send(
        &api(
            "POST",
            &format!("{prefix}/packages/fx_core/releases/0.1.0/retire"),
            w,
        )
        .header("content-type", "application/vnd.hex+erlang")
        .body(body),
        addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert_eq!(env.versions_of(REPO, "fx_core").unwrap().retired, [0]);
    let r = send(
        &api(
            "DELETE",
            &format!("{prefix}/packages/fx_core/releases/0.1.0/retire"),
            w,
        ),
        addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert!(env.versions_of(REPO, "fx_core").unwrap().retired.is_empty());

    // docs
    let docs = fixture("publish/fx_json-0.3.0-docs.tar.gz");
    let r = send(
        &api(
            "POST",
            &format!("{prefix}/packages/fx_core/releases/0.1.0/docs"),
            w,
        )
        .header("content-type", "application/octet-stream")
        .body(docs.clone()),
        addr,
    );
    assert_eq!(r.status, 201, "{}", body_text(&r));
    assert_eq!(env.object(REPO, "docs/fx_core-0.1.0.tar.gz"), Some(docs));
    let r = send(
        &api(
            "DELETE",
            &format!("{prefix}/packages/fx_core/releases/0.1.0/docs"),
            w,
        ),
        addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert_eq!(env.object(REPO, "docs/fx_core-0.1.0.tar.gz"), None);

    // owners
    let r = send(
        &api("GET", &format!("{prefix}/packages/fx_core/owners"), w),
        addr,
    );
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let r = send(
        &api(
            "PUT",
            &format!("{prefix}/packages/fx_core/owners/someone"),
            w,
        ),
        addr,
    );
    assert_error(&r, 403, "owners are managed in the hexyard configuration");

    // GET /auth
    let r = send(
        &api(
            "GET",
            &format!("{prefix}/auth?domain=api&resource=write"),
            w,
        ),
        addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));

    // revert
    let r = send(
        &api(
            "DELETE",
            &format!("{prefix}/packages/fx_core/releases/0.1.0"),
            w,
        ),
        addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert_eq!(
        env.versions_of(REPO, "fx_core").unwrap().versions,
        ["0.2.0"]
    );
    assert_eq!(env.object(REPO, "tarballs/fx_core-0.1.0.tar"), None);

    // Nothing went to the other hosted repo.
    assert!(env.object("other_repo", "names").is_none());
}

#[test]
fn every_route_succeeds_under_the_default_repo_prefix() {
    every_route_succeeds_under("/api");
}

#[test]
fn every_route_succeeds_under_the_repos_prefix() {
    every_route_succeeds_under("/api/repos/fixture_repo");
}

/// One request for each route class, relative to a prefix.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/users/me"),
    ("POST", "/packages/fx_core/releases?replace=false"),
    ("POST", "/publish?replace=false"),
    ("GET", "/packages/fx_core"),
    ("GET", "/packages?search=fx"),
    ("GET", "/packages/fx_core/releases/0.1.0"),
    ("DELETE", "/packages/fx_core/releases/0.1.0"),
    ("POST", "/packages/fx_core/releases/0.1.0/retire"),
    ("DELETE", "/packages/fx_core/releases/0.1.0/retire"),
    ("POST", "/packages/fx_core/releases/0.1.0/docs"),
    ("DELETE", "/packages/fx_core/releases/0.1.0/docs"),
    ("GET", "/packages/fx_core/owners"),
    ("PUT", "/packages/fx_core/owners/bob"),
];

#[test]
fn default_prefix_without_a_default_repo_is_404_with_a_message() {
    let env = env(EnvOptions {
        default_repo: None,
        ..crate::opts()
    });
    let _p = env.start_publisher();
    let before = env.snapshot();
    for (m, path) in ROUTES {
        let r = send(
            &api(m, &format!("/api{path}"), Some(WRITE_KEY)),
            env.publisher_addr,
        );
        assert_error(&r, 404, "no default_repo configured");
    }
    assert_eq!(env.snapshot(), before);
    // The repos prefix still works.
    let r = publish_fixture_at(
        env.publisher_addr,
        "/api/repos/fixture_repo",
        "fx_core-0.1.0",
    );
    assert_eq!(r.status, 201, "{}", body_text(&r));
    assert!(env.object(REPO, "tarballs/fx_core-0.1.0.tar").is_some());
}

#[test]
fn unknown_repo_is_404_with_a_message_on_every_route() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    let before = env.snapshot();
    for key in [None, Some(WRITE_KEY), Some(ADMIN_KEY)] {
        for (m, path) in ROUTES {
            let r = send(
                &api(m, &format!("/api/repos/nope{path}"), key),
                env.publisher_addr,
            );
            assert_error(&r, 404, "unknown repository \"nope\"");
        }
    }
    // An upload to an unknown repo is refused before the body is sent.
    let r = upload(
        env.publisher_addr,
        "/api/repos/nope/packages/fx_core/releases",
        Some(WRITE_KEY),
        fixture("publish/fx_core-0.1.0.tar"),
    );
    assert_error(&r, 404, "unknown repository");
    assert!(!r.continued);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn mirror_repo_has_no_api() {
    let env = env(EnvOptions {
        extra_repos: "  hexpm_mirror:\n    kind: mirror\n    upstream:\n      url: http://127.0.0.1:1\n      name: hexpm\n      public_key: builtin\n".into(),
        ..crate::opts()
    });
    let _p = env.start_publisher();
    let before = env.snapshot();
    for (m, path) in ROUTES {
        let r = send(
            &api(
                m,
                &format!("/api/repos/hexpm_mirror{path}"),
                Some(ADMIN_KEY),
            ),
            env.publisher_addr,
        );
        assert_error(&r, 404, "\"hexpm_mirror\" is a read-only mirror");
    }
    assert_eq!(env.snapshot(), before);
}

#[test]
fn unknown_paths_and_methods() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    let r = send(
        &api("GET", "/api/nothing/here", Some(WRITE_KEY)),
        env.publisher_addr,
    );
    assert_error(&r, 404, "Page not found");
    let r = send(&api("GET", "/not-api", Some(WRITE_KEY)), env.publisher_addr);
    assert_error(&r, 404, "Page not found");
    let r = send(
        &api("PUT", "/api/packages/fx_core/releases", Some(WRITE_KEY)),
        env.publisher_addr,
    );
    assert_error(&r, 405, "Method not allowed");
    let r = send(
        &api("GET", "/api/packages/fx%00core", Some(WRITE_KEY)),
        env.publisher_addr,
    );
    assert_error(&r, 400, "NUL");
    let r = send(
        &api("GET", "/api/packages/missing", None),
        env.publisher_addr,
    );
    assert_error(&r, 404, "Page not found");
    let r = send(
        &api("GET", "/api/packages/fx_core/releases/0.1.0", None),
        env.publisher_addr,
    );
    assert_error(&r, 404, "Page not found");
}

#[test]
fn legacy_publish_route_publishes() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    for (prefix, file) in [
        ("/api", "fx_core-0.1.0"),
        ("/api/repos/fixture_repo", "fx_core-0.2.0"),
    ] {
        let r = upload(
            env.publisher_addr,
            &format!("{prefix}/publish?replace=false"),
            Some(WRITE_KEY),
            fixture(&format!("publish/{file}.tar")),
        );
        assert_eq!(r.status, 201, "{prefix}: {}", body_text(&r));
        assert!(r.continued);
        assert_eq!(
            env.object(REPO, &format!("tarballs/{file}.tar")),
            Some(fixture(&format!("publish/{file}.tar")))
        );
    }
    assert_eq!(
        env.versions_of(REPO, "fx_core").unwrap().versions,
        ["0.1.0", "0.2.0"]
    );
    // The same version again without replace.
    let before = env.snapshot();
    let r = upload(
        env.publisher_addr,
        "/api/publish?replace=false",
        Some(WRITE_KEY),
        fixture("publish/fx_core-0.1.0.tar"),
    );
    assert_validation(&r, "inserted_at", "must include the --replace flag");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn name_in_url_must_match_the_metadata() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    let before = env.snapshot();
    let r = upload(
        env.publisher_addr,
        "/api/packages/fx_opt/releases?replace=false",
        Some(WRITE_KEY),
        fixture("publish/fx_core-0.1.0.tar"),
    );
    assert_validation(&r, "name", "metadata does not match package name");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn missing_same_repo_dependency_is_named() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    // fx_json depends on fx_core, fx_opt and fx_alias, all `repository: fixture_repo`.
    publish_fixtures(env.publisher_addr, &["fx_opt-1.0.0", "fx_alias-0.1.0"]);
    let before = env.snapshot();
    let r = publish_fixture_at(env.publisher_addr, "/api", "fx_json-0.3.0");
    assert_validation(
        &r,
        "requirements",
        "fx_core: package does not exist in repository \"fixture_repo\"",
    );
    let (_, _, errors) = error_of(&r);
    assert!(!errors[0].1.contains("fx_opt"), "{errors:?}");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn unsatisfiable_requirement_is_refused() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    // fx_json needs fx_core ~> 0.2: only 0.1.0 is there.
    publish_fixtures(
        env.publisher_addr,
        &["fx_core-0.1.0", "fx_opt-1.0.0", "fx_alias-0.1.0"],
    );
    let before = env.snapshot();
    let r = publish_fixture_at(env.publisher_addr, "/api", "fx_json-0.3.0");
    assert_validation(
        &r,
        "requirements",
        "fx_core: no version of fx_core in repository \"fixture_repo\" matches \"~> 0.2\"",
    );
    assert_eq!(env.snapshot(), before);
    // A requirement that does not parse.
    let bad = hexyard_common::tarball::TarballBuilder::new("needs_bad", "1.0.0")
        .requirement(hexyard_common::tarball::Requirement::new(
            "fx_core",
            "~> banana",
        ))
        .file("lib/a.ex", "x")
        .build()
        .unwrap();
    let r = upload(
        env.publisher_addr,
        "/api/packages/needs_bad/releases",
        Some(WRITE_KEY),
        bad,
    );
    assert_validation(&r, "requirements", "fx_core");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn dependency_on_another_repo_is_recorded_with_its_repository() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    // A dependency with no repository on a package this repo does not have is on hex.pm.
    let tb = hexyard_common::tarball::TarballBuilder::new("uses_hexpm", "1.0.0")
        .requirement(hexyard_common::tarball::Requirement::new("jason", "~> 1.4"))
        .file("lib/a.ex", "x")
        .build()
        .unwrap();
    let r = upload(
        env.publisher_addr,
        "/api/packages/uses_hexpm/releases",
        Some(WRITE_KEY),
        tb,
    );
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let pkg = env.package(REPO, "uses_hexpm").unwrap();
    let dep = &pkg.releases[0].dependencies[0];
    assert_eq!(dep.package, "jason");
    assert_eq!(dep.repository.as_deref(), Some("hexpm"));
    // A dependency on a package of this repo (rebar3_hex: no repository) has none.
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0", "fx_erl-0.1.0"]);
    let erl = env.package(REPO, "fx_erl").unwrap();
    assert_eq!(erl.releases[0].dependencies[0].package, "fx_core");
    assert_eq!(erl.releases[0].dependencies[0].repository, None);
}
