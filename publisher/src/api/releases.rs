//! One release: `GET`, `DELETE` (revert), and `POST`/`DELETE .../retire`.

use crate::api::publish::within_window;
use crate::app::Ctx;
use crate::auth::Access;
use crate::error::ApiError;
use crate::respond::Reply;
use crate::server::{Body, read_body};
use crate::views::{Urls, reason_value, release_map};
use hexyard_common::etf::{self, Term};
use hexyard_common::registry::proto;
use hexyard_common::storage::StorageKey;
use hexyard_common::tarball;
use hexyard_common::version::Version;
use http::{Request, StatusCode};
use std::sync::Arc;

/// Longest retire request body accepted.
const RETIRE_BODY_LIMIT: u64 = 16 * 1024;

fn check_version(version: &str) -> Result<(), ApiError> {
    Version::parse(version)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(format!("invalid version: {e}")))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    StorageKey::package("x", name)
        .map(|_| ())
        .map_err(|_| ApiError::page_not_found())
}

/// The metadata of a stored release tarball (cached by outer checksum).
pub async fn release_meta(
    ctx: &Ctx<'_>,
    name: &str,
    release: &proto::Release,
) -> Option<Arc<tarball::Metadata>> {
    let outer = release.outer_checksum.as_deref()?;
    if let Some(m) = ctx.app.cached_meta(outer) {
        return Some(m);
    }
    let key = StorageKey::tarball(&ctx.repo.name, name, &release.version).ok()?;
    let obj = ctx.app.store.get(&key).await.ok()??;
    let tb = tarball::parse(&obj.body, &ctx.app.limits).ok()?;
    let meta = Arc::new(tb.metadata);
    ctx.app.cache_meta(tb.outer_checksum, meta.clone());
    Some(meta)
}

/// Whether docs are stored for a release.
pub async fn has_docs(ctx: &Ctx<'_>, name: &str, version: &str) -> bool {
    match StorageKey::docs(&ctx.repo.name, name, version) {
        Ok(k) => matches!(ctx.app.store.head(&k).await, Ok(Some(_))),
        Err(_) => false,
    }
}

/// `GET /packages/NAME/releases/VERSION`.
pub async fn get(ctx: &Ctx<'_>, name: &str, version: &str) -> Result<Reply, ApiError> {
    ctx.require_read()?;
    check_name(name)?;
    let current = ctx.repo.read_package(ctx.app.store.as_ref(), name).await?;
    let release = current
        .package
        .as_ref()
        .and_then(|p| p.releases.iter().find(|r| r.version == version))
        .ok_or_else(ApiError::page_not_found)?;
    let meta = release_meta(ctx, name, release).await;
    let docs = has_docs(ctx, name, version).await;
    let urls = Urls {
        public_url: &ctx.app.public_url,
        repo: &ctx.repo.name,
    };
    let term = release_map(&urls, name, release, meta.as_deref(), docs, None);
    Ok(Reply::term(StatusCode::OK, &term, ctx.format))
}

/// `DELETE /packages/NAME/releases/VERSION`: removes the release from the index (and the package
/// when it was the last), then deletes its tarball and docs.
pub async fn revert(ctx: &Ctx<'_>, name: &str, version: &str) -> Result<Reply, ApiError> {
    ctx.require(Access::Write)?;
    check_version(version)?;
    check_name(name)?;
    let repo = ctx.repo;
    let store = ctx.app.store.as_ref();
    let mut guard = repo.lock().await;
    guard
        .change_package(store, name, |cur| {
            let mut p = cur.ok_or_else(ApiError::page_not_found)?;
            let i = p
                .releases
                .iter()
                .position(|r| r.version == version)
                .ok_or_else(ApiError::page_not_found)?;
            within_window(repo, &p.releases[i], "delete")?;
            p.releases.remove(i);
            Ok(if p.releases.is_empty() { None } else { Some(p) })
        })
        .await?;
    drop(guard);
    // The index no longer names them: now the files can go.
    for key in [
        StorageKey::tarball(&repo.name, name, version),
        StorageKey::docs(&repo.name, name, version),
    ]
    .into_iter()
    .flatten()
    {
        if let Err(e) = store.delete(&key).await {
            tracing::warn!(key = %key.path(), error = %e, "could not delete a reverted release's file");
        }
    }
    tracing::info!(repo = %repo.name, package = name, version, "reverted");
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// Reads `{"reason" => R, "message" => M}` as an Erlang term or JSON.
fn parse_retire_body(
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<(String, Option<String>), ApiError> {
    let ctype = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bad = |why: String| ApiError::bad_request(format!("invalid retire body: {why}"));
    let (reason, message) = if ctype.contains("json") {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
        (
            v.get("reason").and_then(|r| r.as_str()).map(str::to_owned),
            v.get("message").and_then(|m| m.as_str()).map(str::to_owned),
        )
    } else {
        let t = etf::decode(body).map_err(|e| bad(e.to_string()))?;
        (
            t.get("reason").and_then(Term::as_str).map(str::to_owned),
            t.get("message").and_then(Term::as_str).map(str::to_owned),
        )
    };
    let reason = reason.ok_or_else(|| ApiError::validation("reason", "is required"))?;
    Ok((reason, message))
}

/// `POST /packages/NAME/releases/VERSION/retire`.
pub async fn retire(
    ctx: &Ctx<'_>,
    name: &str,
    version: &str,
    req: Request<Body>,
) -> Result<Reply, ApiError> {
    ctx.require(Access::Write)?;
    check_version(version)?;
    check_name(name)?;
    let (parts, body) = read_body(req, RETIRE_BODY_LIMIT, "retire body").await?;
    let (reason, message) = parse_retire_body(&parts, &body)?;
    let value = reason_value(&reason).ok_or_else(|| {
        ApiError::validation(
            "reason",
            format!("{reason:?} is not one of other, invalid, security, deprecated, renamed"),
        )
    })?;
    if let Some(m) = &message
        && !(3..=140).contains(&m.chars().count())
    {
        return Err(ApiError::validation(
            "message",
            "should be 3 to 140 characters long",
        ));
    }
    let status = proto::RetirementStatus {
        reason: value as i32,
        message,
    };
    set_retirement(ctx, name, version, Some(status)).await
}

/// `DELETE /packages/NAME/releases/VERSION/retire`.
pub async fn unretire(ctx: &Ctx<'_>, name: &str, version: &str) -> Result<Reply, ApiError> {
    ctx.require(Access::Write)?;
    check_version(version)?;
    check_name(name)?;
    set_retirement(ctx, name, version, None).await
}

async fn set_retirement(
    ctx: &Ctx<'_>,
    name: &str,
    version: &str,
    status: Option<proto::RetirementStatus>,
) -> Result<Reply, ApiError> {
    let mut guard = ctx.repo.lock().await;
    guard
        .change_package(ctx.app.store.as_ref(), name, |cur| {
            let mut p = cur.ok_or_else(ApiError::page_not_found)?;
            let r = p
                .releases
                .iter_mut()
                .find(|r| r.version == version)
                .ok_or_else(ApiError::page_not_found)?;
            r.retired = status.clone();
            Ok(Some(p))
        })
        .await?;
    tracing::info!(repo = %ctx.repo.name, package = name, version, retired = status.is_some(), "retirement changed");
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
