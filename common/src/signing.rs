//! RSA keys for registry signing: PEM in and out, RSASSA-PKCS1-v1_5 with SHA-512
//! signatures, and the OpenSSH-style fingerprint Hex compares (protocol doc §2.5, §3.1, §11).
//!
//! - [`SigningKey`] is a private key (PKCS#1 `BEGIN RSA PRIVATE KEY` or PKCS#8
//!   `BEGIN PRIVATE KEY`), used by the publisher to sign registry payloads.
//! - [`VerifyingKey`] is a public key (SPKI `BEGIN PUBLIC KEY` or PKCS#1
//!   `BEGIN RSA PUBLIC KEY`), used to verify registry files and to serve `/public_key`.
//! - [`hexpm_public_key`] is the built-in hex.pm key.
//!
//! RSA itself is done by aws-lc-rs. The DER around public keys (PKCS#1 `RSAPublicKey`,
//! X.509 `SubjectPublicKeyInfo`) is read and written here with a small bounded reader, so
//! that the modulus and exponent are available for the fingerprint and for re-encoding.
//! Nothing here panics on malformed input: every failure is a [`SigningError`].

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA512, RSA_PKCS1_SHA512};
use base64::Engine as _;

/// PEM tag of a PKCS#1 private key.
const TAG_RSA_PRIVATE: &str = "RSA PRIVATE KEY";
/// PEM tag of a PKCS#8 private key.
const TAG_PKCS8_PRIVATE: &str = "PRIVATE KEY";
/// PEM tag of an encrypted PKCS#8 private key (refused).
const TAG_PKCS8_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";
/// PEM tag of an X.509 SubjectPublicKeyInfo.
const TAG_SPKI: &str = "PUBLIC KEY";
/// PEM tag of a PKCS#1 public key.
const TAG_RSA_PUBLIC: &str = "RSA PUBLIC KEY";

/// Smallest RSA modulus accepted, in bits (aws-lc-rs's lower bound for PKCS#1 SHA-512).
pub const MIN_MODULUS_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits.
pub const MAX_MODULUS_BITS: usize = 8192;

/// Why a key could not be loaded or a signature could not be made or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The text is not a PEM document (no `-----BEGIN` block, bad base64, ...).
    #[error("not a PEM document: {0}")]
    BadPem(String),
    /// The PEM block or the DER inside names a key this crate does not handle
    /// (not RSA, encrypted, or the wrong kind of key for the call).
    #[error("unsupported key type: {0}")]
    UnsupportedKeyType(String),
    /// The DER inside the PEM is malformed or truncated.
    #[error("malformed DER: {0}")]
    BadDer(&'static str),
    /// The RSA modulus is outside [`MIN_MODULUS_BITS`]..=[`MAX_MODULUS_BITS`].
    #[error(
        "RSA modulus of {bits} bits is not supported ({MIN_MODULUS_BITS} to {MAX_MODULUS_BITS})"
    )]
    UnsupportedKeySize {
        /// Size of the modulus found, in bits.
        bits: usize,
    },
    /// The key parsed but aws-lc-rs refused it (inconsistent components, bad exponent, ...).
    #[error("RSA key rejected: {0}")]
    KeyRejected(String),
    /// The signature does not verify for this message and key.
    #[error("signature verification failed")]
    BadSignature,
    /// The RSA signing operation failed.
    #[error("RSA signing failed")]
    SignFailed,
    /// Key generation failed.
    #[error("RSA key generation failed")]
    GenerateFailed,
    /// The private key could not be serialized.
    #[error("private key export failed")]
    ExportFailed,
}

/// An RSA private key that signs registry payloads (RSASSA-PKCS1-v1_5, SHA-512).
///
/// `Debug` prints only the public fingerprint, never key material.
pub struct SigningKey {
    pair: KeyPair,
    public: VerifyingKey,
}

