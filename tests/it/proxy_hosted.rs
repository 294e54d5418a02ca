//! The proxy in front of hosted repositories: serving, conditional requests, read-your-writes,
//! private repositories, hostile paths, `/api` forwarding.

use hexyard_common::registry;
use hexyard_tests::http::Request;
use hexyard_tests::*;

fn publish(addr: std::net::SocketAddr, file: &str, key: &str) -> http::Response {
    let name = file.split('-').next().unwrap();
    Request::new(
        "POST",
        &format!("/api/packages/{name}/releases?replace=false"),
    )
    .hex_api(Some(key))
    .upload(fixture(&format!("publish/{file}.tar")))
    .send(addr)
    .unwrap()
}

#[test]
fn serves_what_the_publisher_wrote_with_etags_and_no_content_encoding() {
    let env = TestEnv::new(crate::opts());
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    let addr = proxy.addr;

    // Publishing through the proxy: the body is forwarded after the publisher's 100 Continue.
    let r = publish(addr, "fx_core-0.1.0", WRITE_KEY);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.continued);

    for rel in [
        "names",
        "versions",
        "packages/fx_core",
        "tarballs/fx_core-0.1.0.tar",
        "public_key",
    ] {
        let r = get(addr, &format!("/repos/{REPO}/{rel}"));
        assert_eq!(r.status, 200, "{rel}");
        assert_eq!(
            r.body,
            env.object(REPO, rel).unwrap(),
            "{rel}: bytes differ from the store"
        );
        assert_eq!(r.header("content-encoding"), None, "{rel}");
        let etag = r.header("etag").expect("etag").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        assert!(r.header("cache-control").unwrap().starts_with("public"));
        // Conditional: the same ETag is a 304 with no body; an empty one is absent.
        let c = Request::new("GET", &format!("/repos/{REPO}/{rel}"))
            .header("if-none-match", &etag)
            .send(addr)
            .unwrap();
        assert_eq!(c.status, 304, "{rel}");
        assert!(c.body.is_empty());
        assert_eq!(c.header("etag"), Some(etag.as_str()));
        let e = Request::new("GET", &format!("/repos/{REPO}/{rel}"))
            .header("if-none-match", "")
            .send(addr)
            .unwrap();
        assert_eq!(e.status, 200, "{rel}: an empty If-None-Match is absent");
        let h = Request::new("HEAD", &format!("/repos/{REPO}/{rel}"))
            .send(addr)
            .unwrap();
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty());
        assert_eq!(
            h.header("content-length").unwrap(),
            r.body.len().to_string()
        );
    }
    let t = get(addr, &format!("/repos/{REPO}/tarballs/fx_core-0.1.0.tar"));
    assert!(
        t.header("cache-control")
            .unwrap()
            .contains("max-age=604800")
    );
    // The default repo answers at the root too.
    assert_eq!(
        get(addr, "/packages/fx_core").body,
        env.object(REPO, "packages/fx_core").unwrap()
    );

    // Read-your-writes: the next request after a publish sees it.
    let key = env.public_key(REPO);
    let before = get(addr, &format!("/repos/{REPO}/packages/fx_core"));
    assert_eq!(
        registry::decode_package(&before.body, &key, REPO, "fx_core")
            .unwrap()
            .releases
            .len(),
        1
    );
    assert_eq!(publish(addr, "fx_core-0.2.0", WRITE_KEY).status, 201);
    let after = get(addr, &format!("/repos/{REPO}/packages/fx_core"));
    let pkg = registry::decode_package(&after.body, &key, REPO, "fx_core").unwrap();
    assert_eq!(
        pkg.releases
            .iter()
            .map(|r| r.version.as_str())
            .collect::<Vec<_>>(),
        ["0.1.0", "0.2.0"]
    );
    let v = get(addr, &format!("/repos/{REPO}/versions"));
    let versions = registry::decode_versions(&v.body, &key, REPO).unwrap();
    assert_eq!(versions.packages[0].versions, ["0.1.0", "0.2.0"]);
}

