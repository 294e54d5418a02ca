//! What the proxy serves for `/repos/<repo>/<object>`: hosted repos from the store through the
//! hot cache; mirror repos the same, falling through to the upstream on a miss, verifying what
//! comes back before storing and serving it, and enforcing the allowlist.
//!
//! Every load of one object is single-flighted (concurrent misses share one store read or one
//! upstream request). Registry files of a mirror pass through byte for byte.

use crate::cache::HotCache;
use crate::flight::Flights;
use crate::metrics::ProxyMetrics;
use crate::route::Object;
use crate::upstream::{Fetched, Upstream, UpstreamError};
use bytes::Bytes;
use hexyard_common::auth::Authenticator;
use hexyard_common::config::{Config, MirrorRepoConfig, RepoConfig, glob_match};
use hexyard_common::registry::{self, proto};
use hexyard_common::signing::VerifyingKey;
use hexyard_common::storage::{ByteStream, KeyPrefix, PutMode, StorageKey, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest registry file accepted from an upstream (hex.pm's `versions` is a few MiB).
const REGISTRY_LIMIT: u64 = 64 * 1024 * 1024;
/// Largest docs tarball accepted from an upstream.
const DOCS_LIMIT: u64 = 64 * 1024 * 1024;
/// Most packages visited when computing the dependency closure of an allowlist.
const CLOSURE_LIMIT: usize = 5_000;
/// A closure older than this is recomputed before denying a package.
const CLOSURE_REFRESH: Duration = Duration::from_secs(2);

/// How a request was answered: the metric label and the access-log outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// From memory.
    Hit,
    /// Loaded from the store, or filled from the upstream.
    Miss,
    /// A stored mirror copy confirmed (or replaced) by the upstream.
    Revalidated,
    /// A stored copy served because the upstream (or store) failed.
    Stale,
    /// Refused by the allowlist.
    Denied,
    /// The upstream sent something that does not verify.
    VerifyFailed,
    /// The upstream failed and nothing was stored.
    UpstreamError,
    NotFound,
    Invalid,
    Unauthorized,
    Forbidden,
    /// `/api`, passed to the publisher.
    Forwarded,
    /// Health endpoints and the like.
    Ok,
    /// The store failed.
    StoreError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Revalidated => "revalidated",
            Outcome::Stale => "stale",
            Outcome::Denied => "denied",
            Outcome::VerifyFailed => "verify_failed",
            Outcome::UpstreamError => "upstream_error",
            Outcome::NotFound => "not_found",
            Outcome::Invalid => "invalid",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::Forwarded => "forwarded",
            Outcome::Ok => "ok",
            Outcome::StoreError => "store_error",
        }
    }
}

/// A body to send: bytes in memory, or a stored object too large for the hot cache, streamed
/// from the store so that it is never held whole in memory.
#[derive(Debug, Clone)]
pub enum Body {
    Full(Bytes),
    Large(Arc<Large>),
}

/// A stored object larger than the hot cache's `max_object`.
pub struct Large {
    pub key: StorageKey,
    pub size: u64,
    /// The stream the load opened, for the first request that sends it; the others sharing the
    /// load (single flight) open their own.
    opened: Mutex<Option<ByteStream>>,
}

impl std::fmt::Debug for Large {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Large")
            .field("key", &self.key)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Body {
    /// The length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Full(b) => b.len() as u64,
            Body::Large(l) => l.size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes in memory, if the body is held there.
    pub fn full(&self) -> Option<&Bytes> {
        match self {
            Body::Full(b) => Some(b),
            Body::Large(_) => None,
        }
    }
}

/// A loaded object.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub body: Body,
    pub etag: String,
    pub outcome: Outcome,
}

impl Loaded {
    fn full(body: Bytes, etag: String, outcome: Outcome) -> Self {
        Loaded {
            body: Body::Full(body),
            etag,
            outcome,
        }
    }
}

/// A refusal or failure, with the text clients print.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub message: String,
    pub outcome: Outcome,
}

impl Failure {
    pub fn new(status: u16, outcome: Outcome, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            outcome,
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, Outcome::NotFound, message)
    }
    fn store(e: &StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::new(503, Outcome::StoreError, "storage unavailable, try again")
    }
}

