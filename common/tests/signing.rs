#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Key loading, PEM output, fingerprints and sign/verify against the fixture keys made by
//! openssl and `mix hex.registry build` (shared/fixtures/hex/keys, registry/public_key).

use base64::Engine as _;
use hexyard_common::signing::{
    HEXPM_PUBLIC_KEY_PEM, SigningError, SigningKey, VerifyingKey, hexpm_public_key,
};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/hex");

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(format!("{FIX}/{rel}")).unwrap()
}

fn fixture_key() -> SigningKey {
    SigningKey::from_pem(&fixture("keys/private_key.pem")).unwrap()
}

const FIXTURE_FINGERPRINT: &str = "SHA256:GOAgs8jAcYWnWPdZji/mRGusVFkVIcQ07LEeSYlnNpI";
const HEXPM_FINGERPRINT: &str = "SHA256:O1LOYhHFW4kcrblKAxROaDEzLD8bn1seWbe5tq8TRsk";

/// DER TLV writer for building test inputs by hand.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Wraps a PKCS#1 RSAPrivateKey into a PKCS#8 PrivateKeyInfo with the given algorithm OID.
fn pkcs8_wrap(pkcs1: &[u8], oid: &[u8]) -> Vec<u8> {
    let mut alg = tlv(0x06, oid);
    alg.extend(tlv(0x05, &[]));
    let mut body = tlv(0x02, &[0]);
    body.extend(tlv(0x30, &alg));
    body.extend(tlv(0x04, pkcs1));
    tlv(0x30, &body)
}

fn pem(tag: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {tag}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {tag}-----\n"));
    s
}

fn pem_der(text: &str) -> Vec<u8> {
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[test]
fn fixture_pkcs1_private_key_yields_the_fixture_public_key_files() {
    let key = fixture_key();
    let public = key.verifying_key();
    assert_eq!(public.bits(), 2048);
    assert_eq!(public.exponent(), &[1, 0, 1]);
    // What `mix hex.registry build` wrote, byte for byte (PKCS#1 + an extra empty line).
    assert_eq!(public.to_pkcs1_pem(), fixture("registry/public_key"));
    assert_eq!(
        format!("{}\n", fixture("keys/public_key.pkcs1.pem")),
        public.to_pkcs1_pem()
    );
    // What `openssl rsa -pubout` wrote.
    assert_eq!(public.to_spki_pem(), fixture("keys/public_key.pem"));
    assert_eq!(
        public.to_spki_der(),
        pem_der(&fixture("keys/public_key.pem"))
    );
    assert_eq!(
        public.to_pkcs1_der(),
        pem_der(&fixture("keys/public_key.pkcs1.pem"))
    );
}

#[test]
fn spki_and_pkcs1_public_pems_load_to_the_same_key() {
    let spki = VerifyingKey::from_pem(&fixture("keys/public_key.pem")).unwrap();
    let pkcs1 = VerifyingKey::from_pem(&fixture("keys/public_key.pkcs1.pem")).unwrap();
    let served = VerifyingKey::from_pem(&fixture("registry/public_key")).unwrap();
    assert_eq!(spki, pkcs1);
    assert_eq!(spki, served);
    assert_eq!(spki, fixture_key().verifying_key());
}

#[test]
fn fingerprints_match_ssh_keygen() {
    assert_eq!(
        fixture("keys/fingerprint.txt").trim_end(),
        FIXTURE_FINGERPRINT
    );
    assert_eq!(
        fixture_key().verifying_key().fingerprint(),
        FIXTURE_FINGERPRINT
    );
    assert_eq!(
        VerifyingKey::from_pem(&fixture("keys/public_key.pem"))
            .unwrap()
            .fingerprint(),
        FIXTURE_FINGERPRINT
    );
    assert_eq!(hexpm_public_key().fingerprint(), HEXPM_FINGERPRINT);
    assert_eq!(
        VerifyingKey::from_pem(HEXPM_PUBLIC_KEY_PEM)
            .unwrap()
            .fingerprint(),
        HEXPM_FINGERPRINT
    );
}

#[test]
fn pkcs8_wrapped_fixture_key_loads_and_signs_identically() {
    let pkcs1_der = pem_der(&fixture("keys/private_key.pem"));
    let pkcs8_pem = pem("PRIVATE KEY", &pkcs8_wrap(&pkcs1_der, RSA_OID));
    let from_pkcs8 = SigningKey::from_pem(&pkcs8_pem).unwrap();
    let from_pkcs1 = fixture_key();
    assert_eq!(from_pkcs8.verifying_key(), from_pkcs1.verifying_key());
    let msg = b"hexyard";
    let sig = from_pkcs8.sign(msg).unwrap();
    assert_eq!(sig.len(), 256);
    assert_eq!(sig, from_pkcs1.sign(msg).unwrap());
    // to_pem writes PKCS#8 and reads back to the same key.
    let again = SigningKey::from_pem(&from_pkcs1.to_pem().unwrap()).unwrap();
    assert!(
        from_pkcs1
            .to_pem()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );
    assert_eq!(again.verifying_key(), from_pkcs1.verifying_key());
    assert_eq!(again.sign(msg).unwrap(), sig);
}

#[test]
fn generated_key_round_trips_and_verifies() {
    let key = SigningKey::generate().unwrap();
    let public = key.verifying_key();
    assert_eq!(public.bits(), 2048);
    let reloaded = SigningKey::from_pem(&key.to_pem().unwrap()).unwrap();
    assert_eq!(reloaded.verifying_key(), public);
    let sig = key.sign(b"payload").unwrap();
    assert_eq!(sig.len(), 256);
    public.verify(b"payload", &sig).unwrap();
    // Public PEMs of a generated key round-trip too.
    assert_eq!(
        VerifyingKey::from_pem(&public.to_pkcs1_pem()).unwrap(),
        public
    );
    assert_eq!(
        VerifyingKey::from_pem(&public.to_spki_pem()).unwrap(),
        public
    );

    assert_eq!(
        public.verify(b"payloaD", &sig),
        Err(SigningError::BadSignature)
    );
    let mut flipped = sig.clone();
    flipped[17] ^= 0x01;
    assert_eq!(
        public.verify(b"payload", &flipped),
        Err(SigningError::BadSignature)
    );
    assert_eq!(
        public.verify(b"payload", &sig[..255]),
        Err(SigningError::BadSignature)
    );
    assert_eq!(
        public.verify(b"payload", &[]),
        Err(SigningError::BadSignature)
    );
    assert_eq!(
        fixture_key().verifying_key().verify(b"payload", &sig),
        Err(SigningError::BadSignature)
    );
    assert_eq!(
        hexpm_public_key().verify(b"payload", &sig),
        Err(SigningError::BadSignature)
    );
}

#[test]
fn debug_does_not_print_key_material() {
    let key = fixture_key();
    let dbg = format!("{key:?}");
    assert!(dbg.contains(FIXTURE_FINGERPRINT), "{dbg}");
    let private_pem = fixture("keys/private_key.pem");
    for line in private_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!dbg.contains(&line[..16]), "{dbg}");
    }
    let modulus_hex = hex::encode(key.verifying_key().modulus());
    assert!(!dbg.contains(&modulus_hex[..16]));
    assert!(!dbg.to_lowercase().contains(&modulus_hex[..16]));
}

