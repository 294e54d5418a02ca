//! `hexyard-publisher --config FILE`: the API process. Thin: CLI, config, logging, then the
//! library's `build` and `run`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hexyard_common::config::Config;
use hexyard_publisher::{app::App, metrics_server, rebuild};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "hexyard-publisher",
    version,
    about = "hexyard's API: publish, revert, retire, docs"
)]
struct Cli {
    /// The deployment's YAML config (shared with hexyard-proxy).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Validate the config and exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Import every tarball under DIR into a hosted repo, then rebuild its indexes.
    Import {
        #[arg(long)]
        repo: String,
        dir: PathBuf,
    },
    /// Rebuild a hosted repo's indexes from its stored tarballs.
    Rebuild {
        #[arg(long)]
        repo: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hexyard-publisher: {}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("{}: ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    hexyard_common::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hexyard-publisher: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hexyard-publisher: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn hosted<'a>(
    app: &'a App,
    repo: &str,
) -> anyhow::Result<&'a Arc<hexyard_publisher::index::HostedRepo>> {
    app.hosted
        .get(repo)
        .with_context(|| format!("no hosted repository named {repo:?} in the config"))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let app = hexyard_publisher::build(&config).await?;
    match command {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.publisher.listen)
                .await
                .with_context(|| format!("binding {}", config.publisher.listen))?;
            if let Some(addr) = config.metrics.publisher_listen() {
                metrics_server::spawn(addr, app.metrics.registry.clone()).await?;
            }
            tracing::info!(listen = %config.publisher.listen, store = %app.store.describe(), "publisher ready");
            hexyard_publisher::run(app, listener, shutdown_signal()).await?;
            tracing::info!("publisher stopped");
        }
        Command::Import { repo, dir } => {
            let r = hosted(&app, &repo)?;
            let report = rebuild::import(&app, r, &dir).await?;
            println!(
                "imported into {repo}: {} added, {} already present, {} rejected; index: {} packages, {} releases",
                report.added,
                report.unchanged,
                report.rejected.len(),
                report.rebuild.packages,
                report.rebuild.releases
            );
            for (path, why) in &report.rejected {
                println!("  rejected {}: {why}", path.display());
            }
            if !report.rejected.is_empty() {
                anyhow::bail!("{} tarballs were rejected", report.rejected.len());
            }
        }
        Command::Rebuild { repo } => {
            let r = hosted(&app, &repo)?;
            let report = rebuild::rebuild(&app, r).await?;
            println!(
                "rebuilt {repo}: {} packages, {} releases, {} package files removed, {} tarballs skipped",
                report.packages,
                report.releases,
                report.removed_packages,
                report.skipped.len()
            );
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
