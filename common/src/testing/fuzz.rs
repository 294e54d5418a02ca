//! The invariants the fuzz targets (`tests/fuzz/`) check, one function per parser of untrusted
//! bytes. The fuzz targets and the stable regression test (`common/tests/fuzz_regressions.rs`)
//! call these same functions, so a crash the fuzzer found stays a failing test until it is
//! fixed. Each function panics (an `assert!`) when an invariant breaks; an `Err` from the
//! parser is never a failure.

use std::io::Read;
use std::sync::OnceLock;

use prost::Message;

use crate::etf;
use crate::lockfile;
use crate::registry::{self, proto};
use crate::signing::{SigningKey, VerifyingKey};
use crate::tarball::{self, Metadata, TarballLimits, encode_metadata, term};
use crate::version::Version;

use super::fixtures_dir;

/// The repository named in the fixture registry files.
pub const FIXTURE_REPO: &str = "fixture_repo";

/// The limits the tarball target parses with: the defaults, with sizes small enough that a
/// fuzz run never spends its time inflating (still far above every fixture).
pub fn tarball_limits() -> TarballLimits {
    TarballLimits {
        tarball_bytes: 1024 * 1024,
        unpacked_bytes: 4 * 1024 * 1024,
        metadata_bytes: 64 * 1024,
        max_entries: 1000,
        ..TarballLimits::default()
    }
}

/// Decompressed-size cap for the registry target (a fixture file inflates to a few KiB).
pub const REGISTRY_LIMIT: usize = 1024 * 1024;

fn sha256(b: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `true` when `target`, a symlink at `path`, resolves lexically inside the root.
fn link_inside(path: &[u8], target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        return false;
    }
    let mut depth: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    depth.pop();
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            c => depth.push(c),
        }
    }
    true
}

/// Tarball: [`tarball::parse`] with [`tarball_limits`]. When it accepts, the result must be
/// consistent with the bytes, and an independent reader (the `tar` crate) must find the same
/// `contents.tar.gz` with only regular files, directories and symlinks, none of them
/// absolute, with a `..` component, or linking outside the root.
pub fn tarball(data: &[u8]) {
    let limits = tarball_limits();
    let Ok(t) = tarball::parse(data, &limits) else {
        return;
    };
    assert_eq!(t.outer_checksum, sha256(data), "outer checksum");
    assert!(
        limits.name_rules.check(&t.name).is_ok(),
        "name {:?}",
        t.name
    );
    assert_eq!(
        Version::parse(&t.metadata.version).ok(),
        Some(t.version.clone())
    );
    assert_eq!(t.name, t.metadata.name);
    assert!(t.files <= limits.max_entries, "{} entries", t.files);
    assert!(t.unpacked_bytes <= limits.unpacked_bytes);
    assert_eq!(Metadata::parse(&t.metadata_raw).as_ref(), Ok(&t.metadata));
    metadata(&t.metadata_raw);

    // The independent reading of the same bytes. Header checksums written as a signed byte
    // sum (old tars; erl_tar, GNU tar and our parser accept them, the tar crate does not) are
    // rewritten as unsigned sums first: the one normalisation the tar crate needs.
    let data = unsigned_checksums(data);
    let mut outer = tar::Archive::new(data.as_slice());
    let mut version = None;
    let mut meta = None;
    let mut contents = None;
    let entries = outer
        .entries()
        .expect("accepted outer tar: tar crate cannot read it");
    for e in entries {
        let mut e = e.expect("accepted outer tar: bad entry for the tar crate");
        let path = e.path_bytes().into_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body).expect("outer entry body");
        match path.as_slice() {
            b"VERSION" => version = Some(body),
            b"metadata.config" => meta = Some(body),
            b"contents.tar.gz" => contents = Some(body),
            b"CHECKSUM" => {}
            other => panic!(
                "accepted tarball has outer entry {:?}",
                String::from_utf8_lossy(other)
            ),
        }
    }
    let (Some(version), Some(meta), Some(contents)) = (version, meta, contents) else {
        panic!("accepted tarball: the tar crate misses an entry");
    };
    assert_eq!(version, b"3");
    assert_eq!(meta, t.metadata_raw);
    let mut gz = flate2::read::GzDecoder::new(contents.as_slice());
    let mut inner = Vec::new();
    gz.read_to_end(&mut inner)
        .expect("accepted contents.tar.gz: gunzip");
    assert_eq!(inner.len() as u64, t.unpacked_bytes, "unpacked size");
    let inner = unsigned_checksums(&inner);
    let mut n = 0u64;
    for e in tar::Archive::new(inner.as_slice())
        .entries()
        .expect("accepted contents: tar")
    {
        let e = e.expect("accepted contents: tar entry");
        n += 1;
        let path = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&path).into_owned();
        assert!(!path.is_empty(), "empty path");
        assert!(path.first() != Some(&b'/'), "absolute path {shown:?}");
        assert!(
            !path.split(|&b| b == b'/').any(|c| c == b".."),
            "path with .. {shown:?}"
        );
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {}
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                assert!(
                    link_inside(&path, &target),
                    "symlink {shown:?} -> {:?} escapes",
                    String::from_utf8_lossy(&target)
                );
            }
            other => panic!("accepted entry {shown:?} of type {other:?}"),
        }
    }
    assert_eq!(n, t.files, "entry count");
}

