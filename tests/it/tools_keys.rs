//! `keygen` and `key new` with the real binary.

use crate::tools_util::*;
use hexyard_common::auth::{Access, Authenticator};
use hexyard_common::config::Config;
use hexyard_common::signing::VerifyingKey;
use hexyard_tests::*;

fn fingerprint_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint in {out}"))
        .to_owned()
}

#[test]
fn keygen_makes_the_repo_key_the_publisher_then_serves_and_never_overwrites_silently() {
    let env = TestEnv::new(EnvOptions::default());
    let (code, out) = publisher_cmd(&env, &["keygen", "--repo", REPO]);
    assert_eq!(code, 0, "{out}");
    let fp = fingerprint_of(&out);
    assert!(fp.starts_with("SHA256:") && fp.len() == 50, "{fp}");
    let key_path = env.dir.path().join("keys/fixture_repo.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_path).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    {
        let _p = env.start_publisher();
        assert_eq!(env.public_key(REPO).fingerprint(), fp);
    }
    let before = std::fs::read(&key_path).unwrap();
    let (code, out) = publisher_cmd(&env, &["keygen", "--repo", REPO]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refusing to overwrite"), "{out}");
    assert_eq!(std::fs::read(&key_path).unwrap(), before);
    let (code, out) = publisher_cmd(&env, &["keygen", "--repo", REPO, "--force"]);
    assert_eq!(code, 0, "{out}");
    assert_ne!(fingerprint_of(&out), fp);
    let (code, out) = publisher_cmd(&env, &["keygen", "--repo", "nope"]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = publisher_cmd(&env, &["keygen"]);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn keygen_bundle_writes_a_pair_whose_fingerprint_is_printed() {
    let env = TestEnv::new(EnvOptions::default());
    let (private, public) = bundle_key(&env, env.dir.path());
    let pubkey = VerifyingKey::from_pem(&std::fs::read_to_string(&public).unwrap()).unwrap();
    let priv_pem = std::fs::read_to_string(&private).unwrap();
    let key = hexyard_common::signing::SigningKey::from_pem(&priv_pem).unwrap();
    assert_eq!(key.verifying_key(), pubkey);
    let (code, out) = run(
        "hexyard-publisher",
        &env.config_path,
        &["keygen", "--bundle", "--out", &private],
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(std::fs::read_to_string(&private).unwrap(), priv_pem);
}

#[test]
fn key_new_prints_the_key_once_and_a_config_entry_that_admits_it() {
    let env = TestEnv::new(EnvOptions::default());
    let (code, out) = publisher_cmd(
        &env,
        &[
            "key",
            "new",
            "--name",
            "ci",
            "--grant",
            "fixture_repo:write",
            "--grant",
            "other_repo:read",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let key = lines[1];
    assert_eq!(key.len(), 64, "{out}");
    assert!(!out.contains(&format!("sha256: {key}")));
    let entry_start = out.find("  - name: ci").unwrap();
    let entry = &out[entry_start..];
    assert!(
        entry.contains(&format!("sha256: {}", key_hash(key))),
        "{out}"
    );
    // Pasted into the config, the entry admits the key with its grants.
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    let text = text.replacen("keys:\n", &format!("keys:\n{entry}"), 1);
    std::fs::write(&env.config_path, text).unwrap();
    let config = Config::load(&env.config_path).unwrap();
    let p = Authenticator::from_config(&config)
        .authenticate(Some(key.as_bytes()))
        .unwrap()
        .unwrap();
    assert_eq!(p.access("fixture_repo"), Some(Access::Write));
    assert_eq!(p.access("other_repo"), Some(Access::Read));
    // Bad grants are usage errors.
    for bad in ["fixture_repo", "nope:read", "fixture_repo:owner"] {
        let (code, out) = publisher_cmd(&env, &["key", "new", "--name", "x", "--grant", bad]);
        assert_eq!(code, 2, "{bad}: {out}");
    }
}
