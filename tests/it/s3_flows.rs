//! The publish/fetch integration flow a second time, with `store.kind: s3` on a real S3 server
//! (moto, one per test, its own bucket): every fixture published and served through the proxy
//! with ETags and 304s, retire and revert, the bad uploads, a mirror fill with single flight,
//! and rebar3 through the proxy. Objects are checked with raw SDK calls.

use hexyard_common::etf::{self, Term};
use hexyard_common::registry;
use hexyard_common::storage::StorageKey;
use hexyard_tests::upstream::FakeUpstream;
use hexyard_tests::*;
use std::time::Duration;

fn s3_env(extra_repos: String) -> TestEnv {
    TestEnv::new(EnvOptions {
        store: StoreBackend::S3,
        extra_repos,
        ..EnvOptions::default()
    })
}

#[test]
fn s3_publishes_every_fixture_and_the_proxy_serves_it_with_etags() {
    let env = s3_env(String::new());
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    for file in FIXTURE_ORDER {
        let r = publish_fixture_at(proxy.addr, "/api", file);
        assert_eq!(r.status, 201, "{file}: {}", body_text(&r));
        assert!(r.continued, "{file}: no 100 Continue");
        let rel = format!("tarballs/{file}.tar");
        assert_eq!(
            env.object(REPO, &rel).unwrap(),
            fixture(&format!("publish/{file}.tar")),
            "{file}: not stored byte for byte in the bucket"
        );
    }
    assert_eq!(
        env.name_list(REPO),
        [
            "fx_alias",
            "fx_core",
            "fx_erl",
            "fx_json",
            "fx_opt",
            "fx_unicode"
        ]
    );
    assert_eq!(
        env.versions_of(REPO, "fx_core").unwrap().versions,
        ["0.1.0", "0.2.0", "1.0.0-rc.1"]
    );
    assert_eq!(env.package(REPO, "fx_json").unwrap().releases.len(), 1);

    for rel in [
        "names",
        "versions",
        "packages/fx_core",
        "tarballs/fx_core-0.1.0.tar",
        "public_key",
    ] {
        // Stored with the headers a CDN in front of the bucket would pass on.
        let key = StorageKey::from_path(&format!("repos/{REPO}/{rel}")).unwrap();
        assert_eq!(
            env.s3_object_headers(REPO, rel).unwrap(),
            (
                key.content_type().to_owned(),
                key.cache_control(true).to_owned()
            ),
            "{rel}"
        );
        let r = get(proxy.addr, &format!("/repos/{REPO}/{rel}"));
        assert_eq!(r.status, 200, "{rel}");
        assert_eq!(
            r.body,
            env.object(REPO, rel).unwrap(),
            "{rel}: not the bucket's bytes"
        );
        let etag = r.header("etag").unwrap().to_owned();
        let c = http::Request::new("GET", &format!("/repos/{REPO}/{rel}"))
            .header("if-none-match", &etag)
            .send(proxy.addr)
            .unwrap();
        assert_eq!(c.status, 304, "{rel}");
        assert!(c.body.is_empty());
        assert_eq!(c.header("etag"), Some(etag.as_str()));
    }
    let ready = get(proxy.addr, "/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&ready.body),
        format!(
            "ready: store s3://{S3_BUCKET}/ ({})\n",
            env.moto.as_ref().unwrap().endpoint()
        )
    );
}

#[test]
fn s3_retire_and_revert_rewrite_the_signed_indexes() {
    let env = s3_env(String::new());
    let _publisher = env.start_publisher();
    publish_fixtures(
        env.publisher_addr,
        &["fx_core-0.1.0", "fx_core-0.2.0", "fx_core-1.0.0-rc.1"],
    );
    let body = etf::encode(&Term::map([
        ("reason", Term::bin("security")),
        ("message", Term::bin("CVE-1")),
    ]));
    let r = send(
        &api(
            "POST",
            "/api/packages/fx_core/releases/0.2.0/retire",
            Some(WRITE_KEY),
        )
        .header("content-type", "application/vnd.hex+erlang")
        .body(body),
        env.publisher_addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    let v = env.versions_of(REPO, "fx_core").unwrap();
    assert_eq!(v.versions, ["0.1.0", "0.2.0", "1.0.0-rc.1"]);
    assert_eq!(v.retired, [1]);
    let pkg = env.package(REPO, "fx_core").unwrap();
    assert_eq!(
        pkg.releases[1]
            .retired
            .as_ref()
            .and_then(|s| s.message.as_deref()),
        Some("CVE-1")
    );

    let r = send(
        &api(
            "DELETE",
            "/api/packages/fx_core/releases/1.0.0-rc.1",
            Some(WRITE_KEY),
        ),
        env.publisher_addr,
    );
    assert_eq!(r.status, 204, "{}", body_text(&r));
    assert_eq!(env.object(REPO, "tarballs/fx_core-1.0.0-rc.1.tar"), None);
    let v = env.versions_of(REPO, "fx_core").unwrap();
    assert_eq!(v.versions, ["0.1.0", "0.2.0"]);
    assert_eq!(v.retired, [1]);
    let versions: Vec<String> = env
        .package(REPO, "fx_core")
        .unwrap()
        .releases
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, ["0.1.0", "0.2.0"]);
    // What is left in the bucket is exactly the two tarballs and the index files.
    let keys: Vec<String> = env.snapshot().into_keys().collect();
    assert_eq!(
        keys,
        [
            "fixture_repo/names",
            "fixture_repo/packages/fx_core",
            "fixture_repo/public_key",
            "fixture_repo/tarballs/fx_core-0.1.0.tar",
            "fixture_repo/tarballs/fx_core-0.2.0.tar",
            "fixture_repo/versions",
            "other_repo/public_key",
        ]
    );
}

