//! `GET /users/me` (the first request of every `mix hex.publish`) and `GET /auth`.

use crate::api::query_param;
use crate::app::Ctx;
use crate::auth::{Access, require};
use crate::error::ApiError;
use crate::respond::Reply;
use hexyard_common::etf::Term;
use http::StatusCode;

/// The key's principal. `organizations` must be a list (mix crashes without it, §6.3); it is
/// empty so that mix does not prompt for an owner organization.
pub fn me(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let p = ctx
        .principal
        .as_ref()
        .ok_or_else(|| ApiError::unauthorized("missing authentication information"))?;
    let repositories = Term::List(
        p.grants
            .iter()
            .map(|(repo, access)| {
                Term::map([
                    ("name", Term::bin(repo)),
                    ("access", Term::bin(access.as_str())),
                ])
            })
            .collect(),
    );
    let term = Term::map([
        ("username", Term::bin(&p.name)),
        ("email", Term::nil()),
        (
            "url",
            Term::bin(format!("{}/api/users/{}", ctx.app.public_url, p.name)),
        ),
        ("organizations", Term::List(vec![])),
        ("repositories", repositories),
    ]);
    Ok(Reply::term(StatusCode::OK, &term, ctx.format))
}

/// `GET /auth?domain=api&resource=read|write` or `domain=repository&resource=REPO`: 204 when
/// the key may do that, 401/403 otherwise.
pub fn auth(ctx: &Ctx<'_>, query: &str) -> Result<Reply, ApiError> {
    let domain = query_param(query, "domain").unwrap_or_else(|| "api".to_owned());
    let resource = query_param(query, "resource");
    let p = ctx
        .principal
        .as_ref()
        .ok_or_else(|| ApiError::unauthorized("missing authentication information"))?;
    match (domain.as_str(), resource.as_deref()) {
        ("api", Some("write")) => require(p, &ctx.repo.name, Access::Write)?,
        ("api", _) => require(p, &ctx.repo.name, Access::Read)?,
        ("repository", Some(r)) => require(p, r, Access::Read)?,
        ("repositories", _) => {}
        _ => return Err(ApiError::bad_request(format!("unknown domain {domain:?}"))),
    }
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
