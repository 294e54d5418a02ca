//! Hex package tarballs (protocol doc §4, §5, §13): bounded parsing and validation of
//! untrusted uploads, and building.
//!
//! [`parse`] takes the raw bytes of an upload and either returns a [`Tarball`] or one
//! [`TarballError`] variant per defect. The order of checks is: total size, outer tar
//! structure (exactly the four regular files `VERSION`, `CHECKSUM`, `metadata.config`,
//! `contents.tar.gz`, no duplicates), `VERSION` = `3`, `CHECKSUM` format, metadata size,
//! inner checksum (verified *before* the metadata is read), metadata syntax and fields,
//! package name, version, then `contents.tar.gz`, which is inflated through a limiting
//! reader (never more than the limit + 1 bytes) while every entry is checked: entry count,
//! absolute paths, `..`, escaping symlinks (and symlink chains, and entries under a
//! symlink), hard links and special files.
//!
//! # Layout
//! - [`term`]: the Erlang term text reader/writer behind `metadata.config`.
//! - [`metadata`]: the typed [`Metadata`] view and [`encode_metadata`].
//! - [`build`]: [`build_outer`] (byte-identical to hex_core) and [`TarballBuilder`].
//! - `outer` / `contents` (private): the outer tar reader and the inner archive checks.

pub mod build;
mod contents;
pub mod metadata;
mod outer;
pub mod term;

pub use build::{BuildError, TarballBuilder, build_outer};
pub use metadata::{Metadata, MetadataError, Requirement, encode_metadata};
pub use term::{Term, TermError, TermErrorKind};

use serde::Deserialize;

use crate::names::{NameError, NameRules};
use crate::version::{Version, VersionError};

/// Size and count limits applied by [`parse`]. `Default` is hex_core's: 16 MiB tarball,
/// 128 MiB uncompressed contents, 1 MiB metadata; plus 10 000 inner entries and the
/// default [`NameRules`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TarballLimits {
    /// Largest accepted tarball (the whole upload), in bytes.
    pub tarball_bytes: u64,
    /// Largest accepted uncompressed size of `contents.tar.gz`, in bytes.
    pub unpacked_bytes: u64,
    /// Largest accepted `metadata.config`, in bytes.
    pub metadata_bytes: u64,
    /// Most entries (files, directories, symlinks) accepted in `contents.tar.gz`.
    pub max_entries: u64,
    /// Rules for the package name in the metadata.
    pub name_rules: NameRules,
}

impl Default for TarballLimits {
    fn default() -> Self {
        TarballLimits {
            tarball_bytes: 16 * 1024 * 1024,
            unpacked_bytes: 128 * 1024 * 1024,
            metadata_bytes: 1024 * 1024,
            max_entries: 10_000,
            name_rules: NameRules::default(),
        }
    }
}

/// A validated package tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tarball {
    /// Package name (valid under the limits' [`NameRules`]).
    pub name: String,
    /// Release version.
    pub version: Version,
    /// The parsed `metadata.config`.
    pub metadata: Metadata,
    /// The `metadata.config` bytes as uploaded.
    pub metadata_raw: Vec<u8>,
    /// sha256(VERSION ‖ metadata.config ‖ contents.tar.gz), equal to `CHECKSUM`.
    pub inner_checksum: [u8; 32],
    /// sha256 of the whole tarball.
    pub outer_checksum: [u8; 32],
    /// Number of entries (files, directories, symlinks) in `contents.tar.gz`.
    pub files: u64,
    /// Uncompressed size of `contents.tar.gz`, in bytes.
    pub unpacked_bytes: u64,
}

