//! The S3 server stopped mid-run: the proxy serves what it holds in memory (stale past the
//! revalidation interval), reports 503 for what it does not hold and on `/readyz`; publishes
//! fail with a 503 and a message. moto keeps nothing across a restart, so after it comes back
//! (empty, bucket re-created) the check is that everything resumes: `/readyz` is 200 again and
//! publishes work and are served.
//!
//! To check "nothing half-written" with the data kept, the second test puts a [`TcpGate`]
//! between the processes and moto and cuts it exactly when a publish writes its package file.

use hexyard_tests::*;
use std::time::{Duration, Instant};

#[test]
fn s3_outage_serves_from_memory_fails_writes_cleanly_and_resumes() {
    let mut env = TestEnv::new(EnvOptions {
        store: StoreBackend::S3,
        ..EnvOptions::default()
    });
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    let addr = proxy.addr;
    let r = publish_fixture_at(addr, "/api", "fx_core-0.1.0");
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let cached: Vec<(String, Vec<u8>)> =
        ["names", "packages/fx_core", "tarballs/fx_core-0.1.0.tar"]
            .iter()
            .map(|rel| {
                let r = get(addr, &format!("/repos/{REPO}/{rel}"));
                assert_eq!(r.status, 200, "{rel}");
                assert_eq!(r.body, env.object(REPO, rel).unwrap(), "{rel}");
                ((*rel).to_owned(), r.body)
            })
            .collect();
    let endpoint = env.moto.as_ref().unwrap().endpoint();

    env.s3_stop();
    // Past the revalidation interval the proxy's store check fails; it serves its copies.
    std::thread::sleep(Duration::from_millis(1100));
    for (rel, body) in &cached {
        let r = get(addr, &format!("/repos/{REPO}/{rel}"));
        assert_eq!(r.status, 200, "{rel}: {}", body_text(&r));
        assert_eq!(&r.body, body, "{rel}");
    }
    // What it does not hold: a clear 503.
    let r = get(addr, &format!("/repos/{REPO}/versions"));
    assert_eq!(r.status, 503, "{}", body_text(&r));
    assert_eq!(
        String::from_utf8_lossy(&r.body).trim_end(),
        "storage unavailable, try again"
    );
    let ready = get(addr, "/readyz");
    assert_eq!(ready.status, 503);
    let text = String::from_utf8_lossy(&ready.body);
    assert!(
        text.starts_with(&format!(
            "not ready: store unreachable: s3://{S3_BUCKET}/ ({endpoint}): storage unavailable: S3 HeadObject"
        )),
        "{text}"
    );
    // A publish fails fast and says why.
    let t = Instant::now();
    let r = publish_fixture_at(addr, "/api", "fx_core-0.2.0");
    let errors = assert_error(&r, 503, "storage unavailable, try again");
    assert!(errors.is_empty());
    let (_, message, _) = error_of(&r);
    assert!(
        !message.contains(&endpoint) && !message.contains(S3_BUCKET),
        "the client is not told where the store is: {message}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // moto restarts empty (it has no persistence): the bucket is re-created.
    env.s3_restart();
    assert!(env.snapshot().is_empty());
    let ready = get(addr, "/readyz");
    assert_eq!(ready.status, 200, "{}", body_text(&ready));
    let r = publish_fixture_at(addr, "/api", "fx_core-0.2.0");
    assert_eq!(r.status, 201, "{}", body_text(&r));
    assert_eq!(
        env.object(REPO, "tarballs/fx_core-0.2.0.tar").unwrap(),
        fixture("publish/fx_core-0.2.0.tar")
    );
    // The indexes were re-created from what the bucket holds now (the 0.1.0 release went with
    // moto's memory), and the proxy serves them.
    // (`/public_key` is written at publisher start-up, so it is gone until a restart: verify
    // with the key file.)
    let pem = std::fs::read_to_string(env.dir.path().join("keys/fixture_repo.pem")).unwrap();
    let key = hexyard_common::signing::SigningKey::from_pem(&pem)
        .unwrap()
        .verifying_key();
    let versions = hexyard_common::registry::decode_versions(
        &env.object(REPO, "versions").unwrap(),
        &key,
        REPO,
    )
    .unwrap();
    assert_eq!(versions.packages.len(), 1);
    assert_eq!(versions.packages[0].versions, ["0.2.0"]);
    assert_eq!(env.object(REPO, "public_key"), None);
    for rel in ["names", "versions", "packages/fx_core"] {
        let r = get(addr, &format!("/repos/{REPO}/{rel}"));
        assert_eq!(r.status, 200, "{rel}");
        assert_eq!(r.body, env.object(REPO, rel).unwrap(), "{rel}");
    }
}

#[test]
fn s3_cut_mid_publish_leaves_nothing_an_index_names_and_resumes_with_the_data() {
    let env = TestEnv::new(EnvOptions {
        store: StoreBackend::S3,
        ..EnvOptions::default()
    });
    // The processes reach moto through a gate that can cut them off while moto keeps its data.
    let moto = env.moto.as_ref().unwrap();
    let gate = TcpGate::start(([127, 0, 0, 1], moto.port()).into());
    let path = env.config_variant("gated", |t| t.replace(&moto.endpoint(), &gate.url()));
    std::fs::copy(path, &env.config_path).unwrap();
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    let addr = proxy.addr;
    let r = publish_fixture_at(addr, "/api", "fx_core-0.1.0");
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let before = env.snapshot();

    // The connection dies exactly when the publisher writes the package file, after the
    // tarball: the publish fails with a 503 and no index file changed.
    gate.cut_on("PUT /hexyard-test/repos/fixture_repo/packages/fx_core?");
    let r = publish_fixture_at(addr, "/api", "fx_core-0.2.0");
    assert_error(&r, 503, "storage unavailable, try again");
    assert!(!gate.is_up());
    assert_eq!(get(addr, "/readyz").status, 503);
    let mut after = env.snapshot();
    assert_eq!(
        after.remove("fixture_repo/tarballs/fx_core-0.2.0.tar"),
        Some(fixture("publish/fx_core-0.2.0.tar")),
        "the tarball (written first) is the only new object"
    );
    assert_eq!(after, before);

    // Back: ready again, and the same publish completes over the orphan tarball.
    gate.set_up(true);
    assert_eq!(get(addr, "/readyz").status, 200);
    let r = publish_fixture_at(addr, "/api", "fx_core-0.2.0");
    assert_eq!(r.status, 201, "{}", body_text(&r));
    assert_eq!(
        env.versions_of(REPO, "fx_core").unwrap().versions,
        ["0.1.0", "0.2.0"]
    );
    for rel in ["names", "versions", "packages/fx_core"] {
        let r = get(addr, &format!("/repos/{REPO}/{rel}"));
        assert_eq!(r.body, env.object(REPO, rel).unwrap(), "{rel}");
    }
}
