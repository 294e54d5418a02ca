#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every registry file written by `mix hex.registry build` in shared/fixtures/hex/registry is
//! decoded with the verified decoders, compared with the independent decode in
//! shared/fixtures/hex/decoded, re-encoded byte for byte and re-signed byte for byte; the
//! builders reproduce the `names` and `versions` payloads from the decoded packages.

use aws_lc_rs::digest::{SHA256, digest};
use hexyard_common::registry::proto::{Dependency, Names, Package, Timestamp, Versions};
use hexyard_common::registry::{
    DEFAULT_MAX_DECOMPRESSED, GZIP_HEADER, build_names, build_package, build_versions,
    decode_names, decode_package, decode_versions, encode_signed, open_signed, sign_payload,
};
use hexyard_common::signing::{SigningKey, VerifyingKey};
use prost::Message;
use serde_json::{Map, Value, json};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/hex");
const REPO: &str = "fixture_repo";
const PACKAGES: [&str; 6] = [
    "fx_alias",
    "fx_core",
    "fx_erl",
    "fx_json",
    "fx_opt",
    "fx_unicode",
];

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}/{rel}")).unwrap()
}

fn json(rel: &str) -> Value {
    serde_json::from_slice(&read(rel)).unwrap()
}

fn public_key() -> VerifyingKey {
    VerifyingKey::from_pem(&String::from_utf8(read("registry/public_key")).unwrap()).unwrap()
}

fn private_key() -> SigningKey {
    SigningKey::from_pem(&String::from_utf8(read("keys/private_key.pem")).unwrap()).unwrap()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest(&SHA256, data).as_ref())
}

fn hexfield(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap()).unwrap()
}

/// JSON in the decoder's conventions: a field only when on the wire, bytes as hex.
fn timestamp_json(t: &Timestamp) -> Value {
    json!({"seconds": t.seconds, "nanos": t.nanos})
}

fn dependency_json(d: &Dependency) -> Value {
    let mut m = Map::new();
    m.insert("package".into(), json!(d.package));
    m.insert("requirement".into(), json!(d.requirement));
    if let Some(o) = d.optional {
        m.insert("optional".into(), json!(o));
    }
    if let Some(a) = &d.app {
        m.insert("app".into(), json!(a));
    }
    if let Some(r) = &d.repository {
        m.insert("repository".into(), json!(r));
    }
    Value::Object(m)
}

fn package_json(p: &Package) -> Value {
    assert!(p.advisories.is_empty());
    let releases: Vec<Value> = p
        .releases
        .iter()
        .map(|r| {
            assert!(r.retired.is_none() && r.published_at.is_none());
            assert!(r.advisory_indexes.is_empty());
            let mut m = Map::new();
            m.insert("version".into(), json!(r.version));
            m.insert(
                "inner_checksum".into(),
                json!(hex::encode(&r.inner_checksum)),
            );
            if !r.dependencies.is_empty() {
                let deps: Vec<Value> = r.dependencies.iter().map(dependency_json).collect();
                m.insert("dependencies".into(), Value::Array(deps));
            }
            if let Some(o) = &r.outer_checksum {
                m.insert("outer_checksum".into(), json!(hex::encode(o)));
            }
            Value::Object(m)
        })
        .collect();
    json!({"releases": releases, "name": p.name, "repository": p.repository})
}

fn names_json(n: &Names) -> Value {
    let packages: Vec<Value> = n
        .packages
        .iter()
        .map(|p| match &p.updated_at {
            Some(t) => json!({"name": p.name, "updated_at": timestamp_json(t)}),
            None => json!({"name": p.name}),
        })
        .collect();
    json!({"packages": packages, "repository": n.repository})
}

fn versions_json(v: &Versions) -> Value {
    let packages: Vec<Value> = v
        .packages
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert("name".into(), json!(p.name));
            if !p.versions.is_empty() {
                m.insert("versions".into(), json!(p.versions));
            }
            if !p.retired.is_empty() {
                m.insert("retired".into(), json!(p.retired));
            }
            if !p.with_advisories.is_empty() {
                m.insert("with_advisories".into(), json!(p.with_advisories));
            }
            Value::Object(m)
        })
        .collect();
    json!({"packages": packages, "repository": v.repository})
}

