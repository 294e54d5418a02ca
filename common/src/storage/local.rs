//! [`LocalStore`]: objects as files under one root directory.
//!
//! Layout under the root:
//! - `repos/...`: the objects, at exactly [`StorageKey::path`].
//! - `.tmp/`: temporary files (`.tmp-*`) being written; never listed. Files older than
//!   [`STALE_TMP_AGE`] are left-overs of a crash and are removed when a store is opened.
//! - `.locks/`: lock files (256 stripes, chosen by a stable hash of the object path).
//!
//! Writes are atomic: the body goes to a temporary file in `.tmp/` (same file system), is
//! flushed to disk, then moved into place, and the directory is flushed, so a crash leaves
//! either the old object or the new one, never half of one.
//! - [`PutMode::CreateOnly`] moves the file with a no-replace link/rename, which fails if the
//!   target exists: atomic without any lock.
//! - [`PutMode::Overwrite`], [`PutMode::IfMatch`] and [`Store::delete`] take an exclusive
//!   advisory lock ([`std::fs::File::lock`]) on the key's lock stripe, so they are serialized
//!   across threads and across processes sharing the root. `IfMatch` compares the current ETag
//!   and renames under that lock.
//!
//! ETag: `"<size hex>-<mtime nanoseconds hex>-<inode hex>"`, from file metadata, so `head` costs
//! one `stat`. Every write creates a new file (new inode while the old one still exists), and
//! under the lock the new file's mtime is set strictly after the replaced file's mtime, so the
//! ETag changes on every write, and an old ETag cannot come back after a later write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use super::{
    ByteStream, KeyPrefix, ListEntry, Object, ObjectMeta, PutMode, StorageKey, Store, StoreError,
    Written,
};

/// Temporary files older than this are considered left-overs of a crashed writer and are
/// removed by [`LocalStore::new`]. Younger ones may belong to another live process.
pub const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

const TMP_DIR: &str = ".tmp";
const TMP_PREFIX: &str = ".tmp-";
const LOCK_DIR: &str = ".locks";
const LOCK_STRIPES: u64 = 256;
const STREAM_CHUNK: usize = 64 * 1024;

/// A store in a local directory. Several instances (and processes) may share one root.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

fn io_at(e: io::Error, path: &Path) -> StoreError {
    StoreError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Unavailable(format!("storage worker task failed: {e}"))
}

fn nanos_since_epoch(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

#[cfg(unix)]
fn inode(md: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(md)
}

#[cfg(not(unix))]
fn inode(_md: &fs::Metadata) -> u64 {
    0
}

fn meta_of(md: &fs::Metadata) -> ObjectMeta {
    let mtime = md.modified().unwrap_or(UNIX_EPOCH);
    ObjectMeta {
        size: md.len(),
        etag: format!(
            "\"{:x}-{:x}-{:x}\"",
            md.len(),
            nanos_since_epoch(mtime),
            inode(md)
        ),
        last_modified: mtime,
    }
}

/// FNV-1a: stable across builds and processes (unlike `DefaultHasher`), so every process picks
/// the same lock stripe for a key.
fn stripe(path: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % LOCK_STRIPES
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_at(e, dir))
}

