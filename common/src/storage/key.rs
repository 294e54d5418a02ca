//! [`StorageKey`]: the only place that turns a registry object into a path, a content type and a
//! cache-control value, and [`KeyPrefix`], the listing scopes.
//!
//! Every component is validated when a key is built (see [`KeyName`], [`KeyVersion`]), so a key
//! can never name a path outside `repos/<repo>/`: no `/`, no `..`, no NUL, nothing empty.

use std::fmt;
use std::ops::Deref;

/// Longest accepted component (repo, package name or version), in bytes. Keeps every object's
/// file name well under the 255-byte limit of common file systems.
pub const MAX_COMPONENT_LEN: usize = 100;

/// Which part of a key was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyComponent {
    /// The repository name.
    Repo,
    /// The package name.
    Name,
    /// The release version.
    Version,
}

impl fmt::Display for KeyComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyComponent::Repo => "repository name",
            KeyComponent::Name => "package name",
            KeyComponent::Version => "version",
        })
    }
}

/// Why a key component was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The component is empty.
    #[error("{0} is empty")]
    Empty(KeyComponent),
    /// The component is longer than [`MAX_COMPONENT_LEN`] bytes.
    #[error("{0} is longer than {MAX_COMPONENT_LEN} bytes")]
    TooLong(KeyComponent),
    /// The component holds a character outside its allowed set (names: `[a-z0-9_]`, versions:
    /// `[0-9A-Za-z.+-]`).
    #[error("{component} contains the character {ch:?}")]
    InvalidChar {
        /// The rejected component.
        component: KeyComponent,
        /// The first offending character.
        ch: char,
    },
    /// The version contains `..`.
    #[error("{0} contains \"..\"")]
    DotDot(KeyComponent),
}

fn check_len(s: &str, component: KeyComponent) -> Result<(), KeyError> {
    if s.is_empty() {
        return Err(KeyError::Empty(component));
    }
    if s.len() > MAX_COMPONENT_LEN {
        return Err(KeyError::TooLong(component));
    }
    Ok(())
}

/// A validated repository or package name component: 1 to [`MAX_COMPONENT_LEN`] bytes of
/// `[a-z0-9_]`. This is only the storage-safety rule; the stricter package-name policy (leading
/// letter, reserved names) lives in [`crate::names`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyName(String);

