//! Publisher start-up on S3: the conditional-write probe. On moto (which honours
//! `If-None-Match`) the publisher starts and leaves no probe object behind; on a server that
//! ignores the conditions it refuses to start while `publisher.multi_writer` is true, and starts
//! as a single writer when it is false.

use hexyard_tests::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An "S3 server" that answers every request 200 with an ETag and an empty body: it ignores
/// `If-None-Match`/`If-Match`, like Garage or s3rver. Records the request lines it saw.
struct IgnoringS3 {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl IgnoringS3 {
    fn start() -> IgnoringS3 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let log = log.clone();
                std::thread::spawn(move || serve(conn, &log));
            }
        });
        IgnoringS3 { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(conn: std::net::TcpStream, log: &Mutex<Vec<String>>) {
    let mut out = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        let mut conditional = String::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("if-none-match:") || lower.starts_with("if-match:") {
                conditional = format!(" [{h}]");
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock()
            .unwrap()
            .push(format!("{}{conditional}", line.trim_end()));
        let resp = "HTTP/1.1 200 OK\r\nETag: \"0123456789abcdef\"\r\nContent-Length: 0\r\n\
                    Last-Modified: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n";
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn env_on(endpoint: &str, multi_writer: bool) -> TestEnv {
    let mut env = TestEnv::new(EnvOptions::default());
    env.process_env = s3_env();
    let path = env.config_variant("ignoring", |text| {
        let text = text.replace(
            "store:\n  kind: local\n  root: ./data\n",
            &s3_store_yaml(endpoint, "any-bucket"),
        );
        text.replace(
            "  spawn: false\n",
            &format!("  spawn: false\n  multi_writer: {multi_writer}\n"),
        )
    });
    std::fs::copy(&path, &env.config_path).unwrap();
    env
}

#[test]
fn refuses_to_start_several_writers_on_a_store_that_ignores_conditions() {
    let fake = IgnoringS3::start();
    let env = env_on(&format!("http://{}", fake.addr), true);
    let (status, log) = env.run_to_exit(
        "hexyard-publisher",
        env.publisher_addr,
        Duration::from_secs(30),
    );
    assert!(!status.success());
    assert!(
        log.contains(&format!(
            "refusing to start: the store s3://any-bucket/ (http://{}) ignores conditional writes",
            fake.addr
        )),
        "{log}"
    );
    assert!(log.contains("set publisher.multi_writer: false"), "{log}");
    // The probe: two create-only writes of one scratch object (both "succeeded"), then its
    // deletion; nothing else was written.
    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].starts_with("PUT /any-bucket/.hexyard-probe/"),
        "{seen:?}"
    );
    assert!(seen[0].ends_with("[if-none-match: *]"), "{seen:?}");
    assert_eq!(seen[0], seen[1]);
    assert!(
        seen[2].starts_with("DELETE /any-bucket/.hexyard-probe/"),
        "{seen:?}"
    );
}

#[test]
fn a_single_writer_starts_on_a_store_that_ignores_conditions() {
    let fake = IgnoringS3::start();
    let env = env_on(&format!("http://{}", fake.addr), false);
    let p = env.start_publisher();
    let r = send(&api("GET", "/api/users/me", Some(WRITE_KEY)), p.addr);
    assert_eq!(r.status, 200);
    let log = p.log_text();
    assert!(
        log.contains("the store ignores conditional writes"),
        "{log}"
    );
}

#[test]
fn starts_on_moto_and_leaves_no_probe_object() {
    let env = TestEnv::new(EnvOptions {
        store: StoreBackend::S3,
        ..EnvOptions::default()
    });
    let p = env.start_publisher();
    let r = send(&api("GET", "/api/users/me", Some(WRITE_KEY)), p.addr);
    assert_eq!(r.status, 200);
    let moto = env.moto.as_ref().unwrap();
    let all: Vec<String> = s3_snapshot(moto, S3_BUCKET, "").into_keys().collect();
    assert_eq!(
        all,
        [
            "repos/fixture_repo/public_key",
            "repos/other_repo/public_key"
        ]
    );
    // moto saw the probe: If-None-Match honoured (the second write got 412).
    let log = moto.log_text();
    assert!(log.contains("\"PUT /hexyard-test/.hexyard-probe/"), "{log}");
    assert!(log.contains("HTTP/1.1\" 412"), "{log}");
}
