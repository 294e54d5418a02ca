//! Rebuilding a hosted repository's indexes from its stored tarballs, and importing tarballs
//! from a directory (the output of `mix hex.registry build`, or mini_repo's data folder).
//!
//! A rebuild keeps what only the old index knew (retirements, publish times) for every release
//! whose tarball is unchanged, re-signs every package file, removes package files whose
//! tarballs are all gone, and rewrites `versions` and `names`.

use crate::app::App;
use crate::index::{HostedRepo, versions_entry};
use anyhow::Context;
use bytes::Bytes;
use hexyard_common::registry::{self, proto};
use hexyard_common::storage::{KeyPrefix, PutMode, StorageKey, StoreError};
use hexyard_common::tarball;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

/// What a rebuild did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub packages: usize,
    pub releases: usize,
    /// Tarballs that did not parse (kept in the store, left out of the index).
    pub skipped: Vec<String>,
    pub removed_packages: usize,
}

fn ts(t: std::time::SystemTime) -> proto::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    proto::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(0),
        nanos: 0,
    }
}

/// Rebuilds every index file of `repo` from its tarballs.
pub async fn rebuild(app: &App, repo: &HostedRepo) -> anyhow::Result<RebuildReport> {
    let start = Instant::now();
    let store = app.store.as_ref();
    let mut guard = repo.lock().await;
    let mut report = RebuildReport::default();
    let mut by_name: BTreeMap<String, Vec<proto::Release>> = BTreeMap::new();
    for entry in store.list(&KeyPrefix::tarballs(&repo.name)?).await? {
        let StorageKey::Tarball { .. } = &entry.key else {
            continue;
        };
        let Some(obj) = store.get(&entry.key).await? else {
            continue;
        };
        let tb = match tarball::parse(&obj.body, &app.limits) {
            Ok(tb) => tb,
            Err(e) => {
                tracing::warn!(key = %entry.key.path(), error = %e, "skipping a tarball that does not validate");
                report.skipped.push(entry.key.path());
                continue;
            }
        };
        // The key must agree with the content, or clients would get another release.
        let expected = StorageKey::tarball(&repo.name, &tb.name, &tb.version.to_string())?;
        if expected != entry.key {
            tracing::warn!(key = %entry.key.path(), "skipping a tarball stored under the wrong name");
            report.skipped.push(entry.key.path());
            continue;
        }
        let deps = tb
            .metadata
            .requirements
            .iter()
            .map(|r| proto::Dependency {
                package: r.name.clone(),
                requirement: r.requirement.clone(),
                optional: r.optional.then_some(true),
                app: r.app.clone().filter(|a| a != &r.name),
                repository: r.repository.clone().filter(|x| x != &repo.name),
            })
            .collect();
        by_name
            .entry(tb.name.clone())
            .or_default()
            .push(proto::Release {
                version: tb.version.to_string(),
                inner_checksum: tb.inner_checksum.to_vec(),
                dependencies: deps,
                retired: None,
                outer_checksum: Some(tb.outer_checksum.to_vec()),
                advisory_indexes: vec![],
                published_at: Some(ts(obj.meta.last_modified)),
            });
    }
    let mut packages = Vec::new();
    let mut names = Vec::new();
    for (name, releases) in by_name {
        // Keep what the old package file knew about unchanged releases.
        let old = repo
            .read_package(store, &name)
            .await
            .ok()
            .and_then(|c| c.package);
        let mut releases = releases;
        if let Some(old) = &old {
            for r in &mut releases {
                if let Some(o) = old
                    .releases
                    .iter()
                    .find(|o| o.version == r.version && o.outer_checksum == r.outer_checksum)
                {
                    r.retired = o.retired.clone();
                    r.published_at = o.published_at.or(r.published_at);
                    // Dependencies as resolved at publish time (repository) win.
                    r.dependencies = o.dependencies.clone();
                }
            }
        }
        let pkg = registry::build_package(&repo.name, &name, releases);
        let body = registry::encode_signed(&pkg, &repo.key)?;
        store
            .put(
                &StorageKey::package(&repo.name, &name)?,
                Bytes::from(body),
                PutMode::Overwrite,
            )
            .await?;
        report.releases += pkg.releases.len();
        let updated = pkg
            .releases
            .iter()
            .filter_map(|r| r.published_at)
            .max_by_key(|t| (t.seconds, t.nanos))
            .unwrap_or(proto::Timestamp {
                seconds: 0,
                nanos: 0,
            });
        names.push((name.clone(), updated));
        packages.push(pkg);
    }
    // Package files with no tarball left.
    for entry in store.list(&KeyPrefix::packages(&repo.name)?).await? {
        if let StorageKey::Package { name, .. } = &entry.key
            && !packages.iter().any(|p| p.name == name.as_str())
        {
            store.delete(&entry.key).await?;
            report.removed_packages += 1;
        }
    }
    report.packages = packages.len();
    let mut versions = registry::build_versions(&repo.name, &packages);
    // build_versions sorts and indexes retirements; make sure it agrees with versions_entry.
    debug_assert!(
        versions
            .packages
            .iter()
            .zip(&packages)
            .all(|(v, p)| v == &versions_entry(p))
    );
    versions.repository = repo.name.clone();
    let names = registry::build_names(&repo.name, names);
    guard
        .write_full_indexes(store, versions, names)
        .await
        .map_err(|e| anyhow::anyhow!("writing indexes: {e}"))?;
    app.metrics
        .rebuild_seconds
        .observe(start.elapsed().as_secs_f64());
    tracing::info!(repo = %repo.name, packages = report.packages, releases = report.releases,
        skipped = report.skipped.len(), ms = start.elapsed().as_millis() as u64, "index rebuilt");
    Ok(report)
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub added: usize,
    pub unchanged: usize,
    pub rejected: Vec<(PathBuf, String)>,
    pub rebuild: RebuildReport,
}

