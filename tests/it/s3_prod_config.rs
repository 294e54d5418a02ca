//! `conf/prod-s3.yaml` is the tested example: loaded with its credential variables set, changed
//! only for listen ports, the endpoint (moto, path-style), the bucket and the signing key's path,
//! and run as a proxy and a publisher: a publish with the example's key lands under the
//! configured prefix, the private repo needs a key to read, and `/readyz` names the store.

use hexyard_tests::*;

/// `text` with `from` replaced by `to`, asserting `from` is there exactly once.
fn edit(text: String, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} is not in prod-s3.yaml once"
    );
    text.replace(from, to)
}

#[test]
fn the_prod_s3_example_runs_on_moto() {
    let mut env = TestEnv::new(EnvOptions {
        store: StoreBackend::S3,
        ..EnvOptions::default()
    });
    let moto = env.moto.as_ref().unwrap();
    let endpoint = moto.endpoint();
    let key_path = env.dir.path().join("keys/acme.pem");
    let metrics = free_port_pair();
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/prod-s3.yaml"))
            .unwrap();
    let text = edit(
        text,
        "listen: 0.0.0.0:4000",
        &format!("listen: {}", env.proxy_addr),
    );
    let text = edit(
        text,
        "publisher_url: http://publisher.internal:4001",
        &format!("publisher_url: http://{}", env.publisher_addr),
    );
    let text = edit(
        text,
        "listen: 0.0.0.0:4001",
        &format!("listen: {}", env.publisher_addr),
    );
    let text = edit(
        text,
        "listen: 0.0.0.0:9100",
        &format!("listen: 127.0.0.1:{metrics}"),
    );
    let text = edit(text, "bucket: hexyard", &format!("bucket: {S3_BUCKET}"));
    let text = edit(
        text,
        "# endpoint: http://127.0.0.1:9000",
        &format!("endpoint: \"{endpoint}\""),
    );
    let text = edit(text, "force_path_style: false", "force_path_style: true");
    let text = edit(
        text,
        "private_key: /etc/hexyard/keys/acme.pem",
        &format!("private_key: \"{}\"", key_path.display()),
    );
    std::fs::write(&env.config_path, text).unwrap();
    // The example names its credential variables; only the started processes get them.
    env.process_env = vec![
        (
            "HEXYARD_S3_ACCESS_KEY_ID".to_owned(),
            hexyard_common::testing::s3::ACCESS_KEY_ID.to_owned(),
        ),
        (
            "HEXYARD_S3_SECRET_ACCESS_KEY".to_owned(),
            hexyard_common::testing::s3::SECRET_ACCESS_KEY.to_owned(),
        ),
    ];
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();

    // The example's `ci` key is sha256("password"), with write access to `acme`.
    let r = upload(
        proxy.addr,
        "/api/packages/fx_core/releases?replace=false",
        Some("password"),
        fixture("publish/fx_core-0.1.0.tar"),
    );
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let moto = env.moto.as_ref().unwrap();
    assert_eq!(
        s3_get(
            moto,
            S3_BUCKET,
            "prod/repos/acme/tarballs/fx_core-0.1.0.tar"
        )
        .unwrap(),
        fixture("publish/fx_core-0.1.0.tar")
    );
    let all: Vec<String> = s3_snapshot(moto, S3_BUCKET, "").into_keys().collect();
    assert_eq!(
        all,
        [
            "prod/repos/acme/names",
            "prod/repos/acme/packages/fx_core",
            "prod/repos/acme/public_key",
            "prod/repos/acme/tarballs/fx_core-0.1.0.tar",
            "prod/repos/acme/versions",
        ]
    );
    // `acme` is private: the key reads, no key does not.
    let names = http::Request::new("GET", "/repos/acme/names")
        .header("authorization", "password")
        .send(proxy.addr)
        .unwrap();
    assert_eq!(names.status, 200);
    assert_eq!(
        names.body,
        s3_get(moto, S3_BUCKET, "prod/repos/acme/names").unwrap()
    );
    assert!(
        names
            .header("cache-control")
            .unwrap()
            .starts_with("private")
    );
    assert_eq!(get(proxy.addr, "/repos/acme/names").status, 401);
    let ready = get(proxy.addr, "/readyz");
    assert_eq!(
        String::from_utf8_lossy(&ready.body),
        format!("ready: store s3://{S3_BUCKET}/prod/ ({endpoint})\n")
    );
}
