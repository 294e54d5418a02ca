//! `publisher.spawn: true`: the proxy runs `hexyard-publisher` as its child with the same
//! config, restarts it when it dies (with backoff), and stops it on shutdown (SIGTERM, then
//! SIGKILL after a grace period). The child also watches its parent and exits if the proxy
//! disappears (`HEXYARD_PARENT_PID`).

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Runs and watches the publisher child.
pub struct Supervisor {
    pub binary: PathBuf,
    pub config: PathBuf,
}

impl Supervisor {
    /// The publisher binary next to the running proxy binary.
    pub fn beside_current_exe(config: PathBuf) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
        Ok(Supervisor {
            binary: dir.join("hexyard-publisher"),
            config,
        })
    }

    fn spawn(&self) -> std::io::Result<Child> {
        Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .env("HEXYARD_PARENT_PID", std::process::id().to_string())
            .kill_on_drop(true)
            .spawn()
    }
}

async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        // Graceful first: the publisher finishes in-flight requests on SIGTERM.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

#[async_trait]
impl BackgroundService for Supervisor {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let started = Instant::now();
            let mut child = match self.spawn() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(binary = %self.binary.display(), error = %e, "cannot start the publisher");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            tracing::info!(pid = child.id().unwrap_or(0), "publisher started");
            tokio::select! {
                status = child.wait() => {
                    tracing::warn!(status = ?status.ok(), "publisher exited; restarting");
                    if started.elapsed() > Duration::from_secs(30) {
                        backoff = Duration::from_millis(200);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                _ = shutdown.changed() => {
                    terminate(&mut child).await;
                    tracing::info!("publisher stopped");
                    return;
                }
            }
        }
    }
}
