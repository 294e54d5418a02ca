//! hexyard-proxy: the one public entry point, a pingora server.
//!
//! # Layout
//! - [`route`]: request path -> repository object, `/api`, health.
//! - [`serve`]: hosted and mirror serving, verification, allowlists (the logic).
//! - [`accept`]: the listening socket and the per-thread accept loops.
//! - [`cache`]: the moka hot cache; [`flight`]: single flight.
//! - [`coalesce`]: the client connection's write buffer (header and body in one write).
//! - [`front`]: the connection loop: answers reads itself, hands the rest to the proxy, and
//!   bounds the time a client takes to send a request head.
//! - [`upstream`]: the mirror upstream client.
//! - [`service`]: the thin pingora `ProxyHttp` implementation.
//! - [`supervisor`]: the publisher child (`publisher.spawn`).
//! - [`metrics`]: the Prometheus metrics.
//! - [`tools`]: operator subcommands on mirror objects (prefetch, export/import, gc).
//!
//! [`build_server`] turns a loaded config into a pingora `Server` with every service added;
//! the caller runs it.

pub mod accept;
pub mod cache;
pub mod coalesce;
pub mod flight;
pub mod front;
pub mod metrics;
pub mod range;
pub mod route;
pub mod serve;
pub mod service;
pub mod supervisor;
pub mod tools;
pub mod upstream;

use anyhow::Context;
use async_trait::async_trait;
use hexyard_common::config::Config;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::path::Path;
use std::sync::Arc;

/// How long in-flight requests may run on after SIGTERM.
pub const SHUTDOWN_GRACE_SECS: u64 = 5;

/// `/metrics` of the proxy on the metrics listener.
struct MetricsApp(Arc<serve::Hexyard>);

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let y = &self.0;
        y.metrics
            .cache_bytes
            .set(i64::try_from(y.cache.weighted_size()).unwrap_or(i64::MAX));
        y.metrics
            .cache_entries
            .set(i64::try_from(y.cache.entry_count()).unwrap_or(i64::MAX));
        let (status, body) = if session.req_header().uri.path() == "/metrics" {
            (200, hexyard_common::metrics::render(&y.metrics.registry))
        } else {
            (404, b"not found\n".to_vec())
        };
        let mut resp = http::Response::new(body);
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        if let Ok(v) = http::HeaderValue::from_str(hexyard_common::metrics::TEXT_CONTENT_TYPE) {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        resp
    }
}

/// The `host:port` of the publisher from `proxy.publisher_url` (or `publisher.listen`).
fn publisher_authority(config: &Config) -> anyhow::Result<String> {
    let url = config.publisher_url();
    let rest = url
        .strip_prefix("http://")
        .context("proxy.publisher_url must be an http:// URL")?;
    Ok(rest.split('/').next().unwrap_or(rest).to_owned())
}

/// Builds the proxy's shared state.
pub fn build_state(config: &Config) -> anyhow::Result<Arc<serve::Hexyard>> {
    let store = hexyard_common::storage::open(&config.store).context("opening the store")?;
    let metrics = metrics::ProxyMetrics::new().context("registering metrics")?;
    Ok(Arc::new(serve::Hexyard::new(config, store, metrics)?))
}

/// Builds the pingora server for `config` (read from `config_path`, which a spawned publisher
/// is given too): the proxy service on `proxy.listen`, `/metrics` on `metrics.listen`, and the
/// publisher supervisor when `publisher.spawn` is set. Nothing runs until the caller runs it.
pub fn build_server(config: &Config, config_path: &Path) -> anyhow::Result<Server> {
    let mut conf = ServerConf::new().context("pingora defaults")?;
    conf.threads = config.proxy.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    conf.work_stealing = config.proxy.work_stealing;
    // SIGTERM: stop accepting, let in-flight requests finish for up to the grace period, then
    // stop. (pingora waits out the whole period; SIGINT stops at once.)
    conf.grace_period_seconds = Some(SHUTDOWN_GRACE_SECS);
    conf.graceful_shutdown_timeout_seconds = Some(5);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    // Bound here, on the main thread, so that a taken address stops the start with a clear
    // error. (pingora binds in its service threads and, when an address is taken, retries and
    // then panics there, leaving a process that runs without its listener: the metrics
    // listener, which pingora binds, is tried here first for that reason.)
    let listener = accept::listen(config.proxy.listen)
        .with_context(|| format!("cannot listen on {}", config.proxy.listen))?;
    if let Some(addr) = config.metrics.listen {
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    }
    let y = build_state(config)?;
    let hex = service::HexProxy {
        y: y.clone(),
        publisher: publisher_authority(config)?,
    };
    let limit = std::time::Duration::from_millis(config.proxy.header_read_timeout_ms);
    // Without work stealing, one accept service per thread, each a single-threaded runtime
    // accepting on its own copy of the listening socket ([`accept`]); with it, one service
    // on a work-stealing runtime of all the threads.
    let (services, threads) = if config.proxy.work_stealing {
        (1, None)
    } else {
        (server.configuration.threads, Some(1))
    };
    let balance = accept::Balance::new(services);
    for i in 0..services {
        let front = front::Front::new(
            Arc::new(hex.clone()),
            Arc::new(pingora::proxy::http_proxy(
                &server.configuration,
                hex.clone(),
            )),
            limit,
        );
        let socket = listener
            .try_clone()
            .with_context(|| format!("cannot listen on {}", config.proxy.listen))?;
        server.add_service(accept::Accept::new(
            format!("hexyard proxy {i}"),
            socket,
            front,
            threads,
            balance.clone(),
            i,
        ));
    }
    drop(listener);

    if let Some(addr) = config.metrics.listen {
        let mut m = Service::new("hexyard metrics".to_owned(), MetricsApp(y));
        m.add_tcp(&addr.to_string());
        server.add_service(m);
    }
    if config.publisher.spawn {
        let path = std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_path_buf());
        let sup = supervisor::Supervisor::beside_current_exe(path)
            .context("locating hexyard-publisher")?;
        server.add_service(background_service("publisher supervisor", sup));
    }
    Ok(server)
}
