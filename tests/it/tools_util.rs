//! Helpers of the operator-tool tests: run a subcommand of the real binaries, lock files.

use hexyard_tests::*;
use std::path::Path;
use std::process::Command;

/// Runs `BIN --config CONFIG ARGS..` to completion: (exit code, stdout + stderr).
pub fn run(bin_name: &str, config: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin(bin_name))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {bin_name}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// `hexyard-proxy` subcommand on `env`'s config.
pub fn proxy_cmd(env: &TestEnv, args: &[&str]) -> (i32, String) {
    run("hexyard-proxy", &env.config_path, args)
}

/// `hexyard-publisher` subcommand on `env`'s config.
pub fn publisher_cmd(env: &TestEnv, args: &[&str]) -> (i32, String) {
    run("hexyard-publisher", &env.config_path, args)
}

/// The path of a fixture lock file.
pub fn lock(name: &str) -> String {
    fixtures()
        .join("verify")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A deployment with mirror `hexpm_mirror` of `up` (upstream name `hexpm`) and `extra` keys.
pub fn mirror_env(up: &upstream::FakeUpstream, extra: &[&str]) -> TestEnv {
    TestEnv::new(EnvOptions {
        extra_repos: mirror_yaml("hexpm_mirror", up, "hexpm", extra),
        ..EnvOptions::default()
    })
}

/// The store paths (relative to `repos/hexpm_mirror/`) of what `env` holds for the mirror.
pub fn mirror_objects(env: &TestEnv) -> Vec<String> {
    env.snapshot()
        .into_keys()
        .filter_map(|k| k.strip_prefix("hexpm_mirror/").map(str::to_owned))
        .collect()
}

/// Makes a bundle key pair in `dir`: (private, public).
pub fn bundle_key(env: &TestEnv, dir: &Path) -> (String, String) {
    let private = dir.join("bundle.pem");
    let (code, out) = run(
        "hexyard-publisher",
        &env.config_path,
        &["keygen", "--bundle", "--out", private.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
    (
        private.to_string_lossy().into_owned(),
        dir.join("bundle.pub.pem").to_string_lossy().into_owned(),
    )
}
