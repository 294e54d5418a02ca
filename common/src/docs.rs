//! Documentation tarballs (`/docs/NAME-VERSION.tar.gz`, protocol doc §2.6): a gzipped tar of
//! HTML with `index.html` at its root. [`validate`] checks an untrusted upload within limits:
//! compressed and uncompressed size (inflating never more than the limit + 1 bytes), entry
//! count, paths (no absolute, no `..`), only regular files and directories, `index.html` present.

use flate2::read::GzDecoder;
use serde::Deserialize;
use std::io::Read;

/// Limits for docs uploads. Defaults are hex_core's: 16 MiB compressed, 128 MiB uncompressed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocsLimits {
    pub tarball_bytes: u64,
    pub unpacked_bytes: u64,
    pub max_entries: u64,
}

impl Default for DocsLimits {
    fn default() -> Self {
        DocsLimits {
            tarball_bytes: 16 * 1024 * 1024,
            unpacked_bytes: 128 * 1024 * 1024,
            max_entries: 50_000,
        }
    }
}

/// What a valid docs tarball holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocsInfo {
    pub files: u64,
    pub unpacked_bytes: u64,
}

/// Why a docs tarball was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocsError {
    #[error("docs tarball is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("docs tarball is not valid gzip or tar: {0}")]
    Malformed(String),
    #[error("docs tarball inflates to more than {limit} bytes")]
    UnpackedTooLarge { limit: u64 },
    #[error("docs tarball has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("docs tarball entry {0:?} has an unsafe path")]
    UnsafePath(String),
    #[error("docs tarball entry {0:?} is not a regular file or directory")]
    NotRegularFile(String),
    #[error("docs tarball has no index.html at its root")]
    NoIndex,
}

/// Reads at most `limit` bytes from `inner`, then fails (so a gzip bomb stops early).
struct Capped<R> {
    inner: R,
    left: u64,
    hit: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // Probe one byte: only an error if there really is more.
            let mut one = [0u8; 1];
            return match self.inner.read(&mut one)? {
                0 => Ok(0),
                _ => {
                    self.hit = true;
                    Err(std::io::Error::other("docs too large"))
                }
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && !p.contains('\0')
        && p.split('/').all(|c| c != "..")
}

/// Validates a docs tarball. Never panics on any input.
pub fn validate(bytes: &[u8], limits: &DocsLimits) -> Result<DocsInfo, DocsError> {
    let size = bytes.len() as u64;
    if size > limits.tarball_bytes {
        return Err(DocsError::TooLarge {
            size,
            limit: limits.tarball_bytes,
        });
    }
    let mut capped = Capped {
        inner: GzDecoder::new(bytes),
        left: limits.unpacked_bytes,
        hit: false,
    };
    let mut files = 0u64;
    let mut has_index = false;
    let result: Result<(), DocsError> = (|| {
        let mut archive = tar::Archive::new(&mut capped);
        let entries = archive
            .entries()
            .map_err(|e| DocsError::Malformed(e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| DocsError::Malformed(e.to_string()))?;
            files += 1;
            if files > limits.max_entries {
                return Err(DocsError::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = path.strip_prefix("./").unwrap_or(&path).to_owned();
            if !safe_path(&path) {
                return Err(DocsError::UnsafePath(path));
            }
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_dir()) {
                return Err(DocsError::NotRegularFile(path));
            }
            if kind.is_file() && path == "index.html" {
                has_index = true;
            }
        }
        Ok(())
    })();
    let unpacked = limits.unpacked_bytes - capped.left;
    if capped.hit {
        return Err(DocsError::UnpackedTooLarge {
            limit: limits.unpacked_bytes,
        });
    }
    result?;
    if !has_index {
        return Err(DocsError::NoIndex);
    }
    Ok(DocsInfo {
        files,
        unpacked_bytes: unpacked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn fixture(name: &str) -> Vec<u8> {
        let p = format!(
            "{}/../../shared/fixtures/hex/publish/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(p).unwrap()
    }

    fn make(entries: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Write the raw name so that hostile paths go in as they are.
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn accepts_the_client_docs() {
        let l = DocsLimits::default();
        let i = validate(&fixture("fx_json-0.3.0-docs.tar.gz"), &l).unwrap();
        assert_eq!(i.files, 3);
        assert_eq!(i.unpacked_bytes % 512, 0);
        let i = validate(&fixture("fx_erl-0.1.0-docs.tar.gz"), &l).unwrap();
        assert_eq!(i.files, 7);
    }

    #[test]
    fn refuses_bad_docs() {
        let l = DocsLimits::default();
        let f = tar::EntryType::Regular;
        assert!(matches!(
            validate(b"not gzip", &l),
            Err(DocsError::Malformed(_))
        ));
        assert_eq!(
            validate(&make(&[("index.html", b"x", f), ("../evil", b"x", f)]), &l),
            Err(DocsError::UnsafePath("../evil".into()))
        );
        assert_eq!(
            validate(&make(&[("/etc/x", b"x", f)]), &l),
            Err(DocsError::UnsafePath("/etc/x".into()))
        );
        assert_eq!(
            validate(
                &make(&[("index.html", b"x", f), ("l", b"", tar::EntryType::Symlink)]),
                &l
            ),
            Err(DocsError::NotRegularFile("l".into()))
        );
        assert_eq!(
            validate(&make(&[("a.html", b"x", f)]), &l),
            Err(DocsError::NoIndex)
        );
        let small = DocsLimits {
            tarball_bytes: 100,
            ..DocsLimits::default()
        };
        let doc = fixture("fx_json-0.3.0-docs.tar.gz");
        assert_eq!(
            validate(&doc, &small),
            Err(DocsError::TooLarge {
                size: 355,
                limit: 100
            })
        );
        let few = DocsLimits {
            max_entries: 2,
            ..DocsLimits::default()
        };
        assert_eq!(
            validate(&doc, &few),
            Err(DocsError::TooManyEntries { limit: 2 })
        );
        // A bomb: 64 MiB of zeros inflating past an 1 MiB limit stops early.
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let bomb = make(&[("index.html", &zeros, f)]);
        let tight = DocsLimits {
            unpacked_bytes: 1024 * 1024,
            ..DocsLimits::default()
        };
        assert_eq!(
            validate(&bomb, &tight),
            Err(DocsError::UnpackedTooLarge { limit: 1024 * 1024 })
        );
    }
}
