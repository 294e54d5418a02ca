//! Parsing and validation errors: each names the key path, and each rule can fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use hexyard_common::config::{
    Config, ConfigError, PublicKeySource, ReplaceWindow, RepoConfig, Secret,
};

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str_with_env(yaml, Path::new("/etc/hexyard"), &no_env)
}

/// The (key, line, column) of a parse error, plus its full text.
fn parse_err(yaml: &str) -> (String, Option<usize>, Option<usize>, String) {
    match parse(yaml) {
        Err(e @ ConfigError::Parse { .. }) => {
            let text = e.to_string();
            let ConfigError::Parse {
                key, line, column, ..
            } = e
            else {
                unreachable!()
            };
            (key, line, column, text)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// The `key: message` list of a validation error.
fn problems(yaml: &str) -> Vec<String> {
    problems_env(yaml, &no_env)
}

fn problems_env(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match Config::from_yaml_str_with_env(yaml, Path::new("/etc/hexyard"), env) {
        Err(ConfigError::Invalid(p)) => p.iter().map(ToString::to_string).collect(),
        other => panic!("expected validation problems, got {other:?}"),
    }
}

const HOSTED: &str = "repos:\n  test_repo:\n    kind: hosted\n    private_key: k.pem\n";

#[test]
fn unknown_keys_name_their_path() {
    let (key, line, col, text) = parse_err(&format!("{HOSTED}    pubic: true\n"));
    assert_eq!(key, "repos.test_repo.pubic");
    assert_eq!((line, col), (Some(5), Some(5)));
    assert!(
        text.starts_with("repos.test_repo.pubic: unknown field `pubic`, expected one of"),
        "{text}"
    );
    assert!(text.ends_with("(line 5, column 5)"), "{text}");

    let cases = [
        ("bogus: 1\n", "bogus"),
        ("proxy:\n  listn: x\n", "proxy.listn"),
        (
            "publisher:\n  limits:\n    docs:\n      size: 1\n",
            "publisher.limits.docs.size",
        ),
        (
            "repos:\n  m:\n    kind: mirror\n    upstream:\n      nmae: y\n",
            "repos.m.upstream.nmae",
        ),
        (
            "keys:\n  - name: a\n    grants: [{repo: r, acces: read}]\n",
            "keys[0].grants[0].acces",
        ),
        (
            "store:\n  s3:\n    bucket: b\n    secret: x\n",
            "store.s3.secret",
        ),
        // A key of the other repository kind is unknown too.
        (
            "repos:\n  h:\n    kind: hosted\n    private_key: k\n    upstream: {url: http://x}\n",
            "repos.h.upstream",
        ),
        (
            "repos:\n  m:\n    kind: mirror\n    private_key: k\n",
            "repos.m.private_key",
        ),
    ];
    for (yaml, want) in cases {
        let (key, _, _, text) = parse_err(yaml);
        assert_eq!(key, want, "{text}");
        assert!(text.contains("unknown field"), "{text}");
    }
}

#[test]
fn bad_values_name_their_path() {
    let cases = [
        (
            "proxy:\n  cache_bytes: lots\n",
            "proxy.cache_bytes",
            "invalid type: string \"lots\", expected u64",
        ),
        (
            "proxy:\n  listen: nope\n",
            "proxy.listen",
            "invalid socket address syntax",
        ),
        (
            "repos:\n  r:\n    kind: hostd\n",
            "repos.r.kind",
            "unknown variant `hostd`, expected `hosted` or `mirror`",
        ),
        (
            "repos:\n  r:\n    private_key: x\n",
            "repos.r",
            "missing field `kind`",
        ),
        (
            "log:\n  format: xml\n",
            "log.format",
            "unknown variant `xml`, expected `text` or `json`",
        ),
        (
            "publisher:\n  replace_window_secs: forever\n",
            "publisher.replace_window_secs",
            "invalid value: string \"forever\", expected a number of seconds, null or \"unlimited\"",
        ),
        (
            "publisher:\n  replace_window_secs: -5\n",
            "publisher.replace_window_secs",
            "invalid value: integer `-5`, expected a number of seconds, null or \"unlimited\"",
        ),
        (
            "[1, 2]\n",
            "",
            "invalid type: sequence, expected struct Config",
        ),
    ];
    for (yaml, want_key, want_msg) in cases {
        match parse(yaml) {
            Err(ConfigError::Parse { key, message, .. }) => {
                assert_eq!(
                    (key.as_str(), message.as_str()),
                    (want_key, want_msg),
                    "{yaml}"
                );
            }
            other => panic!("{yaml}: {other:?}"),
        }
    }
}

#[test]
fn empty_file_is_all_defaults() {
    for yaml in ["", "# nothing\n", "---\n"] {
        let c = parse(yaml).unwrap();
        let mut want = Config::default();
        want.store.root = Path::new("/etc/hexyard").join("./data");
        assert_eq!(c, want);
    }
}

#[test]
fn validation_rules() {
    let cases: &[(&str, &[&str])] = &[
        (
            "public_url: ftp://x\n",
            &["public_url: \"ftp://x\" is not an http:// or https:// URL"],
        ),
        (
            "default_repo: nope\n",
            &["default_repo: no repository named \"nope\""],
        ),
        (
            "proxy:\n  threads: 0\n",
            &["proxy.threads: must be at least 1 (or null)"],
        ),
        (
            "proxy:\n  publisher_url: localhost:4001\n",
            &["proxy.publisher_url: \"localhost:4001\" is not an http:// or https:// URL"],
        ),
        (
            "publisher:\n  limits: {tarball_bytes: 0, docs: {unpacked_bytes: 0}}\n",
            &[
                "publisher.limits.tarball_bytes: must be greater than 0",
                "publisher.limits.docs.unpacked_bytes: must be greater than 0",
            ],
        ),
        (
            "publisher:\n  limits: {name_min_len: 10, name_max_len: 5}\n",
            &["publisher.limits.name_min_len: must be at least 1 and at most name_max_len"],
        ),
        (
            "publisher:\n  limits: {name_max_len: 101}\n",
            &["publisher.limits.name_max_len: must be at most 100"],
        ),
        (
            "publisher:\n  listen: 127.0.0.1:4000\n",
            &["publisher.listen: 127.0.0.1:4000 is already used by proxy.listen"],
        ),
        (
            "metrics:\n  listen: 127.0.0.1:4000\n",
            &[
                "metrics.listen: 127.0.0.1:4000 is already used by proxy.listen",
                "metrics.listen (publisher, port + 1): 127.0.0.1:4001 is already used by publisher.listen",
            ],
        ),
        (
            "metrics:\n  listen: 127.0.0.1:65535\n",
            &["metrics.listen: port 65535 leaves no room for the publisher's port + 1"],
        ),
        (
            "store:\n  s3: {bucket: b}\n",
            &["store.s3: given, but store.kind is local"],
        ),
        (
            "store:\n  kind: s3\n",
            &["store.s3: required when store.kind is s3"],
        ),
        ("store:\n  root: ''\n", &["store.root: required"]),
        (
            "keys:\n  - name: a\n    sha256: abc\n",
            &["keys[0].sha256: must be 64 hexadecimal digits"],
        ),
        (
            "keys:\n  - name: a\n",
            &["keys[0]: sha256 or key_env is required"],
        ),
        (
            "keys:\n  - sha256: 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n    key_env: K\n",
            &[
                "keys[0]: give either sha256 or key_env, not both",
                "keys[0].name: required",
            ],
        ),
        (
            "keys:\n  - {name: a, key_env: HEXYARD_NOT_SET}\n",
            &["keys[0].key_env: environment variable HEXYARD_NOT_SET is not set"],
        ),
        (
            "keys:\n  - {name: a, sha256: 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b}\n  - {name: a, sha256: 2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B}\n",
            &[
                "keys[1].name: duplicate key name \"a\"",
                "keys[1].sha256: same key as keys[0]",
            ],
        ),
        (
            "keys:\n  - name: a\n    sha256: 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n    grants: [{repo: ghost, access: read}]\n",
            &["keys[0].grants[0].repo: no repository named \"ghost\""],
        ),
        (
            "repos:\n  Bad-Name:\n    kind: hosted\n    private_key: k\n",
            &[
                "repos.Bad-Name: invalid repository name: repository name contains the character 'B'",
            ],
        ),
        (
            "repos:\n  r:\n    kind: hosted\n",
            &["repos.r.private_key: required"],
        ),
        (
            "repos:\n  m:\n    kind: mirror\n    upstream: {url: repo.hex.pm, name: hex-pm, timeout_ms: 0, public_key: missing.pem, proxy: 'proxy:3128'}\n    allow: ['Phoenix', '']\n    deny: ['a-b']\n",
            &[
                "repos.m.upstream.url: \"repo.hex.pm\" is not an http:// or https:// URL",
                "repos.m.upstream.name: invalid repository name: repository name contains the character '-'",
                "repos.m.upstream.public_key: no such file /etc/hexyard/missing.pem",
                "repos.m.upstream.timeout_ms: must be greater than 0",
                "repos.m.upstream.proxy: \"proxy:3128\" is not an http:// or https:// URL",
                "repos.m.allow[0]: \"Phoenix\" is not a package name or glob ([a-z0-9_*?])",
                "repos.m.allow[1]: \"\" is not a package name or glob ([a-z0-9_*?])",
                "repos.m.deny[0]: \"a-b\" is not a package name or glob ([a-z0-9_*?])",
            ],
        ),
        ("log:\n  level: ' '\n", &["log.level: must not be empty"]),
    ];
    for (yaml, want) in cases {
        assert_eq!(problems(yaml), *want, "{yaml}");
    }
}

#[test]
fn invalid_error_lists_every_problem() {
    let e = parse("default_repo: x\nproxy:\n  threads: 0\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid configuration: default_repo: no repository named \"x\"; \
         proxy.threads: must be at least 1 (or null)"
    );
}

#[test]
fn s3_credentials_from_the_standard_variables_then_the_aws_profile() {
    let yaml =
        "store:\n  kind: s3\n  s3: {bucket: b, timeouts: {connect_ms: 250, max_attempts: 5}}\n";
    let env = |v: &str| match v {
        "AWS_ACCESS_KEY_ID" => Some("env-id".to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some("env-secret".to_owned()),
        "AWS_SESSION_TOKEN" => Some("env-token".to_owned()),
        _ => None,
    };
    let c = Config::from_yaml_str_with_env(yaml, Path::new("/x"), &env).unwrap();
    let s3 = c.store.s3.as_ref().unwrap();
    let creds = s3.credentials.as_ref().unwrap();
    assert_eq!(creds.access_key_id.expose(), "env-id");
    assert_eq!(creds.session_token.as_ref().unwrap().expose(), "env-token");
    assert_eq!((s3.timeouts.connect_ms, s3.timeouts.max_attempts), (250, 5));
    assert_eq!(
        s3.timeouts.read_ms, 30_000,
        "unset timeouts keep their defaults"
    );

    // No variables: the profile of the shared credentials file under $HOME.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        "[default]\naws_access_key_id = p-default\naws_secret_access_key = s-default\n\
         [ci]\naws_access_key_id = p-ci\naws_secret_access_key = s-ci\naws_session_token = t-ci\n",
    )
    .unwrap();
    let home_str = home.path().to_string_lossy().into_owned();
    let env = |v: &str| (v == "HOME").then(|| home_str.clone());
    let c = Config::from_yaml_str_with_env(yaml, Path::new("/x"), &env).unwrap();
    let creds = c.store.s3.as_ref().unwrap().credentials.clone().unwrap();
    assert_eq!(creds.access_key_id.expose(), "p-default");
    assert!(creds.session_token.is_none());
    let with_profile = "store:\n  kind: s3\n  s3: {bucket: b, profile: ci}\n";
    let c = Config::from_yaml_str_with_env(with_profile, Path::new("/x"), &env).unwrap();
    let creds = c.store.s3.as_ref().unwrap().credentials.clone().unwrap();
    assert_eq!(creds.secret_access_key.expose(), "s-ci");
    assert_eq!(creds.session_token.unwrap().expose(), "t-ci");
    // A profile that does not exist: the variables are reported missing, naming the profile step.
    let missing = "store:\n  kind: s3\n  s3: {bucket: b, profile: nope}\n";
    assert_eq!(
        problems_env(missing, &env),
        [
            "store.s3.access_key_id_env: environment variable AWS_ACCESS_KEY_ID is not set \
             (nor is there an AWS profile with credentials)",
            "store.s3.secret_access_key_env: environment variable AWS_SECRET_ACCESS_KEY is not set",
        ]
    );
    // Zero timeouts are refused.
    let zero =
        "store:\n  kind: s3\n  s3: {bucket: b, timeouts: {read_ms: 0, initial_backoff_ms: 9000}}\n";
    assert_eq!(
        problems_env(zero, &env),
        [
            "store.s3.timeouts.read_ms: must be > 0",
            "store.s3.timeouts.initial_backoff_ms: must not exceed max_backoff_ms",
        ]
    );
}

#[test]
fn s3_credentials_from_env_and_redacted() {
    let yaml = "store:\n  kind: s3\n  s3: {bucket: b, endpoint: 'http://127.0.0.1:9000', force_path_style: true, access_key_id_env: MY_ID, secret_access_key_env: MY_SECRET}\n";
    assert_eq!(
        problems(yaml),
        [
            "store.s3.access_key_id_env: environment variable MY_ID is not set",
            "store.s3.secret_access_key_env: environment variable MY_SECRET is not set",
        ]
    );
    let env = |v: &str| match v {
        "MY_ID" => Some("id-value-123".to_owned()),
        "MY_SECRET" => Some("secret-value-456".to_owned()),
        _ => None,
    };
    let c = Config::from_yaml_str_with_env(yaml, Path::new("/x"), &env).unwrap();
    let creds = c.store.s3.as_ref().unwrap().credentials.as_ref().unwrap();
    assert_eq!(creds.access_key_id, Secret::new("id-value-123"));
    assert_eq!(creds.secret_access_key.expose(), "secret-value-456");
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("id-value-123") && !debug.contains("secret-value-456"),
        "{debug}"
    );
    assert_eq!(format!("{:?}", creds.secret_access_key), "***");
    assert_eq!(creds.secret_access_key.to_string(), "***");
    // Bad S3 settings.
    assert_eq!(
        problems_env(
            "store:\n  kind: s3\n  s3: {prefix: /p/, region: '', endpoint: x, access_key_id_env: ''}\n",
            &env
        ),
        [
            "store.s3.secret_access_key_env: environment variable AWS_SECRET_ACCESS_KEY is not set",
            "store.s3.bucket: required",
            "store.s3.region: required",
            "store.s3.prefix: no leading or trailing '/', no '.' or '..' segments",
            "store.s3.endpoint: \"x\" is not an http:// or https:// URL",
            "store.s3.access_key_id_env: required",
        ]
    );
}

#[test]
fn key_env_is_hashed_and_never_kept() {
    let yaml = format!(
        "{HOSTED}keys:\n  - name: dev\n    key_env: HEXYARD_DEV_KEY\n    grants: [{{repo: test_repo, access: admin}}]\n"
    );
    let env = |v: &str| (v == "HEXYARD_DEV_KEY").then(|| "secret".to_owned());
    let c = Config::from_yaml_str_with_env(&yaml, Path::new("/x"), &env).unwrap();
    assert_eq!(
        c.keys[0].sha256.as_deref(),
        Some("2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b")
    );
    assert!(!format!("{c:?}").contains("\"secret\""));
    // Uppercase hashes are normalized.
    let c = parse(&format!(
        "{HOSTED}keys:\n  - name: k\n    sha256: 2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B\n"
    ))
    .unwrap();
    assert_eq!(
        c.keys[0].sha256.as_deref(),
        Some("2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b")
    );
}

#[test]
fn replace_windows() {
    let c = parse(&format!(
        "publisher:\n  replace_window_secs: null\n{HOSTED}    replace_window_secs: 60\n"
    ))
    .unwrap();
    assert_eq!(c.publisher.replace_window_secs, ReplaceWindow::Unlimited);
    assert_eq!(c.replace_window("test_repo"), Some(ReplaceWindow::Secs(60)));
    assert_eq!(
        ReplaceWindow::Secs(60).as_duration(),
        Some(std::time::Duration::from_secs(60))
    );
    let c = parse(&format!(
        "publisher:\n  replace_window_secs: 10\n{HOSTED}    replace_window_secs: unlimited\n"
    ))
    .unwrap();
    assert_eq!(c.publisher.replace_window_secs, ReplaceWindow::Secs(10));
    assert_eq!(
        c.replace_window("test_repo"),
        Some(ReplaceWindow::Unlimited)
    );
    assert_eq!(ReplaceWindow::Unlimited.as_duration(), None);
    // An explicit null override means "no window", absent means "inherit".
    let c = parse(&format!("{HOSTED}    replace_window_secs: ~\n")).unwrap();
    assert_eq!(
        c.replace_window("test_repo"),
        Some(ReplaceWindow::Unlimited)
    );
    let c = parse(HOSTED).unwrap();
    assert_eq!(
        c.replace_window("test_repo"),
        Some(ReplaceWindow::Secs(3600))
    );
    assert_eq!(c.replace_window("other"), None);
}

#[test]
fn paths_resolve_against_the_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("up.pem"),
        "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let yaml = "store:\n  root: data\nrepos:\n  h:\n    kind: hosted\n    private_key: /abs/h.pem\n  m:\n    kind: mirror\n    upstream: {public_key: up.pem}\n  i:\n    kind: mirror\n    upstream:\n      public_key: |\n        -----BEGIN PUBLIC KEY-----\n        abc\n        -----END PUBLIC KEY-----\n";
    let path = dir.path().join("hexyard.yaml");
    std::fs::write(&path, yaml).unwrap();
    let c = Config::load_with_env(&path, &no_env).unwrap();
    assert_eq!(c.store.root, dir.path().join("data"));
    let RepoConfig::Hosted(h) = &c.repos["h"] else {
        panic!()
    };
    assert_eq!(h.private_key, Path::new("/abs/h.pem"));
    let RepoConfig::Mirror(m) = &c.repos["m"] else {
        panic!()
    };
    assert_eq!(
        m.upstream.public_key,
        PublicKeySource::File(dir.path().join("up.pem"))
    );
    assert!(
        m.upstream
            .public_key
            .pem()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\nx")
    );
    let RepoConfig::Mirror(i) = &c.repos["i"] else {
        panic!()
    };
    assert_eq!(
        i.upstream.public_key,
        PublicKeySource::Inline(
            "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n".to_owned()
        )
    );
    let builtin = PublicKeySource::Builtin.pem().unwrap();
    assert!(builtin.contains("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApqREcFDt5vV21JVe2QNB"));
    // A missing file is a Read error naming the file.
    match Config::load(dir.path().join("absent.yaml")) {
        Err(ConfigError::Read { path, .. }) => assert_eq!(path, dir.path().join("absent.yaml")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn upstream_proxy_from_env() {
    let mirror = |extra: &str| {
        format!(
            "repos:\n  m:\n    kind: mirror\n    upstream: {{url: 'https://repo.hex.pm'{extra}}}\n"
        )
    };
    let effective = |yaml: &str, env: &dyn Fn(&str) -> Option<String>| {
        let c = Config::from_yaml_str_with_env(yaml, Path::new("/x"), env).unwrap();
        let RepoConfig::Mirror(m) = &c.repos["m"] else {
            panic!()
        };
        m.upstream.effective_proxy.clone()
    };
    let env = |v: &str| match v {
        "https_proxy" => Some("http://corp:3128".to_owned()),
        "http_proxy" => Some("http://plain:80".to_owned()),
        _ => None,
    };
    assert_eq!(
        effective(&mirror(""), &env).as_deref(),
        Some("http://corp:3128")
    );
    assert_eq!(effective(&mirror(""), &no_env), None);
    assert_eq!(effective(&mirror(", proxy: none"), &env), None);
    assert_eq!(
        effective(&mirror(", proxy: 'http://x:1'"), &no_env).as_deref(),
        Some("http://x:1")
    );
    for no_proxy in ["hex.pm", ".hex.pm", "repo.hex.pm", "localhost, *"] {
        let env = |v: &str| match v {
            "HTTPS_PROXY" => Some("http://corp:3128".to_owned()),
            "NO_PROXY" => Some(no_proxy.to_owned()),
            _ => None,
        };
        assert_eq!(effective(&mirror(""), &env), None, "{no_proxy}");
    }
    let env = |v: &str| match v {
        "https_proxy" => Some("http://corp:3128".to_owned()),
        "no_proxy" => Some("ex.pm,localhost".to_owned()),
        _ => None,
    };
    assert_eq!(
        effective(&mirror(""), &env).as_deref(),
        Some("http://corp:3128")
    );
}

#[test]
fn mirror_allow_deny() {
    let c = parse("repos:\n  m:\n    kind: mirror\n    allow: ['phoenix*', decimal]\n    deny: [phoenix_evil]\n  all:\n    kind: mirror\n").unwrap();
    let RepoConfig::Mirror(m) = &c.repos["m"] else {
        panic!()
    };
    assert!(m.allows("phoenix") && m.allows("phoenix_html") && m.allows("decimal"));
    assert!(!m.allows("phoenix_evil") && !m.allows("jason"));
    let RepoConfig::Mirror(all) = &c.repos["all"] else {
        panic!()
    };
    assert!(all.allows("anything") && all.follow_deps && !all.offline && all.public);
    assert_eq!((all.package_ttl_secs, all.index_ttl_secs), (300, 300));
    assert_eq!(all.upstream.url, "https://repo.hex.pm");
    assert_eq!(all.upstream.name, "hexpm");
}

#[test]
fn public_url_trailing_slash_is_trimmed() {
    let c = parse("public_url: 'https://hex.example.com/'\n").unwrap();
    assert_eq!(c.public_url, "https://hex.example.com");
}