#[test]
fn refuses_bad_paths_unknown_repos_and_writes() {
    let env = TestEnv::new(crate::opts());
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    let addr = proxy.addr;
    let cases = [
        ("/repos/fixture_repo/packages/fo%00o", 400, "NUL"),
        (
            "/repos/fixture_repo/packages/a%2f..%2f..%2fkeys",
            400,
            "encoded slash",
        ),
        ("/repos/fixture_repo/packages/%2e%2e", 404, "invalid name"),
        ("/repos/fixture_repo/../../etc/passwd", 404, ""),
        ("/repos/fixture_repo/packages/nope", 404, "not found"),
        ("/repos/fixture_repo/tarballs/fx_core.tar", 404, ""),
        ("/repos/nope/names", 404, "unknown repository"),
        ("/repos/fixture_repo/packages/Bad", 404, "invalid name"),
    ];
    for (path, status, text) in cases {
        let r = get(addr, path);
        assert_eq!(r.status, status, "{path}");
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains(text), "{path}: {body}");
    }
    let long = format!("/repos/fixture_repo/packages/{}", "a".repeat(5000));
    assert_eq!(get(addr, &long).status, 400);
    let r = Request::new("DELETE", "/repos/fixture_repo/names")
        .send(addr)
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(get(addr, "/readyz").status, 200);
}

#[test]
fn private_repo_auth_matrix() {
    let env = TestEnv::new(EnvOptions {
        public: false,
        ..crate::opts()
    });
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    let addr = proxy.addr;
    assert_eq!(publish(addr, "fx_core-0.1.0", WRITE_KEY).status, 201);
    let path = format!("/repos/{REPO}/packages/fx_core");
    let missing = format!("/repos/{REPO}/packages/fx_secret");
    let with = |p: &str, key: Option<&str>| {
        let mut r = Request::new("GET", p);
        if let Some(k) = key {
            r = r.header("authorization", k);
        }
        r.send(addr).unwrap()
    };
    // No key: 401 for what exists and what does not (nothing is revealed).
    assert_eq!(with(&path, None).status, 401);
    assert_eq!(with(&missing, None).status, 401);
    assert_eq!(with(&path, Some("wrong-key")).status, 401);
    // Another repo's key: 403 either way.
    assert_eq!(with(&path, Some(OTHER_KEY)).status, 403);
    assert_eq!(with(&missing, Some(OTHER_KEY)).status, 403);
    // Read, write and admin keys read; a missing package is then a plain 404.
    for k in [READ_KEY, WRITE_KEY, ADMIN_KEY] {
        let r = with(&path, Some(k));
        assert_eq!(r.status, 200, "{k}");
        assert!(r.header("cache-control").unwrap().starts_with("private"));
        assert_eq!(with(&missing, Some(k)).status, 404);
    }
    // Basic auth as Hex sends it for a repo URL with userinfo: base64("user:readonly-key").
    let basic = format!(
        "Basic {}",
        base64_encode(format!("user:{READ_KEY}").as_bytes())
    );
    assert_eq!(with(&path, Some(&basic)).status, 200);
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn api_errors_pass_through_and_oversized_uploads_stop_before_the_body() {
    let env = TestEnv::new(EnvOptions {
        limits: "{tarball_bytes: 4000}".into(),
        ..crate::opts()
    });
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    let before = env.snapshot();
    let r = publish(proxy.addr, "fx_core-0.1.0", WRITE_KEY);
    assert_eq!(r.status, 413);
    assert!(!r.continued, "the body must not be asked for");
    assert!(r.term_str("message").unwrap().contains("over the limit"));
    let r = publish(proxy.addr, "fx_core-0.1.0", "wrong");
    assert_eq!(r.status, 401);
    assert_eq!(r.term_str("message").as_deref(), Some("invalid API key"));
    assert_eq!(env.snapshot(), before);
}

#[test]
fn api_is_502_with_a_message_when_the_publisher_is_down() {
    let env = TestEnv::new(crate::opts());
    let proxy = env.start_proxy();
    let r = Request::new("GET", "/api/users/me")
        .hex_api(Some(WRITE_KEY))
        .send(proxy.addr)
        .unwrap();
    assert_eq!(r.status, 502);
    assert!(
        r.term_str("message")
            .unwrap()
            .contains("publisher is not reachable")
    );
}
