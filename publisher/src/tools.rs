//! Operator subcommands of `hexyard-publisher` that concern keys and repository integrity:
//!
//! - [`keys`]: `keygen` (a hosted repo's signing key, or a bundle key) and `key new` (an API
//!   key and its config entry);
//! - [`verify`]: audit a store (signatures, checksums, dangling references, orphans).
//!
//! Output: a progress bar when stdout is a terminal, plain lines otherwise.

pub mod keys;
pub mod verify;

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Progress output: an indicatif bar on a terminal, nothing per step otherwise (problems and
/// the summary are printed by the caller either way).
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress display for `label`, with no known length yet.
    pub fn new(label: &str) -> Progress {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_prefix(label.to_owned());
            bar
        });
        Progress { bar }
    }

    /// Adds `n` steps to the total.
    pub fn grow(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc_length(n);
        }
    }

    /// One step done.
    pub fn step(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(msg.to_owned());
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
