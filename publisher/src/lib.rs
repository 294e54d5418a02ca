//! hexyard-publisher: the `/api` surface. It takes uploads, validates them, re-signs the
//! registry indexes of hosted repositories and writes into the shared store.
//!
//! # Layout
//! - [`routes`]: the route table; [`app`]: state and dispatch; [`api`]: one file per resource.
//! - [`index`]: keeping `packages/<name>`, `versions` and `names` signed and in step.
//! - [`rebuild`]: rebuilding indexes from stored tarballs, and importing tarballs.
//! - [`auth`]: API keys and grants; [`error`], [`respond`], [`views`]: responses.
//! - [`server`]: the hyper accept loop; [`metrics`]: Prometheus.
//! - [`tools`]: operator subcommands (keygen, key new, verify).
//!
//! [`build`] turns a loaded [`Config`] into an [`App`] (loading or generating repo keys,
//! writing `/public_key`, rebuilding missing indexes); [`run`] serves it on a bound listener.

pub mod api;
pub mod app;
pub mod auth;
pub mod error;
pub mod index;
pub mod metrics;
pub mod metrics_server;
pub mod orphans;
pub mod rebuild;
pub mod respond;
pub mod routes;
pub mod server;
pub mod tools;
pub mod views;

use crate::app::App;
use crate::auth::{Access, Authenticator};
use crate::index::HostedRepo;
use anyhow::Context;
use hexyard_common::config::{Config, RepoConfig, StoreKind};
use hexyard_common::docs::DocsLimits;
use hexyard_common::names::NameRules;
use hexyard_common::signing::SigningKey;
use hexyard_common::storage::{PutMode, S3Store, StorageKey, Store};
use hexyard_common::tarball::TarballLimits;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Opens the configured store.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    hexyard_common::storage::open(&config.store)
        .with_context(|| format!("opening the store ({})", config.store.root.display()))
}

/// The tarball limits of the config.
pub fn tarball_limits(config: &Config) -> TarballLimits {
    let l = &config.publisher.limits;
    TarballLimits {
        tarball_bytes: l.tarball_bytes,
        unpacked_bytes: l.unpacked_bytes,
        metadata_bytes: l.metadata_bytes,
        max_entries: l.max_entries,
        name_rules: NameRules {
            min_len: l.name_min_len,
            max_len: l.name_max_len,
            reserved: l.reserved_names,
        },
    }
}

fn docs_limits(config: &Config) -> DocsLimits {
    let d = &config.publisher.limits.docs;
    DocsLimits {
        tarball_bytes: d.tarball_bytes,
        unpacked_bytes: d.unpacked_bytes,
        ..DocsLimits::default()
    }
}

/// Loads a repo's signing key, generating and writing it (mode 0600) when the file is missing.
pub fn load_or_generate_key(path: &Path) -> anyhow::Result<SigningKey> {
    match std::fs::read_to_string(path) {
        Ok(pem) => SigningKey::from_pem(&pem)
            .with_context(|| format!("reading the private key {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate().context("generating a signing key")?;
            write_private_key(path, &key, false)?;
            tracing::info!(path = %path.display(), fingerprint = %key.verifying_key().fingerprint(),
                "generated a new repository signing key");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the private key {}", path.display())),
    }
}

/// Writes a private key file with mode 0600 (refusing to overwrite unless `force`).
pub fn write_private_key(path: &Path, key: &SigningKey, force: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let pem = key.to_pem().context("encoding the private key")?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Why the publisher refuses to start on a store.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The bucket ignores conditional writes and `publisher.multi_writer` is `true`.
    #[error(
        "refusing to start: the store {store} ignores conditional writes (If-None-Match/If-Match \
         on PutObject), so two publishers writing at once could lose index updates; \
         publisher.multi_writer is true. Use a store that honours them (AWS S3, MinIO, Ceph RGW), \
         or set publisher.multi_writer: false and run exactly one publisher"
    )]
    NoConditionalWrites {
        /// [`Store::describe`] of the store.
        store: String,
    },
    /// The conditional-write probe could not run (the store is unreachable or refused it).
    #[error("cannot probe the store {store} for conditional writes: {source}")]
    Probe {
        /// [`Store::describe`] of the store.
        store: String,
        /// What the store answered.
        source: hexyard_common::storage::StoreError,
    },
}

