//! The access log that makes `gc` least-recently-USED: the proxy notes when it serves a
//! mirror's tarball or docs tarball, and `gc` orders eviction by the later of that and the
//! object's write time.
//!
//! Only for `kind: local` stores: one append-only file per mirror,
//! `<store root>/.access/<mirror>.log`, lines `<unix seconds> <store path>`. Each process
//! appends one short line (a single `write` with `O_APPEND`, so lines from several proxies on
//! one store do not interleave) at most once per [`RECORD_EVERY`] per object, so the log
//! stays small and the hot path does no I/O for repeated hits. With an S3 store there is no
//! log and `gc` falls back to write times.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An object's access is written to the log at most this often per process.
pub const RECORD_EVERY: Duration = Duration::from_secs(60);
/// Most objects remembered in memory between writes (then the memory is cleared).
const MEMORY_LIMIT: usize = 200_000;
/// `gc` rewrites a log larger than this with one line per object.
const COMPACT_BYTES: u64 = 8 * 1024 * 1024;

/// The directory of the logs under a local store root.
pub fn dir(store_root: &Path) -> PathBuf {
    store_root.join(".access")
}

fn file(store_root: &Path, mirror: &str) -> PathBuf {
    dir(store_root).join(format!("{mirror}.log"))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The proxy's side: notes accesses.
pub struct AccessLog {
    root: PathBuf,
    last: Mutex<HashMap<String, u64>>,
}

impl AccessLog {
    /// A log under the local store root `root`.
    pub fn new(root: impl Into<PathBuf>) -> AccessLog {
        AccessLog {
            root: root.into(),
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Notes that `path` of `mirror` was served now. Never fails the request: a write error
    /// is logged and forgotten.
    pub fn record(&self, mirror: &str, path: &str) {
        let now = now_secs();
        {
            let Ok(mut last) = self.last.lock() else {
                return;
            };
            if last
                .get(path)
                .is_some_and(|t| now.saturating_sub(*t) < RECORD_EVERY.as_secs())
            {
                return;
            }
            if last.len() >= MEMORY_LIMIT {
                last.clear();
            }
            last.insert(path.to_owned(), now);
        }
        if let Err(e) = append(&self.root, mirror, &format!("{now} {path}\n")) {
            tracing::warn!(error = %e, mirror, "cannot write the access log");
        }
    }
}

fn append(root: &Path, mirror: &str, line: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir(root))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file(root, mirror))?;
    f.write_all(line.as_bytes())
}

/// `gc`'s side: the last recorded access of every object of `mirror` (store path -> time).
/// An absent log is empty; malformed lines are skipped. A large log is compacted.
pub fn read(root: &Path, mirror: &str) -> HashMap<String, SystemTime> {
    let path = file(root, mirror);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return HashMap::new();
    };
    let mut out: HashMap<String, u64> = HashMap::new();
    for line in text.lines() {
        if let Some((t, p)) = line.split_once(' ')
            && let Ok(t) = t.parse::<u64>()
        {
            let e = out.entry(p.to_owned()).or_insert(t);
            *e = (*e).max(t);
        }
    }
    if text.len() as u64 > COMPACT_BYTES {
        let compact: String = out.iter().map(|(p, t)| format!("{t} {p}\n")).collect();
        let tmp = path.with_extension("log.tmp");
        if std::fs::write(&tmp, compact).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    out.into_iter()
        .map(|(p, t)| (p, UNIX_EPOCH + Duration::from_secs(t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_once_per_interval_and_reads_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::new(dir.path());
        log.record("m", "repos/m/tarballs/a-1.0.0.tar");
        log.record("m", "repos/m/tarballs/a-1.0.0.tar");
        log.record("m", "repos/m/tarballs/b-1.0.0.tar");
        let text = std::fs::read_to_string(file(dir.path(), "m")).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        append(dir.path(), "m", "garbage\n5 repos/m/tarballs/a-1.0.0.tar\n").unwrap();
        let got = read(dir.path(), "m");
        assert_eq!(got.len(), 2);
        assert!(got["repos/m/tarballs/a-1.0.0.tar"] > UNIX_EPOCH + Duration::from_secs(5));
        assert!(read(dir.path(), "other").is_empty());
    }
}
