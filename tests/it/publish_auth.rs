//! The auth matrix: every write route with no key, a wrong key, a read-only key and another
//! repo's key; reads of a private repository.

use hexyard_common::etf::{self, Term};
use hexyard_tests::*;

/// (method, path, body, is an upload with expect: 100-continue)
fn write_routes() -> Vec<(&'static str, &'static str, Vec<u8>, bool)> {
    let tar = fixture("publish/fx_core-0.2.0.tar");
    let retire = etf::encode(&Term::map([
        ("reason", Term::bin("security")),
        ("message", Term::bin("CVE-1")),
    ]));
    vec![
        (
            "POST",
            "/api/packages/fx_core/releases?replace=false",
            tar.clone(),
            true,
        ),
        ("POST", "/api/publish?replace=false", tar.clone(), true),
        (
            "POST",
            "/api/repos/fixture_repo/packages/fx_core/releases",
            tar,
            true,
        ),
        (
            "DELETE",
            "/api/packages/fx_core/releases/0.1.0",
            vec![],
            false,
        ),
        (
            "POST",
            "/api/packages/fx_core/releases/0.1.0/retire",
            retire,
            false,
        ),
        (
            "DELETE",
            "/api/packages/fx_core/releases/0.1.0/retire",
            vec![],
            false,
        ),
        (
            "POST",
            "/api/packages/fx_core/releases/0.1.0/docs",
            fixture("publish/fx_json-0.3.0-docs.tar.gz"),
            false,
        ),
        (
            "DELETE",
            "/api/packages/fx_core/releases/0.1.0/docs",
            vec![],
            false,
        ),
    ]
}

#[test]
fn every_write_route_needs_a_write_key_for_this_repo() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0"]);
    let before = env.snapshot();
    let cases: [(Option<&str>, u16, &str); 4] = [
        (None, 401, "missing authentication information"),
        (Some("not-a-key"), 401, "invalid API key"),
        (
            Some(READ_KEY),
            403,
            "key \"reader\" is not authorized for this action: it needs write access to repository \"fixture_repo\"",
        ),
        (
            Some(OTHER_KEY),
            403,
            "key \"other\" is not authorized for this action: it needs write access to repository \"fixture_repo\"",
        ),
    ];
    for (method, path, body, is_upload) in write_routes() {
        for (key, status, message) in cases {
            let mut req = api(method, path, key);
            req = if is_upload {
                req.upload(body.clone())
            } else {
                req.header("content-type", "application/vnd.hex+erlang")
                    .body(body.clone())
            };
            let r = send(&req, env.publisher_addr);
            let ctx = format!("{method} {path} with {key:?}");
            assert_eq!(r.status, status, "{ctx}: {}", body_text(&r));
            let (s, m, _) = error_of(&r);
            assert_eq!((s, m.as_str()), (i64::from(status), message), "{ctx}");
            if status == 401 {
                assert_eq!(
                    r.header("www-authenticate"),
                    Some("Basic realm=hex"),
                    "{ctx}"
                );
            }
            if is_upload {
                assert!(!r.continued, "{ctx}: the body was asked for");
            }
        }
    }
    assert_eq!(env.snapshot(), before);
    // The admin key may write.
    let r = send(
        &api(
            "DELETE",
            "/api/packages/fx_core/releases/0.1.0",
            Some(ADMIN_KEY),
        ),
        env.publisher_addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
}

#[test]
fn users_me_needs_a_key() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    let r = send(&api("GET", "/api/users/me", None), env.publisher_addr);
    assert_error(&r, 401, "missing authentication information");
    let r = send(
        &api("GET", "/api/users/me", Some("nope")),
        env.publisher_addr,
    );
    assert_error(&r, 401, "invalid API key");
    let r = send(
        &api("GET", "/api/users/me", Some(READ_KEY)),
        env.publisher_addr,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.term_str("username").as_deref(), Some("reader"));
    assert_eq!(r.term().get("organizations"), Some(&Term::List(vec![])));
}

