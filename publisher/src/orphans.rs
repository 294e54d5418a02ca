//! Removing the orphan tarballs of publishes killed between the tarball write and the package
//! file write (the tarball is written first so that no index ever names a missing object; a
//! crash right after it leaves a tarball no package file lists, which `verify` reports).

use crate::index::HostedRepo;
use hexyard_common::storage::{KeyPrefix, StorageKey, Store};
use std::time::{Duration, SystemTime};

/// Deletes every tarball of `repo` older than `older_than` whose package file does not list
/// its release; returns how many. A younger one may belong to a publish in flight in another
/// process, whose package file write follows within that age (the same bound under which a
/// publish replaces an orphan, `api::publish::ORPHAN_AGE`).
pub async fn remove_orphan_tarballs(
    store: &dyn Store,
    repo: &HostedRepo,
    older_than: Duration,
) -> anyhow::Result<usize> {
    let now = SystemTime::now();
    let mut removed = 0;
    for e in store.list(&KeyPrefix::tarballs(&repo.name)?).await? {
        let StorageKey::Tarball { name, version, .. } = &e.key else {
            continue;
        };
        let old = now
            .duration_since(e.last_modified)
            .is_ok_and(|age| age > older_than);
        if !old {
            continue;
        }
        let listed = repo
            .read_package(store, name.as_str())
            .await
            .map_err(|e| anyhow::anyhow!("reading packages/{name}: {e:?}"))?
            .package
            .is_some_and(|p| p.releases.iter().any(|r| r.version == version.as_str()));
        if !listed && store.delete(&e.key).await? {
            tracing::warn!(repo = %repo.name, key = %e.key.path(),
                "removed the tarball of an interrupted publish (no package file lists it)");
            removed += 1;
        }
    }
    Ok(removed)
}
