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
use hexyard_common::config::{Config, RepoConfig};
use hexyard_common::docs::DocsLimits;
use hexyard_common::names::NameRules;
use hexyard_common::signing::SigningKey;
use hexyard_common::storage::{PutMode, StorageKey, Store};
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

/// Builds the publisher's state from the config: opens the store, loads (or generates) each
/// hosted repo's key, writes its `/public_key`, and rebuilds indexes that are missing while
/// tarballs exist.
pub async fn build(config: &Config) -> anyhow::Result<Arc<App>> {
    let store = open_store(config)?;
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
    let app = Arc::new(App::new(
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
    ));
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
    if names.is_none() {
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
    server::serve(listener, app, shutdown, Duration::from_secs(30)).await
}