impl SigningKey {
    /// Loads a private key from PEM: PKCS#1 (`BEGIN RSA PRIVATE KEY`) or unencrypted
    /// PKCS#8 (`BEGIN PRIVATE KEY`). Only the first PEM block is read.
    ///
    /// `Err`: [`SigningError::BadPem`] for text that is not PEM,
    /// [`SigningError::UnsupportedKeyType`] for other tags, encrypted keys or non-RSA PKCS#8,
    /// [`SigningError::BadDer`] / [`SigningError::KeyRejected`] for a malformed or
    /// unacceptable key, [`SigningError::UnsupportedKeySize`] outside 2048..=8192 bits.
    pub fn from_pem(pem_text: &str) -> Result<Self, SigningError> {
        let block = parse_pem(pem_text)?;
        if block
            .headers()
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"))
        {
            return Err(SigningError::UnsupportedKeyType(
                "encrypted PEM private key".to_owned(),
            ));
        }
        let der = block.contents();
        match block.tag() {
            TAG_RSA_PRIVATE => Self::from_pkcs1_der(der),
            TAG_PKCS8_PRIVATE => Self::from_pkcs8_der(der),
            TAG_PKCS8_ENCRYPTED => Err(SigningError::UnsupportedKeyType(
                "encrypted PKCS#8 private key".to_owned(),
            )),
            other => Err(SigningError::UnsupportedKeyType(format!(
                "PEM block {other:?} is not an RSA private key"
            ))),
        }
    }

    /// Loads a PKCS#1 `RSAPrivateKey` DER structure.
    ///
    /// `Err`: [`SigningError::KeyRejected`] if aws-lc-rs refuses the bytes.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, SigningError> {
        let pair = KeyPair::from_der(der).map_err(|e| SigningError::KeyRejected(e.to_string()))?;
        Self::from_pair(pair)
    }

    /// Loads an unencrypted PKCS#8 `PrivateKeyInfo` DER structure holding an RSA key.
    ///
    /// `Err`: [`SigningError::BadDer`] if the outer structure is malformed,
    /// [`SigningError::UnsupportedKeyType`] if the algorithm is not rsaEncryption,
    /// [`SigningError::KeyRejected`] if aws-lc-rs refuses the key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SigningError> {
        check_pkcs8_algorithm(der)?;
        let pair =
            KeyPair::from_pkcs8(der).map_err(|e| SigningError::KeyRejected(e.to_string()))?;
        Self::from_pair(pair)
    }

    /// Generates a fresh 2048-bit RSA key.
    ///
    /// `Err`: [`SigningError::GenerateFailed`] if the RNG or aws-lc-rs fails.
    pub fn generate() -> Result<Self, SigningError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| SigningError::GenerateFailed)?;
        Self::from_pair(pair)
    }

    fn from_pair(pair: KeyPair) -> Result<Self, SigningError> {
        let public = VerifyingKey::from_pkcs1_der(pair.public_key().as_ref())?;
        Ok(SigningKey { pair, public })
    }

    /// The key as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`, LF line endings).
    ///
    /// `Err`: [`SigningError::ExportFailed`] if aws-lc-rs cannot serialize the key.
    pub fn to_pem(&self) -> Result<String, SigningError> {
        let der = self.pair.as_der().map_err(|_| SigningError::ExportFailed)?;
        Ok(encode_pem(TAG_PKCS8_PRIVATE, der.as_ref()))
    }

    /// Signs `msg` with RSASSA-PKCS1-v1_5 over SHA-512. The result is the raw signature,
    /// as long as the modulus (256 bytes for a 2048-bit key). Deterministic.
    ///
    /// `Err`: [`SigningError::SignFailed`] if aws-lc-rs fails.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SigningError> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA512, &SystemRandom::new(), msg, &mut sig)
            .map_err(|_| SigningError::SignFailed)?;
        Ok(sig)
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.public.clone()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("bits", &self.public.bits())
            .field("fingerprint", &self.public.fingerprint())
            .finish_non_exhaustive()
    }
}

