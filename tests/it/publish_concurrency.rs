//! Concurrent publishes through two publisher processes on one store, and a publisher killed
//! with SIGKILL between publishes.

use hexyard_tests::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Publishes every `(name, version)` from its own thread, alternating between `addrs`; returns
/// the acknowledged (2xx) ones and every failure.
fn publish_all(
    addrs: &[SocketAddr],
    jobs: Vec<(String, String)>,
) -> (Vec<(String, String)>, Vec<String>) {
    let handles: Vec<_> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, (name, version))| {
            let addr = addrs[i % addrs.len()];
            std::thread::spawn(move || {
                let body = package_tarball(&name, &version);
                // A connection cut by a killed publisher is a failure, not a panic.
                match api(
                    "POST",
                    &format!("/api/packages/{name}/releases?replace=false"),
                    Some(WRITE_KEY),
                )
                .upload(body)
                .send(addr)
                {
                    Ok(r) => (name, version, r.status, body_text(&r)),
                    Err(e) => (name, version, 0, e.to_string()),
                }
            })
        })
        .collect();
    let mut ok = vec![];
    let mut failed = vec![];
    for h in handles {
        let (name, version, status, text) = h.join().unwrap();
        if (200..300).contains(&status) {
            ok.push((name, version));
        } else {
            failed.push(format!("{name} {version}: {status} {text}"));
        }
    }
    (ok, failed)
}

/// Every acknowledged release is in `versions`, `names` and `packages/<name>`, exactly once,
/// and `versions` agrees with the package files.
pub(crate) fn assert_index_holds(env: &TestEnv, acknowledged: &[(String, String)]) {
    let mut want: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (n, v) in acknowledged {
        want.entry(n).or_default().push(v);
    }
    let names = env.name_list(REPO);
    let mut sorted_names = names.clone();
    sorted_names.dedup();
    assert_eq!(names, sorted_names, "duplicate names");
    let versions = env.versions(REPO).unwrap();
    for (name, vs) in &want {
        assert!(names.iter().any(|n| n == name), "{name} missing from names");
        let pkg = env.package(REPO, name).unwrap();
        let in_pkg: Vec<&str> = pkg.releases.iter().map(|r| r.version.as_str()).collect();
        let entry = versions
            .packages
            .iter()
            .find(|p| p.name == *name)
            .unwrap_or_else(|| panic!("{name} missing from versions"));
        assert_eq!(
            entry
                .versions
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            in_pkg,
            "{name}: versions and packages/{name} disagree"
        );
        let mut dedup = in_pkg.clone();
        dedup.dedup();
        assert_eq!(dedup, in_pkg, "{name}: duplicate releases");
        for v in vs {
            assert!(
                in_pkg.contains(v),
                "{name} {v} acknowledged but not in the index"
            );
            assert!(
                env.object(REPO, &format!("tarballs/{name}-{v}.tar"))
                    .is_some(),
                "{name} {v}: tarball missing"
            );
        }
    }
    // Nothing in the index that was not stored.
    for p in &versions.packages {
        for v in &p.versions {
            assert!(
                env.object(REPO, &format!("tarballs/{}-{v}.tar", p.name))
                    .is_some(),
                "{} {v} is listed but its tarball is not stored",
                p.name
            );
        }
    }
}

