//! The publisher's API, driven with the requests the Hex clients send.

use hexyard_common::etf::Term;
use hexyard_common::registry;
use hexyard_tests::http::Request;
use hexyard_tests::*;

fn publish_fixture(env: &TestEnv, file: &str) -> http::Response {
    let name = file.split('-').next().unwrap();
    Request::new(
        "POST",
        &format!("/api/packages/{name}/releases?replace=false"),
    )
    .hex_api(Some(WRITE_KEY))
    .upload(fixture(&format!("publish/{file}.tar")))
    .send(env.publisher_addr)
    .unwrap()
}

#[test]
fn publishes_every_fixture_as_mix_does_and_signs_the_index() {
    let env = env(crate::opts());
    let _p = env.start_publisher();

    let me = Request::new("GET", "/api/users/me")
        .hex_api(Some(WRITE_KEY))
        .send(env.publisher_addr)
        .unwrap();
    assert_eq!(me.status, 200);
    assert_eq!(
        me.header("content-type"),
        Some("application/vnd.hex+erlang")
    );
    assert_eq!(me.term().get("organizations"), Some(&Term::List(vec![])));
    assert_eq!(me.term_str("username").as_deref(), Some("writer"));

    for file in FIXTURE_ORDER {
        let r = publish_fixture(&env, file);
        assert_eq!(
            r.status,
            201,
            "{file}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.continued, "{file}: no 100 Continue before the body");
        let version = file.split_once('-').unwrap().1;
        assert_eq!(r.term_str("version").as_deref(), Some(version));
        // Stored byte for byte.
        assert_eq!(
            env.object("fixture_repo", &format!("tarballs/{file}.tar"))
                .unwrap(),
            fixture(&format!("publish/{file}.tar"))
        );
        let sha = hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &fixture(&format!("publish/{file}.tar")),
        ));
        assert_eq!(r.term_str("checksum").as_deref(), Some(sha.as_str()));
    }

    let key = env.public_key("fixture_repo");
    let names = registry::decode_names(
        &env.object("fixture_repo", "names").unwrap(),
        &key,
        "fixture_repo",
    )
    .unwrap();
    let got: Vec<&str> = names.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        got,
        [
            "fx_alias",
            "fx_core",
            "fx_erl",
            "fx_json",
            "fx_opt",
            "fx_unicode"
        ]
    );
    let versions = registry::decode_versions(
        &env.object("fixture_repo", "versions").unwrap(),
        &key,
        "fixture_repo",
    )
    .unwrap();
    let core = versions
        .packages
        .iter()
        .find(|p| p.name == "fx_core")
        .unwrap();
    assert_eq!(core.versions, ["0.1.0", "0.2.0", "1.0.0-rc.1"]);
    assert!(core.retired.is_empty());

    // Every package file carries the same releases and checksums as the one
    // `mix hex.registry build` made from the same tarballs.
    let fixture_key = hexyard_common::signing::VerifyingKey::from_pem(
        &String::from_utf8(fixture("keys/public_key.pem")).unwrap(),
    )
    .unwrap();
    for name in [
        "fx_alias",
        "fx_core",
        "fx_erl",
        "fx_json",
        "fx_opt",
        "fx_unicode",
    ] {
        let ours = registry::decode_package(
            &env.object("fixture_repo", &format!("packages/{name}"))
                .unwrap(),
            &key,
            "fixture_repo",
            name,
        )
        .unwrap();
        let theirs = registry::decode_package(
            &fixture(&format!("registry/packages/{name}")),
            &fixture_key,
            "fixture_repo",
            name,
        )
        .unwrap();
        assert_eq!(ours.releases.len(), theirs.releases.len(), "{name}");
        for (o, t) in ours.releases.iter().zip(&theirs.releases) {
            assert_eq!(o.version, t.version);
            assert_eq!(o.inner_checksum, t.inner_checksum);
            assert_eq!(o.outer_checksum, t.outer_checksum);
            assert!(o.published_at.is_some());
            let od: Vec<_> = o
                .dependencies
                .iter()
                .map(|d| {
                    (
                        &d.package,
                        &d.requirement,
                        d.optional.unwrap_or(false),
                        d.app.as_deref().unwrap_or(&d.package),
                        &d.repository,
                    )
                })
                .collect();
            let td: Vec<_> = t
                .dependencies
                .iter()
                .map(|d| {
                    (
                        &d.package,
                        &d.requirement,
                        d.optional.unwrap_or(false),
                        d.app.as_deref().unwrap_or(&d.package),
                        &d.repository,
                    )
                })
                .collect();
            assert_eq!(od, td, "{name} {}", o.version);
        }
    }
}
