//! Pure builders for the registry messages the publisher writes, in the order hex.pm and
//! `mix hex.registry build` use (protocol doc §3.3).

use super::proto::{Names, NamesPackage, Package, Release, Timestamp, Versions, VersionsPackage};
use crate::version::compare_str;

/// Sorts releases ascending by SemVer precedence ([`compare_str`]: unparsable versions last).
pub fn sort_releases(releases: &mut [Release]) {
    releases.sort_by(|a, b| compare_str(&a.version, &b.version));
}

/// A `Package` for `name` in `repo`: releases sorted by SemVer, each release's dependencies
/// sorted by package name (as `mix hex.registry build` writes them), no advisories.
pub fn build_package(repo: &str, name: &str, mut releases: Vec<Release>) -> Package {
    sort_releases(&mut releases);
    for release in &mut releases {
        release
            .dependencies
            .sort_by(|a, b| a.package.cmp(&b.package));
    }
    Package {
        releases,
        name: name.to_owned(),
        repository: repo.to_owned(),
        advisories: Vec::new(),
    }
}

/// The `/versions` message of `repo` from its packages: packages sorted by name, versions
/// ascending by SemVer, `retired` = indexes (into that sorted list) of releases with a
/// retirement status, `with_advisories` = indexes of releases with advisory indexes.
/// The input order does not matter.
pub fn build_versions(repo: &str, packages: &[Package]) -> Versions {
    let mut out: Vec<VersionsPackage> = packages
        .iter()
        .map(|package| {
            let mut releases: Vec<&Release> = package.releases.iter().collect();
            releases.sort_by(|a, b| compare_str(&a.version, &b.version));
            let indexes = |pred: fn(&Release) -> bool| -> Vec<i32> {
                releases
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| pred(r))
                    .filter_map(|(i, _)| i32::try_from(i).ok())
                    .collect()
            };
            VersionsPackage {
                name: package.name.clone(),
                versions: releases.iter().map(|r| r.version.clone()).collect(),
                retired: indexes(|r| r.retired.is_some()),
                with_advisories: indexes(|r| !r.advisory_indexes.is_empty()),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Versions {
        packages: out,
        repository: repo.to_owned(),
    }
}

/// The `/names` message of `repo` from `(name, updated_at)` pairs, sorted by name.
pub fn build_names<I, S>(repo: &str, packages: I) -> Names
where
    I: IntoIterator<Item = (S, Timestamp)>,
    S: Into<String>,
{
    let mut out: Vec<NamesPackage> = packages
        .into_iter()
        .map(|(name, updated_at)| NamesPackage {
            name: name.into(),
            updated_at: Some(updated_at),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Names {
        packages: out,
        repository: repo.to_owned(),
    }
}
