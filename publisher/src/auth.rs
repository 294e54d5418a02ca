//! API keys and grants: [`hexyard_common::auth`], with failures as API errors.

use crate::error::ApiError;
pub use hexyard_common::auth::{Access, Authenticator, KeyEntry, Principal, hash_key};

/// Ok when `p` has at least `need` on `repo`; a 403 saying what is missing otherwise.
pub fn require(p: &Principal, repo: &str, need: Access) -> Result<(), ApiError> {
    if p.allows(repo, need) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "key {:?} is not authorized for this action: it needs {} access to repository {repo:?}",
        p.name,
        need.as_str()
    )))
}

/// The principal of a request; 401 for a key that matches no configured key.
pub fn authenticate(
    a: &Authenticator,
    header: Option<&[u8]>,
) -> Result<Option<Principal>, ApiError> {
    a.authenticate(header)
        .map_err(|e| ApiError::unauthorized(e.to_string()))
}
