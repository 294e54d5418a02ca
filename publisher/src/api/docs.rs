//! Documentation: `POST`/`DELETE /packages/NAME/releases/VERSION/docs`.

use crate::app::{Ctx, LogInfo};
use crate::auth::Access;
use crate::error::ApiError;
use crate::respond::Reply;
use crate::server::{Body, read_body};
use crate::views::Urls;
use hexyard_common::docs;
use hexyard_common::storage::{PutMode, StorageKey};
use http::{Request, StatusCode};

fn docs_key(ctx: &Ctx<'_>, name: &str, version: &str) -> Result<StorageKey, ApiError> {
    StorageKey::docs(&ctx.repo.name, name, version).map_err(|_| ApiError::page_not_found())
}

/// `POST .../docs`: stores the docs tarball of a published release (201 + `location`).
/// 404 when the release does not exist (mix then says the package is not published yet).
pub async fn publish(
    ctx: &Ctx<'_>,
    name: &str,
    version: &str,
    req: Request<Body>,
    log: &mut LogInfo,
) -> Result<Reply, ApiError> {
    ctx.require(Access::Write)?;
    let key = docs_key(ctx, name, version)?;
    let (_, body) = read_body(req, ctx.app.docs_limits.tarball_bytes, "docs tarball").await?;
    log.bytes_in = body.len();
    docs::validate(&body, &ctx.app.docs_limits).map_err(|e| {
        ctx.app.metrics.reject("docs");
        ApiError::validation("tar", e.to_string())
    })?;
    let current = ctx.repo.read_package(ctx.app.store.as_ref(), name).await?;
    let exists = current
        .package
        .as_ref()
        .is_some_and(|p| p.releases.iter().any(|r| r.version == version));
    if !exists {
        return Err(ApiError::page_not_found());
    }
    ctx.app
        .store
        .put(&key, body, PutMode::Overwrite)
        .await
        .map_err(ApiError::store)?;
    let urls = Urls {
        public_url: &ctx.app.public_url,
        repo: &ctx.repo.name,
    };
    tracing::info!(repo = %ctx.repo.name, package = name, version, "docs published");
    Ok(Reply::empty(StatusCode::CREATED).header("location", urls.docs(name, version)))
}

/// `DELETE .../docs`.
pub async fn revert(ctx: &Ctx<'_>, name: &str, version: &str) -> Result<Reply, ApiError> {
    ctx.require(Access::Write)?;
    let key = docs_key(ctx, name, version)?;
    match ctx.app.store.delete(&key).await {
        Ok(true) => Ok(Reply::empty(StatusCode::NO_CONTENT)),
        Ok(false) => Err(ApiError::page_not_found()),
        Err(e) => Err(ApiError::store(e)),
    }
}
