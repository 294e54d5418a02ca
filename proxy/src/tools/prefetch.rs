//! `prefetch`: fill a mirror's store with exactly what builds need: the signed package files
//! and the tarballs of the releases in lock files (`mix.lock`, `rebar.lock`), or of named
//! packages (`NAME` or `NAME@REQUIREMENT`) with their dependency closure.
//!
//! Every fetch goes through [`Hexyard::serve`], so it is verified exactly like a proxied miss
//! (registry signature and origin, tarball SHA-256 against the signed outer checksum,
//! allowlists) and stored the same way. Concurrent (bounded by `jobs`), resumable (what the
//! store already holds is checked and kept, not fetched again), retrying failed upstream
//! requests with exponential backoff. A lock's outer checksum must also match the tarball.
//!
//! The closure of a named package follows non-optional dependencies (optional ones are only
//! fetched by clients when something else requires them) in the mirror's upstream repository,
//! choosing for each requirement the highest matching stable release (a pre-release only
//! when nothing stable matches). A lock file already is a closure: its entries are taken as
//! they are.

use super::{Progress, mirror, sha256_hex};
use crate::route::Object;
use crate::serve::{Failure, Hexyard, Mirror, Served};
use futures::StreamExt;
use hexyard_common::lockfile;
use hexyard_common::registry::{self, proto};
use hexyard_common::requirement::Requirement;
use hexyard_common::storage::StorageKey;
use hexyard_common::version::compare_str;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Attempts per object before giving up.
const ATTEMPTS: u32 = 4;
/// Most packages visited when resolving a closure.
const CLOSURE_LIMIT: usize = 5_000;

/// What to prefetch.
#[derive(Debug, Clone, Default)]
pub struct PrefetchArgs {
    /// The mirror repository.
    pub mirror: String,
    /// Lock files (`mix.lock` / `rebar.lock`; the format is detected).
    pub locks: Vec<PathBuf>,
    /// Which lock repository this mirror serves (default: the mirror's upstream name,
    /// `hexpm`); lock entries of other repositories are skipped.
    pub lock_repo: Option<String>,
    /// `NAME` or `NAME@REQUIREMENT`.
    pub packages: Vec<String>,
    /// Concurrent fetches.
    pub jobs: usize,
}

/// What a prefetch did. Paths are store paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefetchReport {
    /// Objects fetched from the upstream (verified and stored).
    pub fetched: Vec<String>,
    /// Objects already stored (and verified).
    pub present: Vec<String>,
    /// Lock entries of other repositories, as `app (repo)`.
    pub skipped: Vec<String>,
    /// What could not be fetched, and why.
    pub failed: Vec<(String, String)>,
}

/// Why the prefetch cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PrefetchError {
    /// Unknown repo or not a mirror.
    #[error(transparent)]
    Tool(#[from] super::ToolError),
    /// The mirror is `offline: true`: nothing can be fetched.
    #[error(
        "mirror {0:?} is offline (offline: true): nothing can be fetched; import a bundle instead"
    )]
    Offline(String),
    /// A lock file could not be read.
    #[error("{path}: {why}")]
    Lock {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// A `--package` argument is malformed.
    #[error("--package {0:?}: {1}")]
    BadPackage(String, String),
    /// Nothing to do.
    #[error("nothing to prefetch: give --lock FILE or --package NAME[@REQ]")]
    Nothing,
}

/// Whether the package file was fetched or already stored.
enum Got {
    Fetched(proto::Package),
    Present(proto::Package),
}

struct Ctx {
    y: Arc<Hexyard>,
    m: Arc<Mirror>,
}

impl Ctx {
    async fn serve_retrying(&self, object: &Object) -> Result<Served, Failure> {
        let mut attempt = 0;
        loop {
            match self.y.serve(&self.m.name, object).await {
                Ok(s) => return Ok(s),
                Err(f) if f.status >= 500 && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(f) => return Err(f),
            }
        }
    }

    /// The verified package file of `name`, from the store when it holds one listing
    /// `need` (or any, without `need`), else from the upstream.
    async fn package(&self, name: &str, need: Option<&str>) -> Result<Got, String> {
        let upstream = &self.m.cfg.upstream.name;
        let key = StorageKey::package(&self.m.name, name).map_err(|e| e.to_string())?;
        if let Some(obj) = self.y.store.get(&key).await.map_err(|e| e.to_string())? {
            match registry::decode_package(&obj.body, &self.m.key, upstream, name) {
                Ok(p) if need.is_none_or(|v| p.releases.iter().any(|r| r.version == v)) => {
                    return Ok(Got::Present(p));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(object = %key, error = %e, "stored package file does not verify; fetching it again");
                }
            }
        }
        let served = self
            .serve_retrying(&Object::Package(name.to_owned()))
            .await
            .map_err(|f| f.message)?;
        let body = self
            .y
            .body_bytes(&served.loaded.body)
            .await
            .map_err(|f| f.message)?;
        let p = registry::decode_package(&body, &self.m.key, upstream, name)
            .map_err(|e| e.to_string())?;
        Ok(Got::Fetched(p))
    }