/// An RSA public key that verifies registry signatures.
///
/// Holds the modulus and exponent (big-endian, no leading zeros); two keys are equal when
/// both are equal, whatever PEM form they were loaded from.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl VerifyingKey {
    /// Loads a public key from PEM: SPKI (`BEGIN PUBLIC KEY`) or PKCS#1
    /// (`BEGIN RSA PUBLIC KEY`). Only the first PEM block is read.
    ///
    /// `Err`: [`SigningError::BadPem`], [`SigningError::UnsupportedKeyType`] (other tags,
    /// non-RSA SPKI), [`SigningError::BadDer`], [`SigningError::UnsupportedKeySize`],
    /// [`SigningError::KeyRejected`].
    pub fn from_pem(pem_text: &str) -> Result<Self, SigningError> {
        let block = parse_pem(pem_text)?;
        match block.tag() {
            TAG_SPKI => Self::from_spki_der(block.contents()),
            TAG_RSA_PUBLIC => Self::from_pkcs1_der(block.contents()),
            other => Err(SigningError::UnsupportedKeyType(format!(
                "PEM block {other:?} is not an RSA public key"
            ))),
        }
    }

    /// Loads a PKCS#1 `RSAPublicKey` DER structure (`SEQUENCE { n, e }`).
    ///
    /// `Err`: as [`VerifyingKey::from_pem`], minus the PEM cases.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, SigningError> {
        let (n, e) = asn1::parse_rsa_public_key(der)?;
        Self::from_components(n, e)
    }

    /// Loads an X.509 `SubjectPublicKeyInfo` DER structure holding an RSA key.
    ///
    /// `Err`: as [`VerifyingKey::from_pem`], minus the PEM cases.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, SigningError> {
        let pkcs1 = asn1::parse_spki(der)?;
        Self::from_pkcs1_der(pkcs1)
    }

    fn from_components(n: &[u8], e: &[u8]) -> Result<Self, SigningError> {
        let key = VerifyingKey {
            n: n.to_vec(),
            e: e.to_vec(),
        };
        let bits = key.bits();
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return Err(SigningError::UnsupportedKeySize { bits });
        }
        PublicKeyComponents {
            n: key.n.as_slice(),
            e: key.e.as_slice(),
        }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA512)
        .map_err(|err| SigningError::KeyRejected(err.to_string()))?;
        Ok(key)
    }

    /// Checks an RSASSA-PKCS1-v1_5 / SHA-512 signature over `msg`.
    ///
    /// `Err`: [`SigningError::BadSignature`] if it does not verify (wrong key, altered
    /// message, wrong length, garbage).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), SigningError> {
        PublicKeyComponents {
            n: self.n.as_slice(),
            e: self.e.as_slice(),
        }
        .verify(&RSA_PKCS1_2048_8192_SHA512, msg, sig)
        .map_err(|_| SigningError::BadSignature)
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        match self.n.first() {
            Some(&top) => self.n.len() * 8 - top.leading_zeros() as usize,
            None => 0,
        }
    }

    /// The modulus, big-endian without leading zeros.
    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    /// The public exponent, big-endian without leading zeros.
    pub fn exponent(&self) -> &[u8] {
        &self.e
    }

    /// PKCS#1 `RSAPublicKey` DER.
    pub fn to_pkcs1_der(&self) -> Vec<u8> {
        asn1::write_rsa_public_key(&self.n, &self.e)
    }

    /// X.509 `SubjectPublicKeyInfo` DER (rsaEncryption with NULL parameters).
    pub fn to_spki_der(&self) -> Vec<u8> {
        asn1::write_spki(&self.to_pkcs1_der())
    }

    /// PKCS#1 PEM (`BEGIN RSA PUBLIC KEY`) exactly as `mix hex.registry build` writes
    /// `public_key`: 64-column base64, LF endings, and one extra empty line at the end
    /// (Erlang's `pem_encode`).
    pub fn to_pkcs1_pem(&self) -> String {
        let mut s = encode_pem(TAG_RSA_PUBLIC, &self.to_pkcs1_der());
        s.push('\n');
        s
    }

    /// SPKI PEM (`BEGIN PUBLIC KEY`) as `openssl rsa -pubout` writes it.
    pub fn to_spki_pem(&self) -> String {
        encode_pem(TAG_SPKI, &self.to_spki_der())
    }

    /// The fingerprint Hex compares for `--fetch-public-key`: `SHA256:` followed by the
    /// unpadded base64 of SHA-256 over the ssh-rsa wire blob
    /// (`string "ssh-rsa" || mpint e || mpint n`), as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> String {
        let mut blob = Vec::with_capacity(self.n.len() + self.e.len() + 32);
        ssh_string(&mut blob, b"ssh-rsa");
        ssh_mpint(&mut blob, &self.e);
        ssh_mpint(&mut blob, &self.n);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &blob);
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref())
        )
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("bits", &self.bits())
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

