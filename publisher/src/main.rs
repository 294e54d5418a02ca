//! `hexyard-publisher --config FILE`: the API process. Thin: CLI, config, logging, then the
//! library's `build` and `run`. The operator subcommands on keys and integrity (`keygen`,
//! `key new`, `verify`) live in [`hexyard_publisher::tools`].
//!
//! Exit codes: 0 ok; 1 failed or problems found; 2 usage or config error.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hexyard_common::config::Config;
use hexyard_publisher::{app::App, metrics_server, rebuild, tools};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "hexyard-publisher",
    version,
    about = "hexyard's API: publish, revert, retire, docs",
    after_help = "Exit codes: 0 ok, 1 failed or problems found, 2 usage or config error."
)]
struct Cli {
    /// The deployment's YAML config (shared with hexyard-proxy).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
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
    /// Make a signing key: a hosted repo's (--repo R) or a bundle key (--bundle --out FILE).
    #[command(
        after_help = "Prints the public key fingerprint in the SHA256:... form that\n`mix hex.repo add NAME URL --fetch-public-key SHA256:...` checks.\nA repo key goes to the repo's configured private_key path; restart the publisher to\npublish its /public_key. A bundle key writes FILE (private) and FILE's stem + .pub.pem\n(public, for `hexyard-proxy import --bundle-key`)."
    )]
    Keygen {
        /// The hosted repository whose key to make.
        #[arg(
            long,
            value_name = "REPO",
            required_unless_present = "bundle",
            conflicts_with = "bundle"
        )]
        repo: Option<String>,
        /// Make a bundle key instead (needs --out; no config needed).
        #[arg(long, requires = "out")]
        bundle: bool,
        /// Where the bundle key goes.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Overwrite an existing key (clients trusting the old key will reject the new one).
        #[arg(long)]
        force: bool,
    },
    /// API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Audit the store: registry signatures, tarball checksums, dangling references, orphans.
    #[command(after_help = "Exits 1 when any problem is found; every problem names the object.")]
    Verify {
        /// Only this repository (default: every configured one).
        #[arg(long, value_name = "REPO")]
        repo: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Make a random API key; print it once, and the config entry (with only its SHA-256).
    New {
        /// The key's name (for logs).
        #[arg(long)]
        name: String,
        /// A grant, REPO:read|write|admin; repeatable.
        #[arg(long = "grant", value_name = "REPO:ACCESS", required = true)]
        grants: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Keygen {
        bundle: true,
        out: Some(out),
        force,
        ..
    }) = &cli.command
    {
        return match tools::keys::keygen_bundle(out, *force) {
            Ok(k) => {
                print_new_key(&k);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hexyard-publisher: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(config_path) = cli.config else {
        eprintln!("hexyard-publisher: --config FILE is required");
        return ExitCode::from(2);
    };
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hexyard-publisher: {}: {e}", config_path.display());
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("{}: ok", config_path.display());
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Some(Command::Keygen { repo, force, .. }) => {
            let repo = repo.unwrap_or_default();
            return match tools::keys::keygen_repo(&config, &repo, force) {
                Ok(k) => {
                    print_new_key(&k);
                    println!("restart the publisher to serve the new /public_key of {repo}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hexyard-publisher: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Key {
            command: KeyCommand::New { name, grants },
        }) => {
            return match tools::keys::new_api_key(&config, &name, &grants) {
                Ok(k) => {
                    println!(
                        "API key {name:?} (shown only now; store it safely):\n{}",
                        k.key
                    );
                    println!(
                        "\nAdd this entry under `keys:` in the config (it holds only the SHA-256):\n{}",
                        k.yaml
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hexyard-publisher: {e}");
                    ExitCode::from(2)
                }
            };
        }
        _ => {}
    }
    if let Some(Command::Verify { .. }) = &cli.command {
        let mut log = config.log.clone();
        log.level = "warn".to_owned();
        hexyard_common::logging::init(&log);
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
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
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

fn print_new_key(k: &tools::keys::NewKey) {
    println!("private key: {}", k.private_path.display());
    if let Some(p) = &k.public_path {
        println!("public key: {}", p.display());
    }
    println!("fingerprint: {}", k.fingerprint);
}

/// Runs a command; `Ok(false)` when it found problems.
async fn run(command: Command, config: Config) -> anyhow::Result<bool> {
    if let Command::Verify { repo } = &command {
        let store = hexyard_publisher::open_store(&config)?;
        let audits = tools::verify::verify(&config, store.as_ref(), repo.as_deref()).await?;
        let mut problems = 0;
        for a in &audits {
            for p in &a.problems {
                println!("PROBLEM {}: {}", p.path, p.what);
            }
            problems += a.problems.len();
            println!(
                "verify {} ({}): {} registry files, {} tarballs, {} docs checked; {}{} problems",
                a.repo,
                a.kind,
                a.registry_files,
                a.tarballs,
                a.docs,
                if a.kind == "mirror" {
                    format!("{} releases not cached; ", a.not_cached)
                } else {
                    String::new()
                },
                a.problems.len()
            );
        }
        println!(
            "{}",
            if problems == 0 {
                "verify: ok".to_owned()
            } else {
                format!("verify: {problems} problems")
            }
        );
        return Ok(problems == 0);
    }
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
        Command::Keygen { .. } | Command::Key { .. } | Command::Verify { .. } => {}
    }
    Ok(true)
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
