//! `gc` with the real binary: least recently used first (the later of the write time and the
//! proxy's access log) to fit --max-bytes, --older-than, hosted repos untouched, offline
//! mirrors refused without --force.

use crate::tools_util::*;
use hexyard_tests::upstream::FakeUpstream;
use hexyard_tests::*;
use std::time::{Duration, SystemTime};

const M: &str = "hexpm_mirror";

fn age(env: &TestEnv, rel: &str, secs_ago: u64) {
    let f = std::fs::File::options()
        .write(true)
        .open(env.object_path(M, rel))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

fn size(env: &TestEnv, rel: &str) -> u64 {
    env.object(M, rel).unwrap().len() as u64
}

#[test]
fn evicts_least_recently_used_tarballs_until_the_size_fits() {
    let up = FakeUpstream::as_hexpm();
    let env = mirror_env(&up, &[]);
    let (code, out) = proxy_cmd(
        &env,
        &[
            "prefetch",
            "--mirror",
            M,
            "--lock",
            &lock("rebar3_fx_json.rebar.lock"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let total: u64 = env
        .snapshot()
        .iter()
        .filter(|(k, _)| k.starts_with("hexpm_mirror/"))
        .map(|(_, v)| v.len() as u64)
        .sum();
    // Fetch order (oldest first): fx_opt, fx_core, fx_json, fx_alias.
    age(&env, "tarballs/fx_opt-1.0.0.tar", 4000);
    age(&env, "tarballs/fx_core-0.2.0.tar", 3000);
    age(&env, "tarballs/fx_json-0.3.0.tar", 2000);
    age(&env, "tarballs/fx_alias-0.1.0.tar", 1000);
    // A client uses the oldest one through the proxy: it becomes the most recently used.
    let proxy = env.start_proxy();
    let r = get(proxy.addr, "/repos/hexpm_mirror/tarballs/fx_opt-1.0.0.tar");
    assert_eq!(r.status, 200);
    let hits = up.total_hits();
    // Room for everything but the two least recently used.
    let max =
        total - size(&env, "tarballs/fx_core-0.2.0.tar") - size(&env, "tarballs/fx_json-0.3.0.tar");
    let (code, out) = proxy_cmd(
        &env,
        &[
            "gc",
            "--mirror",
            M,
            "--max-bytes",
            &max.to_string(),
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("would evict 2 objects"), "{out}");
    assert_eq!(mirror_objects(&env).len(), 8, "dry run deleted something");
    // One byte less: a third one must go.
    let (code, out) = proxy_cmd(
        &env,
        &["gc", "--mirror", M, "--max-bytes", &(max - 1).to_string()],
    );
    assert_eq!(code, 0, "{out}");
    let evicted: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("evicted repos/hexpm_mirror/"))
        .collect();
    assert_eq!(
        evicted,
        [
            "tarballs/fx_core-0.2.0.tar",
            "tarballs/fx_json-0.3.0.tar",
            "tarballs/fx_alias-0.1.0.tar",
        ],
        "{out}"
    );
    assert_eq!(
        mirror_objects(&env),
        [
            "packages/fx_alias",
            "packages/fx_core",
            "packages/fx_json",
            "packages/fx_opt",
            "tarballs/fx_opt-1.0.0.tar",
        ]
    );
    assert_eq!(up.total_hits(), hits);
    // What is left is consistent (a mirror release not cached is no problem).
    let (code, out) = publisher_cmd(&env, &["verify", "--repo", M]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 releases not cached"), "{out}");
    // --older-than: fx_opt was written 4000 s ago but used just now.
    let (code, out) = proxy_cmd(&env, &["gc", "--mirror", M, "--older-than", "10m"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("evicted 0 objects"), "{out}");
    let (code, out) = proxy_cmd(&env, &["gc", "--mirror", M, "--older-than", "0s"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("evicted repos/hexpm_mirror/tarballs/fx_opt-1.0.0.tar"),
        "{out}"
    );
    // Evicted objects come back on the next miss.
    let r = get(proxy.addr, "/repos/hexpm_mirror/tarballs/fx_core-0.2.0.tar");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        up.file("tarballs/fx_core-0.2.0.tar").unwrap().to_vec()
    );
}

#[test]
fn refuses_hosted_repos_and_offline_mirrors_without_force() {
    let up = FakeUpstream::as_hexpm();
    let env = mirror_env(&up, &["offline: true"]);
    let (code, out) = proxy_cmd(
        &env,
        &["gc", "--mirror", "fixture_repo", "--max-bytes", "0"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("\"fixture_repo\" is a hosted repository"),
        "{out}"
    );
    let (code, out) = proxy_cmd(&env, &["gc", "--mirror", M, "--max-bytes", "0"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("is offline (offline: true): evicted objects could never be fetched again"),
        "{out}"
    );
    assert!(out.contains("--force"), "{out}");
    let (code, out) = proxy_cmd(&env, &["gc", "--mirror", M, "--max-bytes", "0", "--force"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = proxy_cmd(&env, &["gc", "--mirror", M]);
    assert_eq!(code, 2, "{out}");
}
