//! Start-up rebuild, `/public_key`, and the `rebuild` and `import` subcommands.

use hexyard_common::registry::{self, proto};
use hexyard_common::signing::VerifyingKey;
use hexyard_tests::*;

/// The fixture's package files as `mix hex.registry build` wrote them.
fn fixture_package(name: &str) -> proto::Package {
    let key = VerifyingKey::from_pem(&String::from_utf8(fixture("keys/public_key.pem")).unwrap())
        .unwrap();
    registry::decode_package(
        &fixture(&format!("registry/packages/{name}")),
        &key,
        REPO,
        name,
    )
    .unwrap()
}

type Dep = (String, String, bool, String, Option<String>);

fn deps(r: &proto::Release) -> Vec<Dep> {
    r.dependencies
        .iter()
        .map(|d| {
            (
                d.package.clone(),
                d.requirement.clone(),
                d.optional.unwrap_or(false),
                d.app.clone().unwrap_or_else(|| d.package.clone()),
                d.repository.clone(),
            )
        })
        .collect()
}

const NAMES: [&str; 6] = [
    "fx_alias",
    "fx_core",
    "fx_erl",
    "fx_json",
    "fx_opt",
    "fx_unicode",
];

/// The stored index says what the fixture's index says: names, versions, and per release the
/// checksums and dependencies.
fn assert_index_matches_fixture(env: &TestEnv) {
    assert_eq!(env.name_list(REPO), NAMES);
    let versions = env.versions(REPO).unwrap();
    let fixture_versions = registry::decode_versions(
        &fixture("registry/versions"),
        &VerifyingKey::from_pem(&String::from_utf8(fixture("keys/public_key.pem")).unwrap())
            .unwrap(),
        REPO,
    )
    .unwrap();
    assert_eq!(versions.packages, fixture_versions.packages);
    for name in NAMES {
        let ours = env.package(REPO, name).unwrap();
        let theirs = fixture_package(name);
        assert_eq!(ours.releases.len(), theirs.releases.len(), "{name}");
        for (o, t) in ours.releases.iter().zip(&theirs.releases) {
            assert_eq!(o.version, t.version, "{name}");
            assert_eq!(o.inner_checksum, t.inner_checksum, "{name} {}", o.version);
            assert_eq!(o.outer_checksum, t.outer_checksum, "{name} {}", o.version);
            assert_eq!(deps(o), deps(t), "{name} {}", o.version);
            assert_eq!(o.retired, None);
        }
    }
}

fn copy_fixture_tarballs(env: &TestEnv) {
    for e in std::fs::read_dir(fixtures().join("registry/tarballs")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        env.put_object(
            REPO,
            &format!("tarballs/{name}"),
            &std::fs::read(e.path()).unwrap(),
        );
    }
}

#[test]
fn tarballs_without_index_are_rebuilt_at_start_and_public_key_written() {
    let env = env(crate::opts());
    copy_fixture_tarballs(&env);
    assert!(env.object(REPO, "names").is_none());
    let p = env.start_publisher();
    assert_index_matches_fixture(&env);
    // Both hosted repos have their /public_key, matching the key files.
    for repo in [REPO, "other_repo"] {
        let pem = String::from_utf8(env.object(repo, "public_key").unwrap()).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PUBLIC KEY-----"), "{pem}");
    }
    assert!(
        p.log_text()
            .contains("repository has tarballs but no index: rebuilding")
    );
    // The rebuilt repo is live: the next publish builds on it.
    let r = send(
        &api("GET", "/api/packages/fx_json/releases/0.3.0", None),
        env.publisher_addr,
    );
    assert_eq!(r.status, 200, "{}", body_text(&r));
    drop(p);

    // A restart with the index present rewrites nothing but keeps it.
    let before = env.snapshot();
    let _p = env.start_publisher();
    assert_eq!(env.snapshot(), before);
}

