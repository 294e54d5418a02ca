//! `ApiError`: every failure of the API, mapped in one place to a status and the body shape the
//! Hex clients print (`status`, `message`, `errors`; protocol doc §6.4).

use crate::respond::{Format, Reply};
use hexyard_common::etf::Term;
use http::StatusCode;

/// What a client is told when the store cannot be reached (the details go to the log).
pub const STORE_UNAVAILABLE: &str = "storage unavailable, try again";

/// A client-visible failure. `errors` holds field => text pairs, as hex.pm's validation errors
/// do (mix prints each as `  key: value`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub errors: Vec<(String, String)>,
    /// Extra headers (e.g. `www-authenticate`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }
    pub fn with_error(mut self, field: impl Into<String>, text: impl Into<String>) -> Self {
        self.errors.push((field.into(), text.into()));
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, message);
        e.headers
            .push(("www-authenticate", "Basic realm=hex".to_owned()));
        e
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// The default 404: rebar3_hex matches this exact text.
    pub fn page_not_found() -> Self {
        Self::not_found("Page not found")
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }
    /// A validation failure (422) with one field error.
    pub fn validation(field: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation error(s)").with_error(field, text)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    /// A store failure: logged with its details; the client gets a 503 that names no bucket,
    /// path or endpoint when the store is unreachable, a 500 otherwise.
    pub fn store(e: hexyard_common::storage::StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        match e {
            hexyard_common::storage::StoreError::Unavailable(_) => {
                Self::unavailable(STORE_UNAVAILABLE)
            }
            _ => Self::internal(),
        }
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }

    /// The error body as a term: `#{"status" => N, "message" => M, "errors" => #{...}}`.
    pub fn to_term(&self) -> Term {
        let mut pairs = vec![
            ("status", Term::Int(i64::from(self.status.as_u16()))),
            ("message", Term::bin(&self.message)),
        ];
        if !self.errors.is_empty() {
            pairs.push((
                "errors",
                Term::map(self.errors.iter().map(|(k, v)| (k.as_str(), Term::bin(v)))),
            ));
        }
        Term::map(pairs)
    }

    /// The response for a client that accepts `format`.
    pub fn into_reply(self, format: Format) -> Reply {
        let mut r = Reply::term(self.status, &self.to_term(), format);
        r.headers.extend(self.headers);
        r
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)?;
        for (k, v) in &self.errors {
            write!(f, "; {k}: {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hexyard_common::etf;

    #[test]
    fn error_body_is_the_shape_mix_prints() {
        let e = ApiError::validation("tar", "inner checksum mismatch");
        let t = etf::decode(&etf::encode(&e.to_term())).unwrap();
        assert_eq!(t.get("status"), Some(&Term::Int(422)));
        assert_eq!(
            t.get("message").and_then(Term::as_str),
            Some("Validation error(s)")
        );
        let errs = t.get("errors").unwrap();
        assert_eq!(
            errs.get("tar").and_then(Term::as_str),
            Some("inner checksum mismatch")
        );
        assert_eq!(ApiError::page_not_found().to_term().get("errors"), None);
    }
}
