//! `hexyard-proxy --config FILE`: the public entry point. Thin: CLI, config, logging, then the
//! library's `build_server`, run until SIGTERM (graceful) or SIGINT (fast).

use clap::Parser;
use hexyard_common::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hexyard-proxy",
    version,
    about = "hexyard's front door: repository files, mirrors, /api forwarding"
)]
struct Cli {
    /// The deployment's YAML config (shared with hexyard-publisher).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Validate the config and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hexyard-proxy: {}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("{}: ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    hexyard_common::logging::init(&config.log);
    let server = match hexyard_proxy::build_server(&config, &cli.config) {
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