    /// Fetches (or checks) the tarball; `outer` is the lock's checksum, if any.
    async fn tarball(
        &self,
        name: &str,
        version: &str,
        outer: Option<&str>,
    ) -> Result<bool, String> {
        let key = StorageKey::tarball(&self.m.name, name, version).map_err(|e| e.to_string())?;
        let (body, fetched) = match self.y.store.get(&key).await.map_err(|e| e.to_string())? {
            Some(obj) => (obj.body, false),
            None => {
                let s = self
                    .serve_retrying(&Object::Tarball {
                        name: name.to_owned(),
                        version: version.to_owned(),
                    })
                    .await
                    .map_err(|f| f.message)?;
                let body = self.y.body_bytes(&s.loaded.body).await;
                (body.map_err(|f| f.message)?, true)
            }
        };
        if let Some(want) = outer {
            let got = sha256_hex(&body);
            if got != want {
                return Err(format!(
                    "SHA-256 {got} differs from the lock's outer checksum {want}"
                ));
            }
        }
        Ok(fetched)
    }
}

/// One release to fetch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    name: String,
    version: String,
    outer: Option<String>,
}

/// Runs a prefetch.
///
/// # Errors
/// [`PrefetchError`] when it cannot start; failures of single objects are in the report.
pub async fn prefetch(
    y: &Arc<Hexyard>,
    args: &PrefetchArgs,
) -> Result<PrefetchReport, PrefetchError> {
    let m = mirror(y, &args.mirror)?;
    if m.cfg.offline {
        return Err(PrefetchError::Offline(m.name.clone()));
    }
    if args.locks.is_empty() && args.packages.is_empty() {
        return Err(PrefetchError::Nothing);
    }
    let ctx = Arc::new(Ctx { y: y.clone(), m });
    let jobs = args.jobs.max(1);
    let mut report = PrefetchReport::default();
    let progress = Progress::new("prefetch", 0);

    // Targets from lock files.
    let lock_repo = args
        .lock_repo
        .clone()
        .unwrap_or_else(|| ctx.m.cfg.upstream.name.clone());
    let mut targets: BTreeSet<Target> = BTreeSet::new();
    for path in &args.locks {
        let bytes = std::fs::read(path).map_err(|e| PrefetchError::Lock {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let entries = lockfile::parse(&bytes).map_err(|e| PrefetchError::Lock {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        for e in entries {
            if e.repo == lock_repo {
                targets.insert(Target {
                    name: e.name,
                    version: e.version,
                    outer: e.outer_checksum,
                });
            } else {
                report.skipped.push(format!("{} (repo {})", e.app, e.repo));
            }
        }
    }

    // Package files of the lock targets, concurrently.
    let names: BTreeMap<String, Option<String>> = targets
        .iter()
        .map(|t| (t.name.clone(), Some(t.version.clone())))
        .collect();
    progress.grow(names.len() as u64);
    let results: Vec<(String, Result<Got, String>)> = futures::stream::iter(names)
        .map(|(name, need)| {
            let ctx = ctx.clone();
            async move {
                let r = ctx.package(&name, need.as_deref()).await;
                (name, r)
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    let mut failed_pkgs = BTreeSet::new();
    for (name, r) in results {
        record_package(
            &ctx.m.name,
            &name,
            r,
            &mut report,
            &progress,
            &mut failed_pkgs,
        );
    }

    // Named packages and their closure, breadth first.
    let mut queue: VecDeque<(String, Option<String>)> = VecDeque::new();
    for spec in &args.packages {
        let (name, req) = match spec.split_once('@') {
            Some((n, r)) => (n.trim(), Some(r.trim().to_owned())),
            None => (spec.trim(), None),
        };
        if name.is_empty() {
            return Err(PrefetchError::BadPackage(spec.clone(), "empty name".into()));
        }
        if let Some(r) = &req {
            Requirement::parse(r)
                .map_err(|e| PrefetchError::BadPackage(spec.clone(), e.to_string()))?;
        }
        queue.push_back((name.to_owned(), req));
    }
    let mut seen: BTreeSet<(String, Option<String>)> = BTreeSet::new();
    let mut packages: BTreeMap<String, proto::Package> = BTreeMap::new();
    while let Some((name, req)) = queue.pop_front() {
        if seen.len() >= CLOSURE_LIMIT || !seen.insert((name.clone(), req.clone())) {
            continue;
        }
        if failed_pkgs.contains(&name) {
            continue;
        }
        let pkg = match packages.get(&name) {
            Some(p) => p.clone(),
            None => {
                progress.grow(1);
                let r = ctx.package(&name, None).await;
                let Some(p) = record_package(
                    &ctx.m.name,
                    &name,
                    r,
                    &mut report,
                    &progress,
                    &mut failed_pkgs,
                ) else {
                    continue;
                };
                packages.insert(name.clone(), p.clone());
                p
            }
        };
        let Some(release) = choose(&pkg, req.as_deref()) else {
            report.failed.push((
                format!("{name}@{}", req.as_deref().unwrap_or("*")),
                "no release matches".into(),
            ));
            continue;
        };
        let outer = release.outer_checksum.as_deref().map(hex::encode);
        targets.insert(Target {
            name: name.clone(),
            version: release.version.clone(),
            outer,
        });
        for d in &release.dependencies {
            let same_repo = d
                .repository
                .as_deref()
                .is_none_or(|r| r == ctx.m.cfg.upstream.name);
            if d.optional != Some(true) && same_repo {
                queue.push_back((d.package.clone(), Some(d.requirement.clone())));
            }
        }
    }

    // Tarballs, concurrently.
    let todo: Vec<Target> = targets
        .into_iter()
        .filter(|t| !failed_pkgs.contains(&t.name))
        .collect();
    progress.grow(todo.len() as u64);
    let results: Vec<(Target, Result<bool, String>)> = futures::stream::iter(todo)
        .map(|t| {
            let ctx = ctx.clone();
            async move {
                let r = ctx.tarball(&t.name, &t.version, t.outer.as_deref()).await;
                (t, r)
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    for (t, r) in results {
        let path = format!("repos/{}/tarballs/{}-{}.tar", ctx.m.name, t.name, t.version);
        match r {
            Ok(true) => {
                progress.step(&format!("fetched {path}"));
                report.fetched.push(path);
            }
            Ok(false) => {
                progress.step(&format!("present {path}"));
                report.present.push(path);
            }
            Err(why) => {
                progress.note(&format!("FAILED {path}: {why}"));
                report.failed.push((path, why));
            }
        }
    }
    progress.finish();
    report.fetched.sort();
    report.present.sort();
    report.failed.sort();
    Ok(report)
}

fn record_package(
    mirror: &str,
    name: &str,
    r: Result<Got, String>,
    report: &mut PrefetchReport,
    progress: &Progress,
    failed: &mut BTreeSet<String>,
) -> Option<proto::Package> {
    let path = format!("repos/{mirror}/packages/{name}");
    match r {
        Ok(Got::Fetched(p)) => {
            progress.step(&format!("fetched {path}"));
            report.fetched.push(path);
            Some(p)
        }
        Ok(Got::Present(p)) => {
            progress.step(&format!("present {path}"));
            report.present.push(path);
            Some(p)
        }
        Err(why) => {
            progress.note(&format!("FAILED {path}: {why}"));
            report.failed.push((path, why));
            failed.insert(name.to_owned());
            None
        }
    }
}

/// The highest stable release matching `req` (any release without one), else the highest
/// matching pre-release.
fn choose<'a>(pkg: &'a proto::Package, req: Option<&str>) -> Option<&'a proto::Release> {
    let req = match req {
        Some(r) => Some(Requirement::parse(r).ok()?),
        None => None,
    };
    let matching: Vec<&proto::Release> = pkg
        .releases
        .iter()
        .filter(|r| req.as_ref().is_none_or(|q| q.matches_str(&r.version)))
        .collect();
    let best = |pre: bool| {
        matching
            .iter()
            .copied()
            .filter(|r| r.version.contains('-') == pre)
            .max_by(|a, b| compare_str(&a.version, &b.version))
    };
    best(false).or_else(|| best(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(v: &str) -> proto::Release {
        proto::Release {
            version: v.into(),
            ..Default::default()
        }
    }

    #[test]
    fn choose_prefers_the_highest_stable_match() {
        let pkg = proto::Package {
            name: "x".into(),
            repository: "hexpm".into(),
            releases: vec![
                release("0.1.0"),
                release("0.2.0"),
                release("0.10.0"),
                release("1.0.0-rc.1"),
            ],
            ..Default::default()
        };
        assert_eq!(choose(&pkg, None).unwrap().version, "0.10.0");
        assert_eq!(choose(&pkg, Some("~> 0.1")).unwrap().version, "0.10.0");
        assert_eq!(choose(&pkg, Some("~> 0.2.0")).unwrap().version, "0.2.0");
        assert_eq!(
            choose(&pkg, Some(">= 1.0.0-rc.0")).unwrap().version,
            "1.0.0-rc.1"
        );
        assert!(choose(&pkg, Some("~> 2.0")).is_none());
    }
}
