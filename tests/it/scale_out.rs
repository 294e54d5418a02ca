//! Scale-out on one bucket (issue 5): two publisher processes and two proxy processes share an
//! S3 bucket (moto). Concurrent publishes through both land in one consistent signed index, a
//! publish through one side shows on the other within `proxy.revalidate_ms`, and rebar3
//! resolves through either proxy.

use hexyard_common::registry;
use hexyard_tests::*;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// `proxy.revalidate_ms` of the test config (the default).
const REVALIDATE: Duration = Duration::from_millis(1000);

fn publish_built(addr: SocketAddr, name: &str, version: &str) -> http::Response {
    upload(
        addr,
        &format!("/api/packages/{name}/releases?replace=false"),
        Some(WRITE_KEY),
        package_tarball(name, version),
    )
}

fn versions_in(body: &[u8], env: &TestEnv, name: &str) -> Vec<String> {
    registry::decode_package(body, &env.public_key(REPO), REPO, name)
        .unwrap()
        .releases
        .into_iter()
        .map(|r| r.version)
        .collect()
}

#[test]
fn two_publishers_and_two_proxies_share_one_bucket() {
    let env = TestEnv::new(EnvOptions {
        store: StoreBackend::S3,
        ..EnvOptions::default()
    });
    let publisher_a = env.start_publisher();
    let publisher_b = env.start_second_publisher();
    let proxy_a = env.start_proxy();
    let proxy_b = env.start_proxy_for(publisher_b.addr);
    let proxies = [proxy_a.addr, proxy_b.addr];

    // 64 concurrent publishes, alternating between the two proxies (each forwarding to its own
    // publisher): 32 distinct packages and 32 versions of one package.
    let jobs: Vec<(String, String)> = (0..32)
        .map(|i| (format!("scale_pkg_{i:02}"), "1.0.0".to_owned()))
        .chain((0..32).map(|i| ("scale_shared".to_owned(), format!("1.{i}.0"))))
        .collect();
    let threads: Vec<_> = jobs
        .iter()
        .enumerate()
        .map(|(i, (name, version))| {
            let (addr, name, version) = (proxies[i % 2], name.clone(), version.clone());
            std::thread::spawn(move || {
                (
                    name.clone(),
                    version.clone(),
                    publish_built(addr, &name, &version),
                )
            })
        })
        .collect();
    for t in threads {
        let (name, version, r) = t.join().unwrap();
        assert_eq!(r.status, 201, "{name} {version}: {}", body_text(&r));
    }

    // The final signed indexes, read through both proxies, list every publish.
    let want_names: BTreeSet<String> = jobs.iter().map(|(n, _)| n.clone()).collect();
    let want_shared: Vec<String> = (0..32).map(|i| format!("1.{i}.0")).collect();
    let key = env.public_key(REPO);
    for addr in proxies {
        let names = get(addr, &format!("/repos/{REPO}/names"));
        assert_eq!(names.status, 200);
        assert_eq!(names.body, env.object(REPO, "names").unwrap());
        let got: BTreeSet<String> = registry::decode_names(&names.body, &key, REPO)
            .unwrap()
            .packages
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(got, want_names);
        let versions = get(addr, &format!("/repos/{REPO}/versions"));
        let versions = registry::decode_versions(&versions.body, &key, REPO).unwrap();
        assert_eq!(versions.packages.len(), 33);
        let shared = versions
            .packages
            .iter()
            .find(|p| p.name == "scale_shared")
            .unwrap();
        assert_eq!(shared.versions, want_shared);
        for p in &versions.packages {
            if p.name != "scale_shared" {
                assert_eq!(p.versions, ["1.0.0"], "{}", p.name);
            }
        }
        let pkg = get(addr, &format!("/repos/{REPO}/packages/scale_shared"));
        assert_eq!(versions_in(&pkg.body, &env, "scale_shared"), want_shared);
        let tar = get(
            addr,
            &format!("/repos/{REPO}/tarballs/scale_shared-1.31.0.tar"),
        );
        assert_eq!(tar.status, 200);
        assert_eq!(tar.body, package_tarball("scale_shared", "1.31.0"));
    }
    let tarballs = env
        .snapshot()
        .into_keys()
        .filter(|k| k.starts_with("fixture_repo/tarballs/"))
        .count();
    assert_eq!(tarballs, 64);

    // A release published through proxy A / publisher A is served by proxy B within the
    // revalidation interval of the entry proxy B holds in memory.
    let rel = format!("/repos/{REPO}/packages/scale_pkg_00");
    assert_eq!(
        versions_in(&get(proxy_b.addr, &rel).body, &env, "scale_pkg_00"),
        ["1.0.0"]
    );
    let r = publish_built(proxy_a.addr, "scale_pkg_00", "2.0.0");
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let published = Instant::now();
    let seen = loop {
        let body = get(proxy_b.addr, &rel).body;
        if versions_in(&body, &env, "scale_pkg_00") == ["1.0.0", "2.0.0"] {
            break published.elapsed();
        }
        assert!(
            published.elapsed() < REVALIDATE * 3,
            "proxy B still serves the old package file"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("proxy B served the release published through A after {seen:?}");
    // The interval, plus one HEAD and one GET to moto on a loaded machine.
    assert!(
        seen <= REVALIDATE + Duration::from_millis(750),
        "seen after {seen:?}"
    );
    // Proxy A, in front of the publisher that wrote it, shows it at once.
    assert_eq!(
        versions_in(&get(proxy_a.addr, &rel).body, &env, "scale_pkg_00"),
        ["1.0.0", "2.0.0"]
    );

    // rebar3 resolves and fetches through either proxy.
    assert!(
        rebar3_available(),
        "rebar3 is not installed (.ci/setup installs it)"
    );
    for (i, file) in ["fx_core-0.1.0", "fx_core-0.2.0", "fx_erl-0.1.0"]
        .iter()
        .enumerate()
    {
        let r = publish_fixture_at(proxies[i % 2], "/api", file);
        assert_eq!(r.status, 201, "{file}: {}", body_text(&r));
    }
    let pem = String::from_utf8(env.object(REPO, "public_key").unwrap()).unwrap();
    for (i, addr) in proxies.iter().enumerate() {
        let hex = rebar3_hex_config(REPO, &format!("http://{addr}/repos/{REPO}"), &pem);
        let home = env.dir.path().join(format!("home{i}"));
        let p = rebar3_project(env.dir.path(), &format!("app{i}"), &hex);
        let (ok, out) = rebar3_run(&p, &home, &["get-deps"]);
        assert!(ok, "rebar3 get-deps through proxy {i} failed:\n{out}");
        let lock = std::fs::read_to_string(p.join("rebar.lock")).unwrap();
        assert!(
            lock.contains("{<<\"fx_core\">>,{pkg,<<\"fx_core\">>,<<\"0.2.0\">>},1}"),
            "{lock}"
        );
        assert!(
            lock.contains("{<<\"fx_erl\">>,{pkg,<<\"fx_erl\">>,<<\"0.1.0\">>},0}"),
            "{lock}"
        );
    }
    drop(publisher_a);
}
