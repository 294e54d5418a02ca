//! Release versions: strict SemVer 2.0 as hex.pm accepts them (protocol doc §5.2).
//!
//! `MAJOR.MINOR.PATCH[-PRE]`, no leading zeros, no build metadata, numeric parts at
//! most 99 999 999 999 999 and a pre-release of at most 64 bytes. Ordering is SemVer
//! precedence (a pre-release sorts before its release), which is the order of
//! `releases` in `packages/NAME` and of `versions` in `/versions`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Largest numeric component hex.pm accepts.
pub const MAX_COMPONENT: u64 = 99_999_999_999_999;
/// Longest pre-release string hex.pm accepts, in bytes.
pub const MAX_PRE_BYTES: usize = 64;

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("invalid version {0:?}: not MAJOR.MINOR.PATCH[-PRE] ({1})")]
    Syntax(String, String),
    #[error("invalid version {0:?}: build number not allowed")]
    BuildMetadata(String),
    #[error("invalid version {0:?}: number too large")]
    TooLarge(String),
    #[error("invalid version {0:?}: pre-release longer than {MAX_PRE_BYTES} bytes")]
    PreTooLong(String),
}

/// A validated release version. Equality and ordering follow SemVer precedence.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Version(semver::Version);

impl Version {
    /// Parses and validates a version under hex.pm's rules.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let v = semver::Version::parse(s)
            .map_err(|e| VersionError::Syntax(s.to_owned(), e.to_string()))?;
        if !v.build.is_empty() {
            return Err(VersionError::BuildMetadata(s.to_owned()));
        }
        if v.major > MAX_COMPONENT || v.minor > MAX_COMPONENT || v.patch > MAX_COMPONENT {
            return Err(VersionError::TooLarge(s.to_owned()));
        }
        if v.pre.len() > MAX_PRE_BYTES {
            return Err(VersionError::PreTooLong(s.to_owned()));
        }
        Ok(Version(v))
    }

    /// True for a pre-release (`1.0.0-rc.1`).
    pub fn is_pre(&self) -> bool {
        !self.0.pre.is_empty()
    }

    /// The underlying `semver` value (for requirement matching).
    pub fn as_semver(&self) -> &semver::Version {
        &self.0
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.0)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

/// Compares two version strings by SemVer precedence; strings that do not parse sort
/// after every valid version, among themselves by byte order. Used to order versions
/// that came from elsewhere (an upstream registry) without failing on odd ones.
pub fn compare_str(a: &str, b: &str) -> Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp_precedence(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_like_hexpm() {
        for ok in ["0.1.0", "1.0.0-rc.1", "1.0.0-alpha-beta", "99999999999999.0.0"] {
            assert!(Version::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["1.0", "v1.0.0", "01.0.0", "1.0.0-01", "", "1.0.0 ", "1.0.0.0"] {
            assert!(matches!(Version::parse(bad), Err(VersionError::Syntax(..))), "{bad}");
        }
        assert!(matches!(Version::parse("1.0.0+build.1"), Err(VersionError::BuildMetadata(_))));
        assert!(matches!(Version::parse("100000000000000.0.0"), Err(VersionError::TooLarge(_))));
        let long = format!("1.0.0-{}", "a".repeat(65));
        assert!(matches!(Version::parse(&long), Err(VersionError::PreTooLong(_))));
    }

    #[test]
    fn sorts_by_precedence() {
        let mut v: Vec<Version> = ["1.0.0", "0.2.0", "1.0.0-rc.1", "0.10.0", "1.0.0-alpha", "0.1.0"]
            .iter()
            .map(|s| Version::parse(s))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        v.sort();
        let s: Vec<String> = v.iter().map(|v| v.to_string()).collect();
        assert_eq!(s, ["0.1.0", "0.2.0", "0.10.0", "1.0.0-alpha", "1.0.0-rc.1", "1.0.0"]);
        assert_eq!(compare_str("1.0.0+a", "1.0.0"), Ordering::Greater);
        assert_eq!(compare_str("junk", "1.0.0"), Ordering::Greater);
    }
}