/// The hex.pm repository public key (protocol doc §11), SPKI PEM.
pub const HEXPM_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApqREcFDt5vV21JVe2QNB
Edvzk6w36aNFhVGWN5toNJRjRJ6m4hIuG4KaXtDWVLjnvct6MYMfqhC79HAGwyF+
IqR6Q6a5bbFSsImgBJwz1oadoVKD6ZNetAuCIK84cjMrEFRkELtEIPNHblCzUkkM
3rS9+DPlnfG8hBvGi6tvQIuZmXGCxF/73hU0/MyGhbmEjIKRtG6b0sJYKelRLTPW
XgK7s5pESgiwf2YC/2MGDXjAJfpfCd0RpLdvd4eRiXtVlE9qO9bND94E7PgQ/xqZ
J1i2xWFndWa6nfFnRxZmCStCOZWYYPlaxr+FZceFbpMwzTNs4g3d4tLNUcbKAIH4
0wIDAQAB
-----END PUBLIC KEY-----
";

/// Modulus of [`HEXPM_PUBLIC_KEY_PEM`] (a unit test checks the two agree).
const HEXPM_MODULUS: [u8; 256] = [
    0xa6, 0xa4, 0x44, 0x70, 0x50, 0xed, 0xe6, 0xf5, 0x76, 0xd4, 0x95, 0x5e, 0xd9, 0x03, 0x41, 0x11,
    0xdb, 0xf3, 0x93, 0xac, 0x37, 0xe9, 0xa3, 0x45, 0x85, 0x51, 0x96, 0x37, 0x9b, 0x68, 0x34, 0x94,
    0x63, 0x44, 0x9e, 0xa6, 0xe2, 0x12, 0x2e, 0x1b, 0x82, 0x9a, 0x5e, 0xd0, 0xd6, 0x54, 0xb8, 0xe7,
    0xbd, 0xcb, 0x7a, 0x31, 0x83, 0x1f, 0xaa, 0x10, 0xbb, 0xf4, 0x70, 0x06, 0xc3, 0x21, 0x7e, 0x22,
    0xa4, 0x7a, 0x43, 0xa6, 0xb9, 0x6d, 0xb1, 0x52, 0xb0, 0x89, 0xa0, 0x04, 0x9c, 0x33, 0xd6, 0x86,
    0x9d, 0xa1, 0x52, 0x83, 0xe9, 0x93, 0x5e, 0xb4, 0x0b, 0x82, 0x20, 0xaf, 0x38, 0x72, 0x33, 0x2b,
    0x10, 0x54, 0x64, 0x10, 0xbb, 0x44, 0x20, 0xf3, 0x47, 0x6e, 0x50, 0xb3, 0x52, 0x49, 0x0c, 0xde,
    0xb4, 0xbd, 0xf8, 0x33, 0xe5, 0x9d, 0xf1, 0xbc, 0x84, 0x1b, 0xc6, 0x8b, 0xab, 0x6f, 0x40, 0x8b,
    0x99, 0x99, 0x71, 0x82, 0xc4, 0x5f, 0xfb, 0xde, 0x15, 0x34, 0xfc, 0xcc, 0x86, 0x85, 0xb9, 0x84,
    0x8c, 0x82, 0x91, 0xb4, 0x6e, 0x9b, 0xd2, 0xc2, 0x58, 0x29, 0xe9, 0x51, 0x2d, 0x33, 0xd6, 0x5e,
    0x02, 0xbb, 0xb3, 0x9a, 0x44, 0x4a, 0x08, 0xb0, 0x7f, 0x66, 0x02, 0xff, 0x63, 0x06, 0x0d, 0x78,
    0xc0, 0x25, 0xfa, 0x5f, 0x09, 0xdd, 0x11, 0xa4, 0xb7, 0x6f, 0x77, 0x87, 0x91, 0x89, 0x7b, 0x55,
    0x94, 0x4f, 0x6a, 0x3b, 0xd6, 0xcd, 0x0f, 0xde, 0x04, 0xec, 0xf8, 0x10, 0xff, 0x1a, 0x99, 0x27,
    0x58, 0xb6, 0xc5, 0x61, 0x67, 0x75, 0x66, 0xba, 0x9d, 0xf1, 0x67, 0x47, 0x16, 0x66, 0x09, 0x2b,
    0x42, 0x39, 0x95, 0x98, 0x60, 0xf9, 0x5a, 0xc6, 0xbf, 0x85, 0x65, 0xc7, 0x85, 0x6e, 0x93, 0x30,
    0xcd, 0x33, 0x6c, 0xe2, 0x0d, 0xdd, 0xe2, 0xd2, 0xcd, 0x51, 0xc6, 0xca, 0x00, 0x81, 0xf8, 0xd3,
];

