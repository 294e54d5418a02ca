//! The API handlers, one file per resource.

pub mod docs;
pub mod packages;
pub mod publish;
pub mod releases;
pub mod users;

use crate::error::ApiError;

/// A query parameter's value (first occurrence), percent-decoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == key {
            crate::routes::percent_decode(&v.replace('+', " ")).ok()
        } else {
            None
        }
    })
}

/// `replace=true|false` (absent: false, the safe reading of protocol doc §14.1).
pub fn replace_flag(query: &str) -> Result<bool, ApiError> {
    match query_param(query, "replace").as_deref() {
        None | Some("false") | Some("") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid replace value {other:?}"
        ))),
    }
}