fn collect_tarballs(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> std::io::Result<()> {
    if depth > 8 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        let path = entry.path();
        if ft.is_dir() {
            collect_tarballs(&path, out, depth + 1)?;
        } else if ft.is_file() && path.extension().is_some_and(|e| e == "tar") {
            out.push(path);
        }
    }
    Ok(())
}

/// Imports every `*.tar` under `dir` (recursively) into `repo`, validating each like an
/// upload, then rebuilds the indexes. Tarballs already stored with the same bytes are left
/// alone; a different tarball for a stored version is refused (releases are immutable).
pub async fn import(app: &App, repo: &HostedRepo, dir: &Path) -> anyhow::Result<ImportReport> {
    let mut files = Vec::new();
    collect_tarballs(dir, &mut files, 0).with_context(|| format!("reading {}", dir.display()))?;
    files.sort();
    let store = app.store.as_ref();
    let mut report = ImportReport::default();
    for path in files {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let tb = match tarball::parse(&bytes, &app.limits) {
            Ok(tb) => tb,
            Err(e) => {
                report.rejected.push((path, e.to_string()));
                continue;
            }
        };
        let key = StorageKey::tarball(&repo.name, &tb.name, &tb.version.to_string())?;
        match store
            .put(&key, Bytes::from(bytes.clone()), PutMode::CreateOnly)
            .await
        {
            Ok(_) => report.added += 1,
            Err(StoreError::AlreadyExists) => {
                let same = store
                    .get(&key)
                    .await?
                    .is_some_and(|o| o.body.as_ref() == bytes.as_slice());
                if same {
                    report.unchanged += 1;
                } else {
                    report.rejected.push((
                        path,
                        format!(
                            "{} {} is already stored with different content",
                            tb.name, tb.version
                        ),
                    ));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    report.rebuild = rebuild(app, repo).await?;
    Ok(report)
}
