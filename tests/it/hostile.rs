//! Hostile HTTP against the real proxy and publisher: oversized heads and bodies, slowloris,
//! path tricks, methods, `Range`. (Auth: `access_matrix.rs`; the basic path and 405 cases:
//! `proxy_hosted.rs::refuses_bad_paths_unknown_repos_and_writes`.)

use hexyard_tests::http::{Request, Response};
use hexyard_tests::upstream::FakeUpstream;
use hexyard_tests::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The header read timeout the hostile deployments run with.
const HEAD_TIMEOUT_MS: u64 = 1500;

/// Starts the publisher and the proxy of `env` with `header_read_timeout_ms` set on both.
fn start(env: &TestEnv) -> (Process, Process) {
    let path = env.config_variant("hostile", |t| {
        t.replace(
            "proxy:\n",
            &format!("proxy:\n  header_read_timeout_ms: {HEAD_TIMEOUT_MS}\n"),
        )
        .replace(
            "  spawn: false\n",
            &format!("  spawn: false\n  header_read_timeout_ms: {HEAD_TIMEOUT_MS}\n"),
        )
    });
    let publisher = env.start_with("hexyard-publisher", &path, env.publisher_addr);
    let proxy = env.start_with("hexyard-proxy", &path, env.proxy_addr);
    (publisher, proxy)
}

/// Sends raw bytes, reads until the server closes (or 10 s): (status, whole answer).
fn raw(addr: SocketAddr, bytes: &[u8]) -> (Option<u16>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let status = std::str::from_utf8(out.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok());
    (status, out)
}

fn head_with(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{extra}\r\n").into_bytes()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn oversized_request_heads_are_4xx_and_the_processes_keep_serving() {
    let env = TestEnv::new(EnvOptions::default());
    let (publisher, proxy) = start(&env);
    let big = format!("x-big: {}\r\n", "a".repeat(64 * 1024));
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let huge = format!("x-huge: {}\r\n", "a".repeat(2 << 20));
    let key = "/repos/fixture_repo/public_key";
    for path in [key, "/api/users/me"] {
        for (what, extra) in [("64 KiB", &big), ("200 headers", &many), ("2 MiB", &huge)] {
            // The proxy: 431 within its own limits, 400 beyond pingora's; never the object.
            let (status, out) = raw(proxy.addr, &head_with(path, extra));
            let ctx = format!("proxy {path} {what}");
            assert!(matches!(status, Some(431 | 400)), "{ctx}: {status:?}");
            assert!(!contains(&out, b"BEGIN RSA PUBLIC KEY"), "{ctx}");
            // The publisher: a 4xx (hyper refuses more than 100 fields with 431).
            let (status, _) = raw(publisher.addr, &head_with(path, extra));
            let s = status.unwrap_or(0);
            assert!(
                (400..500).contains(&s),
                "publisher {path} {what}: {status:?}"
            );
            if what != "64 KiB" {
                assert_eq!(s, 431, "publisher {path} {what}");
            }
        }
    }
    let (_, out) = raw(proxy.addr, &head_with(key, &big));
    assert!(contains(&out, b"request header fields too large"));
    // Both still serve.
    let r = get(proxy.addr, key);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, env.object(REPO, "public_key").unwrap());
    let r = send(
        &api("GET", "/api/users/me", Some(WRITE_KEY)),
        publisher.addr,
    );
    assert_eq!(r.status, 200);
}

/// A publish over `publisher.limits.tarball_bytes` with a declared length (no expect), and
/// chunked without a length: 413 with a Hex error term, nothing stored; through the proxy and
/// directly.
#[test]
fn oversized_bodies_are_413_with_a_term_and_nothing_is_stored() {
    let env = TestEnv::new(EnvOptions {
        limits: "{tarball_bytes: 4000}".into(),
        ..EnvOptions::default()
    });
    let (publisher, proxy) = start(&env);
    let tar = fixture("publish/fx_core-0.1.0.tar");
    assert!(tar.len() > 4000);
    let path = "/api/packages/fx_core/releases?replace=false";
    let before = env.snapshot();
    for addr in [proxy.addr, publisher.addr] {
        let r = send(
            &api("POST", path, Some(WRITE_KEY))
                .header("content-type", "application/octet-stream")
                .header("connection", "close")
                .body(tar.clone()),
            addr,
        );
        let errors = assert_error(&r, 413, "over the limit of 4000 bytes");
        assert_eq!(errors, [("tar".to_owned(), "too big".to_owned())]);
        // Chunked, no Content-Length: the limit is enforced while reading.
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: {WRITE_KEY}\r\n\
             accept: application/vnd.hex+erlang\r\ncontent-type: application/octet-stream\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        .into_bytes();
        for c in tar.chunks(1000) {
            req.extend(format!("{:x}\r\n", c.len()).as_bytes());
            req.extend(c);
            req.extend(b"\r\n");
        }
        req.extend(b"0\r\n\r\n");
        let (status, out) = raw(addr, &req);
        assert_eq!(status, Some(413), "{}", String::from_utf8_lossy(&out));
        let body_at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let term = hexyard_common::etf::decode(&out[body_at..]).unwrap();
        let msg = term.get("message").and_then(|m| m.as_str()).unwrap();
        assert!(msg.contains("over the limit of 4000 bytes"), "{msg}");
    }
    assert_eq!(env.snapshot(), before);
    assert_eq!(get(proxy.addr, "/healthz").status, 200);
}