#[test]
fn garbage_pem_is_bad_pem() {
    for text in [
        "",
        "hello",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\n!!!!\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n",
    ] {
        assert!(
            matches!(SigningKey::from_pem(text), Err(SigningError::BadPem(_))),
            "{text:?}"
        );
        assert!(
            matches!(VerifyingKey::from_pem(text), Err(SigningError::BadPem(_))),
            "{text:?}"
        );
    }
}

#[test]
fn wrong_kinds_of_keys_are_unsupported() {
    let public = fixture("keys/public_key.pem");
    let private = fixture("keys/private_key.pem");
    assert!(matches!(
        SigningKey::from_pem(&public),
        Err(SigningError::UnsupportedKeyType(_))
    ));
    assert!(matches!(
        VerifyingKey::from_pem(&private),
        Err(SigningError::UnsupportedKeyType(_))
    ));
    let ec = pem("EC PRIVATE KEY", &[0x30, 0x00]);
    assert!(matches!(
        SigningKey::from_pem(&ec),
        Err(SigningError::UnsupportedKeyType(_))
    ));
    let encrypted = pem("ENCRYPTED PRIVATE KEY", &[0x30, 0x00]);
    assert!(matches!(
        SigningKey::from_pem(&encrypted),
        Err(SigningError::UnsupportedKeyType(_))
    ));
    let legacy_encrypted = private.replacen(
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n",
        1,
    );
    assert!(matches!(
        SigningKey::from_pem(&legacy_encrypted),
        Err(SigningError::UnsupportedKeyType(_))
    ));
    // PKCS#8 / SPKI whose algorithm is id-ecPublicKey (1.2.840.10045.2.1).
    let ec_oid = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let pkcs1_der = pem_der(&private);
    let ec_pkcs8 = pem("PRIVATE KEY", &pkcs8_wrap(&pkcs1_der, &ec_oid));
    assert!(matches!(
        SigningKey::from_pem(&ec_pkcs8),
        Err(SigningError::UnsupportedKeyType(_))
    ));
    let mut spki = pem_der(&public);
    let oid_at = spki
        .windows(RSA_OID.len())
        .position(|w| w == RSA_OID)
        .unwrap();
    spki[oid_at + 3] = 0x87; // a different OID of the same length
    assert!(matches!(
        VerifyingKey::from_spki_der(&spki),
        Err(SigningError::UnsupportedKeyType(_))
    ));
}

