//! The proxy as a process: the publisher as its supervised child, graceful shutdown on SIGTERM,
//! the metrics endpoint.

use hexyard_tests::http::Request;
use hexyard_tests::upstream::FakeUpstream;
use hexyard_tests::*;
use std::time::{Duration, Instant};

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig} {pid}");
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn child_pids(log: &str) -> Vec<u32> {
    log.lines()
        .filter(|l| l.contains("publisher started"))
        .filter_map(|l| l.split("pid=").nth(1))
        .filter_map(|p| p.split_whitespace().next().and_then(|p| p.parse().ok()))
        .collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn publish(addr: std::net::SocketAddr, file: &str) -> http::Response {
    let name = file.split('-').next().unwrap();
    Request::new(
        "POST",
        &format!("/api/packages/{name}/releases?replace=false"),
    )
    .hex_api(Some(WRITE_KEY))
    .upload(fixture(&format!("publish/{file}.tar")))
    .send(addr)
    .unwrap()
}

#[test]
fn spawns_restarts_and_stops_the_publisher() {
    let env = TestEnv::new(crate::opts());
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        text.replace("  spawn: false\n", "  spawn: true\n"),
    )
    .unwrap();
    let mut proxy = env.start_proxy();
    // The child comes up on publisher.listen.
    wait_until("the publisher child", || {
        std::net::TcpStream::connect(env.publisher_addr).is_ok()
    });
    assert_eq!(publish(proxy.addr, "fx_core-0.1.0").status, 201);
    let first = child_pids(&proxy.log_text());
    assert_eq!(first.len(), 1, "{}", proxy.log_text());
    // Killed, it is started again and the API works again.
    signal(first[0], "KILL");
    wait_until("a restarted publisher", || {
        child_pids(&proxy.log_text()).len() == 2
    });
    wait_until("the new publisher to listen", || {
        std::net::TcpStream::connect(env.publisher_addr).is_ok()
    });
    assert_eq!(publish(proxy.addr, "fx_core-0.2.0").status, 201);
    let second = child_pids(&proxy.log_text())[1];
    assert!(alive(second));
    // SIGTERM to the proxy stops the child too, and the proxy exits.
    signal(proxy.child.id(), "TERM");
    let status = proxy.child.wait().unwrap();
    assert!(status.success() || status.code().is_none(), "{status:?}");
    wait_until("the child to stop", || !alive(second));
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let up = FakeUpstream::fixture();
    up.set_delay(Duration::from_millis(1500));
    let env = TestEnv::new(EnvOptions {
        extra_repos: mirror_yaml("mirror", &up, "fixture_repo", &[]),
        ..crate::opts()
    });
    let mut proxy = env.start_proxy();
    let addr = proxy.addr;
    let slow = std::thread::spawn(move || get(addr, "/repos/mirror/packages/fx_core"));
    wait_until("the upstream request", || up.hits("packages/fx_core") == 1);
    signal(proxy.child.id(), "TERM");
    let r = slow
        .join()
        .unwrap_or_else(|_| panic!("LOG:\n{}", proxy.log_text()));
    assert_eq!(r.status, 200, "the in-flight request was cut");
    assert_eq!(r.body, fixture("registry/packages/fx_core"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = proxy.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_count_requests_by_kind_route_and_outcome() {
    let up = FakeUpstream::fixture();
    let metrics_port = free_port_pair();
    let env = TestEnv::new(EnvOptions {
        extra_repos: mirror_yaml(
            "mirror",
            &up,
            "fixture_repo",
            &["allow: [fx_core]", "follow_deps: false"],
        ),
        ..crate::opts()
    });
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        text.replace(
            "metrics: {listen: null}",
            &format!("metrics: {{listen: 127.0.0.1:{metrics_port}}}"),
        ),
    )
    .unwrap();
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    assert_eq!(
        get(proxy.addr, "/repos/mirror/packages/fx_core").status,
        200
    ); // miss
    assert_eq!(
        get(proxy.addr, "/repos/mirror/packages/fx_core").status,
        200
    ); // hit
    assert_eq!(
        get(proxy.addr, "/repos/mirror/packages/fx_json").status,
        403
    ); // denied
    assert_eq!(
        get(proxy.addr, "/repos/fixture_repo/packages/nope").status,
        404
    );
    let me = Request::new("GET", "/api/users/me")
        .hex_api(Some(WRITE_KEY))
        .send(proxy.addr)
        .unwrap();
    assert_eq!(me.status, 200);
    let m = String::from_utf8(
        get(
            format!("127.0.0.1:{metrics_port}").parse().unwrap(),
            "/metrics",
        )
        .body,
    )
    .unwrap();
    for line in [
        "hexyard_proxy_requests_total{outcome=\"miss\",repo_kind=\"mirror\",route=\"package\"} 1",
        "hexyard_proxy_requests_total{outcome=\"hit\",repo_kind=\"mirror\",route=\"package\"} 1",
        "hexyard_proxy_requests_total{outcome=\"denied\",repo_kind=\"mirror\",route=\"package\"} 1",
        "hexyard_proxy_requests_total{outcome=\"not_found\",repo_kind=\"hosted\",route=\"package\"} 1",
        "hexyard_proxy_denied_total 1",
    ] {
        assert!(m.contains(line), "missing {line:?} in\n{m}");
    }
    assert!(m.contains("hexyard_proxy_cache_bytes "));
    assert!(m.contains("hexyard_proxy_upstream_request_duration_seconds_count 1"));
    assert!(!m.contains("fx_core"), "no package names as label values");
    // The publisher serves its own on the next port.
    let p = String::from_utf8(
        get(
            format!("127.0.0.1:{}", metrics_port + 1).parse().unwrap(),
            "/metrics",
        )
        .body,
    )
    .unwrap();
    assert!(
        p.contains("hexyard_publisher_requests_total{route=\"user\",status=\"2xx\"} 1"),
        "{p}"
    );
}

#[test]
fn a_taken_listen_address_stops_the_start_with_an_error() {
    let env = TestEnv::new(crate::opts());
    let taken = std::net::TcpListener::bind(env.proxy_addr).unwrap();
    let (status, log) = env.run_to_exit("hexyard-proxy", env.proxy_addr, Duration::from_secs(20));
    assert!(!status.success(), "{status:?}");
    assert!(
        log.contains(&format!("cannot listen on {}", env.proxy_addr)),
        "{log}"
    );
    drop(taken);
}
