//! What `mix hex.info`, `mix hex.package search` and `mix hex.owner` read.

use hexyard_common::etf::Term;
use hexyard_tests::*;

fn get(env: &TestEnv, path: &str) -> Term {
    let r = send(&api("GET", path, None), env.publisher_addr);
    assert_eq!(r.status, 200, "{path}: {}", body_text(&r));
    assert_eq!(r.header("content-type"), Some("application/vnd.hex+erlang"));
    r.term()
}

fn s(t: &Term, key: &str) -> String {
    t.get(key)
        .and_then(Term::as_str)
        .unwrap_or_else(|| panic!("no text {key:?} in {t:?}"))
        .to_owned()
}

fn list(t: Option<&Term>) -> Vec<Term> {
    match t {
        Some(Term::List(l)) => l.clone(),
        other => panic!("not a list: {other:?}"),
    }
}

fn published() -> (TestEnv, Process) {
    let env = env(crate::opts());
    let p = env.start_publisher();
    publish_fixtures(env.publisher_addr, FIXTURE_ORDER);
    (env, p)
}

#[test]
fn package_view_has_what_hex_info_prints() {
    let (env, _p) = published();
    let pkg = get(&env, "/api/packages/fx_core");
    assert_eq!(s(&pkg, "name"), "fx_core");
    assert_eq!(s(&pkg, "repository"), REPO);
    let meta = pkg.get("meta").unwrap();
    assert_eq!(
        s(meta, "description"),
        "Core helpers for the fx_* golden test fixtures (Hex registry server tests)."
    );
    assert_eq!(
        meta.get("licenses"),
        Some(&Term::List(vec![Term::bin("Apache-2.0")]))
    );
    assert_eq!(
        meta.get("links"),
        Some(&Term::map([
            (
                "Changelog",
                Term::bin("https://example.com/fixtures/fx_core/CHANGELOG.md")
            ),
            ("Source", Term::bin("https://example.com/fixtures/fx_core")),
        ]))
    );
    let versions: Vec<String> = list(pkg.get("releases"))
        .iter()
        .map(|r| s(r, "version"))
        .collect();
    assert_eq!(versions, ["1.0.0-rc.1", "0.2.0", "0.1.0"]);
    for r in list(pkg.get("releases")) {
        assert_eq!(
            s(&r, "url"),
            format!(
                "http://{}/api/repos/fixture_repo/packages/fx_core/releases/{}",
                env.proxy_addr,
                s(&r, "version")
            )
        );
        assert_eq!(r.get("has_docs"), Some(&Term::bool(false)));
    }
    assert_eq!(s(&pkg, "latest_version"), "1.0.0-rc.1");
    assert_eq!(s(&pkg, "latest_stable_version"), "0.2.0");
    assert_eq!(pkg.get("retirements"), Some(&Term::Map(vec![])));

    // Non-ASCII metadata comes back as UTF-8.
    let uni = get(&env, "/api/packages/fx_unicode");
    assert!(
        s(uni.get("meta").unwrap(), "description").starts_with("Zürich – ünïcode ✓"),
        "{uni:?}"
    );
}

