//! `keygen` and `key new`.
//!
//! - A hosted repo's signing key: RSA 2048, PKCS#8 PEM, mode 0600, at the path the config
//!   gives; never overwritten without `force` (clients that trust the old key would refuse
//!   everything signed with the new one). The publisher writes the matching `/public_key` on
//!   its next start.
//! - A bundle key (for `hexyard-proxy export`/`import`): the private key plus its public key
//!   (`<stem>.pub.pem`, SPKI), to carry to the air-gapped side.
//! - An API key: 32 random bytes as 64 hex digits, shown once; the config keeps only its
//!   SHA-256.

use hexyard_common::config::{Config, RepoConfig};
use hexyard_common::signing::SigningKey;
use std::path::{Path, PathBuf};

/// Why a key command failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The repository is not configured, or not hosted.
    #[error("no hosted repository named {0:?} in the config")]
    NotHosted(String),
    /// The key file exists and `--force` was not given.
    #[error(
        "{0} exists: refusing to overwrite a signing key (clients trusting it would reject the new one); pass --force to replace it"
    )]
    Exists(PathBuf),
    /// A `--grant` is not `repo:access` with a configured repo and access read/write/admin.
    #[error("--grant {0:?}: {1}")]
    BadGrant(String, String),
    /// A bad `--name`.
    #[error("--name {0:?}: {1}")]
    BadName(String, String),
    /// Key generation or encoding failed.
    #[error("key: {0}")]
    Key(String),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A new signing key.
#[derive(Debug)]
pub struct NewKey {
    /// Where the private key went.
    pub private_path: PathBuf,
    /// Where the public key went (bundle keys only).
    pub public_path: Option<PathBuf>,
    /// `SHA256:...`, as `mix hex.repo add --fetch-public-key` checks it.
    pub fingerprint: String,
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(mode);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_path_buf())
        } else {
            io(e)
        }
    })?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

fn generate() -> Result<(SigningKey, String), KeyError> {
    let key = SigningKey::generate().map_err(|e| KeyError::Key(e.to_string()))?;
    let pem = key.to_pem().map_err(|e| KeyError::Key(e.to_string()))?;
    Ok((key, pem))
}

/// Makes the signing key of hosted repo `repo` at its configured `private_key` path.
///
/// # Errors
/// [`KeyError::NotHosted`], [`KeyError::Exists`] (without `force`), [`KeyError::Io`].
pub fn keygen_repo(config: &Config, repo: &str, force: bool) -> Result<NewKey, KeyError> {
    let Some(RepoConfig::Hosted(h)) = config.repos.get(repo) else {
        return Err(KeyError::NotHosted(repo.to_owned()));
    };
    if !force && h.private_key.exists() {
        return Err(KeyError::Exists(h.private_key.clone()));
    }
    let (key, pem) = generate()?;
    write_file(&h.private_key, pem.as_bytes(), 0o600, force)?;
    Ok(NewKey {
        private_path: h.private_key.clone(),
        public_path: None,
        fingerprint: key.verifying_key().fingerprint(),
    })
}

/// Makes a bundle key: `out` (private, 0600) and `<out stem>.pub.pem` (public, SPKI).
///
/// # Errors
/// [`KeyError::Exists`] (without `force`), [`KeyError::Io`].
pub fn keygen_bundle(out: &Path, force: bool) -> Result<NewKey, KeyError> {
    let public_path = out.with_extension("pub.pem");
    for p in [out, public_path.as_path()] {
        if !force && p.exists() {
            return Err(KeyError::Exists(p.to_path_buf()));
        }
    }
    let (key, pem) = generate()?;
    write_file(out, pem.as_bytes(), 0o600, force)?;
    write_file(
        &public_path,
        key.verifying_key().to_spki_pem().as_bytes(),
        0o644,
        force,
    )?;
    Ok(NewKey {
        private_path: out.to_path_buf(),
        public_path: Some(public_path),
        fingerprint: key.verifying_key().fingerprint(),
    })
}

/// A new API key and the config entry that admits it.
#[derive(Debug)]
pub struct NewApiKey {
    /// The key itself (give it to its user; it is not stored anywhere).
    pub key: String,
    /// The YAML list item to add under `keys:`.
    pub yaml: String,
}

/// Makes an API key named `name` with `grants` (`repo:read|write|admin`, repos checked
/// against the config).
///
/// # Errors
/// [`KeyError::BadName`], [`KeyError::BadGrant`], [`KeyError::Key`].
pub fn new_api_key(config: &Config, name: &str, grants: &[String]) -> Result<NewApiKey, KeyError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
    {
        return Err(KeyError::BadName(
            name.to_owned(),
            "use letters, digits, _ - . @".into(),
        ));
    }
    if config.keys.iter().any(|k| k.name == name) {
        return Err(KeyError::BadName(
            name.to_owned(),
            "a key with this name is already configured".into(),
        ));
    }
    if grants.is_empty() {
        return Err(KeyError::BadGrant(
            String::new(),
            "give at least one --grant repo:access".into(),
        ));
    }
    let mut items = Vec::new();
    for g in grants {
        let (repo, access) = g
            .split_once(':')
            .ok_or_else(|| KeyError::BadGrant(g.clone(), "expected repo:access".into()))?;
        if !config.repos.contains_key(repo) {
            return Err(KeyError::BadGrant(
                g.clone(),
                format!("no repository named {repo:?} in the config"),
            ));
        }
        if !matches!(access, "read" | "write" | "admin") {
            return Err(KeyError::BadGrant(
                g.clone(),
                "access must be read, write or admin".into(),
            ));
        }
        items.push(format!("{{repo: {repo}, access: {access}}}"));
    }
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| KeyError::Key("no randomness".into()))?;
    let key = hex::encode(raw);
    let sha = hex::encode(hexyard_common::auth::hash_key(key.as_bytes()));
    let yaml = format!(
        "  - name: {name}\n    sha256: {sha}\n    grants: [{}]\n",
        items.join(", ")
    );
    Ok(NewApiKey { key, yaml })
}