/// Slow clients send a request line and then a header byte every 300 ms: normal requests are
/// answered quickly meanwhile, and the slow connections are closed after the header timeout.
#[test]
fn slowloris_connections_are_dropped_and_others_are_served() {
    let env = TestEnv::new(EnvOptions::default());
    let (publisher, proxy) = start(&env);
    for (addr, path) in [
        (proxy.addr, "/repos/fixture_repo/public_key"),
        (publisher.addr, "/api/users/me"),
    ] {
        let slow: Vec<_> = (0..6)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(300)))
                        .unwrap();
                    let start = Instant::now();
                    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nx-slow: ").as_bytes())
                        .unwrap();
                    let mut buf = [0u8; 256];
                    while start.elapsed() < Duration::from_secs(15) {
                        if s.write_all(b"a").is_err() {
                            return (start.elapsed(), vec![]);
                        }
                        match s.read(&mut buf) {
                            Ok(0) => return (start.elapsed(), vec![]),
                            Ok(n) => return (start.elapsed(), buf[..n].to_vec()),
                            Err(_) => {} // read timed out: still open
                        }
                    }
                    (start.elapsed(), b"still open".to_vec())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        for _ in 0..5 {
            let t = Instant::now();
            let r = send(&api("GET", path, Some(WRITE_KEY)), addr);
            assert_eq!(r.status, 200, "{path}");
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{path}: {:?}",
                t.elapsed()
            );
        }
        for h in slow {
            let (after, answer) = h.join().unwrap();
            // Closed (no answer, or a 408), after the timeout and well before 15 s.
            assert!(
                answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
                "{path}: {:?}",
                String::from_utf8_lossy(&answer)
            );
            assert!(
                after >= Duration::from_millis(HEAD_TIMEOUT_MS - 100)
                    && after < Duration::from_millis(HEAD_TIMEOUT_MS + 3000),
                "{path}: closed after {after:?}"
            );
        }
    }
}

