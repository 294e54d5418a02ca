//! API keys and grants, shared by the proxy (private repo reads) and the publisher (writes).
//!
//! The raw `authorization` header is the key (protocol doc §2.3, §6.5); `Bearer <key>` and
//! `Basic base64(user:key)` (what Hex sends for a repo URL with userinfo or a `~/.netrc` entry)
//! are accepted too. Only the SHA-256 of each key is configured; a presented key is hashed and
//! compared in constant time with every configured hash.

use crate::config::{self, Config};
use aws_lc_rs::{constant_time, digest};
use base64::Engine;

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

impl From<config::Access> for Access {
    fn from(a: config::Access) -> Self {
        match a {
            config::Access::Read => Access::Read,
            config::Access::Write => Access::Write,
            config::Access::Admin => Access::Admin,
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

    /// Whether the principal has at least `need` on `repo`.
    pub fn allows(&self, repo: &str, need: Access) -> bool {
        self.access(repo).is_some_and(|a| a >= need)
    }
}

/// A presented key that matches no configured key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid API key")]
pub struct InvalidKey;

/// Checks presented keys against the configured hashes.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    keys: Vec<KeyEntry>,
}

impl Authenticator {
    pub fn new(keys: Vec<KeyEntry>) -> Self {
        Authenticator { keys }
    }

    /// The keys of a config (each `sha256` already resolved at load).
    pub fn from_config(config: &Config) -> Self {
        let keys = config
            .keys
            .iter()
            .filter_map(|k| {
                Some(KeyEntry {
                    name: k.name.clone(),
                    hash: k.sha256_bytes()?,
                    grants: k
                        .grants
                        .iter()
                        .map(|g| (g.repo.clone(), g.access.into()))
                        .collect(),
                })
            })
            .collect();
        Authenticator { keys }
    }

    /// The configured keys.
    pub fn keys(&self) -> &[KeyEntry] {
        &self.keys
    }

    /// The principal for an `authorization` header value; `Ok(None)` when no (or an empty)
    /// header was sent; [`InvalidKey`] for a key that matches nothing.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Option<Principal>, InvalidKey> {
        let Some(raw) = header else { return Ok(None) };
        let raw = raw.trim_ascii();
        if raw.is_empty() {
            return Ok(None);
        }
        let mut candidates: Vec<Vec<u8>> = Vec::with_capacity(2);
        if let Some(token) = strip_scheme(raw, b"bearer ") {
            candidates.push(token.to_vec());
        } else if let Some(b64) = strip_scheme(raw, b"basic ") {
            // user:key (or key:anything): try the password, then the user name.
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim_ascii())
            {
                match decoded.iter().position(|&c| c == b':') {
                    Some(i) => {
                        candidates.push(decoded[i + 1..].to_vec());
                        candidates.push(decoded[..i].to_vec());
                    }
                    None => candidates.push(decoded),
                }
            }
        }
        candidates.push(raw.to_vec());
        for candidate in candidates.iter().filter(|c| !c.is_empty()) {
            if let Some(p) = self.find(candidate) {
                return Ok(Some(p));
            }
        }
        Err(InvalidKey)
    }

    fn find(&self, key: &[u8]) -> Option<Principal> {
        let hash = digest::digest(&digest::SHA256, key);
        let mut found: Option<&KeyEntry> = None;
        // Compare against every key, without stopping early.
        for k in &self.keys {
            if constant_time::verify_slices_are_equal(hash.as_ref(), &k.hash).is_ok() {
                found = Some(k);
            }
        }
        found.map(|k| Principal {
            name: k.name.clone(),
            grants: k.grants.clone(),
        })
    }
}

fn strip_scheme<'a>(raw: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    (raw.len() > scheme.len() && raw[..scheme.len()].eq_ignore_ascii_case(scheme))
        .then(|| &raw[scheme.len()..])
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
    fn authenticates_raw_bearer_and_basic() {
        let a = auth();
        assert!(a.authenticate(None).unwrap().is_none());
        assert!(a.authenticate(Some(b"  ")).unwrap().is_none());
        assert_eq!(a.authenticate(Some(b"wrong")).unwrap_err(), InvalidKey);
        assert_eq!(
            a.authenticate(Some(b"secret")).unwrap().unwrap().name,
            "dev"
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer secret"))
                .unwrap()
                .unwrap()
                .name,
            "dev"
        );
        // base64("u1:secret") and base64("readonly:x")
        assert_eq!(
            a.authenticate(Some(b"Basic dTE6c2VjcmV0"))
                .unwrap()
                .unwrap()
                .name,
            "dev"
        );
        assert_eq!(
            a.authenticate(Some(b"basic cmVhZG9ubHk6eA=="))
                .unwrap()
                .unwrap()
                .name,
            "ro"
        );
        assert_eq!(a.authenticate(Some(b"Basic !!!")).unwrap_err(), InvalidKey);
    }

    #[test]
    fn grants_imply_lower_levels() {
        let p = auth().authenticate(Some(b"secret")).unwrap().unwrap();
        assert!(p.allows("test_repo", Access::Write));
        assert!(p.allows("test_repo", Access::Read));
        assert!(!p.allows("test_repo", Access::Admin));
        assert!(p.allows("other", Access::Read));
        assert!(!p.allows("other", Access::Write));
        assert!(!p.allows("nope", Access::Read));
    }
}