/// `Ok(None)` when the path does not exist; `Corrupt` when it exists but is not a file.
fn stat_object(path: &Path) -> Result<Option<fs::Metadata>, StoreError> {
    match fs::metadata(path) {
        Ok(md) if md.is_file() => Ok(Some(md)),
        Ok(_) => Err(StoreError::Corrupt(format!(
            "{} is not a regular file",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(e, path)),
    }
}

/// Opens an object for reading: `Ok(None)` when missing.
fn open_object(path: &Path) -> Result<Option<(File, fs::Metadata)>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(e, path)),
    };
    let md = file.metadata().map_err(|e| io_at(e, path))?;
    if !md.is_file() {
        return Err(StoreError::Corrupt(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(Some((file, md)))
}

/// An exclusive lock on one stripe, released when dropped (the file is closed).
struct StripeLock {
    _file: File,
}

impl LocalStore {
    /// Opens (creating if needed) a store rooted at `root`, and removes temporary files older
    /// than [`STALE_TMP_AGE`]. Does blocking file-system work; call it at start-up.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directories cannot be created or the root cannot be resolved.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root: PathBuf = root.into();
        for dir in [TMP_DIR, LOCK_DIR, "repos"] {
            let d = root.join(dir);
            fs::create_dir_all(&d).map_err(|e| io_at(e, &d))?;
        }
        let root = fs::canonicalize(&root).map_err(|e| io_at(e, &root))?;
        let store = LocalStore { root };
        store.clean_temp_files(STALE_TMP_AGE)?;
        Ok(store)
    }

    /// The (canonical) root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes temporary files whose mtime is more than `older_than` in the past; returns how
    /// many were removed. Blocking.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the temporary directory cannot be read.
    pub fn clean_temp_files(&self, older_than: Duration) -> Result<usize, StoreError> {
        let dir = self.root.join(TMP_DIR);
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(|e| io_at(e, &dir))? {
            let entry = entry.map_err(|e| io_at(e, &dir))?;
            let Ok(md) = entry.metadata() else { continue };
            let old = md
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > older_than);
            if md.is_file() && old && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The file of `key`, checked to stay under the root.
    fn object_path(&self, key: &StorageKey) -> Result<PathBuf, StoreError> {
        let rel = key.path();
        let rel = Path::new(&rel);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(StoreError::Corrupt(format!(
                "key path {} is not a plain relative path",
                rel.display()
            )));
        }
        Ok(self.root.join(rel))
    }

    fn lock(&self, key: &StorageKey) -> Result<StripeLock, StoreError> {
        let path = self
            .root
            .join(LOCK_DIR)
            .join(format!("{:02x}.lock", stripe(&key.path())));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_at(e, &path))?;
        file.lock().map_err(|e| io_at(e, &path))?;
        Ok(StripeLock { _file: file })
    }

    /// Writes `body` to a new temporary file (not yet flushed to disk).
    fn write_temp(&self, body: &[u8]) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.root.join(TMP_DIR);
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&dir)
            .map_err(|e| io_at(e, &dir))?;
        tmp.write_all(body).map_err(|e| io_at(e, tmp.path()))?;
        Ok(tmp)
    }

    /// Sets the temp file's mtime to now, or just after `previous` if the clock is behind it,
    /// and flushes it to disk.
    fn seal_temp(
        tmp: &tempfile::NamedTempFile,
        previous: Option<&fs::Metadata>,
    ) -> Result<(), StoreError> {
        let mut mtime = SystemTime::now();
        if let Some(prev) = previous.and_then(|md| md.modified().ok())
            && mtime <= prev
        {
            mtime = prev + Duration::from_nanos(1);
        }
        let file = tmp.as_file();
        file.set_modified(mtime)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_at(e, tmp.path()))
    }

    fn ensure_parent(path: &Path) -> Result<&Path, StoreError> {
        let parent = path
            .parent()
            .ok_or_else(|| StoreError::Corrupt(format!("{} has no parent", path.display())))?;
        fs::create_dir_all(parent).map_err(|e| io_at(e, parent))?;
        Ok(parent)
    }

    fn put_blocking(
        &self,
        key: &StorageKey,
        body: &[u8],
        mode: &PutMode,
    ) -> Result<ObjectMeta, StoreError> {
        let path = self.object_path(key)?;
        let parent = Self::ensure_parent(&path)?;
        let tmp = self.write_temp(body)?;
        let _lock = match mode {
            PutMode::CreateOnly => {
                Self::seal_temp(&tmp, None)?;
                return match tmp.persist_noclobber(&path) {
                    Ok(file) => {
                        sync_dir(parent)?;
                        let md = file.metadata().map_err(|e| io_at(e, &path))?;
                        Ok(meta_of(&md))
                    }
                    Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                        Err(StoreError::AlreadyExists)
                    }
                    Err(e) => Err(io_at(e.error, &path)),
                };
            }
            PutMode::Overwrite | PutMode::IfMatch(_) => self.lock(key)?,
        };
        let current = stat_object(&path)?;
        if let PutMode::IfMatch(expected) = mode {
            match &current {
                Some(md) if meta_of(md).etag == *expected => {}
                _ => return Err(StoreError::PreconditionFailed),
            }
        }
        Self::seal_temp(&tmp, current.as_ref())?;
        let file = tmp.persist(&path).map_err(|e| io_at(e.error, &path))?;
        sync_dir(parent)?;
        let md = file.metadata().map_err(|e| io_at(e, &path))?;
        Ok(meta_of(&md))
    }

    fn delete_blocking(&self, key: &StorageKey) -> Result<bool, StoreError> {
        let path = self.object_path(key)?;
        let _lock = self.lock(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    sync_dir(parent)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_at(e, &path)),
        }
    }

    fn get_blocking(&self, key: &StorageKey) -> Result<Option<Object>, StoreError> {
        let path = self.object_path(key)?;
        let Some((mut file, md)) = open_object(&path)? else {
            return Ok(None);
        };
        let mut buf = Vec::with_capacity(usize::try_from(md.len()).unwrap_or(0));
        file.read_to_end(&mut buf).map_err(|e| io_at(e, &path))?;
        let meta = meta_of(&md);
        if buf.len() as u64 != meta.size {
            return Err(StoreError::Corrupt(format!(
                "{}: read {} bytes, expected {}",
                path.display(),
                buf.len(),
                meta.size
            )));
        }
        Ok(Some(Object {
            meta,
            body: Bytes::from(buf),
        }))
    }

    fn list_blocking(&self, prefix: &KeyPrefix) -> Result<Vec<ListEntry>, StoreError> {
        let prefix_path = prefix.path();
        let start = self.root.join(&prefix_path);
        let mut out = Vec::new();
        // The walk starts at the prefix directory; `rel` is the path relative to the root.
        let mut stack = vec![(start, prefix_path.trim_end_matches('/').to_owned())];
        while let Some((dir, rel)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(e, &dir)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_at(e, &dir))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let child_rel = format!("{rel}/{name}");
                let file_type = entry.file_type().map_err(|e| io_at(e, &entry.path()))?;
                if file_type.is_dir() {
                    // repos/<repo>/<kind>/<file> is the deepest valid path.
                    if child_rel.matches('/').count() < 3 {
                        stack.push((entry.path(), child_rel));
                    }
                    continue;
                }
                if !file_type.is_file() {
                    continue;
                }
                let Some(key) = StorageKey::from_path(&child_rel) else {
                    continue;
                };
                if !prefix.matches(&key) {
                    continue;
                }
                let md = match entry.metadata() {
                    Ok(md) => md,
                    // Deleted between read_dir and stat.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_at(e, &entry.path())),
                };
                let meta = meta_of(&md);
                out.push(ListEntry {
                    key,
                    size: meta.size,
                    etag: meta.etag,
                    last_modified: meta.last_modified,
                });
            }
        }
        out.sort_by_cached_key(|e| e.key.path());
        Ok(out)
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(LocalStore) -> Result<T, StoreError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this))
            .await
            .map_err(join_err)?
    }
}

