//! Request path -> what is asked for. `/repos/<repo>/<object>` (and `/<object>` for the
//! `default_repo`), `/api/...` (forwarded), `/healthz`, `/readyz`. Runs of `/` collapse
//! (clients keep a user's trailing slash, protocol doc §1/§13.13); percent-escapes are decoded
//! once; NUL, encoded slashes, malformed escapes are refused; names and versions are checked by
//! `StorageKey`, so nothing can address a file outside the repository.

use std::borrow::Cow;

/// One object of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Names,
    Versions,
    Package(String),
    Tarball { name: String, version: String },
    Docs { name: String, version: String },
    PublicKey,
}

impl Object {
    /// The bounded label for metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            Object::Names | Object::Versions => "index",
            Object::Package(_) => "package",
            Object::Tarball { .. } => "tarball",
            Object::Docs { .. } => "docs",
            Object::PublicKey => "public_key",
        }
    }

    /// The package this object belongs to, if any.
    pub fn package(&self) -> Option<&str> {
        match self {
            Object::Package(n) | Object::Tarball { name: n, .. } | Object::Docs { name: n, .. } => {
                Some(n)
            }
            _ => None,
        }
    }
}

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A repository file; `repo: None` means the default repo.
    Repo {
        repo: Option<String>,
        object: Object,
    },
    /// `/api/...`: forwarded to the publisher.
    Api,
    Healthz,
    Readyz,
    /// 404 with this text.
    NotFound(&'static str),
    /// 400 with this text.
    BadRequest(&'static str),
}

impl Route {
    pub fn class(&self) -> &'static str {
        match self {
            Route::Repo { object, .. } => object.class(),
            Route::Api => "api",
            Route::Healthz | Route::Readyz => "health",
            Route::NotFound(_) | Route::BadRequest(_) => "invalid",
        }
    }
}

/// A path segment with its `%` escapes decoded (borrowed when it has none: the usual case).
fn decode(seg: &str) -> Result<Cow<'_, str>, &'static str> {
    if !seg.contains('%') {
        return if seg.contains('\0') {
            Err("NUL in path")
        } else {
            Ok(Cow::Borrowed(seg))
        };
    }
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // exactly two hex digits (`from_str_radix` alone would take a sign: `%+1`)
            let h = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .ok_or("bad escape in path")?;
            let h = std::str::from_utf8(h).map_err(|_| "bad escape in path")?;
            out.push(u8::from_str_radix(h, 16).map_err(|_| "bad escape in path")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err("NUL in path");
    }
    let s = String::from_utf8(out).map_err(|_| "path is not UTF-8")?;
    if s.contains('/') {
        return Err("encoded slash in path");
    }
    Ok(Cow::Owned(s))
}