/// The answer to a repository request, with the headers that go with it.
#[derive(Debug, Clone)]
pub struct Served {
    pub loaded: Loaded,
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

/// A mirror repository's state.
pub struct Mirror {
    pub name: String,
    pub cfg: MirrorRepoConfig,
    pub key: VerifyingKey,
    pub upstream: Upstream,
    /// path -> (last time the upstream confirmed it, the upstream's ETag).
    validated: Mutex<HashMap<String, (Instant, Option<String>)>>,
    /// The dependency closure of the allowlist, and when it was computed.
    closure: Mutex<Option<(Instant, Arc<BTreeSet<String>>)>>,
}

impl Mirror {
    fn fresh(&self, path: &str, ttl: Duration) -> bool {
        self.validated
            .lock()
            .ok()
            .and_then(|m| m.get(path).map(|(at, _)| at.elapsed() < ttl))
            .unwrap_or(false)
    }
    fn upstream_etag(&self, path: &str) -> Option<String> {
        self.validated
            .lock()
            .ok()
            .and_then(|m| m.get(path).and_then(|(_, e)| e.clone()))
    }
    fn mark(&self, path: &str, etag: Option<String>) {
        if let Ok(mut m) = self.validated.lock() {
            m.insert(path.to_owned(), (Instant::now(), etag));
        }
    }
}

/// A configured repository.
pub enum Repo {
    Hosted { public: bool },
    Mirror(Arc<Mirror>),
}

impl Repo {
    pub fn public(&self) -> bool {
        match self {
            Repo::Hosted { public } => *public,
            Repo::Mirror(m) => m.cfg.public,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Repo::Hosted { .. } => "hosted",
            Repo::Mirror(_) => "mirror",
        }
    }
}

/// Which registry file a mirror fetch is, for verification.
#[derive(Debug, Clone)]
enum RegKind {
    Names,
    Versions,
    Package(String),
}

/// The proxy's shared state.
pub struct Hexyard {
    pub store: Arc<dyn Store>,
    pub cache: HotCache,
    pub auth: Authenticator,
    pub repos: BTreeMap<String, Repo>,
    pub default_repo: Option<String>,
    pub revalidate_ms: u64,
    pub metrics: ProxyMetrics,
    pub tarball_limit: u64,
    /// Where served mirror tarballs and docs are noted for `gc` (local stores only).
    pub access: Option<crate::tools::access::AccessLog>,
    flights: Flights<Result<Loaded, Failure>>,
    closures: Flights<Arc<BTreeSet<String>>>,
}

impl Hexyard {
    /// Builds the state from the config.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        metrics: ProxyMetrics,
    ) -> anyhow::Result<Self> {
        let mut repos = BTreeMap::new();
        for (name, r) in &config.repos {
            let repo = match r {
                RepoConfig::Hosted(h) => Repo::Hosted { public: h.public },
                RepoConfig::Mirror(m) => {
                    let pem = m.upstream.public_key.pem()?;
                    let key = VerifyingKey::from_pem(&pem)
                        .map_err(|e| anyhow::anyhow!("repos.{name}.upstream.public_key: {e}"))?;
                    Repo::Mirror(Arc::new(Mirror {
                        name: name.clone(),
                        cfg: m.clone(),
                        key,
                        upstream: Upstream::new(&m.upstream)
                            .map_err(|e| anyhow::anyhow!("repos.{name}.upstream: {e}"))?,
                        validated: Mutex::new(HashMap::new()),
                        closure: Mutex::new(None),
                    }))
                }
            };
            repos.insert(name.clone(), repo);
        }
        Ok(Hexyard {
            store,
            cache: HotCache::new(config.proxy.cache_bytes),
            auth: Authenticator::from_config(config),
            repos,
            default_repo: config.default_repo.clone(),
            revalidate_ms: config.proxy.revalidate_ms,
            metrics,
            tarball_limit: config.publisher.limits.tarball_bytes.max(16 * 1024 * 1024),
            access: (config.store.kind == hexyard_common::config::StoreKind::Local)
                .then(|| crate::tools::access::AccessLog::new(&config.store.root)),
            flights: Flights::default(),
            closures: Flights::default(),
        })
    }

