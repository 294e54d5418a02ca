//! hexyard-publisher: the `/api` surface. It takes uploads, validates them, re-signs the
//! registry indexes of hosted repositories and writes into the shared store.
//!
//! # Layout
//! - [`routes`]: the route table.
//! - [`auth`]: API keys and grants.
//! - [`error`], [`respond`]: the error type and response encoding (Erlang terms or JSON).

pub mod auth;
pub mod error;
pub mod respond;
pub mod routes;
pub mod server;
