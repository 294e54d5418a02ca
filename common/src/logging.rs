//! Logging set-up shared by both binaries: `tracing` with the configured filter and format.

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber (text or JSON lines on stderr). `RUST_LOG` overrides the
/// configured level. Calling it twice is harmless.
pub fn init(config: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
