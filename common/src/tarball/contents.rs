//! Checks on `contents.tar.gz`: inflated through a limiting reader, every entry's path and
//! type inspected; nothing is written anywhere.

use std::collections::HashSet;
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

/// The path's components without empty and `.` ones.
fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// `path` normalised: components joined with `/`.
fn normalize(path: &[u8]) -> Vec<u8> {
    components(path).collect::<Vec<_>>().join(&b'/')
}

/// True when `target`, resolved lexically from the directory holding `path`, stays inside
/// the package root. With `links` (the package's symlink paths, normalised), resolution
/// that passes through another symlink also counts as escaping: lexical resolution
/// cannot follow a chain, so chains are refused.
fn symlink_stays_inside(path: &[u8], target: &[u8], links: Option<&HashSet<Vec<u8>>>) -> bool {
    if target.is_empty() || target.first() == Some(&b'/') {
        return false;
    }
    let mut dirs: Vec<&[u8]> = components(path).collect();
    dirs.pop(); // the link itself
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if dirs.pop().is_none() {
                    return false;
                }
            }
            _ => {
                dirs.push(c);
                if links.is_some_and(|l| l.contains(&dirs.join(&b'/'))) {
                    return false;
                }
            }
        }
    }
    true
}

/// Refuses entries written through a symlinked directory and symlinks resolving through
/// other symlinks (checked once all entries are known, whatever their order).
fn check_symlink_chains(
    paths: &[Vec<u8>],
    symlinks: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), TarballError> {
    if symlinks.is_empty() {
        return Ok(());
    }
    let links: HashSet<Vec<u8>> = symlinks.iter().map(|(p, _)| normalize(p)).collect();
    for p in paths {
        let comps: Vec<&[u8]> = components(p).collect();
        for n in 1..comps.len() {
            let prefix = comps.get(..n).unwrap_or_default().join(&b'/');
            if links.contains(&prefix) {
                return Err(TarballError::ThroughSymlink {
                    path: text(p),
                    symlink: text(&prefix),
                });
            }
        }
    }
    for (p, target) in symlinks {
        if !symlink_stays_inside(p, target, Some(&links)) {
            return Err(TarballError::SymlinkEscape {
                path: text(p),
                target: text(target),
            });
        }
    }
    Ok(())
}

fn walk<R: Read>(reader: R, limits: &TarballLimits) -> Result<u64, WalkError> {
    let mut archive = tar::Archive::new(reader);
    let mut count: u64 = 0;
    let mut paths = Vec::new();
    let mut symlinks = Vec::new();
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
                if !symlink_stays_inside(&path, &target, None) {
                    return Err(WalkError::Tarball(TarballError::SymlinkEscape {
                        path: text(&path),
                        target: text(&target),
                    }));
                }
                symlinks.push((path.clone(), target));
            }
            EntryType::Link => return Err(WalkError::Tarball(TarballError::HardLink(text(&path)))),
            other => {
                return Err(WalkError::Tarball(TarballError::SpecialFile {
                    path: text(&path),
                    kind: char::from(other.as_byte()),
                }));
            }
        }
        paths.push(path);
    }
    check_symlink_chains(&paths, &symlinks)?;
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
        let inside = |p: &[u8], t: &[u8]| symlink_stays_inside(p, t, None);
        assert!(inside(b"lib/a", b"b"));
        assert!(inside(b"lib/a", b"../README.md"));
        assert!(inside(b"lib/x/a", b"./../../mix.exs"));
        assert!(inside(b"./lib//x/a", b"../../mix.exs"));
        assert!(inside(b"a", b"."));
        assert!(!inside(b"a", b".."));
        assert!(!inside(b"lib/a", b"../../x"));
        assert!(!inside(b"lib/a", b"/etc/passwd"));
        assert!(!inside(b"lib/a", b""));
        assert!(!inside(b"lib/a", b"b/../../../x"));
    }

    #[test]
    fn symlink_chains_and_writes_through_symlinks() {
        let v = |s: &str| s.as_bytes().to_vec();
        // lib/up -> .. is harmless alone, but lib/up/s -> ../x escapes on disk
        let links = [(v("lib/up"), v("..")), (v("lib/s"), v("up/../x"))];
        let paths = [v("lib/up"), v("lib/s")];
        assert_eq!(
            check_symlink_chains(&paths, &links),
            Err(TarballError::SymlinkEscape {
                path: "lib/s".into(),
                target: "up/../x".into()
            })
        );
        // a file written through a symlinked directory, in any order
        let links = [(v("./lib/up"), v(".."))];
        let paths = [v("lib/up/evil"), v("lib/up")];
        assert_eq!(
            check_symlink_chains(&paths, &links),
            Err(TarballError::ThroughSymlink {
                path: "lib/up/evil".into(),
                symlink: "lib/up".into()
            })
        );
        // independent symlinks are fine
        let links = [(v("a"), v("lib/x.ex")), (v("lib/b"), v("x.ex"))];
        let paths = [v("lib/x.ex"), v("a"), v("lib/b")];
        assert_eq!(check_symlink_chains(&paths, &links), Ok(()));
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
