//! The hot cache: recently served objects in memory (moka, weighed by size, bounded by
//! `proxy.cache_bytes`), keyed by store path. Entries remember when they were last checked
//! against the store so that mutable objects are revalidated after `proxy.revalidate_ms`.

use bytes::Bytes;
use moka::sync::Cache;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One cached object.
#[derive(Debug)]
pub struct Entry {
    pub body: Bytes,
    /// The store's ETag of these bytes (quoted).
    pub etag: String,
    /// Milliseconds since the cache's epoch of the last check against the store.
    checked_ms: AtomicU64,
}

impl Entry {
    pub fn age_ms(&self, cache: &HotCache) -> u64 {
        cache
            .now_ms()
            .saturating_sub(self.checked_ms.load(Ordering::Relaxed))
    }
    pub fn touch(&self, cache: &HotCache) {
        self.checked_ms.store(cache.now_ms(), Ordering::Relaxed);
    }
}

/// Per-entry bookkeeping counted against the budget besides the body.
const OVERHEAD: u64 = 256;

/// The cache.
pub struct HotCache {
    inner: Cache<String, Arc<Entry>>,
    epoch: Instant,
    /// Objects larger than this are not cached (served from the store each time).
    pub max_object: u64,
}

impl HotCache {
    pub fn new(budget_bytes: u64) -> Self {
        let inner = Cache::builder()
            .max_capacity(budget_bytes)
            .weigher(|_k: &String, v: &Arc<Entry>| {
                u32::try_from(v.body.len() as u64 + OVERHEAD).unwrap_or(u32::MAX)
            })
            .build();
        HotCache {
            inner,
            epoch: Instant::now(),
            max_object: (budget_bytes / 8).max(1),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn get(&self, path: &str) -> Option<Arc<Entry>> {
        self.inner.get(path)
    }

    /// Caches `body` under `path` (unless it is too large) and returns the entry.
    pub fn insert(&self, path: &str, body: Bytes, etag: String) -> Arc<Entry> {
        let e = Arc::new(Entry {
            body,
            etag,
            checked_ms: AtomicU64::new(self.now_ms()),
        });
        if (e.body.len() as u64) <= self.max_object {
            self.inner.insert(path.to_owned(), e.clone());
        }
        e
    }

    pub fn remove(&self, path: &str) {
        self.inner.invalidate(path);
    }

    /// Drops every entry whose path starts with `prefix` (a repository after a write).
    pub fn remove_prefix(&self, prefix: &str) {
        let keys: Vec<String> = self
            .inner
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| (*k).clone())
            .collect();
        for k in keys {
            self.inner.invalidate(&k);
        }
    }

    /// Bytes held (approximate; moka applies pending work lazily).
    pub fn weighted_size(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.weighted_size()
    }

    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_weight_and_prefix_invalidation() {
        let c = HotCache::new(64 * 1024);
        assert_eq!(c.max_object, 8 * 1024);
        let big = c.insert(
            "repos/a/tarballs/x-1.0.0.tar",
            Bytes::from(vec![0; 9000]),
            "\"1\"".into(),
        );
        assert_eq!(big.body.len(), 9000);
        assert!(
            c.get("repos/a/tarballs/x-1.0.0.tar").is_none(),
            "too large to cache"
        );
        for i in 0..100 {
            c.insert(
                &format!("repos/a/packages/p{i}"),
                Bytes::from(vec![1; 4000]),
                "\"e\"".into(),
            );
        }
        assert!(c.weighted_size() <= 64 * 1024);
        c.insert("repos/b/names", Bytes::from_static(b"x"), "\"n\"".into());
        c.insert("repos/ab/names", Bytes::from_static(b"x"), "\"n\"".into());
        c.remove_prefix("repos/b/");
        assert!(c.get("repos/b/names").is_none());
        assert!(c.get("repos/ab/names").is_some());
    }
}
