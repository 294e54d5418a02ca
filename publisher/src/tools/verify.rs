//! `verify`: audit what a store holds, repository by repository, without changing anything.
//!
//! For every repository (or the one asked for):
//! - every registry file (`names`, `versions`, `packages/<name>`) must verify: signature with
//!   the repo's key (a hosted repo's own key, from its private key file; a mirror's upstream
//!   key), origin (`repository` field) and, for package files, the name;
//! - a hosted repo's stored `public_key` must be its key's;
//! - every tarball's SHA-256 must be the outer checksum of its release in the package file;
//! - orphans: a tarball or docs tarball whose package file is missing or has no such release;
//! - dangling references: a hosted repo's package file naming a release whose tarball is
//!   missing, or `names` listing a package without a package file. (A mirror is a cache: a
//!   release not fetched yet is counted, not a problem.)
//!
//! Every problem names the object. The caller exits non-zero when there is any.

use super::Progress;
use hexyard_common::config::{Config, RepoConfig};
use hexyard_common::registry::{self, proto};
use hexyard_common::signing::{SigningKey, VerifyingKey};
use hexyard_common::storage::{KeyPrefix, StorageKey, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The object (store path) concerned.
    pub path: String,
    /// What is wrong.
    pub what: String,
}

/// The audit of one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoAudit {
    /// Repository name.
    pub repo: String,
    /// `hosted` or `mirror`.
    pub kind: &'static str,
    /// Registry files checked.
    pub registry_files: usize,
    /// Tarballs checked.
    pub tarballs: usize,
    /// Docs tarballs checked.
    pub docs: usize,
    /// Mirror releases whose tarball is not cached (not a problem).
    pub not_cached: usize,
    /// Problems.
    pub problems: Vec<Problem>,
}

