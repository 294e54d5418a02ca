//! Operator subcommands of `hexyard-proxy` that work on mirror objects, run against the store
//! and the upstream directly (no server needed, and safe to run while the proxy serves):
//!
//! - [`prefetch`]: fill a mirror with what lock files (or named packages) need, verified like
//!   a proxied miss (it goes through [`crate::serve::Hexyard::serve`]);
//! - [`bundle`]: `export` a mirror (or a lock file's subset) into a signed air-gap bundle, and
//!   `import` one after verifying everything;
//! - [`gc`]: evict cached mirror objects, least recently used first ([`access`]: the log of
//!   the proxy's reads it orders by).
//!
//! Output: a progress bar when stdout is a terminal, plain lines otherwise; a summary at the
//! end. The binary maps a returned `Err` or a report with problems to exit code 1.

pub mod access;
pub mod bundle;
pub mod gc;
pub mod prefetch;

use crate::serve::{Hexyard, Mirror, Repo};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;

/// Why a tool refuses to run.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The name is not a configured repository.
    #[error("no repository named {0:?} in the config")]
    UnknownRepo(String),
    /// The repository is hosted; the tool works on mirrors only.
    #[error(
        "{0:?} is a hosted repository: this command works on mirrors only (it never touches hosted repos)"
    )]
    NotAMirror(String),
}

/// The proxy state for a tool: as the server builds it, but without the access log (what a
/// tool reads or fills is not a client's use, and must not make it "recently used").
///
/// # Errors
/// The store cannot be opened, or a mirror's upstream key is unusable.
pub fn state(config: &hexyard_common::config::Config) -> anyhow::Result<Arc<Hexyard>> {
    let store = hexyard_common::storage::open(&config.store)?;
    let metrics = crate::metrics::ProxyMetrics::new()?;
    let mut y = Hexyard::new(config, store, metrics)?;
    y.access = None;
    Ok(Arc::new(y))
}

/// The mirror `name` of the proxy state.
///
/// # Errors
/// [`ToolError::UnknownRepo`], [`ToolError::NotAMirror`].
pub fn mirror(y: &Hexyard, name: &str) -> Result<Arc<Mirror>, ToolError> {
    match y.repos.get(name) {
        Some(Repo::Mirror(m)) => Ok(m.clone()),
        Some(Repo::Hosted { .. }) => Err(ToolError::NotAMirror(name.to_owned())),
        None => Err(ToolError::UnknownRepo(name.to_owned())),
    }
}

/// Progress output: an indicatif bar on a terminal, one plain line per step otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
}

impl Progress {
    /// A progress display for `len` steps of `label` (`prefetch`, `import`, ...).
    pub fn new(label: &str, len: u64) -> Progress {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(len);
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_prefix(label.to_owned());
            bar
        });
        Progress {
            bar,
            label: label.to_owned(),
        }
    }

    /// Adds `n` steps to the total.
    pub fn grow(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc_length(n);
        }
    }

    /// One step done, described by `msg`.
    pub fn step(&self, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.inc(1);
                b.set_message(msg.to_owned());
            }
            None => println!("{}: {msg}", self.label),
        }
    }

    /// A line that stays (a warning or a failure), above the bar on a terminal.
    pub fn note(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(format!("{}: {msg}", self.label)),
            None => println!("{}: {msg}", self.label),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(b: &[u8]) -> String {
    hexyard_common::bundle::sha256_hex(b)
}
