//! Registry v2: the protobuf messages and the `encode -> sign -> Signed -> gzip` pipeline,
//! with its verified reverse `gunzip -> Signed -> verify -> decode -> origin check`
//! (protocol doc §3).
//!
//! # Layout
//! - [`proto`]: the messages (`Signed`, `Names`, `Versions`, `Package`, ...), prost structs
//!   matching the `.proto` files field for field.
//! - codec (re-exported here): [`encode_signed`], [`sign_payload`], [`open_signed`],
//!   [`verify_signed`], and the verified decoders [`decode_names`], [`decode_versions`],
//!   [`decode_package`] (plus `*_with_limit` variants).
//! - builders (re-exported here): pure functions the publisher uses to assemble messages in
//!   the order clients and `mix hex.registry build` use: [`sort_releases`],
//!   [`build_package`], [`build_versions`], [`build_names`].
//!
//! Every failure is a [`RegistryError`] variant a caller can act on.

mod build;
mod codec;
pub mod proto;

pub use build::{build_names, build_package, build_versions, sort_releases};
pub use codec::{
    DEFAULT_MAX_DECOMPRESSED, GZIP_HEADER, decode_names, decode_names_with_limit, decode_package,
    decode_package_with_limit, decode_versions, decode_versions_with_limit, encode_signed, gzip,
    open_signed, sign_payload, verify_signed,
};

use crate::signing::SigningError;

/// Why a registry file could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The body is not a valid gzip stream (bad header, corrupt data, truncated, empty),
    /// or compressing failed.
    #[error("registry file is not valid gzip: {0}")]
    Gzip(#[source] std::io::Error),
    /// The body decompresses to more than `limit` bytes; decompression stopped there.
    #[error("registry file decompresses to more than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// The `Signed` envelope or the inner message is not valid protobuf.
    #[error("registry protobuf is malformed: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The `Signed` envelope has no `signature` field.
    #[error("registry file has no signature")]
    MissingSignature,
    /// The signature does not verify with the configured public key.
    #[error("registry signature does not verify with the configured public key")]
    BadSignature,
    /// The signed `repository` field is not the repository the file was fetched for.
    #[error("registry file is for repository {found:?}, expected {expected:?}")]
    WrongRepository {
        /// The repository the caller asked for.
        expected: String,
        /// The repository named in the file.
        found: String,
    },
    /// The signed package `name` is not the package the file was fetched for.
    #[error("registry file is for package {found:?}, expected {expected:?}")]
    WrongPackage {
        /// The package the caller asked for.
        expected: String,
        /// The package named in the file.
        found: String,
    },
    /// Signing the payload failed.
    #[error("signing the registry payload failed: {0}")]
    Signing(#[from] SigningError),
}
