//! Building package tarballs exactly as hex_core writes them.
//!
//! [`build_outer`] assembles the outer tar from its three inputs (it computes `CHECKSUM`);
//! its output is byte-identical to `mix hex.build` / `rebar3 hex build` for the same inputs.
//! [`TarballBuilder`] makes a whole package from a name, a version, metadata fields and
//! files, for tests, benchmarks and import tools.

use std::io::Write;

use flate2::{Compression, GzBuilder};

use super::metadata::{Metadata, Requirement, encode_metadata};
use super::sha256;

/// mtime hex_core writes on every entry: 2000-01-01T00:00:00Z.
pub const MTIME: u64 = 946_684_800;
const BLOCK: usize = 512;
/// Regular file, rw-r--r--, with the file-type bits, as hex_core writes it.
const FILE_MODE: u64 = 0o100_644;

/// Why [`TarballBuilder::build`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A file path does not fit a ustar header (name ≤ 100 bytes, prefix ≤ 155 bytes,
    /// split at a `/`).
    #[error("path {0:?} is too long for a ustar header")]
    PathTooLong(String),
    /// Compressing `contents.tar.gz` failed.
    #[error("gzip failed: {0}")]
    Gzip(String),
}

/// Writes `value` as `width - 1` zero-padded octal digits and a NUL (hex_core / erl_tar
/// style). Values too large for that are written in GNU base-256 form.
fn put_numeric(h: &mut [u8; BLOCK], start: usize, width: usize, value: u64) {
    let digits = format!("{value:0w$o}", w = width - 1);
    if let Some(dst) = h.get_mut(start..start + width) {
        if digits.len() < width {
            let (num, nul) = dst.split_at_mut(width - 1);
            num.copy_from_slice(digits.as_bytes());
            nul.fill(0);
        } else {
            // base-256: high bit set, big-endian value in the remaining bytes
            dst.fill(0);
            let be = value.to_be_bytes();
            let n = be.len().min(width);
            if let Some(tail) = dst.get_mut(width - n..) {
                tail.copy_from_slice(be.get(be.len() - n..).unwrap_or(&[]));
            }
            if let Some(first) = dst.first_mut() {
                *first |= 0x80;
            }
        }
    }
}

