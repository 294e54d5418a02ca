//! The access matrix through the proxy (the one public door), table-driven: every write route
//! of the publisher API and every private read route × {no key, wrong key, read-only key,
//! another repo's key, the right key}. Refusals carry the message the Hex clients print and
//! change nothing in the store. (`publish_auth.rs` runs the write routes against the publisher
//! directly; `proxy_hosted.rs::private_repo_auth_matrix` checks Basic auth.)

use hexyard_common::etf::{self, Term};
use hexyard_tests::*;

const KEYS: [(&str, Option<&str>); 5] = [
    ("no key", None),
    ("wrong key", Some("not-a-key")),
    ("read key", Some(READ_KEY)),
    ("other repo's key", Some(OTHER_KEY)),
    ("write key", Some(WRITE_KEY)),
];

/// (method, path, body, content type): every write route, with a body that succeeds.
fn write_routes() -> Vec<(&'static str, String, Vec<u8>, &'static str)> {
    let tar = |f: &str| fixture(&format!("publish/{f}.tar"));
    let retire = etf::encode(&Term::map([
        ("reason", Term::bin("security")),
        ("message", Term::bin("CVE-1")),
    ]));
    let oct = "application/octet-stream";
    let term = "application/vnd.hex+erlang";
    let rel = "/api/packages/fx_core/releases/0.1.0";
    vec![
        (
            "POST",
            "/api/packages/fx_core/releases?replace=false".into(),
            tar("fx_core-0.2.0"),
            oct,
        ),
        (
            "POST",
            format!("/api/repos/{REPO}/packages/fx_opt/releases"),
            tar("fx_opt-1.0.0"),
            oct,
        ),
        ("POST", "/api/publish".into(), tar("fx_alias-0.1.0"), oct),
        ("POST", format!("{rel}/retire"), retire, term),
        ("DELETE", format!("{rel}/retire"), vec![], term),
        (
            "POST",
            format!("{rel}/docs"),
            fixture("publish/fx_json-0.3.0-docs.tar.gz"),
            oct,
        ),
        ("DELETE", format!("{rel}/docs"), vec![], term),
        ("DELETE", rel.into(), vec![], term),
        (
            "PUT",
            "/api/packages/fx_core/owners/bob".into(),
            vec![],
            term,
        ),
        (
            "DELETE",
            "/api/packages/fx_core/owners/bob".into(),
            vec![],
            term,
        ),
    ]
}

fn request(method: &str, path: &str, key: Option<&str>, body: &[u8], ct: &str) -> http::Request {
    api(method, path, key)
        .header("content-type", ct)
        .header("connection", "close")
        .body(body.to_vec())
}

#[test]
fn every_write_route_through_the_proxy() {
    let env = TestEnv::new(EnvOptions::default());
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    publish_fixtures(proxy.addr, &["fx_core-0.1.0"]);
    let need = "key {:?} is not authorized for this action: it needs write access to repository \"fixture_repo\"";
    for (method, path, body, ct) in write_routes() {
        for (who, key) in KEYS {
            let ctx = format!("{method} {path} with {who}");
            let before = env.snapshot();
            let r = send(&request(method, &path, key, &body, ct), proxy.addr);
            let (status, message) = match who {
                "no key" => (401, "missing authentication information".to_owned()),
                "wrong key" => (401, "invalid API key".to_owned()),
                "read key" => (403, need.replace("{:?}", "\"reader\"")),
                "other repo's key" => (403, need.replace("{:?}", "\"other\"")),
                _ => {
                    // The right key: the route does its work (owners live in config).
                    let want = match (method, path.as_str()) {
                        (_, p) if p.contains("/owners/") => 403,
                        ("POST", p) if p.ends_with("/retire") => 204,
                        ("POST", _) => 201,
                        _ => 204,
                    };
                    assert_eq!(r.status, want, "{ctx}: {}", body_text(&r));
                    if want == 403 {
                        assert_error(&r, 403, "owners are managed in the hexyard configuration");
                        assert_eq!(env.snapshot(), before, "{ctx}");
                    } else {
                        assert_ne!(env.snapshot(), before, "{ctx}: nothing changed");
                    }
                    continue;
                }
            };
            assert_eq!(r.status, status, "{ctx}: {}", body_text(&r));
            let (s, m, _) = error_of(&r);
            assert_eq!(
                (s, m.as_str()),
                (i64::from(status), message.as_str()),
                "{ctx}"
            );
            if status == 401 {
                assert_eq!(
                    r.header("www-authenticate"),
                    Some("Basic realm=hex"),
                    "{ctx}"
                );
            }
            assert_eq!(env.snapshot(), before, "{ctx}: the store changed");
        }
    }
    // What the write key did, as the store shows it.
    assert_eq!(
        env.versions_of(REPO, "fx_core").unwrap().versions,
        ["0.2.0"]
    );
    assert!(env.object(REPO, "tarballs/fx_core-0.1.0.tar").is_none());
    assert!(env.object(REPO, "docs/fx_core-0.1.0.tar.gz").is_none());
    assert!(env.object(REPO, "tarballs/fx_opt-1.0.0.tar").is_some());
    assert!(env.object(REPO, "tarballs/fx_alias-0.1.0.tar").is_some());
    assert!(env.object("other_repo", "names").is_none());
}