/// Why the audit could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Unknown repository.
    #[error("no repository named {0:?} in the config")]
    UnknownRepo(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

enum Trust {
    Key(VerifyingKey),
    /// The key could not be loaded: every signature check is a problem.
    Missing(String),
}

fn repo_key(config: &Config, repo: &str) -> (Trust, String, &'static str) {
    match config.repos.get(repo) {
        Some(RepoConfig::Hosted(h)) => {
            let trust = match std::fs::read_to_string(&h.private_key) {
                Ok(pem) => match SigningKey::from_pem(&pem) {
                    Ok(k) => Trust::Key(k.verifying_key()),
                    Err(e) => Trust::Missing(format!("{}: {e}", h.private_key.display())),
                },
                Err(e) => Trust::Missing(format!("{}: {e}", h.private_key.display())),
            };
            (trust, repo.to_owned(), "hosted")
        }
        Some(RepoConfig::Mirror(m)) => {
            let trust = match m.upstream.public_key.pem() {
                Ok(pem) => match VerifyingKey::from_pem(&pem) {
                    Ok(k) => Trust::Key(k),
                    Err(e) => Trust::Missing(format!("upstream public key: {e}")),
                },
                Err(e) => Trust::Missing(format!("upstream public key: {e}")),
            };
            (trust, m.upstream.name.clone(), "mirror")
        }
        None => (
            Trust::Missing("not configured".into()),
            repo.to_owned(),
            "unknown",
        ),
    }
}

/// Audits `repo` (or every configured repository).
///
/// # Errors
/// [`VerifyError::UnknownRepo`], [`VerifyError::Store`] when listing or reading fails.
pub async fn verify(
    config: &Config,
    store: &dyn Store,
    repo: Option<&str>,
) -> Result<Vec<RepoAudit>, VerifyError> {
    let repos: Vec<String> = match repo {
        Some(r) if config.repos.contains_key(r) => vec![r.to_owned()],
        Some(r) => return Err(VerifyError::UnknownRepo(r.to_owned())),
        None => config.repos.keys().cloned().collect(),
    };
    let mut out = Vec::new();
    for r in repos {
        out.push(audit(config, store, &r).await?);
    }
    Ok(out)
}

async fn audit(config: &Config, store: &dyn Store, repo: &str) -> Result<RepoAudit, VerifyError> {
    let (trust, origin, kind) = repo_key(config, repo);
    let hosted = kind == "hosted";
    let mut a = RepoAudit {
        repo: repo.to_owned(),
        kind,
        ..RepoAudit::default()
    };
    let mut problem = |path: &str, what: String| {
        a.problems.push(Problem {
            path: path.to_owned(),
            what,
        });
    };
    let key = match trust {
        Trust::Key(k) => Some(k),
        Trust::Missing(why) => {
            problem(
                &format!("repos/{repo}"),
                format!("cannot load the repository key: {why}"),
            );
            None
        }
    };
    let list = store
        .list(&KeyPrefix::repo(repo).map_err(StoreError::from)?)
        .await?;
    let progress = Progress::new(&format!("verify {repo}"));
    progress.grow(list.len() as u64);

    let mut packages: BTreeMap<String, proto::Package> = BTreeMap::new();
    let mut names_listed: Vec<String> = Vec::new();
    let mut tarballs: BTreeSet<(String, String)> = BTreeSet::new();
    let mut counts = (0usize, 0usize, 0usize);
    // Registry files first.
    for e in &list {
        let path = e.key.path();
        let is_registry = matches!(
            e.key,
            StorageKey::Names { .. } | StorageKey::Versions { .. } | StorageKey::Package { .. }
        );
        if is_registry {
            counts.0 += 1;
        }
        if let (true, Some(k)) = (is_registry, &key) {
            let Some(obj) = store.get(&e.key).await? else {
                continue; // deleted meanwhile
            };
            let r = match &e.key {
                StorageKey::Names { .. } => registry::decode_names(&obj.body, k, &origin)
                    .map(|n| names_listed = n.packages.into_iter().map(|p| p.name).collect()),
                StorageKey::Versions { .. } => {
                    registry::decode_versions(&obj.body, k, &origin).map(|_| ())
                }
                StorageKey::Package { name, .. } => {
                    registry::decode_package(&obj.body, k, &origin, name.as_str()).map(|p| {
                        packages.insert(name.to_string(), p);
                    })
                }
                _ => Ok(()),
            };
            if let Err(e) = r {
                problem(&path, format!("registry file does not verify: {e}"));
            }
        }
        if let (StorageKey::PublicKey { .. }, true, Some(k)) = (&e.key, hosted, &key)
            && let Some(obj) = store.get(&e.key).await?
        {
            let ok = VerifyingKey::from_pem(&String::from_utf8_lossy(&obj.body))
                .is_ok_and(|stored| &stored == k);
            if !ok {
                problem(
                    &path,
                    "is not the public key of the repository's signing key".into(),
                );
            }
        }
        if is_registry {
            progress.step(&path);
        }
    }
    // Tarballs and docs against the package files.
    for e in &list {
        let path = e.key.path();
        match &e.key {
            StorageKey::Tarball { name, version, .. } => {
                counts.1 += 1;
                tarballs.insert((name.to_string(), version.to_string()));
                progress.step(&path);
                let Some(release) = packages
                    .get(name.as_str())
                    .and_then(|p| p.releases.iter().find(|r| r.version == version.as_str()))
                else {
                    problem(
                        &path,
                        format!(
                            "orphan: no verified package file of {name} lists release {version}"
                        ),
                    );
                    continue;
                };
                let Some(obj) = store.get(&e.key).await? else {
                    continue;
                };
                let sha = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &obj.body);
                if release.outer_checksum.as_deref() != Some(sha.as_ref()) {
                    problem(
                        &path,
                        format!(
                            "checksum mismatch: SHA-256 {} is not the outer checksum {} of the package file",
                            hex::encode(sha.as_ref()),
                            release
                                .outer_checksum
                                .as_deref()
                                .map(hex::encode)
                                .unwrap_or_else(|| "(none)".into())
                        ),
                    );
                }
            }
            StorageKey::Docs { name, version, .. } => {
                counts.2 += 1;
                progress.step(&path);
                let known = packages
                    .get(name.as_str())
                    .is_some_and(|p| p.releases.iter().any(|r| r.version == version.as_str()));
                if !known {
                    problem(
                        &path,
                        format!(
                            "orphan: no verified package file of {name} lists release {version}"
                        ),
                    );
                }
            }
            StorageKey::PublicKey { .. } => progress.step(&path),
            _ => {}
        }
    }
    // Dangling references.
    let mut not_cached = 0;
    for (name, p) in &packages {
        for r in &p.releases {
            if !tarballs.contains(&(name.clone(), r.version.clone())) {
                if hosted {
                    problem(
                        &format!("repos/{repo}/packages/{name}"),
                        format!(
                            "dangling: release {} has no tarball (repos/{repo}/tarballs/{name}-{}.tar)",
                            r.version, r.version
                        ),
                    );
                } else {
                    not_cached += 1;
                }
            }
        }
    }
    if hosted {
        for n in &names_listed {
            if !packages.contains_key(n) {
                problem(
                    &format!("repos/{repo}/names"),
                    format!(
                        "dangling: lists {n} but repos/{repo}/packages/{n} is missing or does not verify"
                    ),
                );
            }
        }
    }
    progress.finish();
    a.registry_files = counts.0;
    a.tarballs = counts.1;
    a.docs = counts.2;
    a.not_cached = not_cached;
    Ok(a)
}
