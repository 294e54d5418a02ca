//! API keys: the raw `authorization` header is the key (protocol doc §2.3, §6.5). Only the
//! SHA-256 of each key is configured; a presented key is hashed and compared in constant time
//! with every configured hash (so the time taken does not depend on which key, if any, matched).

use crate::error::ApiError;
use aws_lc_rs::{constant_time, digest};

/// What a key may do in one repository. Each level implies the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }
}

/// One configured key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// The principal's name (shown by `/users/me`, never the key).
    pub name: String,
    /// SHA-256 of the key.
    pub hash: [u8; 32],
    /// `(repo, access)` pairs.
    pub grants: Vec<(String, Access)>,
}

/// The principal a request authenticated as.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub grants: Vec<(String, Access)>,
}

impl Principal {
    /// The access this principal has to `repo`, if any.
    pub fn access(&self, repo: &str) -> Option<Access> {
        self.grants
            .iter()
            .filter(|(r, _)| r == repo)
            .map(|(_, a)| *a)
            .max()
    }

    /// Ok when the principal has at least `need` on `repo`; a 403 saying what is missing otherwise.
    pub fn require(&self, repo: &str, need: Access) -> Result<(), ApiError> {
        match self.access(repo) {
            Some(a) if a >= need => Ok(()),
            _ => Err(ApiError::forbidden(format!(
                "key {:?} is not authorized for this action: it needs {} access to repository {repo:?}",
                self.name,
                need.as_str()
            ))),
        }
    }
}

/// Checks presented keys against the configured hashes.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    keys: Vec<KeyEntry>,
}

impl Authenticator {
    pub fn new(keys: Vec<KeyEntry>) -> Self {
        Authenticator { keys }
    }

    /// The principal for an `authorization` header value, `Ok(None)` when no header was sent,
    /// and a 401 for a key that matches nothing.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Option<Principal>, ApiError> {
        let Some(raw) = header else { return Ok(None) };
        let raw = trim(raw);
        if raw.is_empty() {
            return Ok(None);
        }
        let hash = digest::digest(&digest::SHA256, raw);
        let mut found: Option<&KeyEntry> = None;
        // Compare against every key, without stopping early.
        for k in &self.keys {
            if constant_time::verify_slices_are_equal(hash.as_ref(), &k.hash).is_ok() {
                found = Some(k);
            }
        }
        match found {
            Some(k) => Ok(Some(Principal {
                name: k.name.clone(),
                grants: k.grants.clone(),
            })),
            None => Err(ApiError::unauthorized("invalid API key")),
        }
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// SHA-256 of a key, as configured.
pub fn hash_key(key: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(vec![
            KeyEntry {
                name: "dev".into(),
                hash: hash_key(b"secret"),
                grants: vec![
                    ("test_repo".into(), Access::Write),
                    ("other".into(), Access::Read),
                ],
            },
            KeyEntry {
                name: "ro".into(),
                hash: hash_key(b"readonly"),
                grants: vec![],
            },
        ])
    }

    #[test]
    fn the_dev_key_hash_matches_the_documented_one() {
        assert_eq!(
            hex::encode(hash_key(b"secret")),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
    }

    #[test]
    fn authenticates_and_authorizes() {
        let a = auth();
        assert!(a.authenticate(None).unwrap().is_none());
        assert!(a.authenticate(Some(b"")).unwrap().is_none());
        let e = a.authenticate(Some(b"wrong")).unwrap_err();
        assert_eq!(e.status, http::StatusCode::UNAUTHORIZED);
        let p = a.authenticate(Some(b"secret")).unwrap().unwrap();
        assert_eq!(p.name, "dev");
        assert!(p.require("test_repo", Access::Write).is_ok());
        assert!(p.require("test_repo", Access::Read).is_ok());
        assert_eq!(
            p.require("test_repo", Access::Admin).unwrap_err().status,
            403
        );
        assert!(p.require("other", Access::Read).is_ok());
        assert_eq!(p.require("other", Access::Write).unwrap_err().status, 403);
        assert_eq!(p.require("nope", Access::Read).unwrap_err().status, 403);
    }
}
