//! `gc`: evict cached objects of a mirror, least recently used first, to fit `--max-bytes` or
//! to drop what is `--older-than` a duration. Hosted repositories are never touched.
//!
//! "Recently used" is the later of the object's last write time in the store (`last_modified`:
//! a mirror writes an object when a client first asks for it) and its last access noted in
//! the proxy's access log ([`super::access`], local stores only; with S3 the write time alone
//! counts, i.e. "least recently fetched"). Only tarballs and docs are evicted (they are the bulk and
//! are fetched again on the next miss); package files and `names`/`versions` stay, so nothing
//! left behind is an orphan.
//!
//! On an `offline: true` mirror an evicted object could never be fetched again: gc refuses
//! unless forced.

use super::mirror;
use crate::serve::Hexyard;
use hexyard_common::storage::{KeyPrefix, ListEntry, StorageKey, StoreError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What to evict.
#[derive(Debug, Clone, Default)]
pub struct GcArgs {
    /// The mirror.
    pub mirror: String,
    /// Evict until the mirror's objects total at most this many bytes.
    pub max_bytes: Option<u64>,
    /// Evict what was last written longer ago than this.
    pub older_than: Option<Duration>,
    /// Evict even on an offline mirror.
    pub force: bool,
    /// Only report.
    pub dry_run: bool,
}

/// What gc did (or would do, with `dry_run`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Evicted store paths, oldest first.
    pub evicted: Vec<String>,
    /// Bytes evicted.
    pub evicted_bytes: u64,
    /// Bytes of the mirror's objects before.
    pub before_bytes: u64,
    /// Bytes after.
    pub after_bytes: u64,
}

/// Why gc refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Unknown repo or a hosted one.
    #[error(transparent)]
    Tool(#[from] super::ToolError),
    /// The mirror is offline and `--force` was not given.
    #[error(
        "mirror {0:?} is offline (offline: true): evicted objects could never be fetched again, so gc refuses; pass --force to evict anyway"
    )]
    Offline(String),
    /// Neither a size nor an age.
    #[error("give --max-bytes N or --older-than DURATION")]
    NoCriterion,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Parses `90s`, `15m`, `12h`, `30d`, `2w` (or plain seconds).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit (s, m, h, d, w)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d, w)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

/// Runs gc. `store_root` is the root of a local store (whose access log orders eviction);
/// `None` for other stores.
///
/// # Errors
/// [`GcError`].
pub async fn gc(
    y: &Arc<Hexyard>,
    args: &GcArgs,
    store_root: Option<&std::path::Path>,
) -> Result<GcReport, GcError> {
    let m = mirror(y, &args.mirror)?;
    if args.max_bytes.is_none() && args.older_than.is_none() {
        return Err(GcError::NoCriterion);
    }
    if m.cfg.offline && !args.force {
        return Err(GcError::Offline(m.name.clone()));
    }
    let all = y
        .store
        .list(&KeyPrefix::repo(&m.name).map_err(StoreError::from)?)
        .await?;
    let before: u64 = all.iter().map(|e| e.size).sum();
    let accessed = store_root
        .map(|root| super::access::read(root, &m.name))
        .unwrap_or_default();
    let used = |e: &ListEntry| {
        accessed
            .get(&e.key.path())
            .map_or(e.last_modified, |t| (*t).max(e.last_modified))
    };
    let mut candidates: Vec<(SystemTime, &ListEntry)> = all
        .iter()
        .filter(|e| matches!(e.key, StorageKey::Tarball { .. } | StorageKey::Docs { .. }))
        .map(|e| (used(e), e))
        .collect();
    candidates.sort_by(|(ta, a), (tb, b)| ta.cmp(tb).then_with(|| a.key.cmp(&b.key)));
    let cutoff = args
        .older_than
        .and_then(|d| SystemTime::now().checked_sub(d));
    let mut total = before;
    let mut report = GcReport {
        before_bytes: before,
        ..GcReport::default()
    };
    for (last_used, e) in candidates {
        let too_big = args.max_bytes.is_some_and(|max| total > max);
        let too_old = cutoff.is_some_and(|c| last_used < c);
        if !too_big && !too_old {
            if args.older_than.is_none() {
                break; // sorted oldest first: the size fits from here on
            }
            continue;
        }
        if !args.dry_run {
            y.store.delete(&e.key).await?;
        }
        total = total.saturating_sub(e.size);
        report.evicted_bytes += e.size;
        report.evicted.push(e.key.path());
    }
    if !args.dry_run && !report.evicted.is_empty() {
        y.invalidate_repo(&m.name);
    }
    report.after_bytes = total;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("d").is_err());
    }
}
