//! hexyard-proxy: the one public entry point, a pingora server.
//!
//! # Layout
//! - [`route`]: request path -> repository object, `/api`, health.
//! - [`serve`]: hosted and mirror serving, verification, allowlists (the logic).
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
use pingora::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora::protocols::http::ServerSession;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::net::SocketAddr;
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

/// How service `i` spells the proxy's listen address: `addr` with `i` zeros before the port.
/// pingora keeps one listening socket per spelling (its table of sockets, for upgrades, is
/// keyed by the address string), and each service closes its listener when it stops: the
/// services need sockets of their own, hence distinct spellings of one address.
fn spelling(addr: SocketAddr, i: usize) -> String {
    let s = addr.to_string();
    match s.rsplit_once(':') {
        Some((host, port)) => format!("{host}:{}{port}", "0".repeat(i)),
        None => s,
    }
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

    // pingora binds in its service threads and, when an address is taken, retries and then
    // panics there, leaving a process that runs without its listener: bind once here first,
    // so that a taken address stops the start with a clear error.
    for addr in std::iter::once(config.proxy.listen).chain(config.metrics.listen) {
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    }
    let y = build_state(config)?;
    let hex = service::HexProxy {
        y: y.clone(),
        publisher: publisher_authority(config)?,
    };
    let limit = std::time::Duration::from_millis(config.proxy.header_read_timeout_ms);
    // Without work stealing, one service per thread, each with its own listening socket on
    // the same address (SO_REUSEPORT; the kernel spreads new connections over them): each
    // thread accepts its own connections and serves them with the reactor it registered them
    // with. (One service of N no-steal threads accepts on one thread and hands half of the
    // connections to the others, whose every readiness event then arrives on the accepting
    // thread's reactor and crosses over with a wake-up.)
    let (services, threads) = if config.proxy.work_stealing {
        (1, None)
    } else {
        (server.configuration.threads, Some(1))
    };
    for i in 0..services {
        let app = front::Front::new(
            Arc::new(hex.clone()),
            Arc::new(pingora::proxy::http_proxy(
                &server.configuration,
                hex.clone(),
            )),
            limit,
        );
        let mut svc = Service::new(format!("hexyard proxy {i}"), app);
        svc.threads = threads;
        let mut options = TcpSocketOptions::default();
        options.so_reuseport = (services > 1).then_some(true);
        // No write buffer in pingora's stream: `Front` gathers a response's writes itself
        // ([`coalesce`]), so that a header and its body leave in one write whatever their
        // size (pingora's buffer of 1,460 bytes sends a header alone first: two system calls
        // and two wake-ups of the client per response).
        svc.add_listener(
            ListenerConfig::tcp(spelling(config.proxy.listen, i))
                .tcp_socket_options(options)
                .l4_buffer(L4BufferSettings::default().write(0)),
        );
        server.add_service(svc);
    }

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

#[cfg(test)]
mod tests {
    use super::spelling;
    use std::net::{SocketAddr, ToSocketAddrs};

    #[test]
    fn every_spelling_names_the_same_address() {
        for a in ["127.0.0.1:4000", "[::1]:80", "0.0.0.0:65535"] {
            let addr: SocketAddr = a.parse().unwrap();
            let spelled: Vec<String> = (0..4).map(|i| spelling(addr, i)).collect();
            assert_eq!(spelled[0], a);
            for (i, s) in spelled.iter().enumerate() {
                assert_eq!(s.to_socket_addrs().unwrap().next(), Some(addr), "{s}");
                assert!(!spelled[..i].contains(s), "{s} twice");
            }
        }
    }
}
