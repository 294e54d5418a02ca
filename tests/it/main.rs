//! Integration tests: the real processes on loopback ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_hosted;
mod proxy_mirror;
mod publish;
mod rebar3;
