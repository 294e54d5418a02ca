//! Air-gap bundles: one uncompressed tar holding a mirror's objects, to carry them to a
//! hexyard that cannot reach the upstream.
//!
//! Layout, in this order:
//! 1. `manifest.json`: [`Manifest`] (format, creation time, mirror and upstream names, and the
//!    store path, size and SHA-256 of every object);
//! 2. `manifest.sig`: RSASSA-PKCS1-v1_5 / SHA-512 over the exact bytes of `manifest.json`,
//!    made with a bundle key (any RSA key; `hexyard-publisher keygen --bundle` makes one);
//! 3. the objects, each under its store path (`repos/<mirror>/packages/<name>`, ...).
//!
//! This module reads and writes the format and checks what it alone can check (signature,
//! paths, sizes, checksums). Checking registry signatures against the upstream key is the
//! importer's job.

use crate::signing::{SigningKey, VerifyingKey};
use crate::storage::StorageKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Read;

/// Name of the manifest entry.
pub const MANIFEST: &str = "manifest.json";
/// Name of the signature entry.
pub const SIGNATURE: &str = "manifest.sig";
/// The format this code writes and reads.
pub const FORMAT: u32 = 1;
/// Largest manifest accepted.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;
/// Largest single object accepted.
pub const MAX_OBJECT_BYTES: u64 = 1024 * 1024 * 1024;

/// One object of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// Store path, `repos/<mirror>/...`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}

/// What a bundle holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// When the bundle was made, RFC 3339 UTC (`2026-01-02T03:04:05Z`).
    pub created_at: String,
    /// The mirror repository the objects come from.
    pub mirror: String,
    /// The repository name the upstream signs (`hexpm`): what the registry files must say.
    pub upstream: String,
    /// Every object, sorted by path.
    pub objects: Vec<ManifestObject>,
}