/// Public exponent of [`HEXPM_PUBLIC_KEY_PEM`] (65537).
const HEXPM_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];

/// The built-in hex.pm public key ([`HEXPM_PUBLIC_KEY_PEM`]), which signs the `hexpm`
/// repository's registry files. Fingerprint `SHA256:O1LOYhHFW4kcrblKAxROaDEzLD8bn1seWbe5tq8TRsk`.
pub fn hexpm_public_key() -> VerifyingKey {
    VerifyingKey {
        n: HEXPM_MODULUS.to_vec(),
        e: HEXPM_EXPONENT.to_vec(),
    }
}

fn parse_pem(text: &str) -> Result<pem::Pem, SigningError> {
    pem::parse(text).map_err(|e| SigningError::BadPem(e.to_string()))
}

fn encode_pem(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Checks that a PKCS#8 `PrivateKeyInfo` names rsaEncryption, so that other key types get
/// [`SigningError::UnsupportedKeyType`] rather than an opaque rejection.
fn check_pkcs8_algorithm(der: &[u8]) -> Result<(), SigningError> {
    let mut outer = asn1::Reader::new(der);
    let mut info = asn1::Reader::new(outer.expect(asn1::SEQUENCE)?);
    info.expect(asn1::INTEGER)?;
    let mut alg = asn1::Reader::new(info.expect(asn1::SEQUENCE)?);
    let oid = alg.expect(asn1::OID)?;
    if oid != asn1::RSA_ENCRYPTION_OID {
        return Err(SigningError::UnsupportedKeyType(format!(
            "PKCS#8 algorithm OID {} is not rsaEncryption",
            hex::encode(oid)
        )));
    }
    Ok(())
}

fn ssh_string(out: &mut Vec<u8>, data: &[u8]) {
    // Key components are at most a few KiB; saturate rather than truncate silently.
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
}

/// SSH `mpint` of a non-negative big-endian integer without leading zeros.
fn ssh_mpint(out: &mut Vec<u8>, value: &[u8]) {
    if value.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.push(0);
        v.extend_from_slice(value);
        ssh_string(out, &v);
    } else {
        ssh_string(out, value);
    }
}

/// A tiny bounded DER reader/writer: just what RSA public keys and the PKCS#8 header need.
mod asn1 {
    use super::SigningError;

    pub(super) const INTEGER: u8 = 0x02;
    pub(super) const BIT_STRING: u8 = 0x03;
    pub(super) const NULL: u8 = 0x05;
    pub(super) const OID: u8 = 0x06;
    pub(super) const SEQUENCE: u8 = 0x30;
    /// 1.2.840.113549.1.1.1
    pub(super) const RSA_ENCRYPTION_OID: &[u8] =
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

