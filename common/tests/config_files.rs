//! The shipped `conf/*.yaml` files: every one loads, and `conf/dev.yaml` stays pinned to the code
//! defaults except where a line is marked `non-default` (athens' TestDefaultConfigMatchesConfigFile).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use hexyard_common::config::{
    Access, Config, HostedRepoConfig, LogFormat, MirrorRepoConfig, PublicKeySource, ReplaceWindow,
    RepoConfig, StoreKind,
};
use serde_yaml::Value;

fn conf_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../conf"))
}

fn fake_env(name: &str) -> Option<String> {
    match name {
        "HEXYARD_S3_ACCESS_KEY_ID" => Some("AKIAEXAMPLE".to_owned()),
        "HEXYARD_S3_SECRET_ACCESS_KEY" => Some("wJalrXUtnFEMIEXAMPLEKEY".to_owned()),
        _ => None,
    }
}

#[test]
fn every_conf_file_loads() {
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(conf_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let config = Config::load_with_env(&path, &fake_env)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!config.repos.is_empty(), "{}", path.display());
        loaded.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    loaded.sort();
    assert_eq!(loaded, ["dev.yaml", "prod-local.yaml", "prod-s3.yaml"]);
}

#[test]
fn dev_yaml_values() {
    let dir = std::path::absolute(conf_dir()).unwrap();
    let c = Config::load_with_env(dir.join("dev.yaml"), &|_| None).unwrap();
    assert_eq!(c.public_url, "http://localhost:4000");
    assert_eq!(c.default_repo.as_deref(), Some("test_repo"));
    assert_eq!(
        c.proxy.listen,
        "127.0.0.1:4000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.publisher_url(), "http://127.0.0.1:4001");
    assert!(c.publisher.spawn);
    assert_eq!(
        c.metrics.publisher_listen(),
        Some("127.0.0.1:9101".parse().unwrap())
    );
    assert_eq!(c.store.kind, StoreKind::Local);
    // Relative paths resolve against conf/.
    assert_eq!(c.store.root, dir.join("../data"));
    let RepoConfig::Hosted(h) = &c.repos["test_repo"] else {
        panic!("test_repo is not hosted")
    };
    assert_eq!(h.private_key, dir.join("../data/keys/test_repo.pem"));
    assert_eq!(
        c.replace_window("test_repo"),
        Some(ReplaceWindow::Secs(3600))
    );
    let RepoConfig::Mirror(m) = &c.repos["hexpm_mirror"] else {
        panic!("hexpm_mirror is not a mirror")
    };
    assert_eq!(m.upstream.public_key, PublicKeySource::Builtin);
    assert_eq!(m.allow.as_deref(), Some(&["decimal".to_owned()][..]));
    assert!(m.allows("decimal") && !m.allows("jason"));
    assert_eq!(c.keys.len(), 1);
    assert_eq!(c.keys[0].access("test_repo"), Some(Access::Write));
    assert_eq!(c.keys[0].access("hexpm_mirror"), None);
    // sha256("secret")
    assert_eq!(
        c.keys[0].sha256_bytes().map(hex::encode).as_deref(),
        Some("2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b")
    );
    assert_eq!(c.log.format, LogFormat::Text);
}

#[test]
fn prod_s3_values() {
    let c = Config::load_with_env(conf_dir().join("prod-s3.yaml"), &fake_env).unwrap();
    let s3 = c.store.s3.as_ref().unwrap();
    assert_eq!(c.store.kind, StoreKind::S3);
    assert_eq!(
        (s3.bucket.as_str(), s3.prefix.as_str()),
        ("hexyard", "prod")
    );
    let creds = s3.credentials.as_ref().unwrap();
    assert_eq!(creds.access_key_id.expose(), "AKIAEXAMPLE");
    assert_eq!(creds.secret_access_key.expose(), "wJalrXUtnFEMIEXAMPLEKEY");
    assert_eq!(c.publisher_url(), "http://publisher.internal:4001");
    assert_eq!(c.replace_window("acme"), Some(ReplaceWindow::Unlimited));
    assert_eq!(c.replace_window("hexpm"), None);
    let RepoConfig::Mirror(m) = &c.repos["hexpm"] else {
        panic!()
    };
    assert_eq!(
        m.upstream.effective_proxy.as_deref(),
        Some("http://egress.internal:3128")
    );
    assert!(m.allows("phoenix_live_view") && m.allows("jason") && !m.allows("ecto"));
    // Secrets never show in Debug output.
    let debug = format!("{c:?}");
    assert!(!debug.contains("wJalrXUtnFEMIEXAMPLEKEY"), "{debug}");
    assert!(!debug.contains("AKIAEXAMPLE"), "{debug}");
    assert!(debug.contains("secret_access_key: ***"), "{debug}");
}

/// Dotted paths of the lines of `text` that carry a `non-default` comment. A minimal
/// indentation scanner: enough for block mappings, which is how dev.yaml is written.
fn marked_paths(text: &str) -> BTreeSet<String> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut marked = BTreeSet::new();
    for line in text.lines() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') || content.starts_with('-') {
            continue;
        }
        let indent = line.len() - content.len();
        let Some((key, _)) = content.split_once(':') else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_owned()));
        if content.contains("# non-default") {
            let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            marked.insert(path.join("."));
        }
    }
    marked
}