/// A copy of the tar archive `data` in which every header whose checksum field holds the
/// signed byte sum (and not the unsigned one) holds the unsigned sum instead. Headers are found
/// by walking the archive with each header's octal size; the walk stops at the first block it
/// cannot read, leaving the rest as it is.
fn unsigned_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut off = 0usize;
    while let Some(block) = out.get_mut(off..off + 512) {
        if block.iter().all(|&b| b == 0) {
            break;
        }
        // An octal field ends at its first NUL (what follows is ignored, as readers do).
        let field = |b: &[u8]| -> Option<u64> {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            let text = std::str::from_utf8(b.get(..end)?).ok()?.trim_matches(' ');
            u64::from_str_radix(text, 8).ok()
        };
        let (Some(stored), Some(size)) = (field(&block[148..156]), field(&block[124..136])) else {
            break;
        };
        let (mut unsigned, mut signed) = (0i64, 0i64);
        for (i, &b) in block.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += i64::from(b);
            signed += i64::from(b as i8);
        }
        if stored as i64 != unsigned && stored as i64 == signed {
            let text = format!("{unsigned:06o}\0 ");
            block[148..156].copy_from_slice(text.as_bytes());
        }
        let Some(next) = size
            .div_ceil(512)
            .checked_mul(512)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| off.checked_add(512)?.checked_add(n))
        else {
            break;
        };
        off = next;
    }
    out
}

/// `metadata.config`: the term reader and [`Metadata::parse`]. Every term read must write
/// back ([`term::write_term`]) to text that reads as the same term; an accepted metadata
/// must survive [`encode_metadata`] -> [`Metadata::parse`] unchanged (other keys come back
/// sorted, as the encoder sorts them).
pub fn metadata(data: &[u8]) {
    let Ok(terms) = term::parse_terms(data) else {
        assert!(Metadata::parse(data).is_err());
        return;
    };
    for t in &terms {
        let mut text = String::new();
        term::write_term(t, &mut text);
        text.push('.');
        let back = term::parse_terms(text.as_bytes());
        assert_eq!(
            back.as_ref().map(Vec::as_slice),
            Ok(std::slice::from_ref(t)),
            "{text}"
        );
    }
    let Ok(mut m) = Metadata::from_terms(terms) else {
        return;
    };
    let encoded = encode_metadata(&m);
    let back = Metadata::parse(&encoded);
    m.other.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        back.as_ref(),
        Ok(&m),
        "re-encoded metadata:\n{}",
        String::from_utf8_lossy(&encoded)
    );
}

/// Erlang terms (API request bodies): [`etf::decode`]. An accepted term encodes to bytes
/// that decode to the same term, and encoding is stable (compared as bytes, so NaN floats count as
/// equal to themselves). The JSON rendering never panics.
pub fn etf(data: &[u8]) {
    let Ok(t) = etf::decode(data) else {
        return;
    };
    let _ = t.to_json();
    let once = etf::encode(&t);
    let again = etf::decode(&once);
    let Ok(again) = again else {
        panic!("re-encoded term does not decode: {again:?} for {t:?}");
    };
    // Debug text, so that a NaN float equals itself (and -0.0 still differs from 0.0).
    assert_eq!(
        format!("{again:?}"),
        format!("{t:?}"),
        "term changed by encode"
    );
    assert_eq!(
        etf::encode(&again),
        once,
        "encoding is not stable for {t:?}"
    );
}

fn fixture_public_key() -> &'static VerifyingKey {
    static KEY: OnceLock<VerifyingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pem = std::fs::read_to_string(fixtures_dir().join("keys/public_key.pem"))
            .expect("fixture public key");
        VerifyingKey::from_pem(&pem).expect("fixture public key parses")
    })
}

fn fixture_private_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pem = std::fs::read_to_string(fixtures_dir().join("keys/private_key.pem"))
            .expect("fixture private key");
        SigningKey::from_pem(&pem).expect("fixture private key parses")
    })
}