#[test]
fn every_private_read_route_through_the_proxy() {
    let env = TestEnv::new(EnvOptions {
        public: false,
        ..EnvOptions::default()
    });
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    publish_fixtures(proxy.addr, &["fx_core-0.1.0"]);
    let docs = fixture("publish/fx_json-0.3.0-docs.tar.gz");
    let r = send(
        &request(
            "POST",
            "/api/packages/fx_core/releases/0.1.0/docs",
            Some(WRITE_KEY),
            &docs,
            "application/octet-stream",
        ),
        proxy.addr,
    );
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let before = env.snapshot();
    let files = [
        "names",
        "versions",
        "packages/fx_core",
        "tarballs/fx_core-0.1.0.tar",
        "docs/fx_core-0.1.0.tar.gz",
    ];
    for rel in files {
        let path = format!("/repos/{REPO}/{rel}");
        let stored = env.object(REPO, rel).unwrap();
        for (who, key) in KEYS {
            let r = send(&api("GET", &path, key), proxy.addr);
            let text = String::from_utf8_lossy(&r.body).into_owned();
            let ctx = format!("{path} with {who}: {text}");
            let (status, message) = match who {
                "no key" => (
                    401,
                    "repository \"fixture_repo\" is private: send a key with read access",
                ),
                "wrong key" => (
                    401,
                    "invalid API key for private repository \"fixture_repo\"",
                ),
                "other repo's key" => (
                    403,
                    "key \"other\" has no read access to repository \"fixture_repo\"",
                ),
                _ => {
                    assert_eq!(r.status, 200, "{ctx}");
                    assert_eq!(r.body, stored, "{ctx}");
                    assert!(r.header("cache-control").unwrap().starts_with("private"));
                    continue;
                }
            };
            assert_eq!(r.status, status, "{ctx}");
            assert_eq!(text.trim_end(), message, "{ctx}");
            assert!(
                !r.body
                    .windows(16)
                    .any(|w| stored.windows(16).any(|s| s == w))
            );
        }
    }
    // Authenticated /api reads of the private repo (messages as mix prints them).
    for path in [
        "/api/packages/fx_core",
        "/api/packages/fx_core/releases/0.1.0",
        "/api/packages?search=fx",
        "/api/packages/fx_core/owners",
        "/api/users/me",
    ] {
        for (who, key) in KEYS {
            let r = send(&api("GET", path, key), proxy.addr);
            let ctx = format!("{path} with {who}");
            match who {
                "no key" => {
                    assert_error(&r, 401, "missing authentication information");
                }
                "wrong key" => {
                    assert_error(&r, 401, "invalid API key");
                }
                "other repo's key" if path != "/api/users/me" => {
                    // Learns nothing, not even that the package exists.
                    assert_error(&r, 404, "Page not found");
                }
                _ => assert_eq!(r.status, 200, "{ctx}: {}", body_text(&r)),
            }
        }
    }
    assert_eq!(env.snapshot(), before);
}
