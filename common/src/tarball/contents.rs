//! Checks on `contents.tar.gz`: inflated through a limiting reader, every entry's path and
//! type inspected; nothing is written anywhere.

use std::io::{self, Read};

use flate2::read::GzDecoder;
use tar::EntryType;

use super::{TarballError, TarballLimits};

pub(super) struct Summary {
    pub entries: u64,
    pub unpacked_bytes: u64,
}

/// Counts bytes read from `inner` and refuses to hand out more than `limit + 1` in total.
/// Records why it failed so the caller can tell a size overrun and a gzip error apart from
/// a tar error.
struct Limited<R> {
    inner: R,
    count: u64,
    limit: u64,
    exceeded: bool,
    inner_error: Option<String>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded {
            return Err(io::Error::other("uncompressed size limit exceeded"));
        }
        let allowed = self.limit.saturating_add(1).saturating_sub(self.count);
        let max = usize::try_from(allowed)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let buf = buf.get_mut(..max).unwrap_or_default();
        match self.inner.read(buf) {
            Ok(n) => {
                self.count = self.count.saturating_add(n as u64);
                if self.count > self.limit {
                    self.exceeded = true;
                    return Err(io::Error::other("uncompressed size limit exceeded"));
                }
                Ok(n)
            }
            Err(e) => {
                self.inner_error = Some(e.to_string());
                Err(e)
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn check_path(path: &[u8]) -> Result<(), TarballError> {
    if path.is_empty() {
        return Err(TarballError::BadContentsTar(
            "entry with an empty path".into(),
        ));
    }
    if path.first() == Some(&b'/') {
        return Err(TarballError::AbsolutePath(text(path)));
    }
    if path.split(|&b| b == b'/').any(|c| c == b"..") {
        return Err(TarballError::PathTraversal(text(path)));
    }
    Ok(())
}

/// True when `target`, resolved lexically from the directory holding `path`, stays inside
/// the package root.
fn symlink_stays_inside(path: &[u8], target: &[u8]) -> bool {
    if target.is_empty() || target.first() == Some(&b'/') {
        return false;
    }
    let mut dirs: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    dirs.pop(); // the link itself
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if dirs.pop().is_none() {
                    return false;
                }
            }
            _ => dirs.push(c),
        }
    }
    true
}

fn walk<R: Read>(reader: R, limits: &TarballLimits) -> Result<u64, WalkError> {
    let mut archive = tar::Archive::new(reader);
    let mut count: u64 = 0;
    for entry in archive.entries()? {
        let entry = entry?;
        count += 1;
        if count > limits.max_entries {
            return Err(WalkError::Tarball(TarballError::TooManyEntries {
                limit: limits.max_entries,
            }));
        }
        let path = entry.path_bytes().into_owned();
        check_path(&path)?;
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::Directory => {}
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if !symlink_stays_inside(&path, &target) {
                    return Err(WalkError::Tarball(TarballError::SymlinkEscape {
                        path: text(&path),
                        target: text(&target),
                    }));
                }
            }
            EntryType::Link => return Err(WalkError::Tarball(TarballError::HardLink(text(&path)))),
            other => {
                return Err(WalkError::Tarball(TarballError::SpecialFile {
                    path: text(&path),
                    kind: char::from(other.as_byte()),
                }));
            }
        }
    }
    Ok(count)
}

enum WalkError {
    Io(io::Error),
    Tarball(TarballError),
}

impl From<io::Error> for WalkError {
    fn from(e: io::Error) -> Self {
        WalkError::Io(e)
    }
}

impl From<TarballError> for WalkError {
    fn from(e: TarballError) -> Self {
        WalkError::Tarball(e)
    }
}

/// Inflates and inspects `contents.tar.gz`. `Err` is the first defect: size over limit,
/// bad gzip, bad tar, too many entries, or a forbidden entry.
pub(super) fn check(gz: &[u8], limits: &TarballLimits) -> Result<Summary, TarballError> {
    let mut reader = Limited {
        inner: GzDecoder::new(gz),
        count: 0,
        limit: limits.unpacked_bytes,
        exceeded: false,
        inner_error: None,
    };
    let walked = walk(&mut reader, limits).and_then(|n| {
        // read the rest of the stream (tar padding, gzip trailer) so the size limit and
        // the gzip CRC cover the whole file, as hex_core's gunzip does
        io::copy(&mut reader, &mut io::sink())?;
        Ok(n)
    });
    let classify = |reader: &Limited<_>, e: io::Error| {
        if reader.exceeded {
            TarballError::UnpackedTooLarge {
                limit: reader.limit,
                read: reader.count,
            }
        } else if let Some(g) = &reader.inner_error {
            TarballError::BadGzip(g.clone())
        } else {
            TarballError::BadContentsTar(e.to_string())
        }
    };
    match walked {
        Ok(entries) => Ok(Summary {
            entries,
            unpacked_bytes: reader.count,
        }),
        Err(WalkError::Tarball(t)) => Err(t),
        Err(WalkError::Io(e)) => Err(classify(&reader, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_resolution() {
        assert!(symlink_stays_inside(b"lib/a", b"b"));
        assert!(symlink_stays_inside(b"lib/a", b"../README.md"));
        assert!(symlink_stays_inside(b"lib/x/a", b"./../../mix.exs"));
        assert!(symlink_stays_inside(b"a", b"."));
        assert!(!symlink_stays_inside(b"a", b".."));
        assert!(!symlink_stays_inside(b"lib/a", b"../../x"));
        assert!(!symlink_stays_inside(b"lib/a", b"/etc/passwd"));
        assert!(!symlink_stays_inside(b"lib/a", b""));
        assert!(!symlink_stays_inside(b"lib/a", b"b/../../../x"));
    }

    #[test]
    fn paths() {
        assert!(check_path(b"lib/a.ex").is_ok());
        assert!(check_path(b"./lib/a..b").is_ok());
        assert_eq!(
            check_path(b"/x"),
            Err(TarballError::AbsolutePath("/x".into()))
        );
        assert_eq!(
            check_path(b"a/../../x"),
            Err(TarballError::PathTraversal("a/../../x".into()))
        );
        assert_eq!(
            check_path(b".."),
            Err(TarballError::PathTraversal("..".into()))
        );
        assert!(matches!(
            check_path(b""),
            Err(TarballError::BadContentsTar(_))
        ));
    }

    #[test]
    fn limited_reader_stops_at_limit_plus_one() {
        let data = vec![7u8; 10_000];
        let mut r = Limited {
            inner: &data[..],
            count: 0,
            limit: 1000,
            exceeded: false,
            inner_error: None,
        };
        let mut sink = Vec::new();
        assert!(r.read_to_end(&mut sink).is_err());
        assert!(r.exceeded);
        assert_eq!(r.count, 1001);
        assert!(sink.len() <= 1000);
        let mut r = Limited {
            inner: &data[..1000],
            count: 0,
            limit: 1000,
            exceeded: false,
            inner_error: None,
        };
        let mut sink = Vec::new();
        assert_eq!(r.read_to_end(&mut sink).unwrap(), 1000);
        assert!(!r.exceeded);
    }
}
