//! Keeping a hosted repository's signed registry files in step with its releases.
//!
//! Every change goes through [`HostedRepo::change_package`], which
//! 1. reads and verifies `packages/<name>` and lets the caller compute the new package
//!    (or refuse the change),
//! 2. writes it with a conditional put on the ETag it read (create-only when absent),
//! 3. then rewrites `versions` and `names` the same way.
//!
//! A conflict (another publisher process wrote in between) re-reads and re-applies the change,
//! so no update is ever lost. Inside one process, changes to one repository are serialised by
//! the repo's mutex, which also guards the cached decoded `versions`/`names` (reused as long as
//! their ETag is the one this process wrote last, so a publish does not re-decode a large index).

use crate::error::ApiError;
use bytes::Bytes;
use hexyard_common::registry::{self, proto};
use hexyard_common::signing::{SigningKey, VerifyingKey};
use hexyard_common::storage::{PutMode, StorageKey, Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// How often a conflicting conditional write is retried before giving up with a 503.
const MAX_ATTEMPTS: usize = 32;

/// A hosted repository: its name, key and index state.
pub struct HostedRepo {
    pub name: String,
    /// Shared, so that signing can run off the request's thread.
    pub key: Arc<SigningKey>,
    pub verifying: VerifyingKey,
    /// `false`: reads need a key with read access.
    pub public: bool,
    /// How long after publishing a release may be replaced or reverted (`None`: always).
    pub replace_window: Option<Duration>,
    state: Mutex<IndexState>,
}

#[derive(Default)]
struct IndexState {
    versions: Option<Cached<proto::Versions>>,
    names: Option<Cached<proto::Names>>,
}

struct Cached<T> {
    /// ETag of the stored object this value came from; `None` when the object did not exist.
    etag: Option<String>,
    value: T,
}

/// The package file as read, with the ETag to write against.
#[derive(Clone, Debug)]
pub struct Current {
    pub etag: Option<String>,
    pub package: Option<proto::Package>,
}

/// Held while a change to the repository is in progress (serialises changes in-process).
pub struct RepoGuard<'a> {
    repo: &'a HostedRepo,
    state: tokio::sync::MutexGuard<'a, IndexState>,
}

fn key_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("invalid name: {e}"))
}

/// Now as a registry timestamp.
pub fn now_timestamp() -> proto::Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    proto::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

impl HostedRepo {
    pub fn new(
        name: String,
        key: SigningKey,
        public: bool,
        replace_window: Option<Duration>,
    ) -> Self {
        let verifying = key.verifying_key();
        HostedRepo {
            name,
            key: Arc::new(key),
            verifying,
            public,
            replace_window,
            state: Mutex::new(IndexState::default()),
        }
    }

