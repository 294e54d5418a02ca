//! The whole `/api` route table on one screen.
//!
//! Every route exists under `/api/repos/<repo>/...` and under `/api/...`; the latter means the
//! repo named `default_repo` in config (protocol doc §6.1, §13.6). Paths are taken literally
//! except that runs of `/` collapse (clients keep a user's trailing slash, §1) and
//! percent-escapes are decoded once; a NUL anywhere is refused.

use http::Method;

/// What a request asks for, with the repo still unresolved (`None` = the default repo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub repo: Option<String>,
    pub route: Route,
}

/// One API operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /users/me`
    UsersMe,
    /// `GET /auth?domain=..&resource=..`: does this key work?
    Auth,
    /// `POST /packages/<name>/releases` (and the legacy `POST /publish`, which names no package).
    Publish { name: Option<String> },
    /// `GET /packages`
    Search,
    /// `GET /packages/<name>`
    Package { name: String },
    /// `GET /packages/<name>/releases/<version>`
    Release { name: String, version: String },
    /// `DELETE /packages/<name>/releases/<version>`
    Revert { name: String, version: String },
    /// `POST /packages/<name>/releases/<version>/retire`
    Retire { name: String, version: String },
    /// `DELETE /packages/<name>/releases/<version>/retire`
    Unretire { name: String, version: String },
    /// `POST /packages/<name>/releases/<version>/docs`
    DocsPublish { name: String, version: String },
    /// `DELETE /packages/<name>/releases/<version>/docs`
    DocsRevert { name: String, version: String },
    /// `GET /packages/<name>/owners` (and `.../owners/<user>`)
    Owners { name: String },
    /// `PUT`/`DELETE /packages/<name>/owners/<user>`: refused, owners live in config.
    OwnersChange { name: String },
}

/// Why a path is not routable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No such route (404).
    NotFound,
    /// The path exists but not with this method (405).
    MethodNotAllowed,
    /// A malformed path: bad escape, NUL (400).
    BadPath(&'static str),
}

/// Decodes `%XX` escapes once; refuses malformed escapes, NUL and non-UTF-8 results.
pub fn percent_decode(s: &str) -> Result<String, RouteError> {
    if !s.contains('%') {
        if s.contains('\0') {
            return Err(RouteError::BadPath("NUL in path"));
        }
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .ok_or(RouteError::BadPath("bad escape"))?;
            let hex = std::str::from_utf8(hex).map_err(|_| RouteError::BadPath("bad escape"))?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| RouteError::BadPath("bad escape"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(RouteError::BadPath("NUL in path"));
    }
    String::from_utf8(out).map_err(|_| RouteError::BadPath("path is not UTF-8"))
}

/// Splits a path into decoded segments, dropping empty ones (so `//` collapses). A decoded
/// segment may not contain `/` (an encoded slash never creates a new segment).
pub fn segments(path: &str) -> Result<Vec<String>, RouteError> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let d = percent_decode(s)?;
            if d.contains('/') {
                return Err(RouteError::BadPath("encoded slash in path"));
            }
            Ok(d)
        })
        .collect()
}

