//! hexyard-common: everything the proxy and the publisher share.
//!
//! # Layout
//! - [`version`]: strict SemVer release versions and their ordering.
//! - [`names`]: package name rules.
//! - [`requirement`]: Elixir version requirements (`~> 1.0`, `and`, `or`).
//! - [`registry`]: the registry v2 protobuf messages and the
//!   `encode -> sign -> Signed -> gzip` pipeline with its verified reverse.
//! - [`signing`]: RSA keys (PEM in and out), PKCS#1 v1.5 SHA-512 signatures, fingerprints.
//! - [`tarball`]: bounded parsing and building of Hex package tarballs, `metadata.config`.
//! - [`docs`]: validation of documentation tarballs.
//! - [`storage`]: the one [`storage::Store`] trait, [`storage::StorageKey`], backends.
//! - [`auth`]: API keys (hashed) and per-repo grants.
//! - [`config`]: the deployment's YAML file, loaded and validated.
//! - [`etf`]: the Erlang external term format of the API (`application/vnd.hex+erlang`).
//! - [`metrics`]: Prometheus helpers.
//! - [`lockfile`]: reading `mix.lock` and `rebar.lock` (the releases a build needs).
//! - [`bundle`]: air-gap bundles (signed manifest + objects in one tar).
//! - `testing` (feature `testing`): helpers and the storage conformance suite.

pub mod auth;
pub mod bundle;
pub mod config;
pub mod docs;
pub mod etf;
pub mod lockfile;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod registry;
pub mod requirement;
pub mod signing;
pub mod storage;
pub mod tarball;
pub mod version;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
