//! [`MemoryStore`]: an in-process [`Store`] for unit tests. Same semantics as the other backends;
//! ETags come from a counter, so every write yields a new one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    KeyPrefix, ListEntry, Object, ObjectMeta, PutMode, StorageKey, Store, StoreError, Written,
};

/// An in-memory store. Cheap to create; nothing survives the value.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<StorageKey, Object>>,
    counter: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<StorageKey, Object>> {
        // The map is only mutated by single inserts/removes, so it is consistent even if a
        // holder panicked.
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_meta(&self, size: u64) -> ObjectMeta {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        ObjectMeta {
            size,
            etag: format!("\"m-{n:x}\""),
            last_modified: SystemTime::now(),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &StorageKey) -> Result<Option<Object>, StoreError> {
        Ok(self.objects().get(key).cloned())
    }

    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>, StoreError> {
        Ok(self.objects().get(key).map(|o| o.meta.clone()))
    }

    async fn put(
        &self,
        key: &StorageKey,
        body: Bytes,
        mode: PutMode,
    ) -> Result<Written, StoreError> {
        let mut objects = self.objects();
        match (&mode, objects.get(key)) {
            (PutMode::CreateOnly, Some(_)) => return Err(StoreError::AlreadyExists),
            (PutMode::IfMatch(_), None) => return Err(StoreError::PreconditionFailed),
            (PutMode::IfMatch(etag), Some(cur)) if cur.meta.etag != *etag => {
                return Err(StoreError::PreconditionFailed);
            }
            _ => {}
        }
        let meta = self.next_meta(body.len() as u64);
        objects.insert(
            key.clone(),
            Object {
                meta: meta.clone(),
                body,
            },
        );
        Ok(meta.into())
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool, StoreError> {
        Ok(self.objects().remove(key).is_some())
    }

    async fn list(&self, prefix: &KeyPrefix) -> Result<Vec<ListEntry>, StoreError> {
        let mut entries: Vec<ListEntry> = self
            .objects()
            .iter()
            .filter(|(k, _)| prefix.matches(k))
            .map(|(k, o)| ListEntry {
                key: k.clone(),
                size: o.meta.size,
                etag: o.meta.etag.clone(),
                last_modified: o.meta.last_modified,
            })
            .collect();
        entries.sort_by_cached_key(|e| e.key.path());
        Ok(entries)
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}