#[async_trait]
impl Store for LocalStore {
    async fn get(&self, key: &StorageKey) -> Result<Option<Object>, StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.get_blocking(&key)).await
    }

    async fn get_stream(
        &self,
        key: &StorageKey,
    ) -> Result<Option<(ObjectMeta, ByteStream)>, StoreError> {
        let key = key.clone();
        let opened = self
            .blocking(move |s| {
                let path = s.object_path(&key)?;
                Ok(open_object(&path)?.map(|(f, md)| (f, md, path)))
            })
            .await?;
        let Some((file, md, path)) = opened else {
            return Ok(None);
        };
        let meta = meta_of(&md);
        let file = tokio::fs::File::from_std(file);
        let remaining = meta.size;
        let stream = futures::stream::try_unfold(
            (file, remaining, path),
            |(mut file, remaining, path)| async move {
                if remaining == 0 {
                    return Ok(None);
                }
                let want = usize::try_from(remaining).map_or(STREAM_CHUNK, |r| r.min(STREAM_CHUNK));
                let mut buf = BytesMut::with_capacity(want);
                while buf.len() < want {
                    let n = file.read_buf(&mut buf).await.map_err(|e| io_at(e, &path))?;
                    if n == 0 {
                        return Err(StoreError::Corrupt(format!(
                            "{}: file ended early",
                            path.display()
                        )));
                    }
                }
                let chunk = buf.freeze();
                let remaining = remaining - chunk.len() as u64;
                Ok(Some((chunk, (file, remaining, path))))
            },
        )
        .boxed();
        Ok(Some((meta, stream)))
    }

    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>, StoreError> {
        let key = key.clone();
        self.blocking(move |s| {
            let path = s.object_path(&key)?;
            Ok(stat_object(&path)?.map(|md| meta_of(&md)))
        })
        .await
    }

    async fn put(
        &self,
        key: &StorageKey,
        body: Bytes,
        mode: PutMode,
    ) -> Result<Written, StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.put_blocking(&key, &body, &mode).map(Written::from))
            .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.delete_blocking(&key)).await
    }

    async fn list(&self, prefix: &KeyPrefix) -> Result<Vec<ListEntry>, StoreError> {
        let prefix = prefix.clone();
        self.blocking(move |s| s.list_blocking(&prefix)).await
    }

    fn describe(&self) -> String {
        format!("local:{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_are_stable() {
        // FNV-1a of a fixed input must never change, or two builds would lock different files.
        assert_eq!(stripe(""), 0xcbf2_9ce4_8422_2325 % 256);
        assert_eq!(stripe("repos/r/names"), stripe("repos/r/names"));
        assert!(stripe("repos/r/names") < LOCK_STRIPES);
    }

    #[test]
    fn etag_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"hello").unwrap();
        let t = UNIX_EPOCH + Duration::from_nanos(0x1234);
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let md = fs::metadata(&p).unwrap();
        let meta = meta_of(&md);
        assert_eq!(meta.etag, format!("\"5-1234-{:x}\"", inode(&md)));
        assert_eq!(meta.size, 5);
        assert_eq!(meta.last_modified, t);
    }
}
