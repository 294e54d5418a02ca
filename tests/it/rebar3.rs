//! The real rebar3 (Debian's) fetching and compiling through hexyard: from a hosted repo, and
//! from a mirror through `HEX_CDN` (protocol doc §8.2, §9).

use hexyard_tests::upstream::FakeUpstream;
use hexyard_tests::*;
use std::path::Path;
use std::process::Command;

/// Runs `fx_erl:hello()` from the compiled project.
fn run_hello(project: &Path) -> String {
    let out = Command::new("erl")
        .current_dir(project)
        .args(["-noshell", "-pa"])
        .args(
            std::fs::read_dir(project.join("_build/default/lib"))
                .unwrap()
                .flatten()
                .map(|e| e.path().join("ebin")),
        )
        .args(["-eval", "io:format(\"~s\", [fx_erl:hello()]), halt()."])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rebar3_fetches_and_compiles_from_a_hosted_repo() {
    let env = TestEnv::new(crate::opts());
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    let p = rebar3_gets_deps_from_hosted(&env, proxy.addr);
    let home = env.dir.path().join("home");
    let (ok, out) = rebar3_run(&p, &home, &["compile"]);
    assert!(ok, "rebar3 compile failed:\n{out}");
    assert_eq!(
        run_hello(&p),
        "hello from fx_erl 0.1.0, hello from fx_core 0.2.0"
    );
}

#[test]
fn rebar3_fetches_through_the_mirror_with_hex_cdn() {
    assert!(
        rebar3_available(),
        "rebar3 is not installed (.ci/setup installs it)"
    );
    let up = FakeUpstream::as_hexpm();
    let env = TestEnv::new(EnvOptions {
        extra_repos: mirror_yaml(
            "hexpm_mirror",
            &up,
            "hexpm",
            &["allow: [fx_erl]", "follow_deps: true"],
        ),
        ..crate::opts()
    });
    let proxy = env.start_proxy();
    let pem = String::from_utf8(fixture("keys/public_key.pem")).unwrap();
    // The client keeps the hexpm repo (name, origin check) but trusts the fixture key for it.
    let hex = format!(
        "{{hex, [{{repos, [#{{name => <<\"hexpm\">>, repo_public_key => {}}}]}}]}}.",
        erl_binary(&pem)
    );
    let home = env.dir.path().join("home");
    let p = rebar3_project(env.dir.path(), "app", &hex);
    let cdn = format!("http://{}/repos/hexpm_mirror", proxy.addr);
    let (ok, out) = rebar3_run_with(&p, &home, &[("HEX_CDN", cdn.as_str())], &["get-deps"]);
    assert!(ok, "rebar3 get-deps through the mirror failed:\n{out}");
    let (ok, out) = rebar3_run_with(&p, &home, &[("HEX_CDN", cdn.as_str())], &["compile"]);
    assert!(ok, "rebar3 compile failed:\n{out}");
    assert_eq!(
        run_hello(&p),
        "hello from fx_erl 0.1.0, hello from fx_core 0.2.0"
    );
    // Everything came through the mirror, verified and stored, once.
    for rel in [
        "packages/fx_erl",
        "packages/fx_core",
        "tarballs/fx_erl-0.1.0.tar",
        "tarballs/fx_core-0.2.0.tar",
    ] {
        assert_eq!(
            env.object("hexpm_mirror", rel).unwrap(),
            up.file(rel).unwrap().to_vec(),
            "{rel}"
        );
        assert_eq!(up.hits(rel), 1, "{rel}");
    }
}