#[test]
fn concurrent_publishes_through_two_processes_lose_nothing() {
    let env = env(crate::opts());
    let p1 = env.start_publisher();
    let p2 = env.start_second_publisher();
    let addrs = [p1.addr, p2.addr];

    // 32 distinct packages and 32 versions of one package, all at once.
    let mut jobs: Vec<(String, String)> = (0..32)
        .map(|i| (format!("conc_pkg_{i:02}"), "1.0.0".to_owned()))
        .collect();
    jobs.extend((0..32).map(|i| ("conc_many".to_owned(), format!("1.{i}.0"))));
    let (ok, failed) = publish_all(&addrs, jobs);
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(ok.len(), 64);
    assert_index_holds(&env, &ok);
    let many = env.versions_of(REPO, "conc_many").unwrap();
    assert_eq!(many.versions.len(), 32);
    assert_eq!(env.name_list(REPO).len(), 33);

    // A second wave on the warm processes (their cached indexes are now stale).
    let jobs: Vec<(String, String)> = (32..64)
        .map(|i| ("conc_many".to_owned(), format!("1.{i}.0")))
        .chain((32..64).map(|i| (format!("conc_pkg_{i:02}"), "2.0.0".to_owned())))
        .collect();
    let (ok2, failed) = publish_all(&addrs, jobs);
    assert!(failed.is_empty(), "{failed:#?}");
    let all: Vec<_> = ok.into_iter().chain(ok2).collect();
    assert_index_holds(&env, &all);
    assert_eq!(
        env.versions_of(REPO, "conc_many").unwrap().versions.len(),
        64
    );
    assert_eq!(env.name_list(REPO).len(), 65);
}

#[test]
fn sigkill_between_publishes_corrupts_nothing() {
    let env = env(crate::opts());
    let mut p = env.start_publisher();
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0", "fx_opt-1.0.0"]);
    p.kill();
    let before = env.snapshot();
    // Nothing half-written is left behind, and the index verifies.
    assert_eq!(env.name_list(REPO), ["fx_core", "fx_opt"]);
    let p = env.start_publisher();
    assert_eq!(env.snapshot(), before, "a restart changed the store");
    publish_fixtures(env.publisher_addr, &["fx_core-0.2.0", "fx_alias-0.1.0"]);
    let acknowledged: Vec<(String, String)> = [
        ("fx_core", "0.1.0"),
        ("fx_core", "0.2.0"),
        ("fx_opt", "1.0.0"),
        ("fx_alias", "0.1.0"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_index_holds(&env, &acknowledged);
    drop(p);

    // Kill in the middle of a burst of publishes, then check and publish again.
    let mut p = env.start_publisher();
    let addr = p.addr;
    let burst = std::thread::spawn(move || {
        publish_all(
            &[addr],
            (0..16)
                .map(|i| ("burst".to_owned(), format!("0.{i}.0")))
                .collect(),
        )
    });
    // Time is the point: let some of the burst land first.
    std::thread::sleep(std::time::Duration::from_millis(300));
    p.kill();
    let (ok, _failed) = burst.join().unwrap();
    let _p = env.start_publisher();
    // Everything acknowledged before the kill is in the index, and it all verifies.
    let all: Vec<_> = acknowledged.into_iter().chain(ok).collect();
    assert_index_holds(&env, &all);
    let r = upload(
        env.publisher_addr,
        "/api/packages/burst/releases",
        Some(WRITE_KEY),
        package_tarball("burst", "9.0.0"),
    );
    assert_eq!(r.status, 201, "{}", body_text(&r));
    assert!(
        env.versions_of(REPO, "burst")
            .unwrap()
            .versions
            .contains(&"9.0.0".to_owned())
    );
}

#[test]
fn many_versions_of_one_package_through_two_processes() {
    let env = env(crate::opts());
    let p1 = env.start_publisher();
    let p2 = env.start_second_publisher();
    let addrs = [p1.addr, p2.addr];
    let mut all = vec![];
    for round in 0..4 {
        let jobs: Vec<(String, String)> = (0..64)
            .map(|i| ("one_pkg".to_owned(), format!("{round}.{i}.0")))
            .collect();
        let (ok, failed) = publish_all(&addrs, jobs);
        assert!(failed.is_empty(), "{failed:#?}");
        all.extend(ok);
        assert_index_holds(&env, &all);
    }
    assert_eq!(
        env.versions_of(REPO, "one_pkg").unwrap().versions.len(),
        256
    );
}