/// Why a bundle cannot be read or is refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading or writing the file failed.
    #[error("bundle I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Not a tar with `manifest.json` then `manifest.sig` first.
    #[error("not a hexyard bundle: {0}")]
    NotABundle(String),
    /// The manifest is not valid JSON of the expected shape, or breaks a rule (names it).
    #[error("bad manifest: {0}")]
    BadManifest(String),
    /// `manifest.sig` does not verify with the given key.
    #[error("the manifest signature does not verify with the bundle key")]
    BadSignature,
    /// A tar entry that the manifest does not list (or lists once but appears twice).
    #[error("{0}: not listed in the manifest (or present twice)")]
    Unlisted(String),
    /// An object whose size differs from the manifest.
    #[error("{path}: size {found} differs from the manifest's {expected}")]
    SizeMismatch {
        /// The object's path.
        path: String,
        /// Size in the manifest.
        expected: u64,
        /// Size in the tar.
        found: u64,
    },
    /// An object whose SHA-256 differs from the manifest.
    #[error("{0}: SHA-256 differs from the manifest (the bundle was altered)")]
    ChecksumMismatch(String),
    /// An object the manifest lists but the tar lacks.
    #[error("{0}: listed in the manifest but missing from the bundle")]
    Missing(String),
    /// Signing failed.
    #[error("signing the manifest: {0}")]
    Sign(String),
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// `t` as RFC 3339 UTC, seconds precision.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Manifest {
    /// A manifest for `objects` (path, bytes) of `mirror`, made now.
    pub fn new<'a>(
        mirror: &str,
        upstream: &str,
        objects: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Manifest {
        let mut objects: Vec<ManifestObject> = objects
            .into_iter()
            .map(|(path, bytes)| ManifestObject {
                path: path.to_owned(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect();
        objects.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest {
            format: FORMAT,
            created_at: rfc3339(std::time::SystemTime::now()),
            mirror: mirror.to_owned(),
            upstream: upstream.to_owned(),
            objects,
        }
    }

    /// The JSON bytes (pretty, stable field order).
    ///
    /// # Errors
    /// [`BundleError::BadManifest`] if serialization fails (it does not for valid data).
    pub fn to_json(&self) -> Result<Vec<u8>, BundleError> {
        let mut v =
            serde_json::to_vec_pretty(self).map_err(|e| BundleError::BadManifest(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }

    /// Parses and checks a manifest: known format, every path a valid store key of `mirror`
    /// (no traversal, no other repo), no duplicates, hex SHA-256s, sizes under
    /// [`MAX_OBJECT_BYTES`].
    ///
    /// # Errors
    /// [`BundleError::BadManifest`] naming the offending field or object.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, BundleError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| BundleError::BadManifest(e.to_string()))?;
        if m.format != FORMAT {
            return Err(BundleError::BadManifest(format!(
                "format {} (this hexyard reads {FORMAT})",
                m.format
            )));
        }
        let mut seen = BTreeSet::new();
        for o in &m.objects {
            let key = StorageKey::from_path(&o.path)
                .ok_or_else(|| BundleError::BadManifest(format!("{}: not a store path", o.path)))?;
            if key.repo() != m.mirror {
                return Err(BundleError::BadManifest(format!(
                    "{}: not an object of mirror {:?}",
                    o.path, m.mirror
                )));
            }
            if matches!(key, StorageKey::PublicKey { .. }) {
                return Err(BundleError::BadManifest(format!(
                    "{}: a mirror's public key comes from its config, not a bundle",
                    o.path
                )));
            }
            if !seen.insert(o.path.as_str()) {
                return Err(BundleError::BadManifest(format!(
                    "{}: listed twice",
                    o.path
                )));
            }
            if o.sha256.len() != 64
                || !o
                    .sha256
                    .bytes()
                    .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(BundleError::BadManifest(format!(
                    "{}: sha256 is not 64 lowercase hex digits",
                    o.path
                )));
            }
            if o.size > MAX_OBJECT_BYTES {
                return Err(BundleError::BadManifest(format!(
                    "{}: {} bytes is over the {MAX_OBJECT_BYTES}-byte limit",
                    o.path, o.size
                )));
            }
        }
        Ok(m)
    }

    /// The entry of `path`.
    pub fn object(&self, path: &str) -> Option<&ManifestObject> {
        self.objects
            .binary_search_by(|o| o.path.as_str().cmp(path))
            .ok()
            .and_then(|i| self.objects.get(i))
            .or_else(|| self.objects.iter().find(|o| o.path == path))
    }
}

/// Signs manifest bytes.
///
/// # Errors
/// [`BundleError::Sign`].
pub fn sign_manifest(json: &[u8], key: &SigningKey) -> Result<Vec<u8>, BundleError> {
    key.sign(json).map_err(|e| BundleError::Sign(e.to_string()))
}

/// Writes a bundle incrementally: [`BundleWriter::new`] writes the manifest and its
/// signature, [`BundleWriter::add`] one object at a time (checked against the manifest),
/// [`BundleWriter::finish`] the end of the archive.
pub struct BundleWriter<W: std::io::Write> {
    tar: tar::Builder<W>,
    manifest: Manifest,
}

impl<W: std::io::Write> BundleWriter<W> {
    /// Starts a bundle with `manifest_json` (the bytes of `manifest`) and its `signature`.
    ///
    /// # Errors
    /// [`BundleError::Io`].
    pub fn new(
        out: W,
        manifest: &Manifest,
        manifest_json: &[u8],
        signature: &[u8],
    ) -> Result<Self, BundleError> {
        let mut tar = tar::Builder::new(out);
        append(&mut tar, MANIFEST, manifest_json)?;
        append(&mut tar, SIGNATURE, signature)?;
        Ok(BundleWriter {
            tar,
            manifest: manifest.clone(),
        })
    }

    /// Appends one object, which must be listed in the manifest with these exact bytes.
    ///
    /// # Errors
    /// [`BundleError::Unlisted`], [`BundleError::ChecksumMismatch`] (the object changed since
    /// the manifest was made), [`BundleError::Io`].
    pub fn add(&mut self, path: &str, bytes: &[u8]) -> Result<(), BundleError> {
        let entry = self
            .manifest
            .object(path)
            .ok_or_else(|| BundleError::Unlisted(path.to_owned()))?;
        if entry.size != bytes.len() as u64 || entry.sha256 != sha256_hex(bytes) {
            return Err(BundleError::ChecksumMismatch(path.to_owned()));
        }
        append(&mut self.tar, path, bytes)
    }

    /// Ends the archive and returns the writer.
    ///
    /// # Errors
    /// [`BundleError::Io`].
    pub fn finish(self) -> Result<W, BundleError> {
        Ok(self.tar.into_inner()?)
    }
}

/// Writes a whole bundle: the manifest, its signature, then `objects` (path, bytes) in the
/// order given (see [`BundleWriter`]).
///
/// # Errors
/// As [`BundleWriter::add`].
pub fn write_bundle<W: std::io::Write>(
    out: W,
    manifest_json: &[u8],
    signature: &[u8],
    objects: impl IntoIterator<Item = (String, bytes::Bytes)>,
    manifest: &Manifest,
) -> Result<W, BundleError> {
    let mut w = BundleWriter::new(out, manifest, manifest_json, signature)?;
    for (path, bytes) in objects {
        w.add(&path, &bytes)?;
    }
    w.finish()
}

fn append<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> Result<(), BundleError> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, bytes)?;
    Ok(())
}