#[test]
fn s3_bad_uploads_are_refused_and_leave_the_bucket_unchanged() {
    let env = s3_env(String::new());
    let _publisher = env.start_publisher();
    publish_fixtures(env.publisher_addr, &["fx_core-0.1.0"]);
    let before = env.snapshot();
    assert_eq!(before.len(), 6, "{:?}", before.keys().collect::<Vec<_>>());
    let mut files: Vec<String> = std::fs::read_dir(fixtures().join("bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 13);
    for file in &files {
        // The URL names what the metadata says where it can be read, as mix would.
        let name = if file == "invalid_name.tar" {
            "Bad-Name"
        } else {
            "fx_opt"
        };
        let r = upload(
            env.publisher_addr,
            &format!("/api/packages/{name}/releases?replace=false"),
            Some(WRITE_KEY),
            fixture(&format!("bad/{file}")),
        );
        assert_validation(&r, "tar", "");
    }
    // Re-publishing an existing version without --replace is refused too.
    let r = publish_fixture_at(env.publisher_addr, "/api", "fx_core-0.1.0");
    assert_eq!(r.status, 422, "{}", body_text(&r));
    assert_eq!(env.snapshot(), before);
}

#[test]
fn s3_mirror_fills_once_for_concurrent_misses_and_stores_in_the_bucket() {
    let up = FakeUpstream::fixture();
    up.set_delay(Duration::from_millis(300));
    let env = s3_env(mirror_yaml("mirror", &up, "fixture_repo", &[]));
    let proxy = env.start_proxy();
    let addr = proxy.addr;
    let expected = fixture("registry/tarballs/fx_core-0.1.0.tar");
    let threads: Vec<_> = (0..50)
        .map(|_| std::thread::spawn(move || get(addr, "/repos/mirror/tarballs/fx_core-0.1.0.tar")))
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "{}", body_text(&r));
        assert_eq!(r.body, expected);
    }
    assert_eq!(up.hits("tarballs/fx_core-0.1.0.tar"), 1);
    assert_eq!(up.hits("packages/fx_core"), 1);
    for rel in ["tarballs/fx_core-0.1.0.tar", "packages/fx_core"] {
        assert_eq!(
            env.object("mirror", rel).unwrap(),
            fixture(&format!("registry/{rel}")),
            "{rel}"
        );
    }
    for rel in ["names", "versions"] {
        let r = get(addr, &format!("/repos/mirror/{rel}"));
        assert_eq!(r.body, fixture(&format!("registry/{rel}")), "{rel}");
        assert_eq!(env.object("mirror", rel).unwrap(), r.body, "{rel}");
    }
    // A second proxy on the same bucket serves the stored copies without the upstream.
    let hits = up.total_hits();
    let second = env.start_proxy_for(env.publisher_addr);
    let r = get(second.addr, "/repos/mirror/tarballs/fx_core-0.1.0.tar");
    assert_eq!(r.body, expected);
    assert_eq!(up.total_hits(), hits);
}

#[test]
fn s3_rebar3_gets_deps_through_the_proxy() {
    let env = s3_env(String::new());
    let _publisher = env.start_publisher();
    let proxy = env.start_proxy();
    rebar3_gets_deps_from_hosted(&env, proxy.addr);
    // The signed names the client verified are the bucket's.
    let names = registry::decode_names(
        &get(proxy.addr, &format!("/repos/{REPO}/names")).body,
        &env.public_key(REPO),
        REPO,
    )
    .unwrap();
    assert_eq!(names.packages.len(), 2);
}