/// Checks the parts every registry file shares: file hash, gzip header, envelope, payload
/// and signature against the decoded JSON; re-signing gives the same signature and the
/// re-built file decodes to the same envelope. Returns the payload.
fn check_envelope(file: &[u8], meta: &Value) -> Vec<u8> {
    assert_eq!(sha256_hex(file), meta["file_sha256"].as_str().unwrap());
    assert_eq!(file.len() as u64, meta["file_size"].as_u64().unwrap());
    assert_eq!(file[..10], GZIP_HEADER);
    assert_eq!(
        hex::encode(&file[..10]),
        meta["gzip_header_hex"].as_str().unwrap()
    );

    let signed = open_signed(file, DEFAULT_MAX_DECOMPRESSED).unwrap();
    assert_eq!(
        signed.encoded_len() as u64,
        meta["signed_size"].as_u64().unwrap()
    );
    assert_eq!(signed.payload, hexfield(meta, "payload_hex"));
    assert_eq!(
        sha256_hex(&signed.payload),
        meta["payload_sha256"].as_str().unwrap()
    );
    let signature = signed.signature.clone().unwrap();
    assert_eq!(signature, hexfield(meta, "signature_hex"));
    assert_eq!(signature.len(), 256);

    // Same key, same payload: byte-identical signature (PKCS#1 v1.5 is deterministic).
    let key = private_key();
    assert_eq!(key.sign(&signed.payload).unwrap(), signature);
    // Our own file for the same payload carries the same envelope.
    let ours = sign_payload(signed.payload.clone(), &key).unwrap();
    assert_eq!(ours[..10], GZIP_HEADER);
    assert_eq!(
        open_signed(&ours, DEFAULT_MAX_DECOMPRESSED).unwrap(),
        signed
    );
    // And the envelope itself re-encodes to the decompressed bytes.
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file), &mut raw).unwrap();
    assert_eq!(signed.encode_to_vec(), raw);
    signed.payload
}

fn decoded_packages() -> Vec<Package> {
    let key = public_key();
    PACKAGES
        .iter()
        .map(|name| {
            decode_package(
                &read(&format!("registry/packages/{name}")),
                &key,
                REPO,
                name,
            )
            .unwrap()
        })
        .collect()
}