/// Path tricks through the proxy: each is a 400/404 and never serves an object's bytes or a
/// sentinel file placed next to the store root and in it.
#[test]
fn path_tricks_never_serve_other_bytes() {
    let env = TestEnv::new(EnvOptions::default());
    let (_publisher, proxy) = start(&env);
    let addr = proxy.addr;
    assert_eq!(
        publish_fixture_at(addr, "/api", "fx_core-0.1.0").status,
        201
    );
    let sentinel = b"SENTINEL-7f3a9c";
    std::fs::write(env.dir.path().join("names"), sentinel).unwrap();
    std::fs::write(env.store_root().join("names"), sentinel).unwrap();
    std::fs::write(env.store_root().join("repos").join("sentinel"), sentinel).unwrap();
    let stored: Vec<Vec<u8>> = env.snapshot().into_values().collect();
    let long = "a".repeat(10_000);
    let paths = [
        "/repos/fixture_repo/tarballs/../names".to_owned(),
        "/repos/fixture_repo/tarballs/..%2fnames".to_owned(),
        "/repos/fixture_repo/%2e%2e/%2e%2e/names".to_owned(),
        "/repos/%2e%2e/names".to_owned(),
        "/repos/fixture_repo/packages/%2e%2e%2f%2e%2e%2fnames".to_owned(),
        "/repos/fixture_repo/packages/..".to_owned(),
        "/repos/..%2f..%2fnames".to_owned(),
        "/repos/fixture_repo/packages/fx_core%00".to_owned(),
        "/repos/fixture_repo/packages/fx_core%2500".to_owned(),
        "/repos/fixture_repo/packages/..\\..\\names".to_owned(),
        "/repos/fixture_repo/packages/%5c..%5cnames".to_owned(),
        "/repos/fixture_repo\\names".to_owned(),
        "//repos//fixture_repo//tarballs//..//..//names//x".to_owned(),
        "/repos/fixture_repo/tarballs/fx_core-0.1.0.tar/..".to_owned(),
        "/repos/fixture_repo/tarballs/fx_core-..%2f..%2fnames.tar".to_owned(),
        "/repos/fixture_repo/tarballs/fx_core-0.1.0.tar%00.txt".to_owned(),
        "/repos/fixture_repo/docs/..-1.0.0.tar.gz".to_owned(),
        "/repos/sentinel".to_owned(),
        "/repos/fixture_repo/packages/%FF%FE".to_owned(),
        "/repos/fixture_repo/packages/fx_c%C3%B6re".to_owned(),
        "/repos/fixture_repo/packages/fx_cöre".to_owned(),
        "/repos/fixture_repo/packages/%".to_owned(),
        format!("/repos/fixture_repo/packages/{long}"),
        format!("/repos/fixture_repo/tarballs/{long}-1.0.0.tar"),
        format!("/repos/{long}/names"),
        "/../../../../etc/passwd".to_owned(),
        "/names/../sentinel".to_owned(),
    ];
    for p in &paths {
        let (status, out) = raw(addr, &head_with(p, ""));
        let body_at = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(out.len(), |i| i + 4);
        let body = &out[body_at..];
        assert!(matches!(status, Some(400 | 404)), "{p}: {status:?}");
        assert!(!contains(body, sentinel), "{p} served the sentinel");
        for obj in &stored {
            assert!(
                obj.len() < 32 || !contains(body, obj),
                "{p} served an object"
            );
        }
    }
    // A raw NUL and a raw space in the request target.
    for target in [
        &b"/repos/fixture_repo/packages/fx\0core"[..],
        b"/repos/x y/names",
    ] {
        let mut req = b"GET ".to_vec();
        req.extend(target);
        req.extend(b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let (status, _) = raw(addr, &req);
        assert!(matches!(status, Some(400 | 404) | None), "{status:?}");
    }
    // The real object is still served, unchanged.
    let r = get(addr, "/repos/fixture_repo/packages/fx_core");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, env.object(REPO, "packages/fx_core").unwrap());
}

#[test]
fn methods_not_allowed() {
    let env = TestEnv::new(EnvOptions::default());
    let (publisher, proxy) = start(&env);
    assert_eq!(
        publish_fixture_at(proxy.addr, "/api", "fx_core-0.1.0").status,
        201
    );
    let before = env.snapshot();
    for m in [
        "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND",
    ] {
        for rel in ["names", "packages/fx_core", "tarballs/fx_core-0.1.0.tar"] {
            let r = send(
                &Request::new(m, &format!("/repos/{REPO}/{rel}")).body(b"x".to_vec()),
                proxy.addr,
            );
            assert_eq!(r.status, 405, "{m} {rel}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{m} {rel}");
        }
        // /api: the publisher's answer (405 for a known path, 404 otherwise), never a 5xx,
        // through the proxy and directly.
        for (path, want) in [
            ("/api/packages/fx_core/releases", 405),
            ("/api/users/me", 405),
            ("/api/packages/fx_core/releases/0.1.0/retire", 405),
            ("/api/nothing", 404),
        ] {
            if want == 405 && ["POST", "DELETE"].contains(&m) && path.ends_with("retire") {
                continue; // real routes
            }
            if m == "POST" && path == "/api/packages/fx_core/releases" {
                continue;
            }
            for addr in [proxy.addr, publisher.addr] {
                let r = send(&api(m, path, Some(WRITE_KEY)), addr);
                assert_eq!(r.status, want, "{m} {path}: {}", body_text(&r));
                if m != "OPTIONS" && m != "TRACE" {
                    error_of(&r);
                }
            }
        }
    }
    let (status, _) = raw(
        proxy.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nhost: x\r\n\r\n",
    );
    assert!(matches!(status, Some(400..=499)), "{status:?}");
    assert_eq!(env.snapshot(), before);
}

// ---------------------------------------------------------------------------------------------
// Range (single ranges on repository files; see the brief in docs/SECURITY.md).

fn ranged(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut r = Request::new(method, path);
    for (k, v) in headers {
        r = r.header(k, v);
    }
    send(&r, addr)
}