/// A message decoded from untrusted bytes re-encodes to bytes that decode to a message with
/// the same encoding (prost round trip; bytes compared so NaN scores do not count).
fn proto_round_trip<M: Message + Default>(m: &M) {
    let once = m.encode_to_vec();
    let again = M::decode(once.as_slice()).expect("re-encoded message decodes");
    assert_eq!(again.encode_to_vec(), once, "protobuf round trip");
}

/// Decodes `payload` as each of the three registry messages (the unsigned payload path), and
/// for what decodes, signs it with the fixture key and runs the verified decoders: they must
/// accept exactly when the signed `repository` (and package `name`) is the expected one.
fn registry_payload(payload: &[u8], sign: bool) {
    let key = fixture_public_key();
    let wrap = |p: &[u8]| {
        registry::sign_payload(p.to_vec(), fixture_private_key()).expect("signing the payload")
    };
    if let Ok(n) = proto::Names::decode(payload) {
        proto_round_trip(&n);
        if sign {
            let r = registry::decode_names(&wrap(payload), key, FIXTURE_REPO);
            assert_eq!(r.is_ok(), n.repository == FIXTURE_REPO, "{r:?}");
        }
    }
    if let Ok(v) = proto::Versions::decode(payload) {
        proto_round_trip(&v);
        if sign {
            let r = registry::decode_versions(&wrap(payload), key, FIXTURE_REPO);
            assert_eq!(r.is_ok(), v.repository == FIXTURE_REPO, "{r:?}");
        }
    }
    if let Ok(p) = proto::Package::decode(payload) {
        proto_round_trip(&p);
        if sign {
            let r = registry::decode_package(&wrap(payload), key, FIXTURE_REPO, &p.name);
            assert_eq!(r.is_ok(), p.repository == FIXTURE_REPO, "{r:?}");
            if let Ok(r) = r {
                assert_eq!(r.encode_to_vec(), p.encode_to_vec());
            }
        }
    }
}

/// Registry files. `data` is tried as a gzipped file ([`registry::open_signed`] and the three
/// verified decoders with the fixture public key: what they accept must carry the fixture
/// repository) and as an ungzipped `Signed` envelope whose payload goes through the unsigned
/// decoders and a sign-then-verify round trip (see `registry_payload`).
pub fn registry(data: &[u8]) {
    let key = fixture_public_key();
    if let Ok(signed) = registry::open_signed(data, REGISTRY_LIMIT) {
        assert!(signed.payload.len() <= REGISTRY_LIMIT);
        let verified = registry::verify_signed(&signed, key).is_ok();
        let limit = REGISTRY_LIMIT;
        if let Ok(n) = registry::decode_names_with_limit(data, key, FIXTURE_REPO, limit) {
            assert!(verified);
            assert_eq!(n.repository, FIXTURE_REPO);
        }
        if let Ok(v) = registry::decode_versions_with_limit(data, key, FIXTURE_REPO, limit) {
            assert!(verified);
            assert_eq!(v.repository, FIXTURE_REPO);
        }
        // The name the file claims, so a genuine package file gets past the origin check.
        let name = proto::Package::decode(signed.payload.as_slice())
            .map(|p| p.name)
            .unwrap_or_default();
        if let Ok(p) = registry::decode_package_with_limit(data, key, FIXTURE_REPO, &name, limit) {
            assert!(verified);
            assert_eq!(
                (p.repository.as_str(), p.name.as_str()),
                (FIXTURE_REPO, name.as_str())
            );
        }
        registry_payload(&signed.payload, false);
    }
    if let Ok(signed) = proto::Signed::decode(data) {
        registry_payload(&signed.payload, true);
    }
}

/// Lock files: [`lockfile::parse`] (either format, as detected). What it returns has
/// lowercase checksums, at most one package per byte, and equals the parser of the detected
/// format.
pub fn lockfile(data: &[u8]) {
    let r = lockfile::parse(data);
    let direct = match lockfile::detect(data) {
        lockfile::LockFormat::Mix => lockfile::parse_mix_lock(data),
        lockfile::LockFormat::Rebar => lockfile::parse_rebar_lock(data),
    };
    assert_eq!(r, direct);
    let Ok(pkgs) = r else {
        return;
    };
    assert!(pkgs.len() <= data.len());
    for p in &pkgs {
        for c in [&p.inner_checksum, &p.outer_checksum].into_iter().flatten() {
            assert!(!c.bytes().any(|b| b.is_ascii_uppercase()), "checksum {c:?}");
        }
    }
}
