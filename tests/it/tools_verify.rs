//! `verify` with the real binary on a store the real publisher filled: clean, then a
//! corrupted tarball, a missing tarball (dangling), an orphan, a bad registry signature.

use crate::tools_util::*;
use hexyard_tests::*;

#[test]
fn reports_corruption_dangling_references_and_orphans_and_exits_1() {
    let env = TestEnv::new(EnvOptions::default());
    {
        let _p = env.start_publisher();
        publish_fixtures(env.publisher_addr, FIXTURE_ORDER);
    }
    let (code, out) = publisher_cmd(&env, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "verify fixture_repo (hosted): 8 registry files, 8 tarballs, 0 docs checked; 0 problems"
        ),
        "{out}"
    );
    assert!(out.contains("verify: ok"), "{out}");

    // One flipped byte in a tarball.
    let p = env.object_path(REPO, "tarballs/fx_core-0.2.0.tar");
    let mut b = std::fs::read(&p).unwrap();
    b[100] ^= 1;
    std::fs::write(&p, b).unwrap();
    // A missing tarball, and a tarball no package file lists.
    std::fs::remove_file(env.object_path(REPO, "tarballs/fx_opt-1.0.0.tar")).unwrap();
    std::fs::write(
        env.object_path(REPO, "tarballs/fx_core-9.9.9.tar"),
        fixture("publish/fx_core-0.1.0.tar"),
    )
    .unwrap();
    // A package file signed by another key.
    let other = hexyard_common::signing::SigningKey::generate().unwrap();
    let pkg = env.package(REPO, "fx_unicode").unwrap();
    std::fs::write(
        env.object_path(REPO, "packages/fx_unicode"),
        hexyard_common::registry::encode_signed(&pkg, &other).unwrap(),
    )
    .unwrap();

    let (code, out) = publisher_cmd(&env, &["verify", "--repo", REPO]);
    assert_eq!(code, 1, "{out}");
    let problems: Vec<&str> = out.lines().filter(|l| l.starts_with("PROBLEM")).collect();
    let expect = [
        "PROBLEM repos/fixture_repo/packages/fx_unicode: registry file does not verify",
        "PROBLEM repos/fixture_repo/tarballs/fx_core-0.2.0.tar: checksum mismatch",
        "PROBLEM repos/fixture_repo/tarballs/fx_core-9.9.9.tar: orphan",
        "PROBLEM repos/fixture_repo/tarballs/fx_unicode-0.1.0.tar: orphan",
        "PROBLEM repos/fixture_repo/packages/fx_opt: dangling: release 1.0.0 has no tarball",
        "PROBLEM repos/fixture_repo/names: dangling: lists fx_unicode",
    ];
    assert_eq!(problems.len(), expect.len(), "{out}");
    for (got, want) in problems.iter().zip(expect) {
        assert!(
            got.starts_with(want),
            "{got:?} does not start with {want:?}\n{out}"
        );
    }
    assert!(out.contains("verify: 6 problems"), "{out}");
    let (code, out) = publisher_cmd(&env, &["verify", "--repo", "nope"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no repository named \"nope\""), "{out}");
}