    /// Whether the store answers (one `HEAD` of the first repository's `names`). `Ok` carries
    /// the store's description for `/readyz`; `Err` the description and the failure.
    pub async fn ready(&self) -> Result<String, String> {
        let repo = self
            .repos
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| "hexyard".to_owned());
        let key = StorageKey::names(&repo).map_err(|e| e.to_string())?;
        let store = self.store.describe();
        match self.store.head(&key).await {
            Ok(_) => Ok(store),
            Err(e) => Err(format!("{store}: {e}")),
        }
    }

    /// Serves `object` of `repo` (access already checked).
    pub async fn serve(
        self: &Arc<Self>,
        repo_name: &str,
        object: &Object,
    ) -> Result<Served, Failure> {
        let repo = self
            .repos
            .get(repo_name)
            .ok_or_else(|| Failure::not_found(format!("unknown repository {repo_name:?}")))?;
        let key = storage_key(repo_name, object)?;
        let content_type = key.content_type();
        let cache_control = key.cache_control(repo.public());
        let loaded = match repo {
            Repo::Hosted { .. } => self.load_stored(&key, true, true).await?,
            Repo::Mirror(m) => {
                let loaded = self.serve_mirror(m, object, &key).await?;
                if let Some(log) = &self.access
                    && key.is_immutable()
                {
                    log.record(&m.name, &key.path());
                }
                loaded
            }
        };
        Ok(Served {
            loaded,
            content_type,
            cache_control,
        })
    }

    /// Reads `key` through the hot cache. With `revalidate`, a cached entry older than
    /// `revalidate_ms` is checked against the store's ETag first. With `stream`, an object too
    /// large for the hot cache comes back as [`Body::Large`] (streamed when sent); without it,
    /// always as bytes (registry files the proxy decodes).
    async fn load_stored(
        self: &Arc<Self>,
        key: &StorageKey,
        revalidate: bool,
        stream: bool,
    ) -> Result<Loaded, Failure> {
        let path = key.path();
        if let Some(e) = self.cache.get(&path) {
            if !revalidate || e.age_ms(&self.cache) < self.revalidate_ms {
                return Ok(Loaded::full(e.body.clone(), e.etag.clone(), Outcome::Hit));
            }
            let (me, k, p) = (self.clone(), key.clone(), path.clone());
            return self
                .flights
                .run(&format!("check:{path}"), async move {
                    match me.store.head(&k).await {
                        Ok(Some(m)) if m.etag == e.etag => {
                            e.touch(&me.cache);
                            Ok(Loaded::full(e.body.clone(), e.etag.clone(), Outcome::Hit))
                        }
                        Ok(Some(_)) => me.read_store(&k, stream).await,
                        Ok(None) => {
                            me.cache.remove(&p);
                            Err(Failure::not_found("not found"))
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, key = %p, "store check failed; serving the cached copy");
                            Ok(Loaded::full(e.body.clone(), e.etag.clone(), Outcome::Stale))
                        }
                    }
                })
                .await;
        }
        let (me, k) = (self.clone(), key.clone());
        let flight = if stream { "load" } else { "load-full" };
        self.flights
            .run(&format!("{flight}:{path}"), async move {
                me.read_store(&k, stream).await
            })
            .await
    }

    /// One read of the store: small objects whole (and into the hot cache); with `stream`,
    /// larger ones as an open stream.
    async fn read_store(&self, key: &StorageKey, stream: bool) -> Result<Loaded, Failure> {
        let (meta, chunks) = match self.store.get_stream(key).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(Failure::not_found("not found")),
            Err(e) => return Err(Failure::store(&e)),
        };
        if stream && meta.size > self.cache.max_object {
            return Ok(Loaded {
                body: Body::Large(Arc::new(Large {
                    key: key.clone(),
                    size: meta.size,
                    opened: Mutex::new(Some(chunks)),
                })),
                etag: meta.etag,
                outcome: Outcome::Miss,
            });
        }
        let body = collect(chunks, meta.size)
            .await
            .map_err(|e| Failure::store(&e))?;
        self.cache
            .insert(&key.path(), body.clone(), meta.etag.clone());
        Ok(Loaded::full(body, meta.etag, Outcome::Miss))
    }

    /// The chunks of a large body, with its size and ETag: the stream its load opened (for the
    /// first caller), else a new read (the object may have been replaced in between: the size
    /// and ETag are then the new object's).
    pub async fn open_large(
        &self,
        l: &Large,
    ) -> Result<(u64, Option<String>, ByteStream), Failure> {
        let opened = match l.opened.lock() {
            Ok(mut o) => o.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(s) = opened {
            return Ok((l.size, None, s));
        }
        match self.store.get_stream(&l.key).await {
            Ok(Some((meta, s))) => Ok((meta.size, Some(meta.etag), s)),
            Ok(None) => Err(Failure::not_found("not found")),
            Err(e) => Err(Failure::store(&e)),
        }
    }

    /// The whole body in memory (a large one read from the store).
    pub async fn body_bytes(&self, body: &Body) -> Result<Bytes, Failure> {
        match body {
            Body::Full(b) => Ok(b.clone()),
            Body::Large(l) => {
                let (size, _, s) = self.open_large(l).await?;
                collect(s, size).await.map_err(|e| Failure::store(&e))
            }
        }
    }

    /// Stored copy of a key (through the hot cache; `revalidate` and `stream` as in
    /// `load_stored`), `None` when absent.
    async fn stored(
        self: &Arc<Self>,
        key: &StorageKey,
        revalidate: bool,
        stream: bool,
    ) -> Result<Option<Loaded>, Failure> {
        match self.load_stored(key, revalidate, stream).await {
            Ok(l) => Ok(Some(l)),
            Err(f) if f.outcome == Outcome::NotFound => Ok(None),
            Err(f) => Err(f),
        }
    }

    async fn serve_mirror(
        self: &Arc<Self>,
        m: &Arc<Mirror>,
        object: &Object,
        key: &StorageKey,
    ) -> Result<Loaded, Failure> {
        if let Some(name) = object.package() {
            self.check_allowed(m, name).await?;
        }
        let index_ttl = Duration::from_secs(m.cfg.index_ttl_secs);
        match object {
            Object::Names => {
                self.mirror_registry(m, key.clone(), "names".into(), RegKind::Names, index_ttl)
                    .await
            }
            Object::Versions => {
                self.mirror_registry(
                    m,
                    key.clone(),
                    "versions".into(),
                    RegKind::Versions,
                    index_ttl,
                )
                .await
            }
            Object::Package(name) => {
                let ttl = Duration::from_secs(m.cfg.package_ttl_secs);
                self.mirror_registry(
                    m,
                    key.clone(),
                    format!("packages/{name}"),
                    RegKind::Package(name.clone()),
                    ttl,
                )
                .await
            }
            Object::Tarball { name, version } => self.mirror_tarball(m, key, name, version).await,
            Object::Docs { name, version } => self.mirror_docs(m, key, name, version).await,
            Object::PublicKey => {
                let pem = m.key.to_spki_pem();
                let etag = format!("\"{}\"", &hex::encode(sha256(pem.as_bytes()))[..32]);
                Ok(Loaded::full(Bytes::from(pem), etag, Outcome::Hit))
            }
        }
    }

    /// A registry file of a mirror: the stored copy while fresh, else the upstream's (verified).
    async fn mirror_registry(
        self: &Arc<Self>,
        m: &Arc<Mirror>,
        key: StorageKey,
        rel: String,
        kind: RegKind,
        ttl: Duration,
    ) -> Result<Loaded, Failure> {
        let path = key.path();
        let stored = self.stored(&key, true, false).await?;
        match &stored {
            Some(s) if m.cfg.offline || m.fresh(&path, ttl) => return Ok(s.clone()),
            None if m.cfg.offline => {
                return Err(Failure::not_found(format!(
                    "{rel} is not in the offline mirror {:?}",
                    m.name
                )));
            }
            _ => {}
        }
        let (me, m2) = (self.clone(), m.clone());
        self.flights
            .run(&format!("upstream:{path}"), async move {
                me.refresh_registry(&m2, key, rel, kind, stored).await
            })
            .await
    }

    async fn refresh_registry(
        &self,
        m: &Mirror,
        key: StorageKey,
        rel: String,
        kind: RegKind,
        stored: Option<Loaded>,
    ) -> Result<Loaded, Failure> {
        let path = key.path();
        let inm = stored.as_ref().and_then(|_| m.upstream_etag(&path));
        let fetched = self
            .upstream_get(m, &rel, inm.as_deref(), REGISTRY_LIMIT)
            .await;
        let stale = |s: Loaded, why: &str| {
            tracing::warn!(mirror = %m.name, object = %rel, reason = why, "serving the stored copy");
            self.metrics.stale.inc();
            Ok(Loaded {
                outcome: Outcome::Stale,
                ..s
            })
        };
        match fetched {
            Ok(Fetched::NotModified) => match stored {
                Some(s) => {
                    m.mark(&path, inm);
                    Ok(Loaded {
                        outcome: Outcome::Revalidated,
                        ..s
                    })
                }
                None => Err(Failure::new(
                    502,
                    Outcome::UpstreamError,
                    "upstream answered 304 to an unconditional request",
                )),
            },
            Ok(Fetched::Ok { body, etag }) => {
                if let Err(why) = verify_registry(m, kind.clone(), body.clone()).await {
                    self.metrics.verify_failed.inc();
                    tracing::error!(mirror = %m.name, object = %rel, error = %why, "upstream registry file does not verify");
                    return match stored {
                        Some(s) => stale(s, "verification failed"),
                        None => Err(Failure::new(
                            502,
                            Outcome::VerifyFailed,
                            format!(
                                "{rel} from the upstream of {:?} failed verification: {why}",
                                m.name
                            ),
                        )),
                    };
                }
                let outcome = if stored.is_some() {
                    Outcome::Revalidated
                } else {
                    Outcome::Miss
                };
                if let Some(s) = stored.filter(|s| s.body.full() == Some(&body)) {
                    m.mark(&path, etag);
                    return Ok(Loaded { outcome, ..s });
                }
                let meta = self
                    .store
                    .put(&key, body.clone(), PutMode::Overwrite)
                    .await
                    .map_err(|e| Failure::store(&e))?;
                self.cache.insert(&path, body.clone(), meta.etag.clone());
                m.mark(&path, etag);
                Ok(Loaded::full(body, meta.etag, outcome))
            }
            Ok(Fetched::NotFound) => match stored {
                Some(s) => stale(s, "gone upstream"),
                None => Err(Failure::not_found(format!(
                    "{rel} does not exist upstream of {:?}",
                    m.name
                ))),
            },
            Err(e) => match stored {
                Some(s) => stale(s, "upstream failed"),
                None => Err(upstream_failure(m, &rel, &e)),
            },
        }
    }

    /// The verified package file of a mirror (`force`: revalidate with the upstream now).
    async fn mirror_package(
        self: &Arc<Self>,
        m: &Arc<Mirror>,
        name: &str,
        force: bool,
    ) -> Result<proto::Package, Failure> {
        let key = StorageKey::package(&m.name, name)
            .map_err(|_| Failure::not_found("no such package"))?;
        let ttl = if force {
            Duration::ZERO
        } else {
            Duration::from_secs(m.cfg.package_ttl_secs)
        };
        let loaded = self
            .mirror_registry(
                m,
                key,
                format!("packages/{name}"),
                RegKind::Package(name.to_owned()),
                ttl,
            )
            .await?;
        let body = self.body_bytes(&loaded.body).await?;
        registry::decode_package(&body, &m.key, &m.cfg.upstream.name, name).map_err(|e| {
            Failure::new(
                502,
                Outcome::VerifyFailed,
                format!("stored package file of {name} does not verify: {e}"),
            )
        })
    }

    async fn mirror_tarball(
        self: &Arc<Self>,
        m: &Arc<Mirror>,
        key: &StorageKey,
        name: &str,
        version: &str,
    ) -> Result<Loaded, Failure> {
        if let Some(l) = self.stored(key, false, true).await? {
            return Ok(l);
        }
        if m.cfg.offline {
            return Err(Failure::not_found(format!(
                "{name}-{version}.tar is not in the offline mirror {:?}",
                m.name
            )));
        }
        let (me, m2, k) = (self.clone(), m.clone(), key.clone());
        let (name, version) = (name.to_owned(), version.to_owned());
        self.flights
            .run(&format!("upstream:{}", key.path()), async move {
                me.fill_tarball(&m2, &k, &name, &version).await
            })
            .await
    }

    async fn fill_tarball(
        self: &Arc<Self>,
        m: &Arc<Mirror>,
        key: &StorageKey,
        name: &str,
        version: &str,
    ) -> Result<Loaded, Failure> {
        let rel = format!("tarballs/{name}-{version}.tar");
        // The tarball is checked against its package file. When that file must be asked of the
        // upstream too (not confirmed within its TTL), both requests go at once, so a cold
        // tarball costs one upstream round trip, not two.
        let package_ttl = Duration::from_secs(m.cfg.package_ttl_secs);
        let ask_package =
            StorageKey::package(&m.name, name).is_ok_and(|k| !m.fresh(&k.path(), package_ttl));
        let (mut pkg, early) = if ask_package {
            let (pkg, fetched) = tokio::join!(
                self.mirror_package(m, name, false),
                self.upstream_get(m, &rel, None, self.tarball_limit)
            );
            (pkg?, Some(fetched))
        } else {
            (self.mirror_package(m, name, false).await?, None)
        };
        if !pkg.releases.iter().any(|r| r.version == version) {
            // A release newer than the stored package file: ask the upstream now.
            pkg = self.mirror_package(m, name, true).await?;
        }
        let release = pkg
            .releases
            .iter()
            .find(|r| r.version == version)
            .ok_or_else(|| Failure::not_found(format!("{name} has no release {version}")))?;
        let expected = release.outer_checksum.clone().ok_or_else(|| {
            Failure::new(
                502,
                Outcome::VerifyFailed,
                format!("{name} {version} has no outer checksum"),
            )
        })?;
        let fetched = match early {
            Some(f) => f,
            None => self.upstream_get(m, &rel, None, self.tarball_limit).await,
        };
        let body = match fetched {
            Ok(Fetched::Ok { body, .. }) => body,
            Ok(Fetched::NotFound) => {
                return Err(Failure::not_found(format!("{rel} does not exist upstream")));
            }
            Ok(Fetched::NotModified) => {
                return Err(Failure::new(
                    502,
                    Outcome::UpstreamError,
                    "upstream answered 304 to an unconditional request",
                ));
            }
            Err(e) => return Err(upstream_failure(m, &rel, &e)),
        };
        let (tarball, want) = (body.clone(), expected.clone());
        if off_thread(body.len(), move || sha256(&tarball) == want).await != Some(true) {
            self.metrics.verify_failed.inc();
            tracing::error!(mirror = %m.name, object = %rel, "upstream tarball does not match the signed outer checksum");
            return Err(Failure::new(
                502,
                Outcome::VerifyFailed,
                format!(
                    "{rel} from the upstream failed verification: its SHA-256 is not the outer checksum of the signed package file"
                ),
            ));
        }
        let etag = match self.store.put(key, body.clone(), PutMode::CreateOnly).await {
            Ok(meta) => meta.etag,
            Err(StoreError::AlreadyExists) => match self.store.head(key).await {
                Ok(Some(meta)) => meta.etag,
                _ => format!("\"{}\"", hex::encode(&expected[..16.min(expected.len())])),
            },
            Err(e) => return Err(Failure::store(&e)),
        };
        self.cache.insert(&key.path(), body.clone(), etag.clone());
        Ok(Loaded::full(body, etag, Outcome::Miss))
    }

    /// GETs `rel` from the upstream of `m` (see [`Upstream::get`]), counted in the metrics.
    async fn upstream_get(
        &self,
        m: &Mirror,
        rel: &str,
        if_none_match: Option<&str>,
        limit: u64,
    ) -> Result<Fetched, UpstreamError> {
        let start = Instant::now();
        let fetched = m.upstream.get(rel, if_none_match, limit).await;
        self.metrics
            .upstream(start.elapsed(), fetched.as_ref().err());
        fetched
    }

    async fn mirror_docs(
        self: &Arc<Self>,
        m: &Arc<Mirror>,
        key: &StorageKey,
        name: &str,
        version: &str,
    ) -> Result<Loaded, Failure> {
        if let Some(l) = self.stored(key, false, true).await? {
            return Ok(l);
        }
        if m.cfg.offline {
            return Err(Failure::not_found(format!(
                "docs of {name} {version} are not in the offline mirror"
            )));
        }
        let (me, m2, k) = (self.clone(), m.clone(), key.clone());
        let rel = format!("docs/{name}-{version}.tar.gz");
        self.flights
            .run(&format!("upstream:{}", key.path()), async move {
                match me.upstream_get(&m2, &rel, None, DOCS_LIMIT).await {
                    Ok(Fetched::Ok { body, .. }) => {
                        let meta = me
                            .store
                            .put(&k, body.clone(), PutMode::Overwrite)
                            .await
                            .map_err(|e| Failure::store(&e))?;
                        me.cache.insert(&k.path(), body.clone(), meta.etag.clone());
                        Ok(Loaded::full(body, meta.etag, Outcome::Miss))
                    }
                    Ok(_) => Err(Failure::not_found(format!("{rel} does not exist upstream"))),
                    Err(e) => Err(upstream_failure(&m2, &rel, &e)),
                }
            })
            .await
    }

    /// `deny` wins; then `allow` (absent = everything); then, with `follow_deps`, the
    /// dependencies (optional ones included: rebar3 fetches them) of every release of the allowed
    /// packages, transitively, read from their signed package files.
    async fn check_allowed(self: &Arc<Self>, m: &Arc<Mirror>, name: &str) -> Result<(), Failure> {
        if let Some(rule) = m.cfg.deny.iter().find(|p| glob_match(p, name)) {
            self.metrics.denied.inc();
            return Err(Failure::new(
                403,
                Outcome::Denied,
                format!(
                    "package {name:?} is denied by rule {rule:?} of mirror {:?}",
                    m.name
                ),
            ));
        }
        let Some(allow) = &m.cfg.allow else {
            return Ok(());
        };
        if allow.iter().any(|p| glob_match(p, name)) {
            return Ok(());
        }
        if m.cfg.follow_deps {
            let cached = m.closure.lock().ok().and_then(|c| c.clone());
            if let Some((_, set)) = &cached
                && set.contains(name)
            {
                return Ok(());
            }
            let stale = cached
                .as_ref()
                .is_none_or(|(at, _)| at.elapsed() > CLOSURE_REFRESH);
            if stale {
                let (me, m2) = (self.clone(), m.clone());
                let set = self
                    .closures
                    .run(&m.name, async move { me.compute_closure(&m2).await })
                    .await;
                if set.contains(name) {
                    return Ok(());
                }
            }
        }
        self.metrics.denied.inc();
        Err(Failure::new(
            403,
            Outcome::Denied,
            format!(
                "package {name:?} is not allowed by mirror {:?} (allow: {}{})",
                m.name,
                allow.join(", "),
                if m.cfg.follow_deps {
                    ", and their dependencies"
                } else {
                    ""
                }
            ),
        ))
    }

    async fn compute_closure(self: &Arc<Self>, m: &Arc<Mirror>) -> Arc<BTreeSet<String>> {
        let allow = m.cfg.allow.clone().unwrap_or_default();
        let mut roots: Vec<String> = allow
            .iter()
            .filter(|p| !p.contains(['*', '?']))
            .cloned()
            .collect();
        if allow.iter().any(|p| p.contains(['*', '?']))
            && let Ok(prefix) = KeyPrefix::packages(&m.name)
            && let Ok(list) = self.store.list(&prefix).await
        {
            for e in list {
                if let StorageKey::Package { name, .. } = &e.key
                    && allow.iter().any(|p| glob_match(p, name))
                {
                    roots.push(name.to_string());
                }
            }
        }
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut queue: VecDeque<String> = roots.into_iter().collect();
        while let Some(name) = queue.pop_front() {
            if seen.len() >= CLOSURE_LIMIT || !seen.insert(name.clone()) {
                continue;
            }
            if m.cfg.deny.iter().any(|p| glob_match(p, &name)) {
                continue;
            }
            let Ok(pkg) = self.mirror_package(m, &name, false).await else {
                continue;
            };
            for r in &pkg.releases {
                for d in &r.dependencies {
                    let same_repo = d
                        .repository
                        .as_deref()
                        .is_none_or(|x| x == m.cfg.upstream.name);
                    if same_repo && !seen.contains(&d.package) {
                        queue.push_back(d.package.clone());
                    }
                }
            }
        }
        let set = Arc::new(seen);
        if let Ok(mut c) = m.closure.lock() {
            *c = Some((Instant::now(), set.clone()));
        }
        set
    }

    /// Forgets what is cached of a repository (after a write through the API).
    pub fn invalidate_repo(&self, repo: &str) {
        self.cache.remove_prefix(&format!("repos/{repo}/"));
    }
}

