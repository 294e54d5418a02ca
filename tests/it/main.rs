//! Integration tests: the real processes on loopback ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hexyard_tests::{EnvOptions, StoreBackend};

/// The deployment options of the publish/fetch suite: a local store here; the `it_s3` test
/// binary compiles the same files again with an S3 store.
fn opts() -> EnvOptions {
    EnvOptions::on(StoreBackend::Local)
}

mod access_matrix;
mod crash;
mod hostile;
mod proxy_hosted;
mod proxy_mirror;
mod proxy_process;
mod publish;
mod publish_auth;
mod publish_bad;
mod publish_concurrency;
mod publish_docs;
mod publish_info;
mod publish_replace;
mod publish_retire;
mod publish_routes;
mod publish_startup;
mod rebar3;
mod s3_fault;
mod s3_flows;
mod s3_prod_config;
mod s3_startup;
mod scale_out;
mod soak;
mod tools_airgap;
mod tools_gc;
mod tools_keys;
mod tools_prefetch;
mod tools_util;
mod tools_verify;
mod upstream_faults;