/// Whether this publisher may start, given the result of the conditional-write probe of the
/// store (`probe`, e.g. [`S3Store::supports_conditional_writes`]) and
/// `publisher.multi_writer`. A single writer (`multi_writer: false`) starts on a store without
/// conditional writes, with a warning.
///
/// # Errors
/// [`StartupError::NoConditionalWrites`] when the store ignores conditions and several
/// writers may run; [`StartupError::Probe`] when the probe failed.
///
/// [`S3Store::supports_conditional_writes`]: hexyard_common::storage::S3Store::supports_conditional_writes
pub async fn check_conditional_writes(
    multi_writer: bool,
    store: &str,
    probe: impl Future<Output = Result<bool, hexyard_common::storage::StoreError>>,
) -> Result<(), StartupError> {
    let supported = probe.await.map_err(|source| StartupError::Probe {
        store: store.to_owned(),
        source,
    })?;
    match (supported, multi_writer) {
        (true, _) => Ok(()),
        (false, true) => Err(StartupError::NoConditionalWrites {
            store: store.to_owned(),
        }),
        (false, false) => {
            tracing::warn!(%store, "the store ignores conditional writes; running as the only \
                publisher (publisher.multi_writer: false): never start a second one");
            Ok(())
        }
    }
}

/// Builds the publisher's state from the config: opens the store (with `store.kind: s3`, probes
/// it for conditional writes, see [`check_conditional_writes`]), loads (or generates) each
/// hosted repo's key, writes its `/public_key`, and rebuilds indexes that are missing while
/// tarballs exist.
///
/// # Errors
/// The store cannot be opened or refuses the start ([`StartupError`]), a key cannot be read, or
/// the store fails while preparing the repositories.
pub async fn build(config: &Config) -> anyhow::Result<Arc<App>> {
    let store = match (&config.store.kind, &config.store.s3) {
        (StoreKind::S3, Some(s3)) => {
            let s3 = S3Store::new(s3).context("opening the S3 store")?;
            check_conditional_writes(
                config.publisher.multi_writer,
                &s3.describe(),
                s3.supports_conditional_writes(),
            )
            .await?;
            Arc::new(s3) as Arc<dyn Store>
        }
        _ => open_store(config)?,
    };
    build_with_store(config, store).await
}