impl KeyName {
    /// Validates `s` as a name component of `component` (used in the error only).
    ///
    /// # Errors
    /// [`KeyError`] when `s` is empty, too long or has a character outside `[a-z0-9_]`.
    pub fn new(s: &str, component: KeyComponent) -> Result<Self, KeyError> {
        check_len(s, component)?;
        if let Some(ch) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(KeyError::InvalidChar { component, ch });
        }
        Ok(KeyName(s.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated version component: 1 to [`MAX_COMPONENT_LEN`] bytes of `[0-9A-Za-z.+-]`, without
/// `..`. Not a SemVer check (see [`crate::version`]); only what is safe in a file name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyVersion(String);

impl KeyVersion {
    /// Validates `s` as a version component.
    ///
    /// # Errors
    /// [`KeyError`] when `s` is empty, too long, has a character outside `[0-9A-Za-z.+-]` or
    /// contains `..`.
    pub fn new(s: &str) -> Result<Self, KeyError> {
        let component = KeyComponent::Version;
        check_len(s, component)?;
        if let Some(ch) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-')))
        {
            return Err(KeyError::InvalidChar { component, ch });
        }
        if s.contains("..") {
            return Err(KeyError::DotDot(component));
        }
        Ok(KeyVersion(s.to_owned()))
    }

    /// The version as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! str_like {
    ($t:ty) => {
        impl Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}
str_like!(KeyName);
str_like!(KeyVersion);

/// One object of a repository. Built only through the validating constructors
/// ([`StorageKey::names`], ...), or [`StorageKey::from_path`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StorageKey {
    /// `repos/<repo>/names`: gzip(Signed(Names)).
    Names {
        /// Repository.
        repo: KeyName,
    },
    /// `repos/<repo>/versions`: gzip(Signed(Versions)).
    Versions {
        /// Repository.
        repo: KeyName,
    },
    /// `repos/<repo>/packages/<name>`: gzip(Signed(Package)).
    Package {
        /// Repository.
        repo: KeyName,
        /// Package name.
        name: KeyName,
    },
    /// `repos/<repo>/tarballs/<name>-<version>.tar`: the package tarball.
    Tarball {
        /// Repository.
        repo: KeyName,
        /// Package name.
        name: KeyName,
        /// Release version.
        version: KeyVersion,
    },
    /// `repos/<repo>/docs/<name>-<version>.tar.gz`: the docs tarball.
    Docs {
        /// Repository.
        repo: KeyName,
        /// Package name.
        name: KeyName,
        /// Release version.
        version: KeyVersion,
    },
    /// `repos/<repo>/public_key`: the repository's PEM public key.
    PublicKey {
        /// Repository.
        repo: KeyName,
    },
}

fn repo_name(repo: &str) -> Result<KeyName, KeyError> {
    KeyName::new(repo, KeyComponent::Repo)
}

fn pkg_name(name: &str) -> Result<KeyName, KeyError> {
    KeyName::new(name, KeyComponent::Name)
}

const PATH_ROOT: &str = "repos/";

impl StorageKey {
    /// The `names` index of `repo`.
    ///
    /// # Errors
    /// [`KeyError`] when `repo` is not a valid name component.
    pub fn names(repo: &str) -> Result<Self, KeyError> {
        Ok(StorageKey::Names {
            repo: repo_name(repo)?,
        })
    }

    /// The `versions` index of `repo`.
    ///
    /// # Errors
    /// [`KeyError`] when `repo` is not a valid name component.
    pub fn versions(repo: &str) -> Result<Self, KeyError> {
        Ok(StorageKey::Versions {
            repo: repo_name(repo)?,
        })
    }

    /// The package file of `name` in `repo`.
    ///
    /// # Errors
    /// [`KeyError`] when `repo` or `name` is not a valid name component.
    pub fn package(repo: &str, name: &str) -> Result<Self, KeyError> {
        Ok(StorageKey::Package {
            repo: repo_name(repo)?,
            name: pkg_name(name)?,
        })
    }

    /// The tarball of `name` `version` in `repo`.
    ///
    /// # Errors
    /// [`KeyError`] when a component is invalid.
    pub fn tarball(repo: &str, name: &str, version: &str) -> Result<Self, KeyError> {
        Ok(StorageKey::Tarball {
            repo: repo_name(repo)?,
            name: pkg_name(name)?,
            version: KeyVersion::new(version)?,
        })
    }

    /// The docs tarball of `name` `version` in `repo`.
    ///
    /// # Errors
    /// [`KeyError`] when a component is invalid.
    pub fn docs(repo: &str, name: &str, version: &str) -> Result<Self, KeyError> {
        Ok(StorageKey::Docs {
            repo: repo_name(repo)?,
            name: pkg_name(name)?,
            version: KeyVersion::new(version)?,
        })
    }

    /// The public key file of `repo`.
    ///
    /// # Errors
    /// [`KeyError`] when `repo` is not a valid name component.
    pub fn public_key(repo: &str) -> Result<Self, KeyError> {
        Ok(StorageKey::PublicKey {
            repo: repo_name(repo)?,
        })
    }

    /// The repository this object belongs to.
    pub fn repo(&self) -> &str {
        match self {
            StorageKey::Names { repo }
            | StorageKey::Versions { repo }
            | StorageKey::Package { repo, .. }
            | StorageKey::Tarball { repo, .. }
            | StorageKey::Docs { repo, .. }
            | StorageKey::PublicKey { repo } => repo.as_str(),
        }
    }

    /// The object's path, relative to the store root, always `/`-separated and below `repos/`.
    /// (Built with one allocation: it is made for every request the proxy serves.)
    pub fn path(&self) -> String {
        match self {
            StorageKey::Names { repo } => [PATH_ROOT, repo, "/names"].concat(),
            StorageKey::Versions { repo } => [PATH_ROOT, repo, "/versions"].concat(),
            StorageKey::Package { repo, name } => [PATH_ROOT, repo, "/packages/", name].concat(),
            StorageKey::Tarball {
                repo,
                name,
                version,
            } => [PATH_ROOT, repo, "/tarballs/", name, "-", version, ".tar"].concat(),
            StorageKey::Docs {
                repo,
                name,
                version,
            } => [PATH_ROOT, repo, "/docs/", name, "-", version, ".tar.gz"].concat(),
            StorageKey::PublicKey { repo } => [PATH_ROOT, repo, "/public_key"].concat(),
        }
    }

    /// The inverse of [`StorageKey::path`]: `None` for anything that is not exactly the path of
    /// a valid key. A tarball or docs file name splits at its FIRST `-` (names have no `-`,
    /// versions may).
    pub fn from_path(path: &str) -> Option<StorageKey> {
        let rest = path.strip_prefix(PATH_ROOT)?;
        let mut parts = rest.split('/');
        let repo = parts.next()?;
        let kind = parts.next()?;
        let file = parts.next();
        if parts.next().is_some() {
            return None;
        }
        let key = match (kind, file) {
            ("names", None) => StorageKey::names(repo),
            ("versions", None) => StorageKey::versions(repo),
            ("public_key", None) => StorageKey::public_key(repo),
            ("packages", Some(name)) => StorageKey::package(repo, name),
            ("tarballs", Some(file)) => {
                let (name, version) = file.strip_suffix(".tar")?.split_once('-')?;
                StorageKey::tarball(repo, name, version)
            }
            ("docs", Some(file)) => {
                let (name, version) = file.strip_suffix(".tar.gz")?.split_once('-')?;
                StorageKey::docs(repo, name, version)
            }
            _ => return None,
        };
        key.ok()
    }

    /// The `Content-Type` to serve the object with (hex-protocol §2.2; clients do not inspect it):
    /// `application/octet-stream` for registry files and tarballs, `application/gzip` for docs,
    /// `text/plain` for the public key.
    pub fn content_type(&self) -> &'static str {
        match self {
            StorageKey::Names { .. }
            | StorageKey::Versions { .. }
            | StorageKey::Package { .. }
            | StorageKey::Tarball { .. } => "application/octet-stream",
            StorageKey::Docs { .. } => "application/gzip",
            StorageKey::PublicKey { .. } => "text/plain",
        }
    }

    /// The `Cache-Control` value for the object, `public` selecting the public or private form
    /// (hex-protocol §2.2, close to hex.pm): tarballs `max-age=604800` public / `86400`
    /// private; docs `86400`; the public key `3600`; registry indexes (`names`, `versions`,
    /// `packages/<name>`) a short `max-age=60` because they change on every publish.
    pub fn cache_control(&self, public: bool) -> &'static str {
        match (self, public) {
            (StorageKey::Tarball { .. }, true) => "public, max-age=604800",
            (StorageKey::Tarball { .. }, false) => "private, max-age=86400",
            (StorageKey::Docs { .. }, true) => "public, max-age=86400",
            (StorageKey::Docs { .. }, false) => "private, max-age=86400",
            (StorageKey::PublicKey { .. }, true) => "public, max-age=3600",
            (StorageKey::PublicKey { .. }, false) => "private, max-age=3600",
            (_, true) => "public, max-age=60",
            (_, false) => "private, max-age=60",
        }
    }

    /// Whether the object never changes once written: tarballs and docs. (A publisher `replace`
    /// inside the replace window is the one exception; whoever replaces must invalidate caches.)
    /// Registry indexes and the public key are mutable.
    pub fn is_immutable(&self) -> bool {
        matches!(self, StorageKey::Tarball { .. } | StorageKey::Docs { .. })
    }
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// A listing scope for [`crate::storage::Store::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPrefix {
    /// Every object of every repository (`repos/`).
    All,
    /// Every object of one repository (`repos/<repo>/`).
    Repo {
        /// Repository.
        repo: KeyName,
    },
    /// The package files of a repository (`repos/<repo>/packages/`).
    Packages {
        /// Repository.
        repo: KeyName,
    },
    /// The tarballs of a repository (`repos/<repo>/tarballs/`).
    Tarballs {
        /// Repository.
        repo: KeyName,
    },
    /// The docs tarballs of a repository (`repos/<repo>/docs/`).
    Docs {
        /// Repository.
        repo: KeyName,
    },
}

impl KeyPrefix {
    /// Every object of `repo`.
    ///
    /// # Errors
    /// [`KeyError`] when `repo` is not a valid name component.
    pub fn repo(repo: &str) -> Result<Self, KeyError> {
        Ok(KeyPrefix::Repo {
            repo: repo_name(repo)?,
        })
    }

