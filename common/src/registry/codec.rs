//! gzip + `Signed` envelope, signing and verified decoding.

use std::io::{Read, Write};

use flate2::{Compression, GzBuilder, read::GzDecoder};
use prost::Message;

use super::RegistryError;
use super::proto::{Names, Package, Signed, Versions};
use crate::signing::{SigningKey, VerifyingKey};

/// Default cap on the decompressed size of a registry file: 256 MiB (hex.pm's `/versions`
/// is large; a package file is a few KiB).
pub const DEFAULT_MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;

/// The gzip header written by [`gzip`]: no flags, mtime 0, OS byte 3 (unix), as Erlang's
/// `zlib:gzip` writes it.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03];

/// Serializes `msg`, signs the bytes and returns the gzipped `Signed` envelope: the exact
/// body of a registry file.
///
/// `Err`: [`RegistryError::Signing`] if signing fails, [`RegistryError::Gzip`] if
/// compression fails.
pub fn encode_signed<M: Message>(msg: &M, key: &SigningKey) -> Result<Vec<u8>, RegistryError> {
    sign_payload(msg.encode_to_vec(), key)
}

/// Like [`encode_signed`], from an already serialized payload.
///
/// `Err`: [`RegistryError::Signing`], [`RegistryError::Gzip`].
pub fn sign_payload(payload: Vec<u8>, key: &SigningKey) -> Result<Vec<u8>, RegistryError> {
    let signature = key.sign(&payload)?;
    let signed = Signed {
        payload,
        signature: Some(signature),
    };
    gzip(&signed.encode_to_vec())
}

/// gzip with the header [`GZIP_HEADER`] (default compression level).
///
/// `Err`: [`RegistryError::Gzip`] if the compressor fails.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, RegistryError> {
    let mut enc = GzBuilder::new().mtime(0).operating_system(3).write(
        Vec::with_capacity(data.len() / 2 + 64),
        Compression::default(),
    );
    enc.write_all(data).map_err(RegistryError::Gzip)?;
    enc.finish().map_err(RegistryError::Gzip)
}

/// Gunzips a registry file, reading at most `limit` decompressed bytes, and decodes the
/// `Signed` envelope. Does **not** verify the signature (see [`verify_signed`]).
///
/// `Err`: [`RegistryError::Gzip`] for anything that is not one complete gzip member,
/// [`RegistryError::TooLarge`] past `limit`, [`RegistryError::Protobuf`] if the envelope
/// does not decode.
pub fn open_signed(gz: &[u8], limit: usize) -> Result<Signed, RegistryError> {
    if gz.is_empty() {
        return Err(RegistryError::Gzip(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "empty body",
        )));
    }
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    GzDecoder::new(gz)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(RegistryError::Gzip)?;
    if out.len() > limit {
        return Err(RegistryError::TooLarge { limit });
    }
    Ok(Signed::decode(out.as_slice())?)
}

/// Checks the envelope's signature over its payload and returns the payload.
///
/// `Err`: [`RegistryError::MissingSignature`] if there is none,
/// [`RegistryError::BadSignature`] if it does not verify with `key`.
pub fn verify_signed<'a>(
    signed: &'a Signed,
    key: &VerifyingKey,
) -> Result<&'a [u8], RegistryError> {
    let signature = signed
        .signature
        .as_deref()
        .ok_or(RegistryError::MissingSignature)?;
    key.verify(&signed.payload, signature)
        .map_err(|_| RegistryError::BadSignature)?;
    Ok(&signed.payload)
}

fn open_verified<M: Message + Default>(
    gz: &[u8],
    key: &VerifyingKey,
    limit: usize,
) -> Result<M, RegistryError> {
    let signed = open_signed(gz, limit)?;
    let payload = verify_signed(&signed, key)?;
    Ok(M::decode(payload)?)
}

fn check_repository(expected: &str, found: &str) -> Result<(), RegistryError> {
    if expected == found {
        Ok(())
    } else {
        Err(RegistryError::WrongRepository {
            expected: expected.to_owned(),
            found: found.to_owned(),
        })
    }
}

/// Decodes and verifies a `/names` file for repository `repo`, with
/// [`DEFAULT_MAX_DECOMPRESSED`].
///
/// `Err`: any of [`open_signed`]'s and [`verify_signed`]'s errors, `Protobuf` if the payload
/// is not a `Names`, `WrongRepository` if its `repository` is not `repo`.
pub fn decode_names(gz: &[u8], key: &VerifyingKey, repo: &str) -> Result<Names, RegistryError> {
    decode_names_with_limit(gz, key, repo, DEFAULT_MAX_DECOMPRESSED)
}

/// [`decode_names`] with an explicit decompressed-size limit.
///
/// `Err`: as [`decode_names`], `TooLarge` past `limit`.
pub fn decode_names_with_limit(
    gz: &[u8],
    key: &VerifyingKey,
    repo: &str,
    limit: usize,
) -> Result<Names, RegistryError> {
    let names: Names = open_verified(gz, key, limit)?;
    check_repository(repo, &names.repository)?;
    Ok(names)
}

/// Decodes and verifies a `/versions` file for repository `repo`, with
/// [`DEFAULT_MAX_DECOMPRESSED`].
///
/// `Err`: as [`decode_names`].
pub fn decode_versions(
    gz: &[u8],
    key: &VerifyingKey,
    repo: &str,
) -> Result<Versions, RegistryError> {
    decode_versions_with_limit(gz, key, repo, DEFAULT_MAX_DECOMPRESSED)
}

/// [`decode_versions`] with an explicit decompressed-size limit.
///
/// `Err`: as [`decode_versions`], `TooLarge` past `limit`.
pub fn decode_versions_with_limit(
    gz: &[u8],
    key: &VerifyingKey,
    repo: &str,
    limit: usize,
) -> Result<Versions, RegistryError> {
    let versions: Versions = open_verified(gz, key, limit)?;
    check_repository(repo, &versions.repository)?;
    Ok(versions)
}

/// Decodes and verifies a `/packages/NAME` file for package `name` of repository `repo`,
/// with [`DEFAULT_MAX_DECOMPRESSED`].
///
/// `Err`: as [`decode_names`], plus `WrongPackage` if the signed `name` is not `name`
/// (the repository is checked first).
pub fn decode_package(
    gz: &[u8],
    key: &VerifyingKey,
    repo: &str,
    name: &str,
) -> Result<Package, RegistryError> {
    decode_package_with_limit(gz, key, repo, name, DEFAULT_MAX_DECOMPRESSED)
}

/// [`decode_package`] with an explicit decompressed-size limit.
///
/// `Err`: as [`decode_package`], `TooLarge` past `limit`.
pub fn decode_package_with_limit(
    gz: &[u8],
    key: &VerifyingKey,
    repo: &str,
    name: &str,
    limit: usize,
) -> Result<Package, RegistryError> {
    let package: Package = open_verified(gz, key, limit)?;
    check_repository(repo, &package.repository)?;
    if package.name != name {
        return Err(RegistryError::WrongPackage {
            expected: name.to_owned(),
            found: package.name,
        });
    }
    Ok(package)
}