#[test]
fn fixture_tree_has_exactly_the_expected_package_files() {
    let mut names: Vec<String> = std::fs::read_dir(format!("{FIX}/registry/packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, PACKAGES);
}

#[test]
fn every_package_file_decodes_reencodes_and_resigns_identically() {
    let key = public_key();
    let signing = private_key();
    for name in PACKAGES {
        let file = read(&format!("registry/packages/{name}"));
        let meta = json(&format!("decoded/packages/{name}.json"));
        assert_eq!(meta["message"], "Package");

        let package = decode_package(&file, &key, REPO, name).unwrap();
        assert_eq!(package_json(&package), meta["decoded"], "{name}");
        assert_eq!(package.name, name);
        assert_eq!(package.repository, REPO);

        let payload = check_envelope(&file, &meta);
        assert_eq!(
            package.encode_to_vec(),
            payload,
            "{name}: re-encoded payload"
        );

        // Full pipeline from the message: decodes back to the same message.
        let rebuilt = encode_signed(&package, &signing).unwrap();
        assert_eq!(decode_package(&rebuilt, &key, REPO, name).unwrap(), package);
        let rebuilt_signed = open_signed(&rebuilt, DEFAULT_MAX_DECOMPRESSED).unwrap();
        assert_eq!(rebuilt_signed.payload, payload);
        assert_eq!(
            rebuilt_signed.signature.unwrap(),
            hexfield(&meta, "signature_hex")
        );
    }
}

#[test]
fn fx_json_dependencies_keep_presence_of_default_values() {
    let package = decode_package(
        &read("registry/packages/fx_json"),
        &public_key(),
        REPO,
        "fx_json",
    )
    .unwrap();
    let deps = &package.releases[0].dependencies;
    assert_eq!(
        deps.iter().map(|d| d.package.as_str()).collect::<Vec<_>>(),
        ["fx_alias", "fx_core", "fx_opt"]
    );
    assert_eq!(deps[0].optional, Some(false));
    assert_eq!(deps[0].app.as_deref(), Some("fx_alias_app"));
    assert_eq!(deps[1].app.as_deref(), Some("fx_core"));
    assert_eq!(deps[2].optional, Some(true));
    assert!(deps.iter().all(|d| d.repository.is_none()));
    // `optional: false` is on the wire as field 3 = 0.
    assert!(
        package
            .encode_to_vec()
            .windows(2)
            .any(|w| w == [0x18, 0x00])
    );
}

#[test]
fn names_file_decodes_reencodes_and_resigns_identically() {
    let file = read("registry/names");
    let meta = json("decoded/names.json");
    assert_eq!(meta["message"], "Names");
    let names = decode_names(&file, &public_key(), REPO).unwrap();
    assert_eq!(names_json(&names), meta["decoded"]);
    assert_eq!(names.packages.len(), 6);
    assert_eq!(
        names.packages[1].updated_at,
        Some(Timestamp {
            seconds: 1_710_496_800,
            nanos: 0
        })
    );
    let payload = check_envelope(&file, &meta);
    assert_eq!(names.encode_to_vec(), payload);
}

#[test]
fn versions_file_decodes_reencodes_and_resigns_identically() {
    let file = read("registry/versions");
    let meta = json("decoded/versions.json");
    assert_eq!(meta["message"], "Versions");
    let versions = decode_versions(&file, &public_key(), REPO).unwrap();
    assert_eq!(versions_json(&versions), meta["decoded"]);
    assert_eq!(
        versions.packages[1].versions,
        ["0.1.0", "0.2.0", "1.0.0-rc.1"]
    );
    let payload = check_envelope(&file, &meta);
    assert_eq!(versions.encode_to_vec(), payload);
}

#[test]
fn build_versions_from_decoded_packages_reproduces_the_fixture_payload() {
    let mut packages = decoded_packages();
    // Input order must not matter: reverse packages and releases.
    packages.reverse();
    for p in &mut packages {
        p.releases.reverse();
    }
    let versions = build_versions(REPO, &packages);
    let meta = json("decoded/versions.json");
    assert_eq!(versions.encode_to_vec(), hexfield(&meta, "payload_hex"));
    let signed = encode_signed(&versions, &private_key()).unwrap();
    let opened = open_signed(&signed, DEFAULT_MAX_DECOMPRESSED).unwrap();
    assert_eq!(opened.signature.unwrap(), hexfield(&meta, "signature_hex"));
}

#[test]
fn build_names_with_fixture_timestamps_reproduces_the_fixture_payload() {
    let meta = json("decoded/names.json");
    let packages = decoded_packages();
    let updated: Vec<(String, Timestamp)> = packages
        .iter()
        .rev()
        .map(|p| {
            let entry = meta["decoded"]["packages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == p.name.as_str())
                .unwrap();
            let t = &entry["updated_at"];
            (
                p.name.clone(),
                Timestamp {
                    seconds: t["seconds"].as_i64().unwrap(),
                    nanos: t["nanos"].as_i64().unwrap() as i32,
                },
            )
        })
        .collect();
    let names = build_names(REPO, updated);
    assert_eq!(names.encode_to_vec(), hexfield(&meta, "payload_hex"));
}

#[test]
fn build_package_from_shuffled_releases_reproduces_each_fixture_payload() {
    for package in decoded_packages() {
        let mut releases = package.releases.clone();
        releases.reverse();
        for r in &mut releases {
            r.dependencies.reverse();
        }
        let built = build_package(REPO, &package.name, releases);
        let meta = json(&format!("decoded/packages/{}.json", package.name));
        assert_eq!(
            built.encode_to_vec(),
            hexfield(&meta, "payload_hex"),
            "{}",
            package.name
        );
    }
}