    /// The package files of `repo`.
    ///
    /// # Errors
    /// [`KeyError`] when `repo` is not a valid name component.
    pub fn packages(repo: &str) -> Result<Self, KeyError> {
        Ok(KeyPrefix::Packages {
            repo: repo_name(repo)?,
        })
    }

    /// The tarballs of `repo`.
    ///
    /// # Errors
    /// [`KeyError`] when `repo` is not a valid name component.
    pub fn tarballs(repo: &str) -> Result<Self, KeyError> {
        Ok(KeyPrefix::Tarballs {
            repo: repo_name(repo)?,
        })
    }

    /// The docs tarballs of `repo`.
    ///
    /// # Errors
    /// [`KeyError`] when `repo` is not a valid name component.
    pub fn docs(repo: &str) -> Result<Self, KeyError> {
        Ok(KeyPrefix::Docs {
            repo: repo_name(repo)?,
        })
    }

    /// The path prefix, always ending in `/` (so `packages/foo` can never select
    /// `packages/foo_bar`: prefixes stop at directory boundaries).
    pub fn path(&self) -> String {
        match self {
            KeyPrefix::All => PATH_ROOT.to_owned(),
            KeyPrefix::Repo { repo } => format!("{PATH_ROOT}{repo}/"),
            KeyPrefix::Packages { repo } => format!("{PATH_ROOT}{repo}/packages/"),
            KeyPrefix::Tarballs { repo } => format!("{PATH_ROOT}{repo}/tarballs/"),
            KeyPrefix::Docs { repo } => format!("{PATH_ROOT}{repo}/docs/"),
        }
    }

