//! The publish/fetch integration suite of the publisher and the proxy a second time, with
//! `store.kind: s3`: the very files of `tests/it`, compiled again with [`opts`] on a real S3
//! server (moto, one per deployment, started by the harness). Tests that only make sense on a
//! local store check `env.moto` and say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hexyard_tests::{EnvOptions, StoreBackend};

fn opts() -> EnvOptions {
    EnvOptions::on(StoreBackend::S3)
}

#[path = "../it/proxy_hosted.rs"]
mod proxy_hosted;
#[path = "../it/proxy_mirror.rs"]
mod proxy_mirror;
#[path = "../it/proxy_process.rs"]
mod proxy_process;
#[path = "../it/publish.rs"]
mod publish;
#[path = "../it/publish_auth.rs"]
mod publish_auth;
#[path = "../it/publish_bad.rs"]
mod publish_bad;
#[path = "../it/publish_concurrency.rs"]
mod publish_concurrency;
#[path = "../it/publish_docs.rs"]
mod publish_docs;
#[path = "../it/publish_info.rs"]
mod publish_info;
#[path = "../it/publish_replace.rs"]
mod publish_replace;
#[path = "../it/publish_retire.rs"]
mod publish_retire;
#[path = "../it/publish_routes.rs"]
mod publish_routes;
#[path = "../it/publish_startup.rs"]
mod publish_startup;
#[path = "../it/rebar3.rs"]
mod rebar3;