/// Checks every range form against `whole` (the stored object) at `path`.
fn check_ranges(addr: SocketAddr, path: &str, whole: &[u8]) {
    let len = whole.len();
    assert!(len > 100, "{path}");
    let full = ranged(addr, "GET", path, &[]);
    assert_eq!(full.status, 200, "{path}");
    assert_eq!(full.body, whole);
    assert_eq!(full.header("accept-ranges"), Some("bytes"), "{path}");
    let etag = full.header("etag").unwrap().to_owned();
    let cases = [
        ("bytes=0-9".to_owned(), 0, 9),
        ("bytes=10-".to_owned(), 10, len - 1),
        ("bytes=-7".to_owned(), len - 7, len - 1),
        (format!("bytes=5-{}", len + 50), 5, len - 1),
        (format!("bytes={}-{}", len - 1, len - 1), len - 1, len - 1),
    ];
    for (range, a, b) in cases {
        let r = ranged(addr, "GET", path, &[("range", &range)]);
        assert_eq!(r.status, 206, "{path} {range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{len}").as_str()),
            "{path} {range}"
        );
        assert_eq!(r.body, &whole[a..=b], "{path} {range}: wrong bytes");
        assert_eq!(
            r.header("content-length"),
            Some((b - a + 1).to_string().as_str())
        );
        // If-Range with the current ETag: still the range.
        let r = ranged(addr, "GET", path, &[("range", &range), ("if-range", &etag)]);
        assert_eq!(r.status, 206, "{path} {range} if-range");
        assert_eq!(r.body, &whole[a..=b]);
        // HEAD: the 206 headers, no body.
        let h = ranged(addr, "HEAD", path, &[("range", &range)]);
        assert_eq!(h.status, 206, "HEAD {path} {range}");
        assert!(h.body.is_empty());
        assert_eq!(
            h.header("content-range"),
            Some(format!("bytes {a}-{b}/{len}").as_str())
        );
    }
    for range in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 5, len + 9),
    ] {
        let r = ranged(addr, "GET", path, &[("range", &range)]);
        assert_eq!(r.status, 416, "{path} {range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str()),
            "{path} {range}"
        );
        assert!(
            !contains(&r.body, &whole[..64]),
            "{path} {range}: object bytes in a 416"
        );
    }
    // Several ranges, another unit, or a stale If-Range: the whole object.
    for headers in [
        vec![("range", "bytes=0-1,5-9")],
        vec![("range", "items=0-1")],
        vec![("range", "bytes=0-9"), ("if-range", "\"not-the-etag\"")],
    ] {
        let r = ranged(addr, "GET", path, &headers);
        assert_eq!(r.status, 200, "{path} {headers:?}");
        assert_eq!(r.body, whole, "{path} {headers:?}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(r.header("content-range"), None);
    }
}

#[test]
fn range_requests_on_hosted_files() {
    let env = TestEnv::new(EnvOptions::default());
    let (_publisher, proxy) = start(&env);
    assert_eq!(
        publish_fixture_at(proxy.addr, "/api", "fx_core-0.1.0").status,
        201
    );
    for rel in [
        "tarballs/fx_core-0.1.0.tar",
        "packages/fx_core",
        "names",
        "public_key",
    ] {
        let whole = env.object(REPO, rel).unwrap();
        check_ranges(proxy.addr, &format!("/repos/{REPO}/{rel}"), &whole);
    }
}

#[test]
fn range_requests_on_mirror_files() {
    let up = FakeUpstream::fixture();
    let env = TestEnv::new(EnvOptions {
        extra_repos: mirror_yaml("mirror", &up, "fixture_repo", &[]),
        ..EnvOptions::default()
    });
    let (_publisher, proxy) = start(&env);
    for rel in ["tarballs/fx_core-0.2.0.tar", "packages/fx_core"] {
        // The first request fills the store with a range already.
        let r = ranged(
            proxy.addr,
            "GET",
            &format!("/repos/mirror/{rel}"),
            &[("range", "bytes=0-3")],
        );
        let whole = fixture(&format!("registry/{rel}"));
        assert_eq!(r.status, 206, "{rel}");
        assert_eq!(r.body, &whole[..4]);
        assert_eq!(
            env.object("mirror", rel).unwrap(),
            whole,
            "{rel}: not stored whole"
        );
        check_ranges(proxy.addr, &format!("/repos/mirror/{rel}"), &whole);
    }
}
