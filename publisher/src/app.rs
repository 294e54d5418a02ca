//! `App`: the publisher's state and request dispatch (route -> repo -> auth -> handler).

use crate::api;
use crate::auth::{Access, Authenticator, Principal};
use crate::error::ApiError;
use crate::index::HostedRepo;
use crate::metrics::Metrics;
use crate::respond::{Format, Reply};
use crate::routes::{self, Route, RouteError};
use crate::server::{Body, Handler};
use hexyard_common::docs::DocsLimits;
use hexyard_common::storage::Store;
use hexyard_common::tarball::{Metadata, TarballLimits};
use http::{Request, StatusCode};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most tarball metadata entries kept in memory for the info routes.
const META_CACHE_ENTRIES: usize = 4096;

/// Everything a request handler needs.
pub struct App {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub default_repo: Option<String>,
    pub hosted: BTreeMap<String, Arc<HostedRepo>>,
    /// Mirror repos: known, but they have no API.
    pub mirrors: Vec<String>,
    pub limits: TarballLimits,
    pub docs_limits: DocsLimits,
    /// Base URL clients use (no trailing slash).
    pub public_url: String,
    pub metrics: Metrics,
    /// Principals with write access per repo (for `/owners`).
    pub owners: BTreeMap<String, Vec<String>>,
    /// How long a client may take to send a request head (`publisher.header_read_timeout_ms`).
    pub header_read_timeout: Duration,
    meta_cache: Mutex<HashMap<[u8; 32], Arc<Metadata>>>,
}

/// Per-request context handed to the handlers.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub repo: &'a Arc<HostedRepo>,
    pub principal: Option<Principal>,
    pub format: Format,
}

impl Ctx<'_> {
    /// Requires `need` on this repo: 401 without a key, 403 without the grant.
    pub fn require(&self, need: Access) -> Result<&Principal, ApiError> {
        let p = self
            .principal
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("missing authentication information"))?;
        crate::auth::require(p, &self.repo.name, need)?;
        Ok(p)
    }

    /// Reads of a private repo need read access; a public repo is open.
    pub fn require_read(&self) -> Result<(), ApiError> {
        if self.repo.public {
            return Ok(());
        }
        match &self.principal {
            // Do not reveal whether anything exists to someone without access.
            None => Err(ApiError::unauthorized("missing authentication information")),
            Some(p) if p.access(&self.repo.name).is_some() => Ok(()),
            Some(_) => Err(ApiError::page_not_found()),
        }
    }
}

/// What the access log records of a request besides method, path and status.
#[derive(Default)]
pub struct LogInfo {
    pub repo: Option<String>,
    pub package: Option<String>,
    pub bytes_in: usize,
}