#[test]
fn private_repo_reads_need_a_read_key() {
    let env = env(EnvOptions {
        public: false,
        ..crate::opts()
    });
    let _p = env.start_publisher();
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0"]);
    for path in [
        "/api/packages/fx_core",
        "/api/packages/fx_core/releases/0.1.0",
        "/api/packages?search=fx",
        "/api/packages/fx_core/owners",
        "/api/repos/fixture_repo/packages/fx_core",
    ] {
        let r = send(&api("GET", path, None), env.publisher_addr);
        assert_error(&r, 401, "missing authentication information");
        let r = send(&api("GET", path, Some("wrong")), env.publisher_addr);
        assert_error(&r, 401, "invalid API key");
        // A key of another repo learns nothing, not even that the package exists.
        let r = send(&api("GET", path, Some(OTHER_KEY)), env.publisher_addr);
        assert_error(&r, 404, "Page not found");
        for key in [READ_KEY, WRITE_KEY, ADMIN_KEY] {
            let r = send(&api("GET", path, Some(key)), env.publisher_addr);
            assert_eq!(r.status, 200, "{path} {key}: {}", body_text(&r));
        }
    }
    // The same for a package that does not exist: 404 for everyone with a key.
    let r = send(
        &api("GET", "/api/packages/nope", Some(OTHER_KEY)),
        env.publisher_addr,
    );
    assert_error(&r, 404, "Page not found");
    let r = send(
        &api("GET", "/api/packages/nope", Some(READ_KEY)),
        env.publisher_addr,
    );
    assert_error(&r, 404, "Page not found");
}

#[test]
fn public_repo_reads_need_no_key() {
    let env = env(crate::opts());
    let _p = env.start_publisher();
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0"]);
    let r = send(
        &api("GET", "/api/packages/fx_core", None),
        env.publisher_addr,
    );
    assert_eq!(r.status, 200);
    // Another repo's key is still a valid key.
    let r = send(
        &api("GET", "/api/packages/fx_core", Some(OTHER_KEY)),
        env.publisher_addr,
    );
    assert_eq!(r.status, 200);
}

/// An upload refused before its body is read (here: no key) gets its answer while the body is
/// still arriving; the publisher reads and discards the rest of the body, and the connection
/// then serves the next request (the proxy answers with `connection: close` instead). Closing
/// a connection with unread request bytes makes the kernel reset it, and the reset can destroy
/// the answer on its way: through the proxy, whose connections to the publisher are reused,
/// that was once a 502 "publisher not reachable" for a 403 in `access_matrix`.
#[test]
fn refused_upload_is_answered_and_its_body_drained() {
    let env = TestEnv::new(EnvOptions::default());
    let publisher = env.start_publisher();
    let proxy = env.start_proxy();
    for (who, addr) in [("publisher", publisher.addr), ("proxy", proxy.addr)] {
        for round in 0..3 {
            refused_upload_then_next_request(addr, who == "proxy", &format!("{who} round {round}"));
        }
    }
    assert!(env.versions(REPO).is_none(), "nothing was published");
}

fn refused_upload_then_next_request(addr: std::net::SocketAddr, may_close: bool, ctx: &str) {
    use std::io::{BufReader, Write};
    const LEN: usize = 1 << 20;
    const FIRST: usize = 64 * 1024;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    write!(
        s,
        "POST /api/packages/fx_core/releases HTTP/1.1\r\nhost: x\r\n\
         accept: application/vnd.hex+erlang\r\ncontent-type: application/octet-stream\r\n\
         content-length: {LEN}\r\n\r\n"
    )
    .unwrap();
    s.write_all(&[0; FIRST]).unwrap();
    let first = hexyard_tests::http::read_response(&mut r, "POST")
        .unwrap_or_else(|e| panic!("{ctx}: no answer to the upload: {e}"));
    assert_error(&first, 401, "missing authentication information");
    if may_close && first.header("connection") == Some("close") {
        // The proxy closes a connection whose request body it did not read to its end (and
        // says so); what matters there is that the answer is the publisher's.
        return;
    }
    // The rest of the body, then a second request on the same connection.
    if let Err(e) = s.write_all(&vec![0; LEN - FIRST]) {
        panic!("{ctx}: the refused body was not read to its end: {e}");
    }
    s.write_all(
        b"GET /api/users/me HTTP/1.1\r\nhost: x\r\naccept: application/vnd.hex+erlang\r\n\
          connection: close\r\n\r\n",
    )
    .unwrap();
    let second = hexyard_tests::http::read_response(&mut r, "GET")
        .unwrap_or_else(|e| panic!("{ctx}: no answer to the next request: {e}"));
    assert_error(&second, 401, "missing authentication information");
}