    /// Takes the repository's write lock.
    pub async fn lock(&self) -> RepoGuard<'_> {
        RepoGuard {
            repo: self,
            state: self.state.lock().await,
        }
    }

    /// Reads and verifies `packages/<name>` (no lock needed: files are replaced atomically).
    pub async fn read_package(&self, store: &dyn Store, name: &str) -> Result<Current, ApiError> {
        let key = StorageKey::package(&self.name, name).map_err(key_err)?;
        match store.get(&key).await.map_err(ApiError::store)? {
            None => Ok(Current {
                etag: None,
                package: None,
            }),
            Some(obj) => {
                let pkg = registry::decode_package(&obj.body, &self.verifying, &self.name, name)
                    .map_err(|e| {
                        tracing::error!(repo = %self.name, package = name, error = %e,
                            "stored package file does not verify");
                        ApiError::internal()
                    })?;
                // A package file with no releases is the tombstone of a revert (see
                // `change_package`): the package does not exist, but writes must match its ETag.
                Ok(Current {
                    etag: Some(obj.meta.etag),
                    package: (!pkg.releases.is_empty()).then_some(pkg),
                })
            }
        }
    }

    /// Reads and verifies `versions` (empty when absent).
    async fn read_versions(&self, store: &dyn Store) -> Result<Cached<proto::Versions>, ApiError> {
        let key = StorageKey::versions(&self.name).map_err(key_err)?;
        match store.get(&key).await.map_err(ApiError::store)? {
            None => Ok(Cached {
                etag: None,
                value: proto::Versions {
                    packages: vec![],
                    repository: self.name.clone(),
                },
            }),
            Some(obj) => {
                let v = registry::decode_versions(&obj.body, &self.verifying, &self.name)
                    .map_err(|e| {
                        tracing::error!(repo = %self.name, error = %e, "stored versions does not verify");
                        ApiError::internal()
                    })?;
                Ok(Cached {
                    etag: Some(obj.meta.etag),
                    value: v,
                })
            }
        }
    }

    async fn read_names(&self, store: &dyn Store) -> Result<Cached<proto::Names>, ApiError> {
        let key = StorageKey::names(&self.name).map_err(key_err)?;
        match store.get(&key).await.map_err(ApiError::store)? {
            None => Ok(Cached {
                etag: None,
                value: proto::Names {
                    packages: vec![],
                    repository: self.name.clone(),
                },
            }),
            Some(obj) => {
                let v = registry::decode_names(&obj.body, &self.verifying, &self.name).map_err(
                    |e| {
                        tracing::error!(repo = %self.name, error = %e, "stored names does not verify");
                        ApiError::internal()
                    },
                )?;
                Ok(Cached {
                    etag: Some(obj.meta.etag),
                    value: v,
                })
            }
        }
    }

    fn sign<M: prost::Message>(&self, msg: &M) -> Result<Bytes, ApiError> {
        registry::encode_signed(msg, &self.key)
            .map(Bytes::from)
            .map_err(|e| self.sign_failed(&e))
    }

    fn sign_failed(&self, e: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(repo = %self.name, error = %e, "signing failed");
        ApiError::internal()
    }

    /// [`Self::sign`] on the blocking pool, so that the two indexes of one change (each an
    /// encode, a gzip and an RSA signature, a few milliseconds for a large repository) are
    /// signed on two cores at once. Hands `msg` back.
    async fn sign_off_thread<M>(&self, msg: M) -> Result<(M, Bytes), ApiError>
    where
        M: prost::Message + Send + 'static,
    {
        let key = self.key.clone();
        let (msg, signed) = tokio::task::spawn_blocking(move || {
            let signed = registry::encode_signed(&msg, &key);
            (msg, signed)
        })
        .await
        .map_err(|e| self.sign_failed(&e))?;
        let signed = signed.map_err(|e| self.sign_failed(&e))?;
        Ok((msg, Bytes::from(signed)))
    }

    /// One index's compare-and-set for a change of package `name`: `edit` the cached copy (or,
    /// without one or after a conflict, a fresh `read`) with the package file, sign it and
    /// write it against the ETag it came from; up to `MAX_ATTEMPTS` times. The package file is
    /// `written` (what this process just wrote, `Some(None)`: removed) for a cached index, and
    /// read from the store for a fresh one (see `update_indexes_after`).
    async fn write_index<T, R>(
        &self,
        store: &dyn Store,
        key: &StorageKey,
        (name, written): (&str, Option<Option<&proto::Package>>),
        mut cached: Option<Cached<T>>,
        read: impl Fn() -> R,
        edit: impl Fn(&mut T, Option<&proto::Package>),
    ) -> Result<Cached<T>, ApiError>
    where
        T: prost::Message + Send + 'static,
        R: std::future::Future<Output = Result<Cached<T>, ApiError>>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let (mut current, known) = match cached.take() {
                Some(c) => (c, written),
                None => (read().await?, None),
            };
            let current_file;
            let package = match known {
                Some(p) => p,
                None => {
                    current_file = self.read_package(store, name).await?;
                    current_file.package.as_ref()
                }
            };
            edit(&mut current.value, package);
            let (value, body) = self.sign_off_thread(current.value).await?;
            if let Some(etag) = put_conditional(store, key, body, current.etag.as_deref()).await? {
                return Ok(Cached {
                    etag: Some(etag),
                    value,
                });
            }
        }
        Err(conflict())
    }
}

/// Writes `body` conditionally: create-only when `etag` is `None`, else if-match.
/// `Ok(None)` on a conflict (the caller re-reads), the new ETag on success.
async fn put_conditional(
    store: &dyn Store,
    key: &StorageKey,
    body: Bytes,
    etag: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let mode = match etag {
        None => PutMode::CreateOnly,
        Some(e) => PutMode::IfMatch(e.to_owned()),
    };
    match store.put(key, body, mode).await {
        Ok(meta) => Ok(Some(meta.etag)),
        Err(StoreError::AlreadyExists | StoreError::PreconditionFailed) => Ok(None),
        Err(e) => Err(ApiError::store(e)),
    }
}

