//! Package information: `GET /packages/NAME`, `GET /packages?search=`, `GET .../owners`.

use crate::api::query_param;
use crate::api::releases::{has_docs, release_meta};
use crate::app::Ctx;
use crate::error::ApiError;
use crate::respond::Reply;
use crate::views::{Urls, package_map};
use hexyard_common::etf::Term;
use hexyard_common::registry;
use hexyard_common::storage::StorageKey;
use http::StatusCode;
use std::collections::BTreeSet;

/// Results per search page, as hex.pm.
const PAGE_SIZE: usize = 100;

async fn package_term(ctx: &Ctx<'_>, name: &str) -> Result<Option<Term>, ApiError> {
    if StorageKey::package(&ctx.repo.name, name).is_err() {
        return Ok(None);
    }
    let current = ctx.repo.read_package(ctx.app.store.as_ref(), name).await?;
    let Some(pkg) = current.package else {
        return Ok(None);
    };
    let meta = match pkg.releases.last() {
        Some(r) => release_meta(ctx, name, r).await,
        None => None,
    };
    let mut with_docs = BTreeSet::new();
    for r in &pkg.releases {
        if has_docs(ctx, name, &r.version).await {
            with_docs.insert(r.version.clone());
        }
    }
    let urls = Urls {
        public_url: &ctx.app.public_url,
        repo: &ctx.repo.name,
    };
    Ok(Some(package_map(&urls, &pkg, meta.as_deref(), &|v| {
        with_docs.contains(v)
    })))
}

/// `GET /packages/NAME`.
pub async fn get(ctx: &Ctx<'_>, name: &str) -> Result<Reply, ApiError> {
    ctx.require_read()?;
    let term = package_term(ctx, name)
        .await?
        .ok_or_else(ApiError::page_not_found)?;
    Ok(Reply::term(StatusCode::OK, &term, ctx.format))
}

/// `GET /packages?search=Q&page=N`: packages whose name contains Q (all when Q is empty),
/// sorted by name, 100 per page.
pub async fn search(ctx: &Ctx<'_>, query: &str) -> Result<Reply, ApiError> {
    ctx.require_read()?;
    let q = query_param(query, "search").unwrap_or_default();
    // hex.pm's search syntax allows `name:foo`; take the term after a colon.
    let q = q.rsplit(':').next().unwrap_or("").trim().to_lowercase();
    let page = query_param(query, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let key = StorageKey::names(&ctx.repo.name).map_err(|_| ApiError::internal())?;
    let names: Vec<String> = match ctx.app.store.get(&key).await {
        Ok(Some(obj)) => registry::decode_names(&obj.body, &ctx.repo.verifying, &ctx.repo.name)
            .map(|n| n.packages.into_iter().map(|p| p.name).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let hits: Vec<&String> = names.iter().filter(|n| n.contains(&q)).collect();
    let mut out = Vec::new();
    for name in hits
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
    {
        if let Some(t) = package_term(ctx, name).await? {
            out.push(t);
        }
    }
    Ok(Reply::term(StatusCode::OK, &Term::List(out), ctx.format))
}

/// `GET /packages/NAME/owners`: the principals with write access to the repository.
pub async fn owners(ctx: &Ctx<'_>, name: &str) -> Result<Reply, ApiError> {
    ctx.require_read()?;
    if StorageKey::package(&ctx.repo.name, name).is_err() {
        return Err(ApiError::page_not_found());
    }
    let current = ctx.repo.read_package(ctx.app.store.as_ref(), name).await?;
    if current.package.is_none() {
        return Err(ApiError::page_not_found());
    }
    let owners = ctx
        .app
        .owners
        .get(&ctx.repo.name)
        .cloned()
        .unwrap_or_default();
    let list = owners
        .iter()
        .map(|o| {
            Term::map([
                ("username", Term::bin(o)),
                ("email", Term::nil()),
                ("level", Term::bin("full")),
                (
                    "url",
                    Term::bin(format!("{}/api/users/{o}", ctx.app.public_url)),
                ),
            ])
        })
        .collect();
    Ok(Reply::term(StatusCode::OK, &Term::List(list), ctx.format))
}