/// Why a tarball was refused. Each variant is one kind of defect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarballError {
    /// The upload is larger than [`TarballLimits::tarball_bytes`].
    #[error("tarball is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    /// The upload has no bytes.
    #[error("tarball is empty")]
    Empty,
    /// The outer tar ends in the middle of a header or of an entry's data, or has no
    /// end-of-archive marker.
    #[error("tarball is truncated")]
    Truncated,
    /// The outer tar is not a well-formed ustar archive (bad header checksum or field,
    /// data after the end marker).
    #[error("tarball is not a valid tar archive: {0}")]
    Malformed(String),
    /// One of the four required entries is absent.
    #[error("tarball has no {0} entry")]
    MissingEntry(&'static str),
    /// An outer entry other than the four known ones.
    #[error("tarball has an unexpected entry {0:?}")]
    UnexpectedEntry(String),
    /// An outer entry appears twice.
    #[error("tarball has entry {0:?} twice")]
    DuplicateEntry(String),
    /// An outer entry that is not a regular file (directory, link, extended header...).
    #[error("tarball entry {0:?} is not a regular file")]
    NotRegularFile(String),
    /// `VERSION` is not exactly `3`.
    #[error("unsupported tarball version {0:?}")]
    UnsupportedVersion(String),
    /// `CHECKSUM` is not 64 hexadecimal characters.
    #[error("CHECKSUM is not 64 hexadecimal characters")]
    BadChecksumFormat,
    /// `CHECKSUM` does not match sha256(VERSION ‖ metadata.config ‖ contents.tar.gz).
    #[error("inner checksum mismatch: CHECKSUM says {}, contents hash to {}", hex::encode(.expected), hex::encode(.actual))]
    ChecksumMismatch {
        expected: [u8; 32],
        actual: [u8; 32],
    },
    /// `metadata.config` is larger than [`TarballLimits::metadata_bytes`].
    #[error("metadata.config is {size} bytes, more than the limit of {limit}")]
    MetadataTooLarge { size: u64, limit: u64 },
    /// `metadata.config` does not parse, or lacks / mistypes a field.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The metadata's package name breaks the name rules.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The metadata's version is not a valid release version.
    #[error(transparent)]
    InvalidVersion(#[from] VersionError),
    /// `contents.tar.gz` is not valid gzip (or is truncated).
    #[error("contents.tar.gz is not valid gzip: {0}")]
    BadGzip(String),
    /// The gunzipped `contents.tar.gz` is not a valid tar archive.
    #[error("contents.tar.gz does not hold a valid tar archive: {0}")]
    BadContentsTar(String),
    /// `contents.tar.gz` inflates to more than [`TarballLimits::unpacked_bytes`]; `read`
    /// is how many bytes were inflated before stopping (at most `limit + 1`).
    #[error("contents.tar.gz inflates to more than {limit} bytes")]
    UnpackedTooLarge { limit: u64, read: u64 },
    /// `contents.tar.gz` has more than [`TarballLimits::max_entries`] entries.
    #[error("contents.tar.gz has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    /// An entry of `contents.tar.gz` has an absolute path.
    #[error("contents.tar.gz entry {0:?} has an absolute path")]
    AbsolutePath(String),
    /// An entry of `contents.tar.gz` has a `..` path component.
    #[error("contents.tar.gz entry {0:?} points above the package directory")]
    PathTraversal(String),
    /// A symlink in `contents.tar.gz` points outside the package (absolute, too many
    /// `..`), or resolves through another symlink (chains are refused).
    #[error("contents.tar.gz symlink {path:?} -> {target:?} points outside the package")]
    SymlinkEscape { path: String, target: String },
    /// An entry of `contents.tar.gz` lies under a path that is a symlink, so unpacking it
    /// would write through the link.
    #[error("contents.tar.gz entry {path:?} lies under the symlink {symlink:?}")]
    ThroughSymlink { path: String, symlink: String },
    /// A hard link in `contents.tar.gz`.
    #[error("contents.tar.gz entry {0:?} is a hard link")]
    HardLink(String),
    /// A device, fifo or other non-file entry in `contents.tar.gz`; `kind` is the tar
    /// type flag.
    #[error("contents.tar.gz entry {path:?} has unsupported type {kind:?}")]
    SpecialFile { path: String, kind: char },
}

/// sha256 over the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Parses and validates an uploaded tarball. `Err` names the first defect found, in the
/// order described in the module docs. Never panics and never inflates more than
/// `limits.unpacked_bytes + 1` bytes.
pub fn parse(bytes: &[u8], limits: &TarballLimits) -> Result<Tarball, TarballError> {
    let size = bytes.len() as u64;
    if size == 0 {
        return Err(TarballError::Empty);
    }
    if size > limits.tarball_bytes {
        return Err(TarballError::TooLarge {
            size,
            limit: limits.tarball_bytes,
        });
    }
    let parts = outer::read(bytes)?;
    if parts.version != b"3" {
        return Err(TarballError::UnsupportedVersion(
            String::from_utf8_lossy(parts.version).into_owned(),
        ));
    }
    let expected = decode_checksum(parts.checksum)?;
    let meta_size = parts.metadata.len() as u64;
    if meta_size > limits.metadata_bytes {
        return Err(TarballError::MetadataTooLarge {
            size: meta_size,
            limit: limits.metadata_bytes,
        });
    }
    let actual = sha256(&[parts.version, parts.metadata, parts.contents]);
    if actual != expected {
        return Err(TarballError::ChecksumMismatch { expected, actual });
    }
    let metadata = Metadata::parse(parts.metadata)?;
    limits.name_rules.check(&metadata.name)?;
    let version = Version::parse(&metadata.version)?;
    let summary = contents::check(parts.contents, limits)?;
    Ok(Tarball {
        name: metadata.name.clone(),
        version,
        metadata,
        metadata_raw: parts.metadata.to_vec(),
        inner_checksum: actual,
        outer_checksum: sha256(&[bytes]),
        files: summary.entries,
        unpacked_bytes: summary.unpacked_bytes,
    })
}

fn decode_checksum(text: &[u8]) -> Result<[u8; 32], TarballError> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return Err(TarballError::BadChecksumFormat);
    }
    hex::decode_to_slice(text, &mut out).map_err(|_| TarballError::BadChecksumFormat)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_text_accepts_both_cases_and_nothing_else() {
        let lower = "ab".repeat(32);
        assert_eq!(decode_checksum(lower.as_bytes()), Ok([0xab; 32]));
        assert_eq!(
            decode_checksum(lower.to_uppercase().as_bytes()),
            Ok([0xab; 32])
        );
        for bad in [
            "ab".repeat(31),
            "ab".repeat(33),
            format!("{}zz", "ab".repeat(31)),
        ] {
            assert_eq!(
                decode_checksum(bad.as_bytes()),
                Err(TarballError::BadChecksumFormat)
            );
        }
        let with_newline = format!("{}\n", "ab".repeat(32));
        assert_eq!(
            decode_checksum(with_newline.as_bytes()),
            Err(TarballError::BadChecksumFormat)
        );
    }

    #[test]
    fn limits_deserialize_with_defaults_and_refuse_unknown_keys() {
        let l: TarballLimits =
            serde_yaml::from_str("metadata_bytes: 10\nname_rules:\n  reserved: false\n").unwrap();
        assert_eq!(l.metadata_bytes, 10);
        assert_eq!(l.tarball_bytes, 16 * 1024 * 1024);
        assert!(!l.name_rules.reserved);
        assert_eq!(l.name_rules.min_len, 2);
        assert!(serde_yaml::from_str::<TarballLimits>("bogus: 1\n").is_err());
        assert!(serde_yaml::from_str::<TarballLimits>("name_rules:\n  bogus: 1\n").is_err());
    }
}