fn storage_key(repo: &str, object: &Object) -> Result<StorageKey, Failure> {
    let bad = |_| Failure::new(404, Outcome::Invalid, "not found: invalid name or version");
    match object {
        Object::Names => StorageKey::names(repo),
        Object::Versions => StorageKey::versions(repo),
        Object::Package(n) => StorageKey::package(repo, n),
        Object::Tarball { name, version } => StorageKey::tarball(repo, name, version),
        Object::Docs { name, version } => StorageKey::docs(repo, name, version),
        Object::PublicKey => StorageKey::public_key(repo),
    }
    .map_err(bad)
}

/// Checks a registry file from the upstream: signature, `repository`, and for a package file
/// its name. Off the worker thread when large (hex.pm's `versions` is megabytes).
async fn verify_registry(m: &Mirror, kind: RegKind, body: Bytes) -> Result<(), String> {
    let key = m.key.clone();
    let repo = m.cfg.upstream.name.clone();
    off_thread(body.len(), move || {
        let r = match &kind {
            RegKind::Names => registry::decode_names(&body, &key, &repo).map(|_| ()),
            RegKind::Versions => registry::decode_versions(&body, &key, &repo).map(|_| ()),
            RegKind::Package(name) => {
                registry::decode_package(&body, &key, &repo, name).map(|_| ())
            }
        };
        r.map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|| Err("the check did not complete".to_owned()))
}

/// Inputs from this size up are checked on the blocking pool.
const OFF_THREAD_BYTES: usize = 256 * 1024;

/// Runs the CPU-bound check `f` over `len` bytes: inline when small, else on the blocking pool,
/// so that the worker thread (which, without work stealing, alone serves its connections)
/// goes on serving meanwhile. `None` if it did not complete (it panicked).
async fn off_thread<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if len < OFF_THREAD_BYTES {
        return Some(f());
    }
    tokio::task::spawn_blocking(f).await.ok()
}

fn upstream_failure(m: &Mirror, rel: &str, e: &UpstreamError) -> Failure {
    Failure::new(
        e.status(),
        Outcome::UpstreamError,
        format!(
            "{rel} could not be fetched from the upstream of {:?} and no copy is stored: {e}",
            m.name
        ),
    )
}

/// Reads a stream of `size` bytes into one buffer (bounded: a longer stream is an error).
async fn collect(mut chunks: ByteStream, size: u64) -> Result<Bytes, StoreError> {
    use futures::TryStreamExt;
    let cap = usize::try_from(size).map_err(|_| StoreError::Corrupt("object too large".into()))?;
    let mut buf = bytes::BytesMut::with_capacity(cap);
    while let Some(chunk) = chunks.try_next().await? {
        if buf.len() + chunk.len() > cap {
            return Err(StoreError::Corrupt(
                "object longer than its stored size".into(),
            ));
        }
        if buf.is_empty() && chunk.len() == cap {
            return Ok(chunk);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}
