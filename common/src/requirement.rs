//! Elixir version requirements (`~> 1.0`, `>= 1.2.0 and < 2.0.0`, `== 1.0.0 or ~> 2.1`), the
//! syntax of `requirement` in `metadata.config` and the registry (protocol doc §5.3).
//!
//! `or` binds looser than `and`. A clause without an operator means `==`. `~> MAJOR.MINOR`
//! allows `>= MAJOR.MINOR.0` and `< (MAJOR+1).0.0`; `~> MAJOR.MINOR.PATCH` allows
//! `>= MAJOR.MINOR.PATCH` and `< MAJOR.(MINOR+1).0`. Only `~>` takes a version without a patch
//! part, as in Elixir. `!=` parses (for reading other registries) but [`Requirement::parse_for_publish`]
//! refuses it, as hex.pm does.

use semver::Version as SemVer;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    op: Op,
    version: SemVer,
    /// For `~>`: whether the patch part was given.
    patch_given: bool,
}

/// A parsed requirement: a disjunction of conjunctions of clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    any_of: Vec<Vec<Clause>>,
    text: String,
}

/// Why a requirement string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequirementError {
    #[error("invalid requirement {0:?}: {1}")]
    Syntax(String, &'static str),
    #[error("invalid requirement {0:?}: != is not allowed, use another operator")]
    NotEqualForbidden(String),
}

impl Requirement {
    /// Parses any requirement a registry may hold.
    pub fn parse(s: &str) -> Result<Self, RequirementError> {
        let err = |why| RequirementError::Syntax(s.to_owned(), why);
        if s.len() > 1024 {
            return Err(err("too long"));
        }
        let tokens: Vec<&str> = s.split_ascii_whitespace().collect();
        if tokens.is_empty() {
            return Err(err("empty"));
        }
        let mut any_of = Vec::new();
        let mut all_of = Vec::new();
        let mut i = 0;
        loop {
            // clause := [op] version
            let tok = tokens.get(i).ok_or_else(|| err("missing version"))?;
            let (op, ver) = match parse_op(tok) {
                Some((op, "")) => {
                    i += 1;
                    (op, *tokens.get(i).ok_or_else(|| err("missing version"))?)
                }
                Some((op, rest)) => (op, rest),
                None => (Op::Eq, *tok),
            };
            i += 1;
            let (version, patch_given) =
                parse_version(ver, op == Op::Tilde).ok_or_else(|| err("bad version"))?;
            all_of.push(Clause {
                op,
                version,
                patch_given,
            });
            match tokens.get(i) {
                None => break,
                Some(&"and") => i += 1,
                Some(&"or") => {
                    any_of.push(std::mem::take(&mut all_of));
                    i += 1;
                }
                Some(_) => return Err(err("expected `and` or `or`")),
            }
        }
        any_of.push(all_of);
        Ok(Requirement {
            any_of,
            text: s.to_owned(),
        })
    }

    /// Parses a requirement for a new release: as [`Requirement::parse`], refusing `!=`.
    pub fn parse_for_publish(s: &str) -> Result<Self, RequirementError> {
        let r = Self::parse(s)?;
        if r.any_of.iter().flatten().any(|c| c.op == Op::Ne) {
            return Err(RequirementError::NotEqualForbidden(s.to_owned()));
        }
        Ok(r)
    }

    /// Whether `v` satisfies the requirement (pre-releases included).
    pub fn matches(&self, v: &SemVer) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|c| c.matches(v)))
    }

    /// Whether the version string `v` parses and satisfies the requirement.
    pub fn matches_str(&self, v: &str) -> bool {
        SemVer::parse(v).is_ok_and(|v| self.matches(&v))
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_op(tok: &str) -> Option<(Op, &str)> {
    for (p, op) in [
        ("~>", Op::Tilde),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">=", Op::Ge),
        ("<=", Op::Le),
        (">", Op::Gt),
        ("<", Op::Lt),
    ] {
        if let Some(rest) = tok.strip_prefix(p) {
            return Some((op, rest));
        }
    }
    None
}

fn parse_version(s: &str, allow_partial: bool) -> Option<(SemVer, bool)> {
    if let Ok(v) = SemVer::parse(s) {
        return Some((v, true));
    }
    if !allow_partial {
        return None;
    }
    // MAJOR.MINOR[-PRE]
    let (core, pre) = match s.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (s, None),
    };
    let mut parts = core.split('.');
    let (maj, min) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let full = match pre {
        Some(p) => format!("{maj}.{min}.0-{p}"),
        None => format!("{maj}.{min}.0"),
    };
    SemVer::parse(&full).ok().map(|v| (v, false))
}

impl Clause {
    fn matches(&self, v: &SemVer) -> bool {
        let c = v.cmp_precedence(&self.version);
        use std::cmp::Ordering::*;
        match self.op {
            Op::Eq => c == Equal,
            Op::Ne => c != Equal,
            Op::Gt => c == Greater,
            Op::Ge => c != Less,
            Op::Lt => c == Less,
            Op::Le => c != Greater,
            Op::Tilde => {
                if c == Less {
                    return false;
                }
                let upper = if self.patch_given {
                    SemVer::new(self.version.major, self.version.minor.saturating_add(1), 0)
                } else {
                    SemVer::new(self.version.major.saturating_add(1), 0, 0)
                };
                // Below the next boundary, pre-releases of that boundary excluded.
                v.major < upper.major || (v.major == upper.major && v.minor < upper.minor)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(req: &str, v: &str) -> bool {
        Requirement::parse(req).unwrap().matches_str(v)
    }

    #[test]
    fn matches_like_elixir() {
        assert!(m("~> 1.0", "1.0.0"));
        assert!(m("~> 1.0", "1.9.3"));
        assert!(!m("~> 1.0", "2.0.0"));
        assert!(!m("~> 1.0", "2.0.0-rc.1"));
        assert!(!m("~> 1.0", "0.9.0"));
        assert!(m("~> 1.0.1", "1.0.5"));
        assert!(!m("~> 1.0.1", "1.1.0"));
        assert!(!m("~> 1.0.1", "1.0.0"));
        assert!(m("~> 0.2", "0.2.0"));
        assert!(m("~> 0.2", "0.9.0"));
        assert!(m("1.0.0", "1.0.0"));
        assert!(m("== 1.0.0", "1.0.0"));
        assert!(!m("== 1.0.0", "1.0.1"));
        assert!(m(">= 1.0.0 and < 2.0.0", "1.5.0"));
        assert!(!m(">= 1.0.0 and < 2.0.0", "2.0.0"));
        assert!(m("== 1.0.0 or ~> 2.1", "2.3.0"));
        assert!(m("== 1.0.0 or ~> 2.1", "1.0.0"));
        assert!(!m("== 1.0.0 or ~> 2.1", "2.0.0"));
        assert!(m(">=1.0.0", "1.0.0"));
        assert!(m("> 0.0.0", "1.0.0-rc.1"));
        assert!(m("~> 1.0-rc", "1.0.0-rc.1"));
    }

    #[test]
    fn rejects_bad_requirements() {
        for bad in [
            "",
            "~>",
            ">= 1.0",
            "1.0",
            "~> 1.0 and",
            "~> 1.0 xor 2.0.0",
            ">> 1.0.0",
        ] {
            assert!(Requirement::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Requirement::parse("!= 1.0.0").is_ok());
        assert_eq!(
            Requirement::parse_for_publish("!= 1.0.0"),
            Err(RequirementError::NotEqualForbidden("!= 1.0.0".into()))
        );
    }
}