    pub(super) struct Reader<'a> {
        rest: &'a [u8],
    }

    impl<'a> Reader<'a> {
        pub(super) fn new(data: &'a [u8]) -> Self {
            Reader { rest: data }
        }

        /// Next element's tag without consuming it.
        pub(super) fn peek_tag(&self) -> Option<u8> {
            self.rest.first().copied()
        }

        /// Reads one TLV (single-byte tags, definite lengths up to 4 length bytes).
        pub(super) fn read(&mut self) -> Result<(u8, &'a [u8]), SigningError> {
            let (&tag, rest) = self
                .rest
                .split_first()
                .ok_or(SigningError::BadDer("unexpected end of data"))?;
            if tag & 0x1f == 0x1f {
                return Err(SigningError::BadDer("multi-byte tags are not supported"));
            }
            let (&first, mut rest) = rest
                .split_first()
                .ok_or(SigningError::BadDer("missing length"))?;
            let len = if first < 0x80 {
                usize::from(first)
            } else {
                let count = usize::from(first & 0x7f);
                if count == 0 {
                    return Err(SigningError::BadDer("indefinite length"));
                }
                if count > 4 {
                    return Err(SigningError::BadDer("length too large"));
                }
                let (len_bytes, after) = rest
                    .split_at_checked(count)
                    .ok_or(SigningError::BadDer("truncated length"))?;
                rest = after;
                len_bytes
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
            };
            let (content, after) = rest
                .split_at_checked(len)
                .ok_or(SigningError::BadDer("content longer than the data"))?;
            self.rest = after;
            Ok((tag, content))
        }

        /// Reads one TLV and checks its tag.
        pub(super) fn expect(&mut self, want: u8) -> Result<&'a [u8], SigningError> {
            let (tag, content) = self.read()?;
            if tag != want {
                return Err(SigningError::BadDer("unexpected tag"));
            }
            Ok(content)
        }

        /// Errors if anything is left.
        pub(super) fn finish(&self) -> Result<(), SigningError> {
            if self.rest.is_empty() {
                Ok(())
            } else {
                Err(SigningError::BadDer("trailing data"))
            }
        }
    }

    /// A positive INTEGER's magnitude without leading zeros.
    fn positive_integer(content: &[u8]) -> Result<&[u8], SigningError> {
        match content.first() {
            None => Err(SigningError::BadDer("empty INTEGER")),
            Some(b) if b & 0x80 != 0 => Err(SigningError::BadDer("negative INTEGER")),
            Some(_) => {
                let start = content
                    .iter()
                    .position(|&b| b != 0)
                    .ok_or(SigningError::BadDer("zero INTEGER"))?;
                content
                    .get(start..)
                    .ok_or(SigningError::BadDer("zero INTEGER"))
            }
        }
    }

    /// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
    pub(super) fn parse_rsa_public_key(der: &[u8]) -> Result<(&[u8], &[u8]), SigningError> {
        let mut outer = Reader::new(der);
        let mut seq = Reader::new(outer.expect(SEQUENCE)?);
        outer.finish()?;
        let n = positive_integer(seq.expect(INTEGER)?)?;
        let e = positive_integer(seq.expect(INTEGER)?)?;
        seq.finish()?;
        Ok((n, e))
    }

    /// `SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING }`; returns the
    /// PKCS#1 bytes inside the BIT STRING.
    pub(super) fn parse_spki(der: &[u8]) -> Result<&[u8], SigningError> {
        let mut outer = Reader::new(der);
        let mut spki = Reader::new(outer.expect(SEQUENCE)?);
        outer.finish()?;
        let mut alg = Reader::new(spki.expect(SEQUENCE)?);
        let oid = alg.expect(OID)?;
        if oid != RSA_ENCRYPTION_OID {
            return Err(SigningError::UnsupportedKeyType(format!(
                "SPKI algorithm OID {} is not rsaEncryption",
                hex::encode(oid)
            )));
        }
        if alg.peek_tag() == Some(NULL) {
            let params = alg.expect(NULL)?;
            if !params.is_empty() {
                return Err(SigningError::BadDer("NULL with content"));
            }
        }
        alg.finish()?;
        let bits = spki.expect(BIT_STRING)?;
        spki.finish()?;
        match bits.split_first() {
            Some((0, key)) => Ok(key),
            Some(_) => Err(SigningError::BadDer("BIT STRING with unused bits")),
            None => Err(SigningError::BadDer("empty BIT STRING")),
        }
    }

    fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
        out.push(tag);
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8); // < 0x80: short form
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            let significant = bytes.get(skip..).unwrap_or(&[]);
            // At most size_of::<usize>() length bytes: fits in the low 7 bits.
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
        out.extend_from_slice(content);
    }

    fn write_positive_integer(out: &mut Vec<u8>, magnitude: &[u8]) {
        if magnitude.first().is_some_and(|b| b & 0x80 != 0) {
            let mut v = Vec::with_capacity(magnitude.len() + 1);
            v.push(0);
            v.extend_from_slice(magnitude);
            write_tlv(out, INTEGER, &v);
        } else {
            write_tlv(out, INTEGER, magnitude);
        }
    }

    pub(super) fn write_rsa_public_key(n: &[u8], e: &[u8]) -> Vec<u8> {
        let mut body = Vec::with_capacity(n.len() + e.len() + 16);
        write_positive_integer(&mut body, n);
        write_positive_integer(&mut body, e);
        let mut out = Vec::with_capacity(body.len() + 8);
        write_tlv(&mut out, SEQUENCE, &body);
        out
    }

    pub(super) fn write_spki(pkcs1: &[u8]) -> Vec<u8> {
        let mut alg = Vec::with_capacity(16);
        write_tlv(&mut alg, OID, RSA_ENCRYPTION_OID);
        write_tlv(&mut alg, NULL, &[]);
        let mut bits = Vec::with_capacity(pkcs1.len() + 1);
        bits.push(0);
        bits.extend_from_slice(pkcs1);
        let mut body = Vec::with_capacity(pkcs1.len() + 32);
        write_tlv(&mut body, SEQUENCE, &alg);
        write_tlv(&mut body, BIT_STRING, &bits);
        let mut out = Vec::with_capacity(body.len() + 8);
        write_tlv(&mut out, SEQUENCE, &body);
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn long_lengths_round_trip() {
            let content = vec![7u8; 300];
            let mut out = Vec::new();
            write_tlv(&mut out, SEQUENCE, &content);
            assert_eq!(&out[..4], &[0x30, 0x82, 0x01, 0x2c]);
            let mut r = Reader::new(&out);
            assert_eq!(r.expect(SEQUENCE).unwrap(), content.as_slice());
            r.finish().unwrap();
        }

        #[test]
        fn rejects_malformed() {
            assert_eq!(
                Reader::new(&[0x30, 0x80]).read(),
                Err(SigningError::BadDer("indefinite length"))
            );
            assert_eq!(
                Reader::new(&[0x30, 0x85, 1, 1, 1, 1, 1]).read(),
                Err(SigningError::BadDer("length too large"))
            );
            assert_eq!(
                Reader::new(&[0x30, 0x82, 0x01]).read(),
                Err(SigningError::BadDer("truncated length"))
            );
            assert_eq!(
                Reader::new(&[0x30, 0x03, 0x01]).read(),
                Err(SigningError::BadDer("content longer than the data"))
            );
            assert_eq!(
                Reader::new(&[0x1f, 0x01, 0x00]).read(),
                Err(SigningError::BadDer("multi-byte tags are not supported"))
            );
            assert_eq!(
                positive_integer(&[0x80, 0x01]),
                Err(SigningError::BadDer("negative INTEGER"))
            );
            assert_eq!(
                positive_integer(&[0x00, 0x00]),
                Err(SigningError::BadDer("zero INTEGER"))
            );
            assert_eq!(positive_integer(&[0x00, 0x81]).unwrap(), &[0x81]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_hexpm_key_matches_its_pem() {
        let parsed = VerifyingKey::from_pem(HEXPM_PUBLIC_KEY_PEM).unwrap();
        assert_eq!(parsed, hexpm_public_key());
        assert_eq!(parsed.to_spki_pem(), HEXPM_PUBLIC_KEY_PEM);
    }
}