/// [`build`] with an already opened store.
pub async fn build_with_store(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Arc<App>> {
    let mut hosted = BTreeMap::new();
    let mut mirrors = Vec::new();
    for (name, repo) in &config.repos {
        match repo {
            RepoConfig::Hosted(h) => {
                let key = load_or_generate_key(&h.private_key)?;
                let window = config.replace_window(name).and_then(|w| w.as_duration());
                hosted.insert(
                    name.clone(),
                    Arc::new(HostedRepo::new(name.clone(), key, h.public, window)),
                );
            }
            RepoConfig::Mirror(_) => mirrors.push(name.clone()),
        }
    }
    let auth = Authenticator::from_config(config);
    let keys = auth.keys();
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in keys {
        for (repo, a) in &k.grants {
            if *a >= Access::Write {
                owners.entry(repo.clone()).or_default().push(k.name.clone());
            }
        }
    }
    let metrics = metrics::Metrics::new().context("registering metrics")?;
    let mut app = App::new(
        store,
        auth.clone(),
        config.default_repo.clone(),
        hosted,
        mirrors,
        tarball_limits(config),
        docs_limits(config),
        config.public_url.clone(),
        metrics,
        owners,
    );
    app.header_read_timeout = Duration::from_millis(config.publisher.header_read_timeout_ms);
    let app = Arc::new(app);
    for repo in app.hosted.values() {
        prepare_repo(&app, repo).await?;
    }
    Ok(app)
}

/// Writes `/public_key` when missing or different, and rebuilds the indexes when `names` is
/// missing but tarballs exist.
async fn prepare_repo(app: &App, repo: &HostedRepo) -> anyhow::Result<()> {
    let store = app.store.as_ref();
    let key = StorageKey::public_key(&repo.name)?;
    let pem = repo.verifying.to_pkcs1_pem();
    let current = store.get(&key).await?;
    if current.as_ref().map(|o| o.body.as_ref()) != Some(pem.as_bytes()) {
        store
            .put(&key, pem.into_bytes().into(), PutMode::Overwrite)
            .await?;
    }
    let names = store.head(&StorageKey::names(&repo.name)?).await?;
    if names.is_some() {
        // Best effort: a failed check does not stop the publisher (every publish of a package
        // re-derives its index entries from its package file anyway).
        match repo.lock().await.reconcile(store).await {
            Ok(0) => {}
            Ok(repaired) => tracing::warn!(repo = %repo.name, repaired,
                "indexes were behind their package files (an interrupted publish): repaired"),
            Err(e) => tracing::warn!(repo = %repo.name, error = %e,
                "could not check the indexes against the package files"),
        }
        // Best effort too: an orphan only costs space (and a `verify` problem).
        if let Err(e) = orphans::remove_orphan_tarballs(store, repo, api::publish::ORPHAN_AGE).await
        {
            tracing::warn!(repo = %repo.name, error = %e, "could not look for orphan tarballs");
        }
    } else {
        let tarballs = store
            .list(&hexyard_common::storage::KeyPrefix::tarballs(&repo.name)?)
            .await?;
        if !tarballs.is_empty() {
            tracing::warn!(repo = %repo.name, tarballs = tarballs.len(),
                "repository has tarballs but no index: rebuilding");
            rebuild::rebuild(app, repo).await?;
        }
    }
    Ok(())
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // A refused upload's body is read to its end (up to the largest upload the limits allow,
    // and as long as a request head may take) so that its answer is not lost to a reset.
    let opts = server::ServeOptions {
        grace: Duration::from_secs(30),
        header_read_timeout: app.header_read_timeout,
        drain_bytes: app.limits.tarball_bytes.max(app.docs_limits.tarball_bytes),
        drain_time: app.header_read_timeout,
    };
    server::serve(listener, app, shutdown, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use hexyard_common::storage::StoreError;

    #[tokio::test]
    async fn a_store_without_conditional_writes_refuses_several_writers() {
        let err = check_conditional_writes(true, "s3://b/ (x)", async { Ok(false) })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StartupError::NoConditionalWrites { store } if store == "s3://b/ (x)"),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("refusing to start: the store s3://b/ (x) ignores conditional writes"),
            "{text}"
        );
        assert!(text.contains("publisher.multi_writer: false"), "{text}");
    }

    #[tokio::test]
    async fn a_single_writer_or_a_conditional_store_starts() {
        check_conditional_writes(false, "s", async { Ok(false) })
            .await
            .unwrap();
        check_conditional_writes(true, "s", async { Ok(true) })
            .await
            .unwrap();
        check_conditional_writes(false, "s", async { Ok(true) })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_failed_probe_is_reported() {
        let err = check_conditional_writes(true, "s", async {
            Err(StoreError::Unavailable("down".to_owned()))
        })
        .await
        .unwrap_err();
        assert!(
            matches!(&err, StartupError::Probe { source: StoreError::Unavailable(m), .. } if m == "down"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "cannot probe the store s for conditional writes: storage unavailable: down"
        );
    }
}