/// Reads a bundle from `input`: checks the manifest signature with `key` first, then hands
/// every object (path, bytes, after its size and SHA-256 matched the manifest) to `each`, in
/// tar order; finally checks that nothing listed is missing. `each` returning `Err` stops the
/// read with that error.
///
/// # Errors
/// [`BundleError::NotABundle`], [`BundleError::BadManifest`], [`BundleError::BadSignature`],
/// [`BundleError::Unlisted`], [`BundleError::SizeMismatch`], [`BundleError::ChecksumMismatch`],
/// [`BundleError::Missing`], [`BundleError::Io`], or what `each` returns.
pub fn read_bundle<R: Read, E: From<BundleError>>(
    input: R,
    key: &VerifyingKey,
    mut each: impl FnMut(&Manifest, &str, Vec<u8>) -> Result<(), E>,
) -> Result<Manifest, E> {
    let mut ar = tar::Archive::new(input);
    let mut entries = ar.entries().map_err(BundleError::from)?;
    let manifest_json = read_named(&mut entries, MANIFEST, MAX_MANIFEST_BYTES)?;
    let signature = read_named(&mut entries, SIGNATURE, 64 * 1024)?;
    key.verify(&manifest_json, &signature)
        .map_err(|_| BundleError::BadSignature)?;
    let manifest = Manifest::from_json(&manifest_json)?;
    let mut seen = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(BundleError::from)?;
        let path = entry_path(&entry)?;
        let listed = manifest
            .object(&path)
            .filter(|_| !seen.contains(&path))
            .ok_or_else(|| BundleError::Unlisted(path.clone()))?;
        let found = entry.header().size().map_err(BundleError::from)?;
        if found != listed.size {
            return Err(BundleError::SizeMismatch {
                path,
                expected: listed.size,
                found,
            }
            .into());
        }
        let mut bytes = Vec::with_capacity(usize::try_from(found).unwrap_or(0).min(1 << 24));
        entry
            .take(listed.size)
            .read_to_end(&mut bytes)
            .map_err(BundleError::from)?;
        if bytes.len() as u64 != listed.size || sha256_hex(&bytes) != listed.sha256 {
            return Err(BundleError::ChecksumMismatch(path).into());
        }
        seen.insert(path.clone());
        each(&manifest, &path, bytes)?;
    }
    if let Some(missing) = manifest.objects.iter().find(|o| !seen.contains(&o.path)) {
        return Err(BundleError::Missing(missing.path.clone()).into());
    }
    Ok(manifest)
}

fn entry_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, BundleError> {
    let p = entry.path_bytes();
    String::from_utf8(p.into_owned())
        .map_err(|_| BundleError::NotABundle("an entry name is not UTF-8".into()))
}

