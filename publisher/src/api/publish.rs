//! `POST /packages/NAME/releases?replace=BOOL` and the legacy `POST /publish?replace=BOOL`.

use crate::api::replace_flag;
use crate::app::{Ctx, LogInfo};
use crate::auth::Access;
use crate::error::ApiError;
use crate::index::{HostedRepo, now_timestamp};
use crate::respond::Reply;
use crate::server::{Body, read_body};
use crate::views::{Urls, release_map};
use bytes::Bytes;
use hexyard_common::registry::{self, proto};
use hexyard_common::requirement::Requirement as VersionReq;
use hexyard_common::storage::{PutMode, StorageKey, Store, StoreError};
use hexyard_common::tarball::{self, Tarball, TarballError};
use http::{Request, StatusCode};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A tarball stored for a version the index does not list is taken for an orphan of a crashed
/// publish only when it is older than this; younger, it may belong to a publish still in
/// flight in another process.
pub(crate) const ORPHAN_AGE: Duration = Duration::from_secs(30);

/// The metric label of a tarball defect.
fn reason(e: &TarballError) -> &'static str {
    match e {
        TarballError::TooLarge { .. } | TarballError::UnpackedTooLarge { .. } => "too_large",
        TarballError::ChecksumMismatch { .. } | TarballError::BadChecksumFormat => "checksum",
        TarballError::InvalidName(_) => "name",
        TarballError::InvalidVersion(_) => "version",
        TarballError::Metadata(_) | TarballError::MetadataTooLarge { .. } => "metadata",
        TarballError::AbsolutePath(_)
        | TarballError::PathTraversal(_)
        | TarballError::SymlinkEscape { .. }
        | TarballError::HardLink(_)
        | TarballError::SpecialFile { .. } => "unsafe_entry",
        _ => "malformed",
    }
}

/// Publishes one release.
pub async fn publish(
    ctx: &Ctx<'_>,
    url_name: Option<&str>,
    query: &str,
    req: Request<Body>,
    log: &mut LogInfo,
) -> Result<Reply, ApiError> {
    let app = ctx.app;
    let principal = ctx
        .require(Access::Write)
        .inspect_err(|_| app.metrics.reject("auth"))?;
    let replace = replace_flag(query)?;
    let (_, body) = read_body(req, app.limits.tarball_bytes, "tarball")
        .await
        .inspect_err(|_| app.metrics.reject("too_large"))?;
    log.bytes_in = body.len();
    let tb = tarball::parse(&body, &app.limits).map_err(|e| {
        app.metrics.reject(reason(&e));
        ApiError::validation("tar", e.to_string())
    })?;
    log.package = Some(tb.name.clone());
    if let Some(n) = url_name
        && n != tb.name
    {
        app.metrics.reject("name");
        return Err(ApiError::validation(
            "name",
            format!(
                "metadata does not match package name: the URL says {n:?}, the tarball {:?}",
                tb.name
            ),
        ));
    }
    let repo = ctx.repo;
    let store = app.store.as_ref();
    let dependencies = resolve_dependencies(ctx, &tb).await?;
    let version = tb.version.to_string();
    let release = proto::Release {
        version: version.clone(),
        inner_checksum: tb.inner_checksum.to_vec(),
        dependencies,
        retired: None,
        outer_checksum: Some(tb.outer_checksum.to_vec()),
        advisory_indexes: vec![],
        published_at: Some(now_timestamp()),
    };

    let mut guard = repo.lock().await;
    let current = repo.read_package(store, &tb.name).await?;
    let existing = current
        .package
        .as_ref()
        .and_then(|p| p.releases.iter().find(|r| r.version == version))
        .cloned();
    if let Some(old) = &existing {
        check_replace(repo, old, replace).inspect_err(|_| app.metrics.reject("exists"))?;
    }
    store_tarball(store, repo, &tb, body, existing.is_some()).await?;
    let pkg = guard
        .change_package_from(store, &tb.name, Some(current), |cur| {
            let mut p = cur.unwrap_or_else(|| proto::Package {
                releases: vec![],
                name: tb.name.clone(),
                repository: repo.name.clone(),
                advisories: vec![],
            });
            match p.releases.iter().position(|r| r.version == version) {
                Some(i) => {
                    let old = &p.releases[i];
                    check_replace(repo, old, replace)?;
                    let mut r = release.clone();
                    // The window counts from the first publish; a retirement stays.
                    r.published_at = old.published_at.or(r.published_at);
                    r.retired = old.retired.clone();
                    p.releases[i] = r;
                }
                None => {
                    p.releases.push(release.clone());
                    registry::sort_releases(&mut p.releases);
                }
            }
            Ok(Some(p))
        })
        .await?;
    drop(guard);
    app.metrics.publishes.inc();
    app.cache_meta(tb.outer_checksum, Arc::new(tb.metadata.clone()));
    let written = pkg
        .as_ref()
        .and_then(|p| p.releases.iter().find(|r| r.version == version))
        .ok_or_else(ApiError::internal)?;
    let urls = Urls {
        public_url: &app.public_url,
        repo: &repo.name,
    };
    let has_docs = store
        .head(&StorageKey::docs(&repo.name, &tb.name, &version).map_err(|_| ApiError::internal())?)
        .await
        .map(|m| m.is_some())
        .unwrap_or(false);
    let term = release_map(
        &urls,
        &tb.name,
        written,
        Some(&tb.metadata),
        has_docs,
        Some(&principal.name),
    );
    tracing::info!(repo = %repo.name, package = %tb.name, version = %version, replaced = existing.is_some(),
        publisher = %principal.name, "published");
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(Reply::term(status, &term, ctx.format).header(
        "location",
        format!(
            "/api/repos/{}/packages/{}/releases/{version}",
            repo.name, tb.name
        ),
    ))
}