/// Walks `file`'s scalar leaves; where `defaults` has the same path, they must be equal unless
/// the path is marked. Returns the paths compared and the marked paths that differ.
fn compare(
    file: &Value,
    defaults: &Value,
    path: &str,
    marked: &BTreeSet<String>,
    compared: &mut Vec<String>,
    differing_marked: &mut BTreeSet<String>,
) {
    match (file, defaults) {
        (Value::Mapping(f), Value::Mapping(d)) => {
            for (k, fv) in f {
                let k = k.as_str().unwrap();
                let sub = if path.is_empty() {
                    k.to_owned()
                } else {
                    format!("{path}.{k}")
                };
                // API keys and repositories are deployment data; repositories are compared
                // against the defaults of their kind separately.
                if sub == "keys" || sub == "repos" {
                    continue;
                }
                if let Some(dv) = d.get(k) {
                    compare(fv, dv, &sub, marked, compared, differing_marked);
                }
            }
        }
        _ => {
            compared.push(path.to_owned());
            if marked.contains(path) {
                if file != defaults {
                    differing_marked.insert(path.to_owned());
                }
            } else {
                assert_eq!(
                    file, defaults,
                    "conf/dev.yaml {path} differs from the code default; fix it or mark it non-default"
                );
            }
        }
    }
}

#[test]
fn dev_yaml_matches_code_defaults_unless_marked() {
    let text = std::fs::read_to_string(conf_dir().join("dev.yaml")).unwrap();
    let marked = marked_paths(&text);
    assert_eq!(
        marked,
        BTreeSet::from([
            "default_repo".to_owned(),
            "publisher.spawn".to_owned(),
            "store.root".to_owned(),
            "repos.test_repo.private_key".to_owned(),
            "repos.hexpm_mirror.allow".to_owned(),
        ])
    );
    let file: Value = serde_yaml::from_str(&text).unwrap();
    let mut compared = Vec::new();
    let mut differing = BTreeSet::new();
    let defaults = serde_yaml::to_value(Config::default()).unwrap();
    compare(&file, &defaults, "", &marked, &mut compared, &mut differing);
    // Repositories: compare against the defaults of their kind.
    let repo_defaults = |kind: &str| -> Value {
        let v = match kind {
            "hosted" => serde_yaml::to_value(RepoConfig::Hosted(HostedRepoConfig::default())),
            _ => serde_yaml::to_value(RepoConfig::Mirror(MirrorRepoConfig::default())),
        };
        v.unwrap()
    };
    for (name, repo) in file["repos"].as_mapping().unwrap() {
        let kind = repo["kind"].as_str().unwrap();
        let path = format!("repos.{}", name.as_str().unwrap());
        compare(
            repo,
            &repo_defaults(kind),
            &path,
            &marked,
            &mut compared,
            &mut differing,
        );
    }
    // Every marked line really differs (no stale marks), and the pin covers the sections.
    assert_eq!(differing, marked);
    for must in [
        "proxy.cache_bytes",
        "proxy.revalidate_ms",
        "proxy.threads",
        "publisher.replace_window_secs",
        "publisher.limits.tarball_bytes",
        "publisher.limits.unpacked_bytes",
        "publisher.limits.metadata_bytes",
        "publisher.limits.max_entries",
        "publisher.limits.docs.unpacked_bytes",
        "metrics.listen",
        "store.kind",
        "log.level",
        "repos.test_repo.public",
        "repos.hexpm_mirror.upstream.timeout_ms",
        "repos.hexpm_mirror.follow_deps",
        "repos.hexpm_mirror.package_ttl_secs",
    ] {
        assert!(compared.iter().any(|c| c == must), "{must} not compared");
    }
}

#[test]
fn marked_path_scanner() {
    let text = "a:\n  b: 1  # non-default\n  c:\n    d: 2 # non-default\ne: 3\n";
    assert_eq!(
        marked_paths(text),
        BTreeSet::from(["a.b".to_owned(), "a.c.d".to_owned()])
    );
}
