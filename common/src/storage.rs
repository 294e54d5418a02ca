//! The one storage seam: the [`Store`] trait, used as `Arc<dyn Store>` by the proxy and the
//! publisher, and its backends.
//!
//! - [`key`]: [`StorageKey`] (path, content type, cache-control of every object) and
//!   [`KeyPrefix`] (listing scopes). Nothing else builds storage paths.
//! - [`local`]: [`LocalStore`], a directory on a local file system, atomic writes, safe across
//!   processes sharing the directory.
//! - [`memory`]: [`MemoryStore`], in-process, for unit tests.
//! - [`s3`]: [`S3Store`], an S3-compatible bucket (conditional writes with `If-None-Match` /
//!   `If-Match`).
//!
//! Every backend passes the same behaviour suite, `crate::testing::store_conformance`.
//!
//! Semantics shared by all backends:
//! - A missing object is `Ok(None)` (or `Ok(false)` for [`Store::delete`]), never an error: a
//!   miss is the proxy's normal fall-through path.
//! - ETags are strong, quoted (`"..."`), and change on every successful write of the key.
//! - [`PutMode::CreateOnly`] and [`PutMode::IfMatch`] are atomic compare-and-set operations:
//!   among concurrent writers exactly one wins.

pub mod key;
pub mod local;
pub mod memory;
pub mod s3;

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

pub use key::{KeyComponent, KeyError, KeyName, KeyPrefix, KeyVersion, StorageKey};
pub use local::LocalStore;
pub use memory::MemoryStore;
pub use s3::S3Store;

/// Metadata of a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Body length in bytes.
    pub size: u64,
    /// Strong ETag, including the double quotes, usable verbatim as an HTTP `ETag` value and as
    /// [`PutMode::IfMatch`] argument.
    pub etag: String,
    /// When the object was last written.
    pub last_modified: SystemTime,
}

/// What [`Store::put`] learns about the object it wrote. No write time: S3's PutObject does not
/// return one, and asking for it would cost a HEAD per write. Readers that need it (`rebuild`,
/// `gc`, `reconcile`) get it from [`Store::head`], [`Store::get`] or [`Store::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Body length in bytes.
    pub size: u64,
    /// Strong ETag of the new object, as in [`ObjectMeta::etag`].
    pub etag: String,
}

impl From<ObjectMeta> for Written {
    fn from(meta: ObjectMeta) -> Self {
        Written {
            size: meta.size,
            etag: meta.etag,
        }
    }
}

/// A whole object: metadata plus body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// The object's metadata, consistent with `body`.
    pub meta: ObjectMeta,
    /// The body.
    pub body: Bytes,
}

/// One object found by [`Store::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// The object's key.
    pub key: StorageKey,
    /// Body length in bytes.
    pub size: u64,
    /// Strong quoted ETag, as in [`ObjectMeta::etag`].
    pub etag: String,
    /// When the object was last written.
    pub last_modified: SystemTime,
}

/// How [`Store::put`] treats an existing object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Write only if the key does not exist (tarballs, docs); otherwise
    /// [`StoreError::AlreadyExists`] and the stored object is untouched.
    CreateOnly,
    /// Write unconditionally (replace whatever is there).
    Overwrite,
    /// Write only if the object exists and its current ETag equals this one (quoted, as returned
    /// in [`ObjectMeta::etag`]); otherwise [`StoreError::PreconditionFailed`].
    IfMatch(String),
}

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// [`PutMode::CreateOnly`] on a key that exists.
    #[error("object already exists")]
    AlreadyExists,
    /// [`PutMode::IfMatch`] whose ETag is stale, or whose object is missing. Re-read and retry.
    #[error("precondition failed: the object changed or does not exist")]
    PreconditionFailed,
    /// The backend cannot be reached or refused service (network, credentials, throttling).
    /// Usually transient.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A local I/O error (the message carries the path).
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A key that cannot be built or stored.
    #[error("invalid storage key: {0}")]
    InvalidKey(#[from] KeyError),
    /// The backend holds something it should not (a path outside the root, a directory where an
    /// object should be, ...).
    #[error("storage corrupt: {0}")]
    Corrupt(String),
}

/// A stream of body chunks, as returned by [`Store::get_stream`].
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

/// The storage trait every backend implements. Object-safe; use as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync {
    /// Reads a whole object. Called on every local hit that is served from bytes in memory.
    ///
    /// `Ok(None)` when the key does not exist. `Err` only when the backend failed.
    async fn get(&self, key: &StorageKey) -> Result<Option<Object>, StoreError>;

    /// Reads an object as a stream of chunks, for large bodies. The default implementation
    /// reads the whole object with [`Store::get`] and yields it as a single chunk; backends that
    /// can stream override it. An error inside the stream means the body was cut short.
    ///
    /// `Ok(None)` when the key does not exist.
    async fn get_stream(
        &self,
        key: &StorageKey,
    ) -> Result<Option<(ObjectMeta, ByteStream)>, StoreError> {
        Ok(self.get(key).await?.map(|obj| {
            let stream = futures::stream::once(async move { Ok(obj.body) }).boxed();
            (obj.meta, stream)
        }))
    }

    /// Reads an object's metadata only. `Ok(None)` when the key does not exist.
    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>, StoreError>;

    /// Writes `body` under `key` according to `mode`, atomically: readers see either the old or
    /// the new object, never a partial one. Returns the new object's size and ETag.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] / [`StoreError::PreconditionFailed`] when `mode`'s
    /// condition does not hold (nothing was written), otherwise a backend failure.
    async fn put(
        &self,
        key: &StorageKey,
        body: Bytes,
        mode: PutMode,
    ) -> Result<Written, StoreError>;

    /// Deletes an object. `Ok(true)` if it existed, `Ok(false)` if it did not.
    async fn delete(&self, key: &StorageKey) -> Result<bool, StoreError>;

    /// Lists every object in scope `prefix`, sorted by path. Stored paths that are not the path
    /// of a valid [`StorageKey`] (temporary files, foreign files) are skipped. Used to rebuild
    /// `names` and `versions`; not on the request path.
    async fn list(&self, prefix: &KeyPrefix) -> Result<Vec<ListEntry>, StoreError>;

    /// A short human description for logs, e.g. `local:/var/lib/hexyard`.
    fn describe(&self) -> String;
}

/// Opens the store a config describes: a [`LocalStore`] for `kind: local`, an [`S3Store`] with
/// the configured timeouts (`store.s3.timeouts`) for `kind: s3`. Does no network I/O (an unreachable bucket shows up
/// on the first request).
///
/// # Errors
/// [`StoreError::Io`] when the local root cannot be created; [`StoreError::Unavailable`] when
/// `kind: s3` has no `store.s3` section or no credentials (neither in the config nor in the
/// standard AWS environment variables).
pub fn open(config: &crate::config::StoreConfig) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match config.kind {
        crate::config::StoreKind::Local => Ok(std::sync::Arc::new(LocalStore::new(&config.root)?)),
        crate::config::StoreKind::S3 => {
            let s3 = config.s3.as_ref().ok_or_else(|| {
                StoreError::Unavailable("store.kind is s3 but store.s3 is missing".to_owned())
            })?;
            Ok(std::sync::Arc::new(S3Store::new(s3)?))
        }
    }
}