#[test]
fn missing_public_key_is_rewritten_at_start() {
    let env = env(crate::opts());
    {
        let _p = env.start_publisher();
        publish_fixtures(env.publisher_addr, &["fx_core-0.1.0"]);
    }
    let pem = env.object(REPO, "public_key").unwrap();
    env.delete_object(REPO, "public_key");
    let _p = env.start_publisher();
    assert_eq!(env.object(REPO, "public_key"), Some(pem));
    // The index still verifies with it.
    assert_eq!(env.name_list(REPO), ["fx_core"]);
}

#[test]
fn rebuild_subcommand_restores_the_index() {
    let env = env(crate::opts());
    {
        let _p = env.start_publisher();
        publish_fixtures(env.publisher_addr, FIXTURE_ORDER);
    }
    let published = env.package(REPO, "fx_core").unwrap();
    // Lose the indexes.
    for rel in ["names", "versions", "packages/fx_core", "packages/fx_json"] {
        env.delete_object(REPO, rel);
    }
    let (ok, out) = env.publisher_command(&["rebuild", "--repo", REPO]);
    assert!(ok, "{out}");
    assert!(
        out.contains("rebuilt fixture_repo: 6 packages, 8 releases, 0 package files removed, 0 tarballs skipped"),
        "{out}"
    );
    assert_index_matches_fixture(&env);
    // Rebuilt from tarballs: same releases as published.
    let rebuilt = env.package(REPO, "fx_core").unwrap();
    assert_eq!(
        rebuilt
            .releases
            .iter()
            .map(|r| &r.outer_checksum)
            .collect::<Vec<_>>(),
        published
            .releases
            .iter()
            .map(|r| &r.outer_checksum)
            .collect::<Vec<_>>()
    );
    let (ok, out) = env.publisher_command(&["rebuild", "--repo", "nope"]);
    assert!(!ok);
    assert!(out.contains("no hosted repository named \"nope\""), "{out}");
}

#[test]
fn import_subcommand_builds_the_fixture_index() {
    let env = env(crate::opts());
    let dir = fixtures().join("registry");
    let (ok, out) = env.publisher_command(&["import", "--repo", REPO, dir.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("imported into fixture_repo: 8 added, 0 already present, 0 rejected; index: 6 packages, 8 releases"),
        "{out}"
    );
    assert_index_matches_fixture(&env);
    for e in std::fs::read_dir(dir.join("tarballs")).unwrap() {
        let e = e.unwrap();
        let rel = format!("tarballs/{}", e.file_name().to_string_lossy());
        assert_eq!(
            env.object(REPO, &rel),
            Some(std::fs::read(e.path()).unwrap())
        );
    }
    // Again: nothing new.
    let (ok, out) = env.publisher_command(&["import", "--repo", REPO, dir.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("0 added, 8 already present, 0 rejected"),
        "{out}"
    );
    assert_index_matches_fixture(&env);
}

#[test]
fn import_of_a_bad_tarball_reports_it_and_fails() {
    let env = env(crate::opts());
    let dir = env.dir.path().join("incoming");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("fx_opt-1.0.0.tar"),
        fixture("publish/fx_opt-1.0.0.tar"),
    )
    .unwrap();
    std::fs::write(
        dir.join("evil-1.0.0.tar"),
        fixture("bad/path_traversal.tar"),
    )
    .unwrap();
    let (ok, out) = env.publisher_command(&["import", "--repo", REPO, dir.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("1 added, 0 already present, 1 rejected"),
        "{out}"
    );
    assert!(out.contains("rejected"), "{out}");
    assert!(out.contains("evil-1.0.0.tar"), "{out}");
    assert!(out.contains("points above the package directory"), "{out}");
    assert!(out.contains("1 tarballs were rejected"), "{out}");
    // The good one is in, the bad one is not stored.
    assert_eq!(env.name_list(REPO), ["fx_opt"]);
    assert!(env.object(REPO, "tarballs/fx_opt-1.0.0.tar").is_some());
    let stored: Vec<String> = env
        .snapshot()
        .into_keys()
        .filter(|k| k.contains("tarballs/"))
        .collect();
    assert_eq!(stored, ["fixture_repo/tarballs/fx_opt-1.0.0.tar"]);
}