/// Refuses to touch an existing release without `replace`, or outside the window.
pub fn check_replace(
    repo: &HostedRepo,
    old: &proto::Release,
    replace: bool,
) -> Result<(), ApiError> {
    if !replace {
        return Err(ApiError::validation(
            "inserted_at",
            format!(
                "must include the --replace flag to update an existing release (version {} exists)",
                old.version
            ),
        ));
    }
    within_window(repo, old, "modify")
}

/// Whether the release may still be changed (replaced or reverted).
pub fn within_window(repo: &HostedRepo, old: &proto::Release, verb: &str) -> Result<(), ApiError> {
    let Some(window) = repo.replace_window else {
        return Ok(());
    };
    let published = old.published_at.map_or(0, |t| t.seconds);
    let now = now_timestamp().seconds;
    let limit = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(published) > limit {
        return Err(ApiError::validation(
            "inserted_at",
            format!(
                "can only {verb} a release up to {} after publication",
                human(window)
            ),
        ));
    }
    Ok(())
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        3600 => return "one hour".to_owned(),
        0 => (0, "second"),
        _ if s.is_multiple_of(3600) => (s / 3600, "hour"),
        _ if s.is_multiple_of(60) => (s / 60, "minute"),
        _ => (s, "second"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Writes the tarball before any index names it. A tarball already stored under the key is
/// kept if identical, replaced if this is a `replace`, and otherwise replaced only when it is
/// an orphan of an old failed publish (see [`ORPHAN_AGE`]).
async fn store_tarball(
    store: &dyn Store,
    repo: &HostedRepo,
    tb: &Tarball,
    body: Bytes,
    replacing: bool,
) -> Result<(), ApiError> {
    let key = StorageKey::tarball(&repo.name, &tb.name, &tb.version.to_string())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mode = if replacing {
        PutMode::Overwrite
    } else {
        PutMode::CreateOnly
    };
    match store.put(&key, body.clone(), mode).await {
        Ok(_) => return Ok(()),
        Err(StoreError::AlreadyExists) => {}
        Err(e) => return Err(ApiError::store(e)),
    }
    let Some(old) = store.get(&key).await.map_err(ApiError::store)? else {
        // Deleted in between: try once more.
        return store
            .put(&key, body, PutMode::CreateOnly)
            .await
            .map(|_| ())
            .map_err(ApiError::store);
    };
    if old.body == body {
        return Ok(());
    }
    let age = SystemTime::now()
        .duration_since(old.meta.last_modified)
        .unwrap_or_default();
    if age < ORPHAN_AGE {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "another publish of this version is in progress; retry in a minute",
        ));
    }
    store
        .put(&key, body, PutMode::IfMatch(old.meta.etag))
        .await
        .map(|_| ())
        .map_err(|e| match e {
            StoreError::PreconditionFailed => ApiError::new(
                StatusCode::CONFLICT,
                "another publish of this version is in progress; retry in a minute",
            ),
            e => ApiError::store(e),
        })
}

