//! Response building: content negotiation between Erlang terms and JSON.

use bytes::Bytes;
use hexyard_common::etf::{self, Term};
use http::{HeaderMap, StatusCode};

/// The media type the Hex clients send and read.
pub const HEX_ERLANG: &str = "application/vnd.hex+erlang";

/// How a response body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/vnd.hex+erlang`: what every Hex client asks for.
    Erlang,
    /// `application/json`: everything else (curl, browsers).
    Json,
}

impl Format {
    /// Chooses from the request's `Accept` header: Erlang terms when they are accepted
    /// (the clients always ask), JSON otherwise.
    pub fn from_headers(headers: &HeaderMap) -> Format {
        let accepts_erlang = headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(HEX_ERLANG));
        if accepts_erlang {
            Format::Erlang
        } else {
            Format::Json
        }
    }
}

/// A finished response, independent of the HTTP library.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Reply {
    /// A term body in the negotiated format.
    pub fn term(status: StatusCode, term: &Term, format: Format) -> Reply {
        let (ctype, body) = match format {
            Format::Erlang => (HEX_ERLANG, Bytes::from(etf::encode(term))),
            Format::Json => ("application/json", Bytes::from(term.to_json().to_string())),
        };
        Reply {
            status,
            headers: vec![("content-type", ctype.to_owned())],
            body,
        }
    }

    /// An empty response (204 and the like).
    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}
