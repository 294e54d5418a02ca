//! The air-gap path end to end with the real binaries: prefetch from real lock files through
//! the fake hex.pm, export a signed bundle, import it into an empty store whose mirror is
//! offline with the upstream gone, and `rebar3 get-deps` through that second hexyard.
//! Also: tampered bundles, bundles with badly signed registry files, interrupted imports.

use crate::tools_util::*;
use hexyard_common::bundle::{self, Manifest};
use hexyard_common::signing::SigningKey;
use hexyard_tests::upstream::{FakeUpstream, resign_as};
use hexyard_tests::*;
use std::process::Command;

const M: &str = "hexpm_mirror";

/// The 8 objects the two rebar3/mix_fx_json locks need.
const LOCKED: [&str; 8] = [
    "packages/fx_alias",
    "packages/fx_core",
    "packages/fx_erl",
    "packages/fx_json",
    "tarballs/fx_alias-0.1.0.tar",
    "tarballs/fx_core-0.2.0.tar",
    "tarballs/fx_erl-0.1.0.tar",
    "tarballs/fx_json-0.3.0.tar",
];

/// Env A: mirror filled by prefetch from `rebar3_fx_erl.rebar.lock` and `mix_fx_json.mix.lock`;
/// returns it with a bundle exported from it (and the bundle key pair).
fn exported(up: &FakeUpstream) -> (TestEnv, String, (String, String)) {
    let a = mirror_env(up, &[]);
    let (code, out) = proxy_cmd(
        &a,
        &[
            "prefetch",
            "--mirror",
            M,
            "--lock",
            &lock("rebar3_fx_erl.rebar.lock"),
            "--lock",
            &lock("mix_fx_json.mix.lock"),
            "--lock-repo",
            "hexpm",
        ],
    );
    assert_eq!(code, 0, "{out}");
    // The mix.lock names repo fixture_repo: skipped under --lock-repo hexpm.
    assert!(out.contains("3 skipped"), "{out}");
    let (code, out) = proxy_cmd(
        &a,
        &[
            "prefetch",
            "--mirror",
            M,
            "--lock",
            &lock("mix_fx_json.mix.lock"),
            "--lock-repo",
            "fixture_repo",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(mirror_objects(&a), LOCKED);
    let keys = bundle_key(&a, a.dir.path());
    let out_path = a
        .dir
        .path()
        .join("bundle.tar")
        .to_string_lossy()
        .into_owned();
    let (code, out) = proxy_cmd(
        &a,
        &[
            "export",
            "--mirror",
            M,
            "--out",
            &out_path,
            "--bundle-key",
            &keys.0,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 objects"), "{out}");
    (a, out_path, keys)
}

/// Env B: an empty store, mirror `hexpm_mirror` offline.
fn offline_env(up: &FakeUpstream) -> TestEnv {
    mirror_env(up, &["offline: true"])
}

#[test]
fn prefetch_export_import_offline_then_rebar3_builds_with_no_upstream() {
    let up = FakeUpstream::as_hexpm();
    let (a, bundle_path, (_, public)) = exported(&up);
    let b = offline_env(&up);
    // The upstream is gone for good.
    let dead = up.url();
    drop(up);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        std::net::TcpStream::connect(dead.trim_start_matches("http://")).is_err(),
        "the fake upstream still answers"
    );

    assert!(mirror_objects(&b).is_empty());
    let (code, out) = proxy_cmd(&b, &["import", &bundle_path, "--bundle-key", &public]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("8 added, 0 updated, 0 already present, 0 conflicts"),
        "{out}"
    );
    // Byte for byte what the first mirror fetched and verified.
    for rel in LOCKED {
        assert_eq!(b.object(M, rel), a.object(M, rel), "{rel}");
    }
    // Idempotent.
    let (code, out) = proxy_cmd(&b, &["import", &bundle_path, "--bundle-key", &public]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 added, 0 updated, 8 already present"),
        "{out}"
    );
    // The audit agrees.
    let (code, out) = publisher_cmd(&b, &["verify", "--repo", M]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verify: ok"), "{out}");

    // rebar3 through the offline hexyard, with the lock of the fixture run.
    if Command::new("rebar3").arg("version").output().is_err() {
        panic!("rebar3 is not installed (.ci/setup installs it)");
    }
    let proxy = b.start_proxy();
    let p = b.dir.path().join("app");
    std::fs::create_dir_all(p.join("src")).unwrap();
    let pem = String::from_utf8(fixture("keys/public_key.pem")).unwrap();
    std::fs::write(
        p.join("rebar.config"),
        format!(
            "{{deps, [fx_erl]}}.\n{{hex, [{{repos, [#{{name => <<\"hexpm\">>, repo_public_key => {}}}]}}]}}.\n",
            erl_binary(&pem)
        ),
    )
    .unwrap();
    std::fs::write(
        p.join("rebar.lock"),
        fixture("verify/rebar3_fx_erl.rebar.lock"),
    )
    .unwrap();
    std::fs::write(
        p.join("src/myapp.app.src"),
        "{application, myapp, [{vsn, \"0.1.0\"}, {applications, [kernel, stdlib, fx_erl]}]}.\n",
    )
    .unwrap();
    let home = b.dir.path().join("home");
    let cdn = format!("http://{}/repos/{M}", proxy.addr);
    let (ok, out) = rebar3_run_with(&p, &home, &[("HEX_CDN", cdn.as_str())], &["get-deps"]);
    assert!(
        ok,
        "rebar3 get-deps through the offline mirror failed:\n{out}"
    );
    assert!(p.join("_build/default/lib/fx_erl/src").is_dir(), "{out}");
    assert!(p.join("_build/default/lib/fx_core").is_dir(), "{out}");
}

#[test]
fn a_bundle_altered_in_one_byte_is_refused_naming_the_object_and_nothing_is_written() {
    let up = FakeUpstream::as_hexpm();
    let (_a, bundle_path, (_, public)) = exported(&up);
    let b = offline_env(&up);
    let mut bytes = std::fs::read(&bundle_path).unwrap();
    let name = b"repos/hexpm_mirror/tarballs/fx_json-0.3.0.tar";
    let at = bytes.windows(name.len()).rposition(|w| w == name).unwrap();
    bytes[at + 512 + 700] ^= 0x20;
    let tampered = b.dir.path().join("tampered.tar");
    std::fs::write(&tampered, &bytes).unwrap();
    let (code, out) = proxy_cmd(
        &b,
        &[
            "import",
            tampered.to_str().unwrap(),
            "--bundle-key",
            &public,
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "repos/hexpm_mirror/tarballs/fx_json-0.3.0.tar: SHA-256 differs from the manifest"
        ),
        "{out}"
    );
    assert!(out.contains("nothing was written"), "{out}");
    assert!(mirror_objects(&b).is_empty());

    // Another bundle key: the manifest signature fails.
    let other = b.dir.path().join("other.pub.pem");
    std::fs::write(
        &other,
        SigningKey::generate()
            .unwrap()
            .verifying_key()
            .to_spki_pem(),
    )
    .unwrap();
    let (code, out) = proxy_cmd(
        &b,
        &[
            "import",
            &bundle_path,
            "--bundle-key",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("manifest signature does not verify"), "{out}");
    assert!(mirror_objects(&b).is_empty());
}

#[test]
fn a_validly_bundled_registry_file_not_signed_by_the_upstream_is_refused() {
    let up = FakeUpstream::as_hexpm();
    let b = offline_env(&up);
    // A package file signed by the fixture key but for repository "evil": origin check fails;
    // and a tarball whose package file does not vouch for it.
    let evil = resign_as(
        "packages/fx_core",
        &fixture("registry/packages/fx_core"),
        "evil",
    );
    let key = SigningKey::generate().unwrap();
    let public = b.dir.path().join("k.pub.pem");
    std::fs::write(&public, key.verifying_key().to_spki_pem()).unwrap();
    let make = |objects: Vec<(String, bytes::Bytes)>, file: &str| {
        let m = Manifest::new(
            M,
            "hexpm",
            objects.iter().map(|(p, b)| (p.as_str(), b.as_ref())),
        );
        let json = m.to_json().unwrap();
        let sig = bundle::sign_manifest(&json, &key).unwrap();
        let out = bundle::write_bundle(Vec::new(), &json, &sig, objects, &m).unwrap();
        let path = b.dir.path().join(file);
        std::fs::write(&path, out).unwrap();
        path
    };
    let bad_sig = make(
        vec![("repos/hexpm_mirror/packages/fx_core".into(), evil)],
        "evil.tar",
    );
    let (code, out) = proxy_cmd(
        &b,
        &[
            "import",
            bad_sig.to_str().unwrap(),
            "--bundle-key",
            public.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("repos/hexpm_mirror/packages/fx_core: registry signature/origin check failed"),
        "{out}"
    );
    let lone = make(
        vec![(
            "repos/hexpm_mirror/tarballs/fx_core-0.2.0.tar".into(),
            bytes::Bytes::from(fixture("registry/tarballs/fx_core-0.2.0.tar")),
        )],
        "lone.tar",
    );
    let (code, out) = proxy_cmd(
        &b,
        &[
            "import",
            lone.to_str().unwrap(),
            "--bundle-key",
            public.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("repos/hexpm_mirror/tarballs/fx_core-0.2.0.tar: no signed package file"),
        "{out}"
    );
    assert!(mirror_objects(&b).is_empty());
}

#[test]
fn an_import_killed_midway_completes_on_the_rerun() {
    let up = FakeUpstream::as_hexpm();
    let (a, bundle_path, (_, public)) = exported(&up);
    let b = offline_env(&up);
    let mut child = Command::new(bin("hexyard-proxy"))
        .arg("--config")
        .arg(&b.config_path)
        .args(["import", &bundle_path, "--bundle-key", &public])
        .args(["--write-delay-ms", "400"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while mirror_objects(&b).is_empty() {
        assert!(std::time::Instant::now() < deadline, "import wrote nothing");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = mirror_objects(&b);
    assert!(
        !partial.is_empty() && partial.len() < LOCKED.len(),
        "{partial:?}"
    );
    // Tarballs come first: no package file is exposed before its tarballs.
    assert!(
        partial.iter().all(|p| p.starts_with("tarballs/")),
        "{partial:?}"
    );
    let (code, out) = proxy_cmd(&b, &["import", &bundle_path, "--bundle-key", &public]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "{} added, 0 updated, {} already present",
            LOCKED.len() - partial.len(),
            partial.len()
        )),
        "{out}"
    );
    assert_eq!(mirror_objects(&b), LOCKED);
    for rel in LOCKED {
        assert_eq!(b.object(M, rel), a.object(M, rel), "{rel}");
    }
}

#[test]
fn export_with_a_lock_takes_only_its_objects_and_needs_them_prefetched() {
    let up = FakeUpstream::as_hexpm();
    let (a, _, (private, public)) = exported(&up);
    let out_path = a.dir.path().join("erl.tar").to_string_lossy().into_owned();
    let args = [
        "export",
        "--mirror",
        M,
        "--out",
        &out_path,
        "--bundle-key",
        &private,
        "--lock",
        &lock("rebar3_fx_erl.rebar.lock"),
    ];
    let (code, out) = proxy_cmd(&a, &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 objects"), "{out}");
    let mut paths = Vec::new();
    let pubkey =
        hexyard_common::signing::VerifyingKey::from_pem(&std::fs::read_to_string(&public).unwrap())
            .unwrap();
    let manifest = bundle::read_bundle::<_, bundle::BundleError>(
        std::fs::File::open(&out_path).unwrap(),
        &pubkey,
        |_, p, _| {
            paths.push(p.to_owned());
            Ok(())
        },
    )
    .unwrap();
    // Tarballs first, then package files.
    assert_eq!(
        paths,
        [
            "repos/hexpm_mirror/tarballs/fx_core-0.2.0.tar",
            "repos/hexpm_mirror/tarballs/fx_erl-0.1.0.tar",
            "repos/hexpm_mirror/packages/fx_core",
            "repos/hexpm_mirror/packages/fx_erl",
        ]
    );
    assert_eq!(
        (manifest.mirror.as_str(), manifest.upstream.as_str()),
        (M, "hexpm")
    );
    // fx_opt was never prefetched.
    let (code, out) = proxy_cmd(
        &a,
        &[
            "export",
            "--mirror",
            M,
            "--out",
            &out_path,
            "--bundle-key",
            &private,
            "--lock",
            &lock("rebar3_fx_json.rebar.lock"),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "repos/hexpm_mirror/tarballs/fx_opt-1.0.0.tar is not in the store (run prefetch first)"
        ),
        "{out}"
    );
}

#[test]
fn a_bundle_for_another_upstream_is_refused() {
    let up = FakeUpstream::as_hexpm();
    let (_a, bundle_path, (_, public)) = exported(&up);
    // Same mirror name, but its upstream signs as fixture_repo.
    let c = TestEnv::new(EnvOptions {
        extra_repos: mirror_yaml(M, &up, "fixture_repo", &["offline: true"]),
        ..EnvOptions::default()
    });
    let (code, out) = proxy_cmd(&c, &["import", &bundle_path, "--bundle-key", &public]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "holds files signed for \"hexpm\", mirror \"hexpm_mirror\" expects \"fixture_repo\""
        ),
        "{out}"
    );
    assert!(mirror_objects(&c).is_empty());
}