#[test]
fn truncated_and_corrupt_der_never_panics() {
    let spki = pem_der(&fixture("keys/public_key.pem"));
    let pkcs1 = pem_der(&fixture("keys/public_key.pkcs1.pem"));
    let private = pem_der(&fixture("keys/private_key.pem"));
    for cut in 0..spki.len() {
        assert!(
            matches!(
                VerifyingKey::from_spki_der(&spki[..cut]),
                Err(SigningError::BadDer(_))
            ),
            "spki cut at {cut}"
        );
    }
    for cut in 0..pkcs1.len() {
        assert!(
            matches!(
                VerifyingKey::from_pkcs1_der(&pkcs1[..cut]),
                Err(SigningError::BadDer(_))
            ),
            "pkcs1 cut at {cut}"
        );
    }
    for cut in (0..private.len()).step_by(7) {
        assert!(SigningKey::from_pkcs1_der(&private[..cut]).is_err());
        let p8 = pkcs8_wrap(&private[..cut], RSA_OID);
        assert!(SigningKey::from_pkcs8_der(&p8).is_err());
        assert!(SigningKey::from_pkcs8_der(&p8[..cut.min(p8.len())]).is_err());
    }
    // Trailing data after the key.
    let mut long = pkcs1.clone();
    long.push(0);
    assert_eq!(
        VerifyingKey::from_pkcs1_der(&long),
        Err(SigningError::BadDer("trailing data"))
    );
    // Every single-byte corruption of the public DER is refused or yields a different key.
    let good = VerifyingKey::from_pkcs1_der(&pkcs1).unwrap();
    for i in 0..pkcs1.len() {
        let mut bad = pkcs1.clone();
        bad[i] ^= 0xff;
        if let Ok(k) = VerifyingKey::from_pkcs1_der(&bad) {
            assert_ne!(k, good, "byte {i}");
        }
    }
    // Random-looking garbage inside a valid PEM envelope.
    let garbage: Vec<u8> = (0u32..600).map(|i| (i * 7919 % 251) as u8).collect();
    assert!(VerifyingKey::from_pem(&pem("PUBLIC KEY", &garbage)).is_err());
    assert!(VerifyingKey::from_pem(&pem("RSA PUBLIC KEY", &garbage)).is_err());
    assert!(SigningKey::from_pem(&pem("RSA PRIVATE KEY", &garbage)).is_err());
    assert!(SigningKey::from_pem(&pem("PRIVATE KEY", &garbage)).is_err());
}

#[test]
fn small_or_invalid_public_keys_are_refused() {
    // A 1024-bit modulus.
    let mut n = vec![0xc1u8; 128];
    n[127] = 0x01;
    let mut body = tlv(0x02, &[&[0u8][..], &n].concat());
    body.extend(tlv(0x02, &[1, 0, 1]));
    assert_eq!(
        VerifyingKey::from_pkcs1_der(&tlv(0x30, &body)),
        Err(SigningError::UnsupportedKeySize { bits: 1024 })
    );
    // A negative modulus.
    let mut body = tlv(0x02, &[0x80u8; 256]);
    body.extend(tlv(0x02, &[1, 0, 1]));
    assert_eq!(
        VerifyingKey::from_pkcs1_der(&tlv(0x30, &body)),
        Err(SigningError::BadDer("negative INTEGER"))
    );
}

#[test]
fn fixture_key_signature_over_names_payload_matches_the_file() {
    // The registry fixtures carry deterministic signatures: one is enough here
    // (tests/registry_fixtures.rs checks all of them).
    let json: serde_json::Value = serde_json::from_str(&fixture("decoded/names.json")).unwrap();
    let payload = hex::decode(json["payload_hex"].as_str().unwrap()).unwrap();
    let expected = hex::decode(json["signature_hex"].as_str().unwrap()).unwrap();
    let key = fixture_key();
    assert_eq!(key.sign(&payload).unwrap(), expected);
    key.verifying_key().verify(&payload, &expected).unwrap();
}