fn object(rest: &[Cow<'_, str>]) -> Option<Object> {
    let s: (&str, Option<&str>) = match rest {
        [kind] => (kind, None),
        [kind, file] => (kind, Some(file)),
        _ => return None,
    };
    Some(match s {
        ("names", None) => Object::Names,
        ("versions", None) => Object::Versions,
        ("public_key", None) => Object::PublicKey,
        ("packages", Some(name)) => Object::Package(name.to_owned()),
        ("tarballs", Some(file)) => {
            let stem = file.strip_suffix(".tar")?;
            let (name, version) = stem.split_once('-')?;
            Object::Tarball {
                name: name.to_owned(),
                version: version.to_owned(),
            }
        }
        ("docs", Some(file)) => {
            let stem = file.strip_suffix(".tar.gz")?;
            let (name, version) = stem.split_once('-')?;
            Object::Docs {
                name: name.to_owned(),
                version: version.to_owned(),
            }
        }
        _ => return None,
    })
}

/// Routes a request path (without the query).
pub fn route(path: &str) -> Route {
    if path.len() > 2048 {
        return Route::BadRequest("path too long");
    }
    let mut segs: Vec<Cow<'_, str>> = Vec::with_capacity(8);
    for s in path.split('/').filter(|s| !s.is_empty()) {
        match decode(s) {
            Ok(d) => segs.push(d),
            Err(why) => return Route::BadRequest(why),
        }
    }
    match segs.first().map(Cow::as_ref) {
        Some("api") => Route::Api,
        Some("healthz") if segs.len() == 1 => Route::Healthz,
        Some("readyz") if segs.len() == 1 => Route::Readyz,
        Some("repos") if segs.len() >= 2 => match object(&segs[2..]) {
            Some(object) => Route::Repo {
                repo: Some(segs[1].clone().into_owned()),
                object,
            },
            None => Route::NotFound("no such repository file"),
        },
        Some(_) => match object(&segs) {
            Some(object) => Route::Repo { repo: None, object },
            None => Route::NotFound("not found"),
        },
        None => Route::NotFound("not found"),
    }
}

/// The invariants the `route` fuzz target (`tests/fuzz/`) and the stable regression test
/// (`proxy/tests/fuzz_regressions.rs`) check; panics when one breaks.
#[cfg(any(test, feature = "testing"))]
pub mod fuzz {
    use hexyard_common::storage::StorageKey;

    use super::{Object, Route, route};

    /// Routes `path`. Every `%` of a routed path starts a two-hex-digit escape; a repository
    /// object's components are non-empty where the grammar says so and never hold `/` or
    /// NUL; when [`StorageKey`] accepts them, the key's path stays below `repos/<repo>/`
    /// with no `.`, `..` or empty component, reads back with `StorageKey::from_path`, and the
    /// canonical URL of the object routes to the same object. And [`check_direct`].
    pub fn check(path: &str) {
        check_direct(path);
        let r = route(path);
        if matches!(r, Route::BadRequest(_)) {
            return;
        }
        let b = path.as_bytes();
        for (i, _) in path.match_indices('%') {
            let hex = b.get(i + 1..i + 3).unwrap_or_default();
            assert!(
                hex.len() == 2 && hex.iter().all(u8::is_ascii_hexdigit),
                "malformed escape at byte {i} accepted: {r:?}"
            );
        }
        let Route::Repo { repo, object } = &r else {
            return;
        };
        let mut parts: Vec<&str> = Vec::new();
        if let Some(repo) = repo {
            assert!(!repo.is_empty(), "empty repo");
            parts.push(repo);
        }
        match object {
            Object::Package(n) => {
                assert!(!n.is_empty(), "empty package name");
                parts.push(n);
            }
            Object::Tarball { name, version } | Object::Docs { name, version } => {
                parts.push(name);
                parts.push(version);
            }
            Object::Names | Object::Versions | Object::PublicKey => {}
        }
        for p in &parts {
            assert!(
                !p.contains('/') && !p.contains('\0'),
                "component {p:?} of {r:?}"
            );
        }
        let repo_name = repo.as_deref().unwrap_or("default_repo");
        let key = match object {
            Object::Names => StorageKey::names(repo_name),
            Object::Versions => StorageKey::versions(repo_name),
            Object::PublicKey => StorageKey::public_key(repo_name),
            Object::Package(n) => StorageKey::package(repo_name, n),
            Object::Tarball { name, version } => StorageKey::tarball(repo_name, name, version),
            Object::Docs { name, version } => StorageKey::docs(repo_name, name, version),
        };
        let Ok(key) = key else {
            return;
        };
        let key_path = key.path();
        let prefix = format!("repos/{repo_name}/");
        let Some(rest) = key_path.strip_prefix(&prefix) else {
            panic!("key path {key_path:?} is not below {prefix:?}");
        };
        assert!(
            rest.split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."),
            "key path {key_path:?}"
        );
        assert_eq!(StorageKey::from_path(&key_path).as_ref(), Some(&key));
        let canonical = format!("/{key_path}");
        assert_eq!(
            route(&canonical),
            Route::Repo {
                repo: Some(repo_name.to_owned()),
                object: object.clone()
            },
            "canonical path {canonical:?} of {path:?}"
        );
    }

    /// A request that `front::direct` answers on the proxy's local path (no `/api`
    /// forwarding) never routes to `/api`: for `GET` and `HEAD` request lines with `path` as
    /// the target, when `direct` takes the line and its target parses as a URI (pingora
    /// answers 400 otherwise), the URI's path is the target up to its query, byte for byte
    /// (nothing decoded or normalised in between), and it does not route to [`Route::Api`].
    pub fn check_direct(path: &str) {
        for method in ["GET", "HEAD"] {
            let line = format!("{method} {path} HTTP/1.1\r\n");
            if !crate::front::direct(line.as_bytes()) {
                continue;
            }
            // The target as `direct` saw it: the second word of the first line.
            let first = line.split('\n').next().unwrap_or_default();
            let target = first.split(' ').nth(1).unwrap_or_default();
            let Ok(uri) = target.parse::<http::Uri>() else {
                continue;
            };
            let before_query = target.split('?').next().unwrap_or_default();
            assert_eq!(
                uri.path(),
                before_query,
                "{line:?}: the parsed path differs"
            );
            assert_ne!(
                route(uri.path()),
                Route::Api,
                "{line:?} is direct but routes to /api"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(r: Option<&str>, object: Object) -> Route {
        Route::Repo {
            repo: r.map(str::to_owned),
            object,
        }
    }

    #[test]
    fn routes_repository_files() {
        assert_eq!(
            route("/repos/acme/names"),
            repo(Some("acme"), Object::Names)
        );
        assert_eq!(
            route("/repos/acme//versions"),
            repo(Some("acme"), Object::Versions)
        );
        assert_eq!(
            route("/repos/acme/packages/foo"),
            repo(Some("acme"), Object::Package("foo".into()))
        );
        assert_eq!(
            route("/repos/acme/tarballs/foo_bar-1.0.0-rc.1+build.tar"),
            repo(
                Some("acme"),
                Object::Tarball {
                    name: "foo_bar".into(),
                    version: "1.0.0-rc.1+build".into()
                }
            )
        );
        assert_eq!(
            route("/repos/acme/docs/foo-1.0.0.tar.gz"),
            repo(
                Some("acme"),
                Object::Docs {
                    name: "foo".into(),
                    version: "1.0.0".into()
                }
            )
        );
        assert_eq!(
            route("/repos/acme/public_key"),
            repo(Some("acme"), Object::PublicKey)
        );
        assert_eq!(
            route("/packages/foo"),
            repo(None, Object::Package("foo".into()))
        );
        assert_eq!(route("/api/packages/foo"), Route::Api);
        assert_eq!(route("/healthz"), Route::Healthz);
        assert_eq!(route("/readyz"), Route::Readyz);
    }

    #[test]
    fn refuses_tricks() {
        assert_eq!(
            route("/repos/acme/packages/fo%00o"),
            Route::BadRequest("NUL in path")
        );
        assert_eq!(
            route("/repos/acme/packages/a%2f..%2fb"),
            Route::BadRequest("encoded slash in path")
        );
        for bad in ["a%zz", "a%+1", "a%-1", "a%1"] {
            assert_eq!(
                route(&format!("/repos/acme/packages/{bad}")),
                Route::BadRequest("bad escape in path"),
                "{bad}"
            );
        }
        assert!(matches!(
            route("/repos/acme/packages/foo/bar"),
            Route::NotFound(_)
        ));
        assert!(matches!(
            route("/repos/acme/tarballs/foo.tar"),
            Route::NotFound(_)
        ));
        assert!(matches!(
            route("/repos/acme/../../etc/passwd"),
            Route::NotFound(_)
        ));
        assert!(matches!(route("/"), Route::NotFound(_)));
        // `..` decoded is still just a name; StorageKey refuses it later.
        assert_eq!(
            route("/repos/acme/packages/%2e%2e"),
            repo(Some("acme"), Object::Package("..".into()))
        );
        assert_eq!(
            route(&format!("/{}", "a".repeat(3000))),
            Route::BadRequest("path too long")
        );
    }
}