impl App {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        auth: Authenticator,
        default_repo: Option<String>,
        hosted: BTreeMap<String, Arc<HostedRepo>>,
        mirrors: Vec<String>,
        limits: TarballLimits,
        docs_limits: DocsLimits,
        public_url: String,
        metrics: Metrics,
        owners: BTreeMap<String, Vec<String>>,
    ) -> Self {
        App {
            store,
            auth,
            default_repo,
            hosted,
            mirrors,
            limits,
            docs_limits,
            public_url: public_url.trim_end_matches('/').to_owned(),
            metrics,
            owners,
            header_read_timeout: Duration::from_secs(30),
            meta_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Cached metadata of a tarball, by outer checksum.
    pub fn cached_meta(&self, outer: &[u8]) -> Option<Arc<Metadata>> {
        let key: [u8; 32] = outer.try_into().ok()?;
        self.meta_cache.lock().ok()?.get(&key).cloned()
    }

    pub fn cache_meta(&self, outer: [u8; 32], meta: Arc<Metadata>) {
        if let Ok(mut c) = self.meta_cache.lock() {
            if c.len() >= META_CACHE_ENTRIES {
                c.clear();
            }
            c.insert(outer, meta);
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        req: Request<Body>,
        format: Format,
        log: &mut LogInfo,
    ) -> Result<Reply, ApiError> {
        let routed = routes::route(req.method(), req.uri().path()).map_err(|e| match e {
            RouteError::NotFound => ApiError::page_not_found(),
            RouteError::MethodNotAllowed => {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
            }
            RouteError::BadPath(why) => ApiError::bad_request(format!("Bad request: {why}")),
        })?;
        let repo_name = match routed.repo.clone().or_else(|| self.default_repo.clone()) {
            Some(r) => r,
            None => {
                return Err(ApiError::not_found(
                    "no repository in the path (/api/repos/REPO/...) and no default_repo configured",
                ));
            }
        };
        log.repo = Some(repo_name.clone());
        let principal = crate::auth::authenticate(
            &self.auth,
            req.headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )?;
        let Some(repo) = self.hosted.get(&repo_name) else {
            if self.mirrors.contains(&repo_name) {
                return Err(ApiError::not_found(format!(
                    "repository {repo_name:?} is a read-only mirror: it has no API"
                )));
            }
            return Err(ApiError::not_found(format!(
                "unknown repository {repo_name:?}"
            )));
        };
        let ctx = Ctx {
            app: self,
            repo,
            principal,
            format,
        };
        let query = req.uri().query().unwrap_or("").to_owned();
        match routed.route {
            Route::UsersMe => api::users::me(&ctx),
            Route::Auth => api::users::auth(&ctx, &query),
            Route::Publish { name } => {
                log.package = name.clone();
                api::publish::publish(&ctx, name.as_deref(), &query, req, log).await
            }
            Route::Search => api::packages::search(&ctx, &query).await,
            Route::Package { name } => {
                log.package = Some(name.clone());
                api::packages::get(&ctx, &name).await
            }
            Route::Owners { name } => {
                log.package = Some(name.clone());
                api::packages::owners(&ctx, &name).await
            }
            Route::OwnersChange { name } => {
                log.package = Some(name);
                // Authenticate first, as every write route: 401 without a valid key.
                ctx.require(Access::Write)?;
                Err(ApiError::forbidden(
                    "owners are managed in the hexyard configuration (keys and their grants)",
                ))
            }
            Route::Release { name, version } => {
                log.package = Some(name.clone());
                api::releases::get(&ctx, &name, &version).await
            }
            Route::Revert { name, version } => {
                log.package = Some(name.clone());
                api::releases::revert(&ctx, &name, &version).await
            }
            Route::Retire { name, version } => {
                log.package = Some(name.clone());
                api::releases::retire(&ctx, &name, &version, req).await
            }
            Route::Unretire { name, version } => {
                log.package = Some(name.clone());
                api::releases::unretire(&ctx, &name, &version).await
            }
            Route::DocsPublish { name, version } => {
                log.package = Some(name.clone());
                api::docs::publish(&ctx, &name, &version, req, log).await
            }
            Route::DocsRevert { name, version } => {
                log.package = Some(name.clone());
                api::docs::revert(&ctx, &name, &version).await
            }
        }
    }
}

/// Route class of a request, a bounded label for metrics.
fn route_class(method: &http::Method, path: &str) -> &'static str {
    match routes::route(method, path) {
        Ok(r) => match r.route {
            Route::Publish { .. } => "publish",
            Route::DocsPublish { .. } | Route::DocsRevert { .. } => "docs",
            Route::Revert { .. } => "revert",
            Route::Retire { .. } | Route::Unretire { .. } => "retire",
            Route::UsersMe | Route::Auth => "user",
            Route::OwnersChange { .. } | Route::Owners { .. } => "owners",
            Route::Search | Route::Package { .. } | Route::Release { .. } => "info",
        },
        Err(_) => "unknown",
    }
}

impl Handler for App {
    async fn handle(self: Arc<Self>, req: Request<Body>) -> Reply {
        let start = Instant::now();
        let format = Format::from_headers(req.headers());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let class = route_class(&method, &path);
        let mut log = LogInfo::default();
        let (reply, error) = match self.dispatch(req, format, &mut log).await {
            Ok(r) => (r, None),
            Err(e) => {
                let text = e.to_string();
                (e.into_reply(format), Some(text))
            }
        };
        let elapsed = start.elapsed();
        self.metrics.observe(class, reply.status.as_u16(), elapsed);
        tracing::info!(
            target: "hexyard::access",
            method = %method,
            path = %path,
            repo = log.repo.as_deref().unwrap_or("-"),
            package = log.package.as_deref().unwrap_or("-"),
            status = reply.status.as_u16(),
            outcome = if reply.status.is_success() { "ok" } else { "error" },
            error = error.as_deref().unwrap_or(""),
            bytes_in = log.bytes_in,
            bytes_out = reply.body.len(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        reply
    }
}