fn put_bytes(h: &mut [u8; BLOCK], start: usize, bytes: &[u8]) {
    if let Some(dst) = h.get_mut(start..start + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// One ustar header in hex_core's layout. `path` must already fit (see [`split_path`]).
fn header(name: &[u8], prefix: &[u8], size: u64, typeflag: u8, mode: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    put_bytes(&mut h, 0, name);
    put_numeric(&mut h, 100, 8, mode);
    put_numeric(&mut h, 108, 8, 0);
    put_numeric(&mut h, 116, 8, 0);
    put_numeric(&mut h, 124, 12, size);
    put_numeric(&mut h, 136, 12, MTIME);
    put_bytes(&mut h, 148, b"        ");
    h[156] = typeflag;
    put_bytes(&mut h, 257, b"ustar\0");
    put_bytes(&mut h, 263, b"00");
    put_numeric(&mut h, 329, 8, 0);
    put_numeric(&mut h, 337, 8, 0);
    put_bytes(&mut h, 345, prefix);
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    put_numeric(&mut h, 148, 8, sum);
    h
}

/// Splits a path into ustar (name, prefix).
fn split_path(path: &str) -> Result<(&[u8], &[u8]), BuildError> {
    let b = path.as_bytes();
    if b.len() <= 100 {
        return Ok((b, &[]));
    }
    // the last '/' that leaves a name of at most 100 bytes and a prefix of at most 155
    b.iter()
        .enumerate()
        .filter(|&(i, &c)| c == b'/' && i <= 155 && b.len() - i - 1 <= 100 && i > 0)
        .map(|(i, _)| i)
        .next_back()
        .and_then(|i| Some((b.get(i + 1..)?, b.get(..i)?)))
        .ok_or_else(|| BuildError::PathTooLong(path.to_owned()))
}

fn push_file(out: &mut Vec<u8>, name: &[u8], prefix: &[u8], data: &[u8], mode: u64) {
    out.extend_from_slice(&header(name, prefix, data.len() as u64, b'0', mode));
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
}

/// Builds the outer tarball from its parts, exactly as hex_core does: entries `VERSION`,
/// `CHECKSUM` (uppercase hex of sha256(version ‖ metadata ‖ contents)), `metadata.config`,
/// `contents.tar.gz`; ustar headers with mode 0100644, uid/gid 0, empty user/group names,
/// mtime 946684800; two zero blocks and no further padding.
pub fn build_outer(version: &[u8], metadata_config: &[u8], contents_tar_gz: &[u8]) -> Vec<u8> {
    let checksum = hex::encode_upper(sha256(&[version, metadata_config, contents_tar_gz]));
    let mut out = Vec::with_capacity(
        6 * BLOCK + version.len() + metadata_config.len() + contents_tar_gz.len() + 3 * BLOCK,
    );
    push_file(&mut out, b"VERSION", &[], version, FILE_MODE);
    push_file(&mut out, b"CHECKSUM", &[], checksum.as_bytes(), FILE_MODE);
    push_file(
        &mut out,
        b"metadata.config",
        &[],
        metadata_config,
        FILE_MODE,
    );
    push_file(
        &mut out,
        b"contents.tar.gz",
        &[],
        contents_tar_gz,
        FILE_MODE,
    );
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

/// gzip(tar(files)) in hex_core's style: regular files with mode 0100644 and mtime
/// 946684800, gzip header mtime 0 and OS byte 0. `Err` if a path does not fit a ustar
/// header. Paths are written as given (not validated), so tests can craft bad packages.
pub fn build_contents<'a, I>(files: I) -> Result<Vec<u8>, BuildError>
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    let mut tar = Vec::new();
    for (path, data) in files {
        let (name, prefix) = split_path(path)?;
        push_file(&mut tar, name, prefix, data, FILE_MODE);
    }
    tar.resize(tar.len() + 2 * BLOCK, 0);
    let mut gz = GzBuilder::new().mtime(0).operating_system(0).write(
        Vec::with_capacity(tar.len() / 2 + 64),
        Compression::default(),
    );
    gz.write_all(&tar)
        .map_err(|e| BuildError::Gzip(e.to_string()))?;
    gz.finish().map_err(|e| BuildError::Gzip(e.to_string()))
}

/// Builds a complete package tarball.
///
/// ```
/// use hexyard_common::tarball::{TarballBuilder, Requirement};
/// let bytes = TarballBuilder::new("my_pkg", "1.0.0")
///     .description("demo")
///     .requirement(Requirement::new("fx_core", "~> 0.1"))
///     .file("lib/my_pkg.ex", "defmodule MyPkg do\nend\n")
///     .build()
///     .unwrap();
/// let t = hexyard_common::tarball::parse(&bytes, &Default::default()).unwrap();
/// assert_eq!(t.name, "my_pkg");
/// ```
#[derive(Debug, Clone)]
pub struct TarballBuilder {
    metadata: Metadata,
    files: Vec<(String, Vec<u8>)>,
    files_listed: bool,
}

impl TarballBuilder {
    /// A package with `app` = `name`, `build_tools` = `["mix"]` and no files. Neither
    /// name nor version is validated, so invalid packages can be built on purpose.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        let name = name.into();
        TarballBuilder {
            metadata: Metadata {
                app: Some(name.clone()),
                name,
                version: version.into(),
                build_tools: vec!["mix".into()],
                ..Metadata::default()
            },
            files: Vec::new(),
            files_listed: false,
        }
    }

    /// Sets the OTP application name.
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.metadata.app = Some(app.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.metadata.description = Some(d.into());
        self
    }

    /// Adds a license.
    pub fn license(mut self, l: impl Into<String>) -> Self {
        self.metadata.licenses.push(l.into());
        self
    }

    /// Adds a link.
    pub fn link(mut self, name: impl Into<String>, url: impl Into<String>) -> Self {
        self.metadata.links.push((name.into(), url.into()));
        self
    }

    /// Sets the Elixir requirement.
    pub fn elixir(mut self, req: impl Into<String>) -> Self {
        self.metadata.elixir = Some(req.into());
        self
    }

    /// Replaces the build tools.
    pub fn build_tools<S: Into<String>>(mut self, tools: impl IntoIterator<Item = S>) -> Self {
        self.metadata.build_tools = tools.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a dependency.
    pub fn requirement(mut self, r: Requirement) -> Self {
        self.metadata.requirements.push(r);
        self
    }

    /// Adds a file to `contents.tar.gz` (and, unless [`files_listed`](Self::files_listed)
    /// is used, to the metadata's `files`).
    pub fn file(mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.into(), bytes.into()));
        self
    }

    /// Sets the metadata's `files` list explicitly instead of deriving it from the files.
    pub fn files_listed<S: Into<String>>(mut self, files: impl IntoIterator<Item = S>) -> Self {
        self.metadata.files = files.into_iter().map(Into::into).collect();
        self.files_listed = true;
        self
    }

    /// Full access to the metadata (extra keys, `extra`, ...).
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// The `metadata.config` bytes this builder will write.
    pub fn metadata_config(&self) -> Vec<u8> {
        encode_metadata(&self.final_metadata())
    }

    fn final_metadata(&self) -> Metadata {
        let mut m = self.metadata.clone();
        if !self.files_listed {
            m.files = self.files.iter().map(|(p, _)| p.clone()).collect();
        }
        m
    }

    /// Writes `metadata.config`, `contents.tar.gz` and the outer tar. `Err` if a file
    /// path does not fit a ustar header.
    pub fn build(self) -> Result<Vec<u8>, BuildError> {
        let meta = self.metadata_config();
        let contents = build_contents(self.files.iter().map(|(p, d)| (p.as_str(), d.as_slice())))?;
        Ok(build_outer(b"3", &meta, &contents))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_long_paths() {
        assert_eq!(split_path("a/b").unwrap(), (&b"a/b"[..], &b""[..]));
        let long = format!("{}/{}", "d".repeat(150), "f".repeat(90));
        let (name, prefix) = split_path(&long).unwrap();
        assert_eq!(name, "f".repeat(90).as_bytes());
        assert_eq!(prefix, "d".repeat(150).as_bytes());
        let too_long = "x".repeat(101);
        assert_eq!(
            split_path(&too_long),
            Err(BuildError::PathTooLong(too_long.clone()))
        );
    }

    #[test]
    fn numeric_fields() {
        let mut h = [0u8; BLOCK];
        put_numeric(&mut h, 0, 8, 0o100644);
        assert_eq!(&h[..8], b"0100644\0");
        put_numeric(&mut h, 0, 12, 1 << 40);
        assert_eq!(h[0], 0x80);
        assert_eq!(&h[6..12], &[0x01, 0, 0, 0, 0, 0]);
    }
}