fn conflict() -> ApiError {
    ApiError::unavailable("too many concurrent changes to this repository; retry")
}

/// The `/versions` entry of a package: its versions in release order, retired indexes into
/// that list.
pub fn versions_entry(pkg: &proto::Package) -> proto::VersionsPackage {
    proto::VersionsPackage {
        name: pkg.name.clone(),
        versions: pkg.releases.iter().map(|r| r.version.clone()).collect(),
        retired: pkg
            .releases
            .iter()
            .enumerate()
            .filter(|(_, r)| r.retired.is_some())
            .filter_map(|(i, _)| i32::try_from(i).ok())
            .collect(),
        with_advisories: vec![],
    }
}

/// Replaces (or removes, with `None`) the entry for `name` in a list sorted by name.
fn upsert_sorted<T>(list: &mut Vec<T>, name: &str, entry: Option<T>, key: impl Fn(&T) -> &str) {
    match list.binary_search_by(|e| key(e).cmp(name)) {
        Ok(i) => match entry {
            Some(e) => list[i] = e,
            None => {
                list.remove(i);
            }
        },
        Err(i) => {
            if let Some(e) = entry {
                list.insert(i, e);
            }
        }
    }
}

impl RepoGuard<'_> {
    /// Applies `change` to `packages/<name>` and then to `versions` and `names`.
    ///
    /// `change` gets the current package (`None` if absent) and returns the new one (`None`
    /// deletes it) or an error that aborts the whole change (nothing written). It may be called
    /// again after a conflicting write by another process, with the fresh package.
    /// Returns the package as written.
    pub async fn change_package<F>(
        &mut self,
        store: &dyn Store,
        name: &str,
        change: F,
    ) -> Result<Option<proto::Package>, ApiError>
    where
        F: FnMut(Option<proto::Package>) -> Result<Option<proto::Package>, ApiError>,
    {
        self.change_package_from(store, name, None, change).await
    }

    /// [`Self::change_package`] starting from `known`, the package file as the caller just
    /// read it (one read fewer; a stale `known` only costs a conflict and a re-read, as the
    /// write is conditional on its ETag).
    pub async fn change_package_from<F>(
        &mut self,
        store: &dyn Store,
        name: &str,
        mut known: Option<Current>,
        mut change: F,
    ) -> Result<Option<proto::Package>, ApiError>
    where
        F: FnMut(Option<proto::Package>) -> Result<Option<proto::Package>, ApiError>,
    {
        let repo = self.repo;
        let key = StorageKey::package(&repo.name, name).map_err(key_err)?;
        let mut written = None;
        let mut tombstone = None;
        let mut done = false;
        for _ in 0..MAX_ATTEMPTS {
            let current = match known.take() {
                Some(c) => c,
                None => repo.read_package(store, name).await?,
            };
            let next = change(current.package.clone())?;
            // Removing the package is a conditional write too: a package file without releases
            // (a tombstone), deleted once the indexes no longer name the package. A plain
            // delete could drop a release another process published in between.
            let to_write = match &next {
                Some(pkg) => pkg.clone(),
                None if current.package.is_none() => {
                    done = true;
                    break;
                }
                None => proto::Package {
                    releases: vec![],
                    name: name.to_owned(),
                    repository: repo.name.clone(),
                    advisories: vec![],
                },
            };
            let body = repo.sign(&to_write)?;
            let Some(etag) = put_conditional(store, &key, body, current.etag.as_deref()).await?
            else {
                continue;
            };
            if next.is_none() {
                tombstone = Some(etag);
            }
            written = next;
            done = true;
            break;
        }
        if !done {
            return Err(conflict());
        }
        self.update_indexes_after(store, name, Some(written.as_ref()))
            .await?;
        if let Some(etag) = tombstone {
            // Only if nobody wrote the package again meanwhile.
            if store
                .head(&key)
                .await
                .map_err(ApiError::store)?
                .is_some_and(|m| m.etag == etag)
            {
                store.delete(&key).await.map_err(ApiError::store)?;
            }
        }
        Ok(written)
    }

    /// Rewrites `versions` and `names` for one package from its package file as stored now.
    ///
    /// The entry is taken from a fresh read of `packages/<name>` on every attempt, made after
    /// the index being rewritten was read (or taken from the cache, whose ETag the conditional
    /// write checks). A package file written by another process after that read is followed
    /// by that process's own index update, which then either fails our conditional write or
    /// comes after it; so no release ever goes missing from `versions`/`names`. (Deriving the
    /// entry from the package this process wrote, as before, let a slower process overwrite a
    /// newer entry: publish A writes `[v1, v2]`, publish B writes `[v1, v2, v3]` and its
    /// `versions`, then A re-reads `versions` after its conflict and writes `[v1, v2]` back.)
    pub async fn update_indexes(&mut self, store: &dyn Store, name: &str) -> Result<(), ApiError> {
        self.update_indexes_after(store, name, None).await
    }

    /// [`Self::update_indexes`] right after this process wrote the package file as `written`
    /// (`Some(None)`: removed). While an index comes from this process's cache, its snapshot
    /// predates that write, so `written` is as good as a fresh read: a later write of the
    /// package file by another process is followed by that process's own index update, which
    /// either fails our conditional write (we then re-read both) or comes after it. An index
    /// read from the store now is paired with a fresh read of the package file, as above.
    async fn update_indexes_after(
        &mut self,
        store: &dyn Store,
        name: &str,
        written: Option<Option<&proto::Package>>,
    ) -> Result<(), ApiError> {
        let repo = self.repo;
        let vkey = StorageKey::versions(&repo.name).map_err(key_err)?;
        let nkey = StorageKey::names(&repo.name).map_err(key_err)?;
        let updated_at = now_timestamp();
        // The two indexes are independent: both writes are in flight at once (one round trip
        // instead of two on S3). A crash in between leaves at most one of them updated, which
        // `reconcile` repairs (the package file is newer than the index left behind).
        let (versions, names) = tokio::join!(
            repo.write_index(
                store,
                &vkey,
                (name, written),
                self.state.versions.take(),
                || repo.read_versions(store),
                |value: &mut proto::Versions, package| {
                    let entry = package.map(versions_entry);
                    upsert_sorted(&mut value.packages, name, entry, |p| p.name.as_str());
                },
            ),
            repo.write_index(
                store,
                &nkey,
                (name, written),
                self.state.names.take(),
                || repo.read_names(store),
                |value: &mut proto::Names, package| {
                    let entry = package.map(|_| proto::NamesPackage {
                        name: name.to_owned(),
                        updated_at: Some(updated_at),
                    });
                    upsert_sorted(&mut value.packages, name, entry, |p| p.name.as_str());
                },
            ),
        );
        let versions = versions.map(|c| self.state.versions = Some(c));
        let names = names.map(|c| self.state.names = Some(c));
        versions.and(names)
    }

    /// Brings `versions` and `names` in line with the package files after a crash between a
    /// package file write and the index writes that follow it (a publisher killed there leaves
    /// a release in `packages/<name>` that the indexes do not list yet). Cheap: one listing and
    /// the indexes' metadata; only packages whose file is not older than `versions`, newer
    /// than `names`, or whose presence differs between the listing and the indexes, are
    /// re-derived. (`versions` and `names` are written at once after the package file, so a
    /// crash can leave either one behind; a file newer than `names` is how `names` alone
    /// behind shows, its entry still listing the package with an old `updated_at`.) Returns
    /// how many packages were repaired.
    pub async fn reconcile(&mut self, store: &dyn Store) -> Result<usize, ApiError> {
        let repo = self.repo;
        let vkey = StorageKey::versions(&repo.name).map_err(key_err)?;
        let Some(vmeta) = store.head(&vkey).await.map_err(ApiError::store)? else {
            return Ok(0);
        };
        let nkey = StorageKey::names(&repo.name).map_err(key_err)?;
        let names_written = store
            .head(&nkey)
            .await
            .map_err(ApiError::store)?
            .map(|m| m.last_modified);
        let listed = store
            .list(&hexyard_common::storage::KeyPrefix::packages(&repo.name).map_err(key_err)?)
            .await
            .map_err(ApiError::store)?;
        let versions = repo.read_versions(store).await?.value;
        let names = repo.read_names(store).await?.value;
        let mut stale: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let mut files = std::collections::BTreeSet::new();
        let mut names_behind = std::collections::BTreeSet::new();
        for e in &listed {
            if let StorageKey::Package { name, .. } = &e.key {
                files.insert(name.to_string());
                if e.last_modified >= vmeta.last_modified {
                    stale.insert(name.to_string());
                }
                if names_written.is_some_and(|t| e.last_modified > t) {
                    names_behind.insert(name.to_string());
                    stale.insert(name.to_string());
                }
            }
        }
        for p in &versions.packages {
            if !files.contains(&p.name) {
                stale.insert(p.name.clone());
            }
        }
        let in_versions: std::collections::BTreeSet<&str> =
            versions.packages.iter().map(|p| p.name.as_str()).collect();
        let in_names: std::collections::BTreeSet<&str> =
            names.packages.iter().map(|p| p.name.as_str()).collect();
        for name in &files {
            if !in_versions.contains(name.as_str()) || !in_names.contains(name.as_str()) {
                stale.insert(name.clone());
            }
        }
        let mut repaired = 0;
        for name in &stale {
            let entry = repo
                .read_package(store, name)
                .await?
                .package
                .as_ref()
                .map(versions_entry);
            let current = versions.packages.iter().find(|p| &p.name == name);
            let listed_in_names = in_names.contains(name.as_str());
            if entry.as_ref() != current
                || entry.is_some() != listed_in_names
                || names_behind.contains(name)
            {
                self.update_indexes(store, name).await?;
                repaired += 1;
            }
        }
        Ok(repaired)
    }

    /// Replaces `versions` and `names` wholesale (rebuild), unconditionally.
    pub async fn write_full_indexes(
        &mut self,
        store: &dyn Store,
        versions: proto::Versions,
        names: proto::Names,
    ) -> Result<(), ApiError> {
        let repo = self.repo;
        let vkey = StorageKey::versions(&repo.name).map_err(key_err)?;
        let nkey = StorageKey::names(&repo.name).map_err(key_err)?;
        let meta = store
            .put(&vkey, repo.sign(&versions)?, PutMode::Overwrite)
            .await
            .map_err(ApiError::store)?;
        self.state.versions = Some(Cached {
            etag: Some(meta.etag),
            value: versions,
        });
        let meta = store
            .put(&nkey, repo.sign(&names)?, PutMode::Overwrite)
            .await
            .map_err(ApiError::store)?;
        self.state.names = Some(Cached {
            etag: Some(meta.etag),
            value: names,
        });
        Ok(())
    }

    /// Forgets cached indexes (after a write elsewhere).
    pub fn invalidate(&mut self) {
        self.state.versions = None;
        self.state.names = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hexyard_common::storage::MemoryStore;

    /// Public repo "r" with the fixtures' key, as a fresh process sees it (no cached index).
    fn repo() -> HostedRepo {
        let pem = std::fs::read_to_string(
            hexyard_common::testing::fixtures_dir().join("keys/private_key.pem"),
        )
        .unwrap();
        HostedRepo::new("r".into(), SigningKey::from_pem(&pem).unwrap(), true, None)
    }

    /// [`repo`] after a complete publish of foo 1.0.0 into `store`.
    async fn repo_with_foo(store: &MemoryStore) -> HostedRepo {
        let a = repo();
        a.lock()
            .await
            .change_package(store, "foo", add("1.0.0"))
            .await
            .unwrap();
        a
    }

    /// The package-file half of a publish of `name` `version` by `a` (no index written), as
    /// a process killed before its index writes leaves it. Returns the package written.
    async fn write_package_file(
        a: &HostedRepo,
        store: &MemoryStore,
        name: &str,
        version: &str,
    ) -> proto::Package {
        let cur = a.read_package(store, name).await.unwrap();
        let mut pkg = cur.package.unwrap_or(proto::Package {
            releases: vec![],
            name: name.into(),
            repository: "r".into(),
            advisories: vec![],
        });
        pkg.releases.push(release(version));
        registry::sort_releases(&mut pkg.releases);
        let key = StorageKey::package("r", name).unwrap();
        put_conditional(store, &key, a.sign(&pkg).unwrap(), cur.etag.as_deref())
            .await
            .unwrap()
            .unwrap();
        pkg
    }

    fn release(version: &str) -> proto::Release {
        proto::Release {
            version: version.to_owned(),
            inner_checksum: vec![0; 32],
            dependencies: vec![],
            retired: None,
            outer_checksum: Some(vec![1; 32]),
            advisory_indexes: vec![],
            published_at: Some(now_timestamp()),
        }
    }

    fn add(
        version: &str,
    ) -> impl FnMut(Option<proto::Package>) -> Result<Option<proto::Package>, ApiError> {
        let version = version.to_owned();
        move |cur| {
            let mut p = cur.unwrap_or_else(|| proto::Package {
                releases: vec![],
                name: "foo".into(),
                repository: "r".into(),
                advisories: vec![],
            });
            p.releases.push(release(&version));
            registry::sort_releases(&mut p.releases);
            Ok(Some(p))
        }
    }

    /// Two processes (two `HostedRepo`s on one store): A writes its package file, B publishes
    /// a newer version completely, then A updates the indexes. B's version must survive.
    #[tokio::test]
    async fn a_slow_index_update_does_not_drop_a_newer_release() {
        let store = MemoryStore::new();
        let a = repo_with_foo(&store).await;
        let b = repo();

        // A: the package-file half of a publish of 2.0.0 ...
        write_package_file(&a, &store, "foo", "2.0.0").await;
        // ... B publishes 3.0.0 completely ...
        b.lock()
            .await
            .change_package(&store, "foo", add("3.0.0"))
            .await
            .unwrap();
        // ... then A's index half.
        a.lock().await.update_indexes(&store, "foo").await.unwrap();

        let v = a.read_versions(&store).await.unwrap().value;
        assert_eq!(v.packages.len(), 1);
        assert_eq!(v.packages[0].versions, ["1.0.0", "2.0.0", "3.0.0"]);
        let n = a.read_names(&store).await.unwrap().value;
        assert_eq!(
            n.packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["foo"]
        );

        // Reverting everything through B while A's cache still lists foo: A's next update
        // (of another package) must not resurrect it, and foo's removal reaches names.
        let mut g = b.lock().await;
        for v in ["1.0.0", "2.0.0", "3.0.0"] {
            g.change_package(&store, "foo", |cur| {
                let mut p = cur.unwrap();
                p.releases.retain(|r| r.version != v);
                Ok((!p.releases.is_empty()).then_some(p))
            })
            .await
            .unwrap();
        }
        drop(g);
        a.lock()
            .await
            .change_package(&store, "bar", |_| {
                Ok(Some(proto::Package {
                    releases: vec![release("0.1.0")],
                    name: "bar".into(),
                    repository: "r".into(),
                    advisories: vec![],
                }))
            })
            .await
            .unwrap();
        let v = a.read_versions(&store).await.unwrap().value;
        assert_eq!(
            v.packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["bar"]
        );
        let n = a.read_names(&store).await.unwrap().value;
        assert_eq!(
            n.packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["bar"]
        );
    }

    /// Removing a package is a conditional write of a tombstone, deleted afterwards only if it
    /// is still the tombstone: a release published over it by another process survives.
    #[tokio::test]
    async fn a_publish_over_a_revert_tombstone_survives() {
        let store = MemoryStore::new();
        let a = repo();
        let pkey = StorageKey::package("r", "foo").unwrap();
        a.lock()
            .await
            .change_package(&store, "foo", add("1.0.0"))
            .await
            .unwrap();

        // A plain revert of the last release: no package file, no index entries.
        let gone = a
            .lock()
            .await
            .change_package(&store, "foo", |_| Ok(None))
            .await
            .unwrap();
        assert!(gone.is_none());
        assert!(store.get(&pkey).await.unwrap().is_none());
        assert!(
            a.read_versions(&store)
                .await
                .unwrap()
                .value
                .packages
                .is_empty()
        );
        assert!(
            a.read_names(&store)
                .await
                .unwrap()
                .value
                .packages
                .is_empty()
        );

        // A tombstone left in place (the reverting process stopped before deleting it) reads
        // as no package, and a publish writes over it with a conditional write.
        let tomb = proto::Package {
            releases: vec![],
            name: "foo".into(),
            repository: "r".into(),
            advisories: vec![],
        };
        let meta = store
            .put(&pkey, a.sign(&tomb).unwrap(), PutMode::CreateOnly)
            .await
            .unwrap();
        let cur = a.read_package(&store, "foo").await.unwrap();
        assert!(cur.package.is_none());
        assert_eq!(cur.etag.as_deref(), Some(meta.etag.as_str()));
        a.lock()
            .await
            .change_package(&store, "foo", add("2.0.0"))
            .await
            .unwrap();
        let v = a.read_versions(&store).await.unwrap().value;
        assert_eq!(v.packages[0].versions, ["2.0.0"]);
        assert_eq!(
            a.read_package(&store, "foo")
                .await
                .unwrap()
                .package
                .unwrap()
                .releases
                .len(),
            1
        );
    }

    /// A publisher killed between the package file and the index writes: `reconcile` (run at
    /// start-up) brings `versions` and `names` back in line; nothing else is rewritten.
    #[tokio::test]
    async fn reconcile_repairs_indexes_behind_their_package_files() {
        let store = MemoryStore::new();
        let a = repo_with_foo(&store).await;
        let vkey = StorageKey::versions("r").unwrap();
        let before = store.head(&vkey).await.unwrap().unwrap();
        assert_eq!(a.lock().await.reconcile(&store).await.unwrap(), 0);
        assert_eq!(store.head(&vkey).await.unwrap().unwrap().etag, before.etag);
        // The package-file half of two publishes, then the "crash".
        for (name, version) in [("foo", "2.0.0"), ("bar", "0.1.0")] {
            write_package_file(&a, &store, name, version).await;
        }
        // A fresh process (no cache) repairs both.
        let b = repo();
        assert_eq!(b.lock().await.reconcile(&store).await.unwrap(), 2);
        let v = b.read_versions(&store).await.unwrap().value;
        let got: Vec<(&str, Vec<String>)> = v
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.versions.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("bar", vec!["0.1.0".to_owned()]),
                ("foo", vec!["1.0.0".to_owned(), "2.0.0".to_owned()])
            ]
        );
        let n = b.read_names(&store).await.unwrap().value;
        assert_eq!(
            n.packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["bar", "foo"]
        );
        assert_eq!(b.lock().await.reconcile(&store).await.unwrap(), 0);
    }

    /// `versions` and `names` are written at once: a crash can leave `names` alone behind.
    /// For a package `names` already lists, that shows only as a package file newer than
    /// `names`; `reconcile` re-derives its entry (a new `updated_at`).
    #[tokio::test]
    async fn reconcile_repairs_names_left_behind() {
        let store = MemoryStore::new();
        let a = repo_with_foo(&store).await;
        let names_before = a.read_names(&store).await.unwrap();
        // The package file and `versions` of a second release, then the "crash".
        let pkg = write_package_file(&a, &store, "foo", "2.0.0").await;
        let pkey = StorageKey::package("r", "foo").unwrap();
        let file_written = store.head(&pkey).await.unwrap().unwrap().last_modified;
        let mut v = a.read_versions(&store).await.unwrap();
        upsert_sorted(
            &mut v.value.packages,
            "foo",
            Some(versions_entry(&pkg)),
            |p| p.name.as_str(),
        );
        let vkey = StorageKey::versions("r").unwrap();
        put_conditional(&store, &vkey, a.sign(&v.value).unwrap(), v.etag.as_deref())
            .await
            .unwrap()
            .unwrap();

        let b = repo();
        assert_eq!(b.lock().await.reconcile(&store).await.unwrap(), 1);
        let names = b.read_names(&store).await.unwrap();
        assert_ne!(names.etag, names_before.etag, "names was not rewritten");
        let entry = &names.value.packages[0];
        assert_eq!(entry.name, "foo");
        let updated = entry.updated_at.unwrap();
        let updated = UNIX_EPOCH
            + Duration::new(
                u64::try_from(updated.seconds).unwrap(),
                u32::try_from(updated.nanos).unwrap(),
            );
        assert!(updated >= file_written, "{updated:?} < {file_written:?}");
        assert_eq!(b.lock().await.reconcile(&store).await.unwrap(), 0);
    }
}
