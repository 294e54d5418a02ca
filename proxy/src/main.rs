//! `hexyard-proxy --config FILE`: the public entry point. Thin: CLI, config, logging, then the
//! library's `build_server`, run until SIGTERM (graceful) or SIGINT (fast). The operator
//! subcommands on mirror objects (`prefetch`, `export`, `import`, `gc`) live in
//! [`hexyard_proxy::tools`].
//!
//! Exit codes: 0 ok; 1 failed or problems found; 2 usage or config error.

use clap::{Parser, Subcommand};
use hexyard_common::config::Config;
use hexyard_proxy::tools::{bundle, gc, prefetch};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "hexyard-proxy",
    version,
    about = "hexyard's front door: repository files, mirrors, /api forwarding",
    after_help = "Exit codes: 0 ok, 1 failed or problems found, 2 usage or config error."
)]
struct Cli {
    /// The deployment's YAML config (shared with hexyard-publisher).
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
    /// Serve (the default).
    Serve,
    /// Fill a mirror with what lock files or named packages need (verified like a proxied
    /// miss; concurrent; a rerun fetches only what is missing).
    #[command(
        after_help = "Examples:\n  hexyard-proxy -c hexyard.yaml prefetch --mirror hexpm_mirror --lock mix.lock --lock rebar.lock\n  hexyard-proxy -c hexyard.yaml prefetch --mirror hexpm_mirror --package jason@'~> 1.4' --package telemetry\n\nA lock entry is fetched when its repository is --lock-repo (default: the mirror's upstream\nname, hexpm); entries of other repositories are listed as skipped."
    )]
    Prefetch {
        /// The mirror repository to fill.
        #[arg(long, value_name = "MIRROR")]
        mirror: String,
        /// A mix.lock or rebar.lock (format detected); repeatable.
        #[arg(long = "lock", value_name = "FILE")]
        locks: Vec<PathBuf>,
        /// The lock repository this mirror stands for (default: its upstream name).
        #[arg(long, value_name = "NAME")]
        lock_repo: Option<String>,
        /// A package, NAME or NAME@REQUIREMENT, with its dependencies; repeatable.
        #[arg(long = "package", value_name = "NAME[@REQ]")]
        packages: Vec<String>,
        /// Concurrent fetches.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
    },
    /// Write a mirror's objects (or what lock files need) into one signed bundle file.
    Export {
        /// The mirror repository to export.
        #[arg(long, value_name = "MIRROR")]
        mirror: String,
        /// The bundle file to write (an uncompressed tar).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// PEM private key that signs the manifest (`hexyard-publisher keygen --bundle`).
        #[arg(long, value_name = "FILE")]
        bundle_key: PathBuf,
        /// Only what this lock file needs; repeatable.
        #[arg(long = "lock", value_name = "FILE")]
        locks: Vec<PathBuf>,
        /// The lock repository this mirror stands for (default: its upstream name).
        #[arg(long, value_name = "NAME")]
        lock_repo: Option<String>,
    },
    /// Verify a bundle completely, then store what is missing (idempotent).
    #[command(
        after_help = "Nothing is written unless the manifest signature, every checksum, every registry\nsignature (upstream key of the mirror) and every tarball's signed outer checksum verify."
    )]
    Import {
        /// The bundle file.
        bundle: PathBuf,
        /// PEM public key of the bundle key.
        #[arg(long, value_name = "FILE")]
        bundle_key: PathBuf,
        /// The mirror to import into (default: the bundle's mirror name).
        #[arg(long, value_name = "MIRROR")]
        mirror: Option<String>,
        /// Pause after each write, in ms (for testing interruptions).
        #[arg(long, hide = true, default_value_t = 0)]
        write_delay_ms: u64,
    },
    /// Evict cached tarballs and docs of a mirror, least recently used first.
    #[command(
        after_help = "Recency is the later of the object's last write (a mirror writes an object when it is\nfirst fetched) and its last access in the proxy's access log (local stores; with S3 the\nwrite time alone). Hosted repositories are never touched; an offline mirror needs --force."
    )]
    Gc {
        /// The mirror repository.
        #[arg(long, value_name = "MIRROR")]
        mirror: String,
        /// Evict until the mirror holds at most this many bytes.
        #[arg(long, value_name = "N", required_unless_present = "older_than")]
        max_bytes: Option<u64>,
        /// Evict what was last used longer ago than this (90s, 15m, 12h, 30d, 2w).
        #[arg(long, value_name = "DURATION", value_parser = gc::parse_duration)]
        older_than: Option<Duration>,
        /// Evict even from an offline mirror (objects cannot be fetched again).
        #[arg(long)]
        force: bool,
        /// Only list what would be evicted.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(config_path) = cli.config else {
        eprintln!("hexyard-proxy: --config FILE is required");
        return ExitCode::from(2);
    };
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hexyard-proxy: {}: {e}", config_path.display());
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("{}: ok", config_path.display());
        return ExitCode::SUCCESS;
    }
    match cli.command {
        None | Some(Command::Serve) => serve(&config, &config_path),
        Some(cmd) => {
            let mut log = config.log.clone();
            log.level = "warn".to_owned();
            hexyard_common::logging::init(&log);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("hexyard-proxy: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(tool(cmd, &config)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("hexyard-proxy: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(config: &Config, config_path: &std::path::Path) -> ExitCode {
    hexyard_common::logging::init(&config.log);
    let server = match hexyard_proxy::build_server(config, config_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hexyard-proxy: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %config.proxy.listen, public_url = %config.public_url, "proxy starting");
    server.run(pingora::server::RunArgs::default());
    ExitCode::SUCCESS
}

/// Runs a tool; `Ok(false)` when it found problems.
async fn tool(cmd: Command, config: &Config) -> anyhow::Result<bool> {
    let y = hexyard_proxy::tools::state(config)?;
    match cmd {
        Command::Serve => Ok(true),
        Command::Prefetch {
            mirror,
            locks,
            lock_repo,
            packages,
            jobs,
        } => {
            let args = prefetch::PrefetchArgs {
                mirror: mirror.clone(),
                locks,
                lock_repo,
                packages,
                jobs,
            };
            let r = prefetch::prefetch(&y, &args).await?;
            for s in &r.skipped {
                println!("skipped {s}: another repository");
            }
            for (path, why) in &r.failed {
                println!("FAILED {path}: {why}");
            }
            println!(
                "prefetch {mirror}: {} fetched, {} already present, {} skipped, {} failed",
                r.fetched.len(),
                r.present.len(),
                r.skipped.len(),
                r.failed.len()
            );
            Ok(r.failed.is_empty())
        }
        Command::Export {
            mirror,
            out,
            bundle_key,
            locks,
            lock_repo,
        } => {
            let args = bundle::ExportArgs {
                mirror: mirror.clone(),
                out: out.clone(),
                bundle_key,
                locks,
                lock_repo,
            };
            let r = bundle::export(&y, &args).await?;
            println!(
                "exported {mirror} to {}: {} objects, {} bytes",
                out.display(),
                r.objects,
                r.bytes
            );
            Ok(true)
        }
        Command::Import {
            bundle: file,
            bundle_key,
            mirror,
            write_delay_ms,
        } => {
            let args = bundle::ImportArgs {
                bundle: file,
                bundle_key,
                mirror,
                write_delay: Duration::from_millis(write_delay_ms),
            };
            let r = bundle::import(&y, &args).await?;
            for p in &r.conflicts {
                println!("CONFLICT {p}: stored with different bytes, kept the stored copy");
            }
            println!(
                "imported ({}): {} added, {} updated, {} already present, {} conflicts",
                r.source,
                r.added.len(),
                r.updated.len(),
                r.unchanged.len(),
                r.conflicts.len()
            );
            Ok(r.conflicts.is_empty())
        }
        Command::Gc {
            mirror,
            max_bytes,
            older_than,
            force,
            dry_run,
        } => {
            let args = gc::GcArgs {
                mirror: mirror.clone(),
                max_bytes,
                older_than,
                force,
                dry_run,
            };
            let root = (config.store.kind == hexyard_common::config::StoreKind::Local)
                .then_some(config.store.root.as_path());
            let r = gc::gc(&y, &args, root).await?;
            let verb = if dry_run { "would evict" } else { "evicted" };
            for p in &r.evicted {
                println!("{verb} {p}");
            }
            println!(
                "gc {mirror}: {verb} {} objects ({} bytes); {} -> {} bytes",
                r.evicted.len(),
                r.evicted_bytes,
                r.before_bytes,
                r.after_bytes
            );
            Ok(true)
        }
    }
}