    /// Whether `key` lies in this scope.
    pub fn matches(&self, key: &StorageKey) -> bool {
        match self {
            KeyPrefix::All => true,
            KeyPrefix::Repo { repo } => key.repo() == repo.as_str(),
            KeyPrefix::Packages { repo } => {
                matches!(key, StorageKey::Package { repo: r, .. } if r == repo)
            }
            KeyPrefix::Tarballs { repo } => {
                matches!(key, StorageKey::Tarball { repo: r, .. } if r == repo)
            }
            KeyPrefix::Docs { repo } => {
                matches!(key, StorageKey::Docs { repo: r, .. } if r == repo)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_every_kind() {
        let cases = [
            (StorageKey::names("r").unwrap(), "repos/r/names"),
            (StorageKey::versions("r").unwrap(), "repos/r/versions"),
            (
                StorageKey::package("r", "foo_bar").unwrap(),
                "repos/r/packages/foo_bar",
            ),
            (
                StorageKey::tarball("r", "foo", "1.0.0-rc.1+b-2").unwrap(),
                "repos/r/tarballs/foo-1.0.0-rc.1+b-2.tar",
            ),
            (
                StorageKey::docs("r", "foo", "0.1.0").unwrap(),
                "repos/r/docs/foo-0.1.0.tar.gz",
            ),
            (StorageKey::public_key("r").unwrap(), "repos/r/public_key"),
        ];
        for (key, path) in cases {
            assert_eq!(key.path(), path);
            assert_eq!(StorageKey::from_path(path), Some(key.clone()), "{path}");
            assert_eq!(key.repo(), "r");
        }
    }

    #[test]
    fn rejected_components() {
        use KeyComponent::*;
        assert_eq!(StorageKey::names(""), Err(KeyError::Empty(Repo)));
        assert_eq!(
            StorageKey::names(".."),
            Err(KeyError::InvalidChar {
                component: Repo,
                ch: '.'
            })
        );
        assert_eq!(
            StorageKey::package("r", "a/b"),
            Err(KeyError::InvalidChar {
                component: Name,
                ch: '/'
            })
        );
        assert_eq!(
            StorageKey::package("r", "Foo"),
            Err(KeyError::InvalidChar {
                component: Name,
                ch: 'F'
            })
        );
        assert_eq!(
            StorageKey::package("r", "a\0"),
            Err(KeyError::InvalidChar {
                component: Name,
                ch: '\0'
            })
        );
        assert_eq!(
            StorageKey::tarball("r", "foo-bar", "1.0.0"),
            Err(KeyError::InvalidChar {
                component: Name,
                ch: '-'
            })
        );
        assert_eq!(
            StorageKey::tarball("r", "foo", "1.0.0/../x"),
            Err(KeyError::InvalidChar {
                component: Version,
                ch: '/'
            })
        );
        assert_eq!(
            StorageKey::docs("r", "foo", ".."),
            Err(KeyError::DotDot(Version))
        );
        assert_eq!(
            StorageKey::docs("r", "foo", ""),
            Err(KeyError::Empty(Version))
        );
        let long = "a".repeat(MAX_COMPONENT_LEN + 1);
        assert_eq!(
            StorageKey::package("r", &long),
            Err(KeyError::TooLong(Name))
        );
        assert!(StorageKey::package("r", &long[1..]).is_ok());
    }

    #[test]
    fn from_path_rejects_non_keys() {
        for p in [
            "",
            "repos/",
            "repos/r",
            "repos/r/",
            "repos/r/names/x",
            "repos/r/packages",
            "repos/r/packages/",
            "repos/r/packages/a/b",
            "repos/r/packages/.tmp-1",
            "repos/r/tarballs/foo.tar",
            "repos/r/tarballs/foo-1.0.0",
            "repos/r/tarballs/foo-1.0.0.tar.gz",
            "repos/r/tarballs/-1.0.0.tar",
            "repos/r/tarballs/foo-.tar",
            "repos/r/docs/foo-1.0.0.tar",
            "repos/R/names",
            "repos/../names",
            "/repos/r/names",
            "other/r/names",
            "repos/r/unknown",
        ] {
            assert_eq!(StorageKey::from_path(p), None, "{p:?}");
        }
    }

    #[test]
    fn tarball_name_splits_at_first_dash() {
        assert_eq!(
            StorageKey::from_path("repos/r/tarballs/fx_core-1.0.0-rc.1.tar"),
            Some(StorageKey::tarball("r", "fx_core", "1.0.0-rc.1").unwrap())
        );
    }

    #[test]
    fn headers() {
        let t = StorageKey::tarball("r", "a", "1.0.0").unwrap();
        let d = StorageKey::docs("r", "a", "1.0.0").unwrap();
        let p = StorageKey::package("r", "a").unwrap();
        let n = StorageKey::names("r").unwrap();
        let k = StorageKey::public_key("r").unwrap();
        assert_eq!(t.content_type(), "application/octet-stream");
        assert_eq!(p.content_type(), "application/octet-stream");
        assert_eq!(n.content_type(), "application/octet-stream");
        assert_eq!(d.content_type(), "application/gzip");
        assert_eq!(k.content_type(), "text/plain");
        assert_eq!(t.cache_control(true), "public, max-age=604800");
        assert_eq!(t.cache_control(false), "private, max-age=86400");
        assert_eq!(d.cache_control(true), "public, max-age=86400");
        assert_eq!(p.cache_control(true), "public, max-age=60");
        assert_eq!(n.cache_control(false), "private, max-age=60");
        assert_eq!(k.cache_control(true), "public, max-age=3600");
        assert!(t.is_immutable() && d.is_immutable());
        assert!(!p.is_immutable() && !n.is_immutable() && !k.is_immutable());
    }

    #[test]
    fn prefixes_do_not_bleed() {
        let foo = StorageKey::package("r", "foo").unwrap();
        let foo_t = StorageKey::tarball("r", "foo", "1.0.0").unwrap();
        let other_repo = StorageKey::package("r_b", "foo").unwrap();
        let p = KeyPrefix::packages("r").unwrap();
        assert_eq!(p.path(), "repos/r/packages/");
        assert!(p.matches(&foo));
        assert!(!p.matches(&foo_t));
        assert!(!p.matches(&other_repo));
        let r = KeyPrefix::repo("r").unwrap();
        assert_eq!(r.path(), "repos/r/");
        assert!(r.matches(&foo) && r.matches(&foo_t) && !r.matches(&other_repo));
        assert!(KeyPrefix::tarballs("r").unwrap().matches(&foo_t));
        assert!(!KeyPrefix::docs("r").unwrap().matches(&foo_t));
        assert_eq!(KeyPrefix::All.path(), "repos/");
        assert!(KeyPrefix::All.matches(&other_repo));
        assert!(KeyPrefix::repo("a/b").is_err());
    }
}
