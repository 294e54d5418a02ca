#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Wire details of the registry messages (protocol doc §3.2, §3.5) and one crafted input per
//! `RegistryError` variant.

use std::io::Read;

use hexyard_common::registry::proto::{
    Dependency, Package, Release, RetirementReason, RetirementStatus, Signed, Timestamp, Versions,
    VersionsPackage,
};
use hexyard_common::registry::{
    DEFAULT_MAX_DECOMPRESSED, GZIP_HEADER, RegistryError, build_package, build_versions,
    decode_names, decode_names_with_limit, decode_package, decode_package_with_limit,
    decode_versions, decode_versions_with_limit, encode_signed, gzip, open_signed, sign_payload,
    sort_releases, verify_signed,
};
use hexyard_common::signing::{SigningError, SigningKey, VerifyingKey};
use prost::Message;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/hex");
const REPO: &str = "fixture_repo";

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}/{rel}")).unwrap()
}

fn public_key() -> VerifyingKey {
    VerifyingKey::from_pem(&String::from_utf8(read("keys/public_key.pem")).unwrap()).unwrap()
}

fn private_key() -> SigningKey {
    SigningKey::from_pem(&String::from_utf8(read("keys/private_key.pem")).unwrap()).unwrap()
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn release(version: &str) -> Release {
    Release {
        version: version.to_owned(),
        inner_checksum: vec![0; 32],
        outer_checksum: Some(vec![0; 32]),
        ..Release::default()
    }
}

fn checksum(last: u8) -> Vec<u8> {
    let mut c = vec![0u8; 32];
    c[31] = last;
    c
}

#[test]
fn protocol_doc_package_example_bytes() {
    let package = Package {
        releases: vec![Release {
            version: "1.0.0".into(),
            inner_checksum: checksum(1),
            dependencies: vec![Dependency {
                package: "bar".into(),
                requirement: "~> 1.0".into(),
                optional: Some(true),
                app: Some("barapp".into()),
                repository: Some("hexpm".into()),
            }],
            retired: Some(RetirementStatus {
                reason: RetirementReason::RetiredSecurity as i32,
                message: Some("bad".into()),
            }),
            outer_checksum: Some(checksum(2)),
            advisory_indexes: vec![],
            published_at: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
        }],
        name: "foo".into(),
        repository: "acme".into(),
        advisories: vec![],
    };
    let expected = [
        "0a7e",
        "0a05312e302e30",
        &format!("1220{}", hex::encode(checksum(1))),
        "1a1e",
        "0a03626172",
        "12067e3e20312e30",
        "1801",
        "2206626172617070",
        "2a05686578706d",
        "2207",
        "0802",
        "1203626164",
        &format!("2a20{}", hex::encode(checksum(2))),
        "3a08",
        "0880e2cfaa06",
        "1005",
        "1203666f6f",
        "1a0461636d65",
    ]
    .concat();
    assert_eq!(hex::encode(package.encode_to_vec()), expected);
    assert_eq!(
        Package::decode(hex::decode(&expected).unwrap().as_slice()).unwrap(),
        package
    );
}

#[test]
fn protocol_doc_versions_example_bytes_via_builder() {
    let retired = |v: &str| {
        let mut r = release(v);
        r.retired = Some(RetirementStatus {
            reason: RetirementReason::RetiredOther as i32,
            message: None,
        });
        r
    };
    // Unsorted on purpose: the retired indexes must refer to the sorted list.
    let package = Package {
        releases: vec![retired("1.0.0"), release("0.2.0"), retired("0.1.0")],
        name: "foo".into(),
        repository: "acme".into(),
        advisories: vec![],
    };
    let versions = build_versions("acme", &[package]);
    assert_eq!(versions.packages[0].retired, [0, 2]);
    assert_eq!(
        hex::encode(versions.encode_to_vec()),
        "0a1e0a03666f6f1205302e312e301205302e322e301205312e302e301a020002120461636d65"
    );
}

#[test]
fn protocol_doc_signed_wrapper_prefix() {
    let payload = vec![0x42u8; 88];
    let file = sign_payload(payload.clone(), &private_key()).unwrap();
    assert_eq!(file[..10], GZIP_HEADER);
    assert_eq!(
        GZIP_HEADER,
        [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03]
    );
    let raw = gunzip(&file);
    assert_eq!(raw[..2], [0x0a, 0x58]);
    assert_eq!(raw[2..90], payload[..]);
    assert_eq!(raw[90..93], [0x12, 0x80, 0x02]);
    assert_eq!(raw.len(), 93 + 256);
}

#[test]
fn versions_retired_and_with_advisories_are_packed_and_decode_either_way() {
    let pkg = VersionsPackage {
        name: "a".into(),
        versions: vec![],
        retired: vec![0, 2],
        with_advisories: vec![1],
    };
    // 0a 01 61 | 1a 02 00 02 | 2a 01 01
    assert_eq!(hex::encode(pkg.encode_to_vec()), "0a01611a0200022a0101");
    // Unpacked: 18 00 18 02 | 28 01
    let unpacked = hex::decode("0a0161180018022801").unwrap();
    assert_eq!(VersionsPackage::decode(unpacked.as_slice()).unwrap(), pkg);
}

#[test]
fn release_advisory_indexes_are_not_packed_and_decode_either_way() {
    let mut r = release("1.0.0");
    r.outer_checksum = None;
    r.advisory_indexes = vec![1, 2];
    let encoded = r.encode_to_vec();
    assert_eq!(hex::encode(&encoded[encoded.len() - 4..]), "30013002");
    let mut packed = encoded[..encoded.len() - 4].to_vec();
    packed.extend_from_slice(&[0x32, 0x02, 0x01, 0x02]);
    assert_eq!(Release::decode(packed.as_slice()).unwrap(), r);
}

#[test]
fn optional_presence_survives_round_trip() {
    let dep = Dependency {
        package: "x".into(),
        requirement: "~> 1.0".into(),
        optional: Some(false),
        app: None,
        repository: None,
    };
    assert_eq!(
        hex::encode(dep.encode_to_vec()),
        "0a01781206 7e3e20312e30 1800".replace(' ', "")
    );
    let absent = Dependency {
        optional: None,
        ..dep.clone()
    };
    assert_eq!(
        hex::encode(absent.encode_to_vec()),
        "0a017812067e3e20312e30"
    );
    assert_eq!(
        Dependency::decode(absent.encode_to_vec().as_slice())
            .unwrap()
            .optional,
        None
    );
    // Timestamp nanos = 0 is emitted (required field).
    let t = Timestamp {
        seconds: 1,
        nanos: 0,
    };
    assert_eq!(hex::encode(t.encode_to_vec()), "08011000");
    // Required strings are emitted even when empty.
    assert_eq!(hex::encode(Versions::default().encode_to_vec()), "1200");
}

#[test]
fn unknown_fields_and_enum_values_are_tolerated() {
    let status = RetirementStatus::decode([0x08, 0x09].as_slice()).unwrap();
    assert_eq!(status.reason, 9);
    assert_eq!(status.encode_to_vec(), [0x08, 0x09]);
    assert!(RetirementReason::try_from(status.reason).is_err());
    assert_eq!(
        RetirementStatus::decode([0x08, 0x04].as_slice())
            .unwrap()
            .reason(),
        RetirementReason::RetiredRenamed
    );

    // Unknown fields (tag 15 varint, tag 14 bytes) inside the fixture payload are skipped.
    let signed = open_signed(&read("registry/packages/fx_core"), DEFAULT_MAX_DECOMPRESSED).unwrap();
    let mut payload = signed.payload.clone();
    payload.extend_from_slice(&[0x78, 0x01, 0x72, 0x02, 0xaa, 0xbb]);
    let with_unknown = Package::decode(payload.as_slice()).unwrap();
    assert_eq!(
        with_unknown,
        Package::decode(signed.payload.as_slice()).unwrap()
    );
    // Signed and decoded end to end too.
    let file = sign_payload(payload, &private_key()).unwrap();
    assert_eq!(
        decode_package(&file, &public_key(), REPO, "fx_core").unwrap(),
        with_unknown
    );
}

#[test]
fn sort_releases_uses_semver_precedence() {
    let mut releases: Vec<Release> = ["1.0.0", "0.10.0", "1.0.0-rc.1", "0.2.0", "1.0.0-alpha"]
        .into_iter()
        .map(release)
        .collect();
    sort_releases(&mut releases);
    let order: Vec<&str> = releases.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(
        order,
        ["0.2.0", "0.10.0", "1.0.0-alpha", "1.0.0-rc.1", "1.0.0"]
    );
    let package = build_package("r", "p", releases.into_iter().rev().collect());
    let order: Vec<&str> = package
        .releases
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    assert_eq!(
        order,
        ["0.2.0", "0.10.0", "1.0.0-alpha", "1.0.0-rc.1", "1.0.0"]
    );
}

#[test]
fn build_versions_marks_advisories_and_sorts_packages() {
    let mut advised = release("0.2.0");
    advised.advisory_indexes = vec![0];
    let b = Package {
        releases: vec![advised, release("0.1.0")],
        name: "b".into(),
        ..Package::default()
    };
    let a = Package {
        releases: vec![release("1.0.0")],
        name: "a".into(),
        ..Package::default()
    };
    let v = build_versions("r", &[b, a]);
    assert_eq!(v.repository, "r");
    assert_eq!(v.packages[0].name, "a");
    assert_eq!(v.packages[1].versions, ["0.1.0", "0.2.0"]);
    assert_eq!(v.packages[1].with_advisories, [1]);
    assert!(v.packages[1].retired.is_empty());
}

// ---- one crafted input per error variant ----

#[test]
fn not_gzip_is_gzip_error() {
    for body in [&b""[..], b"not gzip at all", &[0x1f, 0x8b][..]] {
        assert!(
            matches!(open_signed(body, 1024), Err(RegistryError::Gzip(_))),
            "{body:?}"
        );
    }
    let file = read("registry/names");
    // Truncated member (cut inside the deflate data, and inside the trailer).
    for cut in [11, file.len() / 2, file.len() - 4, file.len() - 1] {
        assert!(
            matches!(
                decode_names(&file[..cut], &public_key(), REPO),
                Err(RegistryError::Gzip(_))
            ),
            "cut at {cut}"
        );
    }
    // CRC mismatch.
    let mut bad_crc = file.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xff;
    assert!(matches!(
        decode_names(&bad_crc, &public_key(), REPO),
        Err(RegistryError::Gzip(_))
    ));
}

#[test]
fn output_over_the_limit_is_too_large() {
    let file = read("registry/versions");
    let size = gunzip(&file).len();
    assert!(decode_versions_with_limit(&file, &public_key(), REPO, size).is_ok());
    assert!(matches!(
        decode_versions_with_limit(&file, &public_key(), REPO, size - 1),
        Err(RegistryError::TooLarge { limit }) if limit == size - 1
    ));
    assert!(matches!(
        decode_names_with_limit(&read("registry/names"), &public_key(), REPO, 10),
        Err(RegistryError::TooLarge { limit: 10 })
    ));
    assert!(matches!(
        decode_package_with_limit(
            &read("registry/packages/fx_core"),
            &public_key(),
            REPO,
            "fx_core",
            0
        ),
        Err(RegistryError::TooLarge { limit: 0 })
    ));
    // A small bomb: 32 MiB of zeros, stopped at 1 MiB.
    let bomb = gzip(&vec![0u8; 32 << 20]).unwrap();
    assert!(bomb.len() < 64 << 10);
    assert!(matches!(
        open_signed(&bomb, 1 << 20),
        Err(RegistryError::TooLarge { limit }) if limit == 1 << 20
    ));
}

#[test]
fn malformed_protobuf_is_protobuf_error() {
    // Envelope: field 1 claims 255 bytes, only 1 follows.
    let truncated = gzip(&[0x0a, 0xff, 0x01, 0x00]).unwrap();
    assert!(matches!(
        open_signed(&truncated, 1024),
        Err(RegistryError::Protobuf(_))
    ));
    // The fixture envelope, truncated before gzip.
    let raw = gunzip(&read("registry/names"));
    let cut = gzip(&raw[..raw.len() - 10]).unwrap();
    assert!(matches!(
        decode_names(&cut, &public_key(), REPO),
        Err(RegistryError::Protobuf(_))
    ));
    // A correctly signed payload that is not a valid message.
    let garbage = sign_payload(vec![0x0a, 0x05, 0x01], &private_key()).unwrap();
    assert!(matches!(
        decode_names(&garbage, &public_key(), REPO),
        Err(RegistryError::Protobuf(_))
    ));
    assert!(matches!(
        decode_package(&garbage, &public_key(), REPO, "x"),
        Err(RegistryError::Protobuf(_))
    ));
}

#[test]
fn unsigned_envelope_is_missing_signature() {
    let signed = open_signed(&read("registry/versions"), DEFAULT_MAX_DECOMPRESSED).unwrap();
    let unsigned = Signed {
        payload: signed.payload,
        signature: None,
    };
    let file = gzip(&unsigned.encode_to_vec()).unwrap();
    assert!(matches!(
        decode_versions(&file, &public_key(), REPO),
        Err(RegistryError::MissingSignature)
    ));
    assert!(matches!(
        verify_signed(&unsigned, &public_key()),
        Err(RegistryError::MissingSignature)
    ));
}

#[test]
fn altered_signature_payload_or_key_is_bad_signature() {
    let signed = open_signed(&read("registry/names"), DEFAULT_MAX_DECOMPRESSED).unwrap();
    let key = public_key();
    assert!(verify_signed(&signed, &key).is_ok());

    let mut flipped = signed.clone();
    flipped.signature.as_mut().unwrap()[100] ^= 0x01;
    let file = gzip(&flipped.encode_to_vec()).unwrap();
    assert!(matches!(
        decode_names(&file, &key, REPO),
        Err(RegistryError::BadSignature)
    ));

    let mut altered = signed.clone();
    let last = altered.payload.len() - 1;
    altered.payload[last] ^= 0x01;
    let file = gzip(&altered.encode_to_vec()).unwrap();
    assert!(matches!(
        decode_names(&file, &key, REPO),
        Err(RegistryError::BadSignature)
    ));

    let mut empty = signed.clone();
    empty.signature = Some(vec![]);
    assert!(matches!(
        verify_signed(&empty, &key),
        Err(RegistryError::BadSignature)
    ));

    let other = SigningKey::generate().unwrap().verifying_key();
    assert!(matches!(
        decode_names(&read("registry/names"), &other, REPO),
        Err(RegistryError::BadSignature)
    ));
}

#[test]
fn origin_check_rejects_wrong_repository_and_package() {
    let key = public_key();
    let err = decode_names(&read("registry/names"), &key, "hexpm").unwrap_err();
    assert!(matches!(
        err,
        RegistryError::WrongRepository { ref expected, ref found }
            if expected == "hexpm" && found == REPO
    ));
    assert!(matches!(
        decode_versions(&read("registry/versions"), &key, "acme"),
        Err(RegistryError::WrongRepository { expected, found })
            if expected == "acme" && found == REPO
    ));
    let fx_core = read("registry/packages/fx_core");
    assert!(matches!(
        decode_package(&fx_core, &key, "acme", "fx_core"),
        Err(RegistryError::WrongRepository { expected, found })
            if expected == "acme" && found == REPO
    ));
    assert!(matches!(
        decode_package(&fx_core, &key, REPO, "fx_json"),
        Err(RegistryError::WrongPackage { expected, found })
            if expected == "fx_json" && found == "fx_core"
    ));
    // A (validly signed) names file is not a package file: the wire types clash.
    assert!(matches!(
        decode_package(&read("registry/names"), &key, REPO, "fx_core"),
        Err(RegistryError::Protobuf(_))
    ));
}

#[test]
fn signing_failures_surface_as_signing_error() {
    // A signing failure cannot be provoked through a valid SigningKey; check the mapping
    // the encoder relies on (`?` on SigningError).
    let err: RegistryError = SigningError::SignFailed.into();
    assert!(matches!(
        err,
        RegistryError::Signing(SigningError::SignFailed)
    ));
    assert_eq!(
        err.to_string(),
        "signing the registry payload failed: RSA signing failed"
    );
}

#[test]
fn encode_signed_round_trips_through_the_verified_decoder() {
    let key = private_key();
    let package = build_package("acme", "foo", vec![release("1.0.0"), release("0.1.0")]);
    let file = encode_signed(&package, &key).unwrap();
    assert_eq!(file[..10], GZIP_HEADER);
    let decoded = decode_package(&file, &key.verifying_key(), "acme", "foo").unwrap();
    assert_eq!(decoded, package);
    assert_eq!(decoded.releases[0].version, "0.1.0");
}