/// Turns the metadata requirements into registry dependencies.
///
/// A requirement's repository: absent or equal to this repo means this repo, where the package
/// must exist with a version matching the requirement (rebar3_hex never sends a repository, and
/// `mix hex.registry build` reads a missing one the same way); but when it is absent and this
/// repo has no such package, the dependency is on hex.pm (`hexpm`), as hex.pm reads it. Another
/// hosted repo of this deployment is checked the same way; any other repository is recorded as
/// given. Dependencies are sorted by name; `optional` is written only when true and `app` only
/// when it differs from the package, as hex.pm writes them.
async fn resolve_dependencies(
    ctx: &Ctx<'_>,
    tb: &Tarball,
) -> Result<Vec<proto::Dependency>, ApiError> {
    let app = ctx.app;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for r in &tb.metadata.requirements {
        let req = VersionReq::parse_for_publish(&r.requirement).map_err(|e| {
            app.metrics.reject("requirement");
            ApiError::validation("requirements", format!("{}: {e}", r.name))
        })?;
        if r.name == tb.name {
            return Err(ApiError::validation(
                "requirements",
                format!("{}: a package cannot depend on itself", r.name),
            ));
        }
        let target = r.repository.as_deref().unwrap_or(&ctx.repo.name);
        let recorded = match app.hosted.get(target) {
            Some(dep_repo) => {
                let found = dep_repo.read_package(app.store.as_ref(), &r.name).await;
                let pkg = match found {
                    Ok(c) => c.package,
                    Err(_) => None,
                };
                match pkg {
                    Some(p) => {
                        if !p.releases.iter().any(|rel| req.matches_str(&rel.version)) {
                            missing.push(format!(
                                "{}: no version of {} in repository {:?} matches {:?}",
                                r.name, r.name, dep_repo.name, r.requirement
                            ));
                        }
                        (dep_repo.name != ctx.repo.name).then(|| dep_repo.name.clone())
                    }
                    None if r.repository.is_none() => Some("hexpm".to_owned()),
                    None => {
                        missing.push(format!(
                            "{}: package does not exist in repository {:?}",
                            r.name, dep_repo.name
                        ));
                        None
                    }
                }
            }
            None => Some(target.to_owned()),
        };
        out.push(proto::Dependency {
            package: r.name.clone(),
            requirement: r.requirement.clone(),
            optional: r.optional.then_some(true),
            app: r.app.clone().filter(|a| a != &r.name),
            repository: recorded,
        });
    }
    if !missing.is_empty() {
        app.metrics.reject("dependency");
        let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation error(s)");
        e = e.with_error("requirements", missing.join("; "));
        return Err(e);
    }
    out.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::human;
    use std::time::Duration;

    #[test]
    fn windows_read_like_english() {
        let h = |s| human(Duration::from_secs(s));
        assert_eq!(h(1), "1 second");
        assert_eq!(h(2), "2 seconds");
        assert_eq!(h(60), "1 minute");
        assert_eq!(h(120), "2 minutes");
        assert_eq!(h(3600), "one hour");
        assert_eq!(h(7200), "2 hours");
        assert_eq!(h(86_400), "24 hours");
        assert_eq!(h(0), "0 seconds");
    }
}