fn read_named<R: Read>(
    entries: &mut tar::Entries<'_, R>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, BundleError> {
    let entry = entries
        .next()
        .ok_or_else(|| BundleError::NotABundle(format!("no {name}")))??;
    let path = entry_path(&entry)?;
    if path != name {
        return Err(BundleError::NotABundle(format!(
            "expected {name}, found {path:?}"
        )));
    }
    if entry.header().size()? > limit {
        return Err(BundleError::NotABundle(format!(
            "{name} is over {limit} bytes"
        )));
    }
    let mut out = Vec::new();
    entry.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn key() -> SigningKey {
        let pem =
            std::fs::read_to_string(crate::testing::fixtures_dir().join("keys/private_key.pem"))
                .unwrap();
        SigningKey::from_pem(&pem).unwrap()
    }

    fn objects() -> Vec<(String, Bytes)> {
        let dir = crate::testing::fixtures_dir().join("registry");
        vec![
            (
                "repos/m/packages/fx_core".to_owned(),
                Bytes::from(std::fs::read(dir.join("packages/fx_core")).unwrap()),
            ),
            (
                "repos/m/tarballs/fx_core-0.2.0.tar".to_owned(),
                Bytes::from(std::fs::read(dir.join("tarballs/fx_core-0.2.0.tar")).unwrap()),
            ),
        ]
    }

    fn bundle() -> (Vec<u8>, Manifest) {
        let objs = objects();
        let m = Manifest::new(
            "m",
            "hexpm",
            objs.iter().map(|(p, b)| (p.as_str(), b.as_ref())),
        );
        let json = m.to_json().unwrap();
        let sig = sign_manifest(&json, &key()).unwrap();
        (write_bundle(Vec::new(), &json, &sig, objs, &m).unwrap(), m)
    }

    fn read(b: &[u8]) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
        let mut got = Vec::new();
        read_bundle::<_, BundleError>(b, &key().verifying_key(), |_, p, bytes| {
            got.push((p.to_owned(), bytes));
            Ok(())
        })?;
        Ok(got)
    }

    #[test]
    fn round_trips_objects_byte_for_byte() {
        let (b, m) = bundle();
        assert_eq!(m.objects.len(), 2);
        assert_eq!(
            m.objects[1].sha256,
            "8249223f919ce8d128d6b99f1cf0209379a2338157bb625d73a9ad86c230a0b8"
        );
        let got = read(&b).unwrap();
        let want: Vec<(String, Vec<u8>)> = objects()
            .into_iter()
            .map(|(p, b)| (p, b.to_vec()))
            .collect();
        assert_eq!(got, want);
    }

    /// Offset of the last `needle` in `hay` (a tar header comes after the manifest, which
    /// names the same path).
    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len())
            .rposition(|w| w == needle)
            .unwrap()
    }

    #[test]
    fn one_altered_byte_in_an_object_is_named() {
        let (mut b, _) = bundle();
        // The tarball's data follows its 512-byte header; alter a byte in the middle of it.
        let size = objects()[1].1.len();
        let at = find(&b, b"repos/m/tarballs/fx_core-0.2.0.tar") + 512 + size / 2;
        b[at] ^= 1;
        match read(&b) {
            Err(BundleError::ChecksumMismatch(p)) => {
                assert_eq!(p, "repos/m/tarballs/fx_core-0.2.0.tar");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_altered_manifest_or_another_key_fails_the_signature() {
        let (mut b, _) = bundle();
        let at = find(&b, b"\"mirror\": \"m\"") + 11;
        b[at] = b'n';
        assert!(matches!(read(&b), Err(BundleError::BadSignature)));
        let (b, _) = bundle();
        let other = SigningKey::generate().unwrap().verifying_key();
        let r = read_bundle::<_, BundleError>(b.as_slice(), &other, |_, _, _| Ok(()));
        assert!(matches!(r, Err(BundleError::BadSignature)));
    }

    #[test]
    fn manifests_with_foreign_or_hostile_paths_are_refused() {
        let mut m = Manifest::new("m", "hexpm", [("repos/m/names", b"x".as_slice())]);
        for bad in [
            "repos/other/names",
            "repos/m/../x/names",
            "/etc/passwd",
            "repos/m/public_key",
        ] {
            m.objects[0].path = bad.to_owned();
            let json = m.to_json().unwrap();
            assert!(
                matches!(Manifest::from_json(&json), Err(BundleError::BadManifest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_and_unlisted_objects_are_refused() {
        let objs = objects();
        let m = Manifest::new(
            "m",
            "hexpm",
            objs.iter().map(|(p, b)| (p.as_str(), b.as_ref())),
        );
        let json = m.to_json().unwrap();
        let sig = sign_manifest(&json, &key()).unwrap();
        let only_first = write_bundle(Vec::new(), &json, &sig, objs[..1].to_vec(), &m).unwrap();
        assert!(
            matches!(read(&only_first), Err(BundleError::Missing(p)) if p == "repos/m/tarballs/fx_core-0.2.0.tar")
        );
        let twice = write_bundle(
            Vec::new(),
            &json,
            &sig,
            vec![objs[0].clone(), objs[0].clone()],
            &m,
        )
        .unwrap();
        assert!(matches!(read(&twice), Err(BundleError::Unlisted(_))));
        assert!(matches!(
            read(b"garbage"),
            Err(BundleError::NotABundle(_) | BundleError::Io(_))
        ));
    }

    #[test]
    fn rfc3339_formats_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