#[test]
fn release_view_has_requirements_checksum_and_retirement() {
    let (env, _p) = published();
    let rel = get(&env, "/api/packages/fx_json/releases/0.3.0");
    assert_eq!(s(&rel, "version"), "0.3.0");
    assert_eq!(
        s(&rel, "checksum"),
        "9926e8fd81f9628d811de66f4621f223d1fe60580fd1fe509f1956b56f4c1ba6"
    );
    assert_eq!(rel.get("retirement"), Some(&Term::nil()));
    assert_eq!(rel.get("has_docs"), Some(&Term::bool(false)));
    let dep = |app: &str, req: &str, optional: bool| {
        Term::map([
            ("app", Term::bin(app)),
            ("requirement", Term::bin(req)),
            ("optional", Term::bool(optional)),
            ("repository", Term::nil()),
        ])
    };
    assert_eq!(
        rel.get("requirements"),
        Some(&Term::map([
            ("fx_alias", dep("fx_alias_app", "~> 0.1", false)),
            ("fx_core", dep("fx_core", "~> 0.2", false)),
            ("fx_opt", dep("fx_opt", "~> 1.0", true)),
        ]))
    );
    let meta = rel.get("meta").unwrap();
    assert_eq!(s(meta, "app"), "fx_json");
    assert_eq!(
        meta.get("build_tools"),
        Some(&Term::List(vec![Term::bin("mix")]))
    );
    assert_eq!(s(meta, "elixir"), "~> 1.12");

    // The publish response names the publisher.
    let r = upload(
        env.publisher_addr,
        "/api/packages/fx_json/releases?replace=true",
        Some(WRITE_KEY),
        fixture("publish/fx_json-0.3.0.tar"),
    );
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert_eq!(
        r.term().get("publisher").and_then(|p| p.get("username")),
        Some(&Term::bin("writer"))
    );
}

#[test]
fn json_when_the_hex_media_type_is_not_asked_for() {
    let (env, _p) = published();
    for path in [
        "/api/packages/fx_core",
        "/api/packages/fx_core/releases/0.2.0",
        "/api/packages?search=fx",
        "/api/packages/fx_core/owners",
    ] {
        let erl = send(&api("GET", path, Some(READ_KEY)), env.publisher_addr);
        let json = send(
            &hexyard_tests::http::Request::new("GET", path)
                .header("accept", "application/json")
                .header("authorization", READ_KEY),
            env.publisher_addr,
        );
        assert_eq!(json.status, 200, "{path}");
        assert_eq!(
            json.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(
            String::from_utf8(json.body).unwrap(),
            erl.term().to_json().to_string(),
            "{path}"
        );
    }
    // Errors too.
    let r = send(
        &hexyard_tests::http::Request::new("GET", "/api/packages/nope"),
        env.publisher_addr,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        r#"{"message":"Page not found","status":404}"#
    );
}

#[test]
fn search_matches_names() {
    let (env, _p) = published();
    let names = |q: &str| -> Vec<String> {
        list(Some(&get(&env, &format!("/api/packages?search={q}"))))
            .iter()
            .map(|p| s(p, "name"))
            .collect()
    };
    assert_eq!(names("fx_c"), ["fx_core"]);
    assert_eq!(names("name:fx_json"), ["fx_json"]);
    assert_eq!(
        names(""),
        [
            "fx_alias",
            "fx_core",
            "fx_erl",
            "fx_json",
            "fx_opt",
            "fx_unicode"
        ]
    );
    assert!(names("zzz").is_empty());
    // Search results are full package maps.
    let hit = &list(Some(&get(&env, "/api/packages?search=fx_opt")))[0];
    assert_eq!(s(hit, "latest_stable_version"), "1.0.0");
}

#[test]
fn owners_lists_write_principals_and_refuses_changes() {
    let (env, _p) = published();
    let owners: Vec<String> = list(Some(&get(&env, "/api/packages/fx_core/owners")))
        .iter()
        .map(|o| s(o, "username"))
        .collect();
    assert_eq!(owners, ["writer", "admin"]);
    let r = send(
        &api("GET", "/api/packages/nope/owners", None),
        env.publisher_addr,
    );
    assert_error(&r, 404, "Page not found");
    let before = env.snapshot();
    for m in ["PUT", "DELETE"] {
        let r = send(
            &api(m, "/api/packages/fx_core/owners/alice", Some(ADMIN_KEY))
                .header("content-type", "application/vnd.hex+erlang")
                .body(hexyard_common::etf::encode(&Term::map([
                    ("level", Term::bin("full")),
                    ("transfer", Term::bool(true)),
                ]))),
            env.publisher_addr,
        );
        assert_error(
            &r,
            403,
            "owners are managed in the hexyard configuration (keys and their grants)",
        );
    }
    assert_eq!(env.snapshot(), before);
}