/// Routes `method` + `path` (the path part of the URI, without the query).
pub fn route(method: &Method, path: &str) -> Result<Routed, RouteError> {
    let segs = segments(path)?;
    let mut s: Vec<&str> = segs.iter().map(String::as_str).collect();
    if s.first() == Some(&"api") {
        s.remove(0);
    } else {
        return Err(RouteError::NotFound);
    }
    let mut repo = None;
    if s.len() >= 2 && s[0] == "repos" {
        repo = Some(s[1].to_owned());
        s.drain(..2);
    }
    let m = method;
    let get = m == Method::GET || m == Method::HEAD;
    let own = |x: &str| x.to_owned();
    let route = match s.as_slice() {
        ["users", "me"] if get => Route::UsersMe,
        ["users", "me"] => return Err(RouteError::MethodNotAllowed),
        ["auth"] if get => Route::Auth,
        ["auth"] => return Err(RouteError::MethodNotAllowed),
        ["publish"] if m == Method::POST => Route::Publish { name: None },
        ["publish"] => return Err(RouteError::MethodNotAllowed),
        ["packages"] if get => Route::Search,
        ["packages"] => return Err(RouteError::MethodNotAllowed),
        ["packages", n] if get => Route::Package { name: own(n) },
        ["packages", _] => return Err(RouteError::MethodNotAllowed),
        ["packages", n, "releases"] if m == Method::POST => Route::Publish { name: Some(own(n)) },
        ["packages", _, "releases"] => return Err(RouteError::MethodNotAllowed),
        ["packages", n, "releases", v] => {
            let (name, version) = (own(n), own(v));
            match *m {
                Method::GET | Method::HEAD => Route::Release { name, version },
                Method::DELETE => Route::Revert { name, version },
                _ => return Err(RouteError::MethodNotAllowed),
            }
        }
        ["packages", n, "releases", v, "retire"] => {
            let (name, version) = (own(n), own(v));
            match *m {
                Method::POST => Route::Retire { name, version },
                Method::DELETE => Route::Unretire { name, version },
                _ => return Err(RouteError::MethodNotAllowed),
            }
        }
        ["packages", n, "releases", v, "docs"] => {
            let (name, version) = (own(n), own(v));
            match *m {
                Method::POST => Route::DocsPublish { name, version },
                Method::DELETE => Route::DocsRevert { name, version },
                _ => return Err(RouteError::MethodNotAllowed),
            }
        }
        ["packages", n, "owners"] if get => Route::Owners { name: own(n) },
        ["packages", _, "owners"] => return Err(RouteError::MethodNotAllowed),
        ["packages", n, "owners", _] => match *m {
            Method::GET | Method::HEAD => Route::Owners { name: own(n) },
            Method::PUT | Method::DELETE => Route::OwnersChange { name: own(n) },
            _ => return Err(RouteError::MethodNotAllowed),
        },
        _ => return Err(RouteError::NotFound),
    };
    Ok(Routed { repo, route })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, p: &str) -> Result<Routed, RouteError> {
        route(&m, p)
    }

    #[test]
    fn routes_every_client_path() {
        let ok = |m: Method, p: &str, repo: Option<&str>, want: Route| {
            assert_eq!(
                r(m, p),
                Ok(Routed {
                    repo: repo.map(str::to_owned),
                    route: want
                }),
                "{p}"
            );
        };
        let nv = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        ok(Method::GET, "/api/users/me", None, Route::UsersMe);
        ok(
            Method::POST,
            "/api/packages/foo/releases",
            None,
            Route::Publish {
                name: Some("foo".into()),
            },
        );
        ok(
            Method::POST,
            "/api/repos/acme/packages/foo/releases",
            Some("acme"),
            Route::Publish {
                name: Some("foo".into()),
            },
        );
        ok(
            Method::POST,
            "/api/publish",
            None,
            Route::Publish { name: None },
        );
        ok(
            Method::POST,
            "/api/repos/acme/publish",
            Some("acme"),
            Route::Publish { name: None },
        );
        // A trailing slash in HEX_API_URL gives `//`.
        ok(
            Method::GET,
            "/api//packages/foo",
            None,
            Route::Package { name: "foo".into() },
        );
        let (name, version) = nv("foo", "1.0.0-rc.1+b");
        ok(
            Method::DELETE,
            "/api/packages/foo/releases/1.0.0-rc.1+b",
            None,
            Route::Revert { name, version },
        );
        let (name, version) = nv("foo", "1.0.0");
        ok(
            Method::POST,
            "/api/packages/foo/releases/1.0.0/retire",
            None,
            Route::Retire {
                name: name.clone(),
                version: version.clone(),
            },
        );
        ok(
            Method::DELETE,
            "/api/packages/foo/releases/1.0.0/retire",
            None,
            Route::Unretire {
                name: name.clone(),
                version: version.clone(),
            },
        );
        ok(
            Method::POST,
            "/api/packages/foo/releases/1.0.0/docs",
            None,
            Route::DocsPublish {
                name: name.clone(),
                version: version.clone(),
            },
        );
        ok(
            Method::DELETE,
            "/api/packages/foo/releases/1.0.0/docs",
            None,
            Route::DocsRevert { name, version },
        );
        ok(Method::GET, "/api/packages", None, Route::Search);
        ok(
            Method::GET,
            "/api/packages/foo/owners",
            None,
            Route::Owners { name: "foo".into() },
        );
        ok(
            Method::PUT,
            "/api/repos/hexpm/packages/foo/owners/acme",
            Some("hexpm"),
            Route::OwnersChange { name: "foo".into() },
        );
        ok(Method::GET, "/api/auth", None, Route::Auth);
    }

    #[test]
    fn refuses_bad_paths_and_methods() {
        assert_eq!(r(Method::GET, "/api/nope"), Err(RouteError::NotFound));
        assert_eq!(r(Method::GET, "/repos/x/names"), Err(RouteError::NotFound));
        assert_eq!(
            r(Method::PUT, "/api/packages/foo/releases"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            r(Method::GET, "/api/publish"),
            Err(RouteError::MethodNotAllowed)
        );
        assert!(matches!(
            r(Method::GET, "/api/packages/fo%00o"),
            Err(RouteError::BadPath(_))
        ));
        assert!(matches!(
            r(Method::GET, "/api/packages/a%2fb"),
            Err(RouteError::BadPath(_))
        ));
        assert!(matches!(
            r(Method::GET, "/api/packages/a%zz"),
            Err(RouteError::BadPath(_))
        ));
        assert!(matches!(
            r(Method::GET, "/api/packages/a%f"),
            Err(RouteError::BadPath(_))
        ));
        // `..` is only a name, which the handlers' name rules refuse; it never walks up.
        assert_eq!(
            r(Method::GET, "/api/packages/.."),
            Ok(Routed {
                repo: None,
                route: Route::Package { name: "..".into() }
            })
        );
        assert_eq!(
            r(Method::GET, "/api/packages/foo%2Bbar"),
            Ok(Routed {
                repo: None,
                route: Route::Package {
                    name: "foo+bar".into()
                }
            })
        );
    }
}
