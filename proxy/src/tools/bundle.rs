//! `export` and `import`: moving a mirror's objects across an air gap in one signed file
//! (format: [`hexyard_common::bundle`]).
//!
//! Export reads the objects from the store (all of a mirror's, or the package files and
//! tarballs a lock file needs), hashes them, signs the manifest with the bundle key and writes
//! the tar (to a temporary file renamed into place). Objects are written tarballs first, then
//! docs, package files, and `names`/`versions` last, so an import that stops midway never
//! exposes a package file whose tarballs are missing.
//!
//! Import checks everything BEFORE writing anything: the manifest signature (bundle public
//! key), every object's size and SHA-256, every registry file's signature and origin against
//! the target mirror's upstream key and name, and every tarball against the outer checksum of
//! its signed package file (in the bundle or already stored). Then it writes, in bundle order,
//! only what is missing or different, so it is idempotent and a rerun after an interruption
//! completes the job.

use super::{Progress, mirror};
use crate::serve::{Hexyard, Mirror};
use bytes::Bytes;
use hexyard_common::bundle::{self, BundleError, BundleWriter, Manifest};
use hexyard_common::lockfile;
use hexyard_common::registry;
use hexyard_common::signing::{SigningKey, VerifyingKey};
use hexyard_common::storage::{KeyPrefix, PutMode, StorageKey, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why an export or import failed. Every variant that concerns one object names it.
#[derive(Debug, thiserror::Error)]
pub enum BundleToolError {
    /// Unknown repo or not a mirror.
    #[error(transparent)]
    Tool(#[from] super::ToolError),
    /// The bundle format check failed (signature, checksum, size, unlisted, missing).
    #[error("bundle refused, nothing was written: {0}")]
    Bundle(#[from] BundleError),
    /// A registry file does not verify against the upstream key, or a tarball does not match
    /// its signed package file.
    #[error("bundle refused, nothing was written: {path}: {why}")]
    Verify {
        /// The object.
        path: String,
        /// Why.
        why: String,
    },
    /// The bundle is for another upstream.
    #[error(
        "bundle refused: it holds files signed for {found:?}, mirror {mirror:?} expects {expected:?}"
    )]
    WrongUpstream {
        /// The target mirror.
        mirror: String,
        /// Its upstream name.
        expected: String,
        /// The bundle's.
        found: String,
    },
    /// A key file could not be read.
    #[error("{path}: {why}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// A lock file could not be read.
    #[error("{path}: {why}")]
    Lock {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// An object a lock file needs is not in the store.
    #[error("{0} is not in the store (run prefetch first)")]
    NotStored(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Local file I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BundleToolError + '_ {
    move |source| BundleToolError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    /// The mirror.
    pub mirror: String,
    /// The bundle file to write.
    pub out: PathBuf,
    /// PEM private key signing the manifest.
    pub bundle_key: PathBuf,
    /// Only what these lock files need (default: every object of the mirror).
    pub locks: Vec<PathBuf>,
    /// Which lock repository this mirror serves (default: the upstream name).
    pub lock_repo: Option<String>,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Objects in the bundle.
    pub objects: usize,
    /// Their total size.
    pub bytes: u64,
}

/// Writing order: tarballs, docs, package files, then the indexes.
fn rank(key: &StorageKey) -> u8 {
    match key {
        StorageKey::Tarball { .. } => 0,
        StorageKey::Docs { .. } => 1,
        StorageKey::Package { .. } => 2,
        StorageKey::Names { .. } | StorageKey::PublicKey { .. } => 3,
        StorageKey::Versions { .. } => 4,
    }
}

fn load_signing_key(path: &Path) -> Result<SigningKey, BundleToolError> {
    let pem = std::fs::read_to_string(path).map_err(|e| BundleToolError::Key {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    SigningKey::from_pem(&pem).map_err(|e| BundleToolError::Key {
        path: path.display().to_string(),
        why: format!("not an RSA private key: {e}"),
    })
}

fn load_verifying_key(path: &Path) -> Result<VerifyingKey, BundleToolError> {
    let pem = std::fs::read_to_string(path).map_err(|e| BundleToolError::Key {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    VerifyingKey::from_pem(&pem)
        .or_else(|_| SigningKey::from_pem(&pem).map(|k| k.verifying_key()))
        .map_err(|e| BundleToolError::Key {
            path: path.display().to_string(),
            why: format!("not an RSA public key: {e}"),
        })
}

/// Exports a mirror into a bundle.
///
/// # Errors
/// [`BundleToolError`].
pub async fn export(y: &Arc<Hexyard>, args: &ExportArgs) -> Result<ExportReport, BundleToolError> {
    let m = mirror(y, &args.mirror)?;
    let key = load_signing_key(&args.bundle_key)?;
    let mut keys: Vec<StorageKey> = if args.locks.is_empty() {
        y.store
            .list(&KeyPrefix::repo(&m.name).map_err(StoreError::from)?)
            .await?
            .into_iter()
            .map(|e| e.key)
            .filter(|k| !matches!(k, StorageKey::PublicKey { .. }))
            .collect()
    } else {
        lock_keys(&m, args)?
    };
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    keys.dedup();
    let progress = Progress::new("export", keys.len() as u64 * 2);
    // Pass 1: sizes and checksums.
    let mut entries: Vec<(String, u64, String)> = Vec::new();
    for k in &keys {
        let obj = y
            .store
            .get(k)
            .await?
            .ok_or_else(|| BundleToolError::NotStored(k.path()))?;
        entries.push((
            k.path(),
            obj.body.len() as u64,
            bundle::sha256_hex(&obj.body),
        ));
        progress.step(&format!("hashed {k}"));
    }
    let mut manifest = Manifest::new(&m.name, &m.cfg.upstream.name, std::iter::empty());
    manifest.objects = entries
        .iter()
        .map(|(path, size, sha256)| bundle::ManifestObject {
            path: path.clone(),
            size: *size,
            sha256: sha256.clone(),
        })
        .collect();
    manifest.objects.sort_by(|a, b| a.path.cmp(&b.path));
    let json = manifest.to_json()?;
    let sig = bundle::sign_manifest(&json, &key)?;
    // Pass 2: write, to a temporary file next to the target.
    let dir = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    let file = std::io::BufWriter::new(tmp.reopen().map_err(io_err(tmp.path()))?);
    let mut w = BundleWriter::new(file, &manifest, &json, &sig)?;
    let mut bytes = 0u64;
    for k in &keys {
        let obj = y
            .store
            .get(k)
            .await?
            .ok_or_else(|| BundleToolError::NotStored(k.path()))?;
        w.add(&k.path(), &obj.body)?;
        bytes += obj.body.len() as u64;
        progress.step(&format!("wrote {k}"));
    }
    let mut file = w.finish()?;
    std::io::Write::flush(&mut file).map_err(io_err(&args.out))?;
    drop(file);
    tmp.persist(&args.out).map_err(|e| BundleToolError::Io {
        path: args.out.display().to_string(),
        source: e.error,
    })?;
    progress.finish();
    Ok(ExportReport {
        objects: keys.len(),
        bytes,
    })
}

fn lock_keys(m: &Mirror, args: &ExportArgs) -> Result<Vec<StorageKey>, BundleToolError> {
    let lock_repo = args
        .lock_repo
        .clone()
        .unwrap_or_else(|| m.cfg.upstream.name.clone());
    let mut keys = BTreeSet::new();
    for path in &args.locks {
        let lock_err = |why: String| BundleToolError::Lock {
            path: path.display().to_string(),
            why,
        };
        let bytes = std::fs::read(path).map_err(|e| lock_err(e.to_string()))?;
        for e in lockfile::parse(&bytes).map_err(|e| lock_err(e.to_string()))? {
            if e.repo != lock_repo {
                continue;
            }
            let bad =
                |err: hexyard_common::storage::KeyError| lock_err(format!("{}: {err}", e.app));
            keys.insert(StorageKey::package(&m.name, &e.name).map_err(bad)?);
            keys.insert(StorageKey::tarball(&m.name, &e.name, &e.version).map_err(bad)?);
        }
    }
    Ok(keys.into_iter().collect())
}

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// PEM public key of the bundle key.
    pub bundle_key: PathBuf,
    /// The target mirror (default: the bundle's).
    pub mirror: Option<String>,
    /// Pause after each write (tests use it to interrupt an import midway).
    pub write_delay: Duration,
}

/// What an import did (store paths of the target mirror).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The bundle's mirror and creation time.
    pub source: String,
    /// Objects written that were not stored.
    pub added: Vec<String>,
    /// Registry files replaced by the bundle's (different) copy.
    pub updated: Vec<String>,
    /// Objects already stored with the same bytes.
    pub unchanged: Vec<String>,
    /// Immutable objects stored with DIFFERENT bytes (kept; a problem).
    pub conflicts: Vec<String>,
}

/// Verifies and imports a bundle.
///
/// # Errors
/// [`BundleToolError`]; when verification fails nothing was written.
pub async fn import(y: &Arc<Hexyard>, args: &ImportArgs) -> Result<ImportReport, BundleToolError> {
    let bundle_key = load_verifying_key(&args.bundle_key)?;
    // Pass 1: verify everything, write nothing.
    let path = args.bundle.clone();
    let key2 = bundle_key.clone();
    let scanned = tokio::task::spawn_blocking(move || scan(&path, &key2))
        .await
        .map_err(|e| BundleToolError::Io {
            path: args.bundle.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })??;
    let target = args
        .mirror
        .clone()
        .unwrap_or_else(|| scanned.manifest.mirror.clone());
    let m = mirror(y, &target)?;
    if scanned.manifest.upstream != m.cfg.upstream.name {
        return Err(BundleToolError::WrongUpstream {
            mirror: m.name.clone(),
            expected: m.cfg.upstream.name.clone(),
            found: scanned.manifest.upstream.clone(),
        });
    }
    let retarget = |p: &str| -> String {
        let from = format!("repos/{}/", scanned.manifest.mirror);
        match p.strip_prefix(&from) {
            Some(rest) => format!("repos/{}/{rest}", m.name),
            None => p.to_owned(),
        }
    };
    verify(y, &m, &scanned, &retarget).await?;

    // Pass 2: write, in bundle order, re-reading (and re-checking) the file.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(2);
    let path = args.bundle.clone();
    let verified = scanned.manifest.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        bundle::read_bundle::<_, BundleError>(
            std::io::BufReader::new(file),
            &bundle_key,
            |manifest, p, bytes| {
                // The file must still be the bundle that was verified.
                if manifest != &verified {
                    return Err(BundleError::BadManifest(
                        "the bundle file changed during the import".into(),
                    ));
                }
                tx.blocking_send((p.to_owned(), bytes))
                    .map_err(|_| BundleError::Io(std::io::Error::other("import stopped")))
            },
        )
    });
    let mut report = ImportReport {
        source: format!(
            "mirror {:?}, created {}",
            scanned.manifest.mirror, scanned.manifest.created_at
        ),
        ..ImportReport::default()
    };
    let progress = Progress::new("import", scanned.manifest.objects.len() as u64);
    while let Some((p, bytes)) = rx.recv().await {
        let target_path = retarget(&p);
        let key = StorageKey::from_path(&target_path).ok_or_else(|| BundleToolError::Verify {
            path: p.clone(),
            why: "not a store path".into(),
        })?;
        let bytes = Bytes::from(bytes);
        let stored = y.store.get(&key).await?;
        match stored {
            Some(o) if o.body == bytes => {
                progress.step(&format!("present {target_path}"));
                report.unchanged.push(target_path);
                continue;
            }
            Some(_) if key.is_immutable() => {
                progress.note(&format!(
                    "CONFLICT {target_path}: stored with different bytes; kept the stored copy"
                ));
                report.conflicts.push(target_path);
                continue;
            }
            Some(_) => {
                y.store.put(&key, bytes, PutMode::Overwrite).await?;
                progress.step(&format!("updated {target_path}"));
                report.updated.push(target_path);
            }
            None => {
                let mode = if key.is_immutable() {
                    PutMode::CreateOnly
                } else {
                    PutMode::Overwrite
                };
                match y.store.put(&key, bytes, mode).await {
                    Ok(_) | Err(StoreError::AlreadyExists) => {}
                    Err(e) => return Err(e.into()),
                }
                progress.step(&format!("added {target_path}"));
                report.added.push(target_path);
            }
        }
        y.invalidate_repo(&m.name);
        if !args.write_delay.is_zero() {
            tokio::time::sleep(args.write_delay).await;
        }
    }
    reader.await.map_err(|e| BundleToolError::Io {
        path: args.bundle.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })??;
    progress.finish();
    Ok(report)
}

/// What pass 1 learned.
struct Scanned {
    manifest: Manifest,
    /// Registry files (path -> bytes): small, kept for verification.
    registry: BTreeMap<String, Vec<u8>>,
}

fn scan(path: &Path, key: &VerifyingKey) -> Result<Scanned, BundleToolError> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut registry = BTreeMap::new();
    let manifest = bundle::read_bundle::<_, BundleToolError>(
        std::io::BufReader::new(file),
        key,
        |_, p, bytes| {
            if matches!(
                StorageKey::from_path(p),
                Some(
                    StorageKey::Package { .. }
                        | StorageKey::Names { .. }
                        | StorageKey::Versions { .. }
                )
            ) {
                registry.insert(p.to_owned(), bytes);
            }
            Ok(())
        },
    )?;
    Ok(Scanned { manifest, registry })
}

async fn verify(
    y: &Hexyard,
    m: &Mirror,
    s: &Scanned,
    retarget: &impl Fn(&str) -> String,
) -> Result<(), BundleToolError> {
    let upstream = &m.cfg.upstream.name;
    let bad = |path: &str, why: String| BundleToolError::Verify {
        path: path.to_owned(),
        why,
    };
    // name -> version -> outer checksum, from the bundle's signed package files.
    let mut outer: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for (path, bytes) in &s.registry {
        let r = match StorageKey::from_path(path) {
            Some(StorageKey::Names { .. }) => {
                registry::decode_names(bytes, &m.key, upstream).map(|_| ())
            }
            Some(StorageKey::Versions { .. }) => {
                registry::decode_versions(bytes, &m.key, upstream).map(|_| ())
            }
            Some(StorageKey::Package { name, .. }) => {
                registry::decode_package(bytes, &m.key, upstream, name.as_str()).map(|p| {
                    outer.insert(name.to_string(), releases(&p));
                })
            }
            _ => Ok(()),
        };
        r.map_err(|e| bad(path, format!("registry signature/origin check failed: {e}")))?;
    }
    for o in &s.manifest.objects {
        let Some(StorageKey::Tarball { name, version, .. }) = StorageKey::from_path(&o.path) else {
            continue;
        };
        let name = name.to_string();
        if !outer.contains_key(&name) {
            // Not in the bundle: the target store's signed package file must vouch for it.
            let key = StorageKey::from_path(&retarget(&format!(
                "repos/{}/packages/{name}",
                s.manifest.mirror
            )));
            let stored = match key {
                Some(k) => y.store.get(&k).await?,
                None => None,
            };
            let Some(stored) = stored else {
                return Err(bad(
                    &o.path,
                    "no signed package file (in the bundle or the store) lists this tarball".into(),
                ));
            };
            let p =
                registry::decode_package(&stored.body, &m.key, upstream, &name).map_err(|e| {
                    bad(
                        &o.path,
                        format!("the stored package file does not verify: {e}"),
                    )
                })?;
            outer.insert(name.clone(), releases(&p));
        }
        let want = outer
            .get(&name)
            .and_then(|r| r.get(version.as_str()))
            .ok_or_else(|| {
                bad(
                    &o.path,
                    format!("{name} has no release {version} in its signed package file"),
                )
            })?;
        if want.as_deref() != Some(o.sha256.as_str()) {
            return Err(bad(
                &o.path,
                "SHA-256 is not the outer checksum of the signed package file".into(),
            ));
        }
    }
    Ok(())
}

fn releases(p: &registry::proto::Package) -> BTreeMap<String, Option<String>> {
    p.releases
        .iter()
        .map(|r| {
            (
                r.version.clone(),
                r.outer_checksum.as_deref().map(hex::encode),
            )
        })
        .collect()
}
