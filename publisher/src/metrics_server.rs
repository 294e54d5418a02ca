//! A tiny HTTP server for `GET /metrics` on the metrics port.

use crate::respond::Reply;
use crate::server::{Body, Handler, ServeOptions, serve};
use bytes::Bytes;
use http::{Request, StatusCode};
use prometheus::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

struct MetricsHandler(Registry);

impl Handler for MetricsHandler {
    async fn handle(self: Arc<Self>, req: Request<Body>) -> Reply {
        if req.uri().path() != "/metrics" {
            return Reply {
                status: StatusCode::NOT_FOUND,
                headers: vec![],
                body: Bytes::from_static(b"not found\n"),
            };
        }
        Reply {
            status: StatusCode::OK,
            headers: vec![(
                "content-type",
                hexyard_common::metrics::TEXT_CONTENT_TYPE.to_owned(),
            )],
            body: Bytes::from(hexyard_common::metrics::render(&self.0)),
        }
    }
}

/// Binds `addr` and serves the registry there in the background.
pub async fn spawn(addr: SocketAddr, registry: Registry) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = serve(
            listener,
            Arc::new(MetricsHandler(registry)),
            std::future::pending(),
            ServeOptions {
                grace: Duration::ZERO,
                header_read_timeout: Duration::from_secs(30),
                drain_bytes: 64 * 1024,
                drain_time: Duration::from_secs(5),
            },
        )
        .await;
    });
    Ok(local)
}
