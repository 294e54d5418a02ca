//! The deployment's configuration: one YAML file, read by both the proxy and the publisher.
//!
//! [`Config::load`] reads the file, parses it (every struct denies unknown keys, and the error
//! names the key's dotted path, e.g. `repos.test_repo.pubic: unknown field`), resolves relative
//! paths against the file's directory, resolves environment variables (API keys given as
//! `key_env`, S3 credentials, the upstream HTTP proxy), then runs [`Config::validate`].
//!
//! Every section implements `Default` with the documented defaults (`docs/CONFIG.md`); a missing
//! key takes its default. Secrets never come from the file: only names of environment variables,
//! resolved into [`Secret`] values whose `Debug` prints `***`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::storage::{KeyComponent, KeyName};

mod aws_profile;

pub use crate::signing::HEXPM_PUBLIC_KEY_PEM;

const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Errors

/// One thing wrong with a configuration: the dotted key path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the offending key, e.g. `repos.test_repo.private_key` or
    /// `keys[0].grants[1].repo`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not fit the schema (unknown key, wrong type, bad value).
    #[error("{}", fmt_parse(key, message, *line, *column))]
    Parse {
        /// Dotted path of the offending key (empty for the document itself).
        key: String,
        /// The parser's message.
        message: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
    },
    /// The configuration parsed but breaks rules (every problem found is listed).
    #[error("invalid configuration: {}", fmt_problems(.0))]
    Invalid(Vec<Problem>),
}

fn fmt_parse(key: &str, message: &str, line: Option<usize>, column: Option<usize>) -> String {
    let mut s = if key.is_empty() {
        message.to_owned()
    } else {
        format!("{key}: {message}")
    };
    if let (Some(l), Some(c)) = (line, column) {
        s.push_str(&format!(" (line {l}, column {c})"));
    }
    s
}

fn fmt_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ConfigError {
    /// Turns a yaml_serde error into [`ConfigError::Parse`], extracting the key path from its
    /// message (`<path>: <message> at line L column C`) and, for an unknown field, appending
    /// the field itself so the path names the offending key.
    fn from_yaml(err: &serde_yaml::Error) -> Self {
        let (line, column) = match err.location() {
            Some(loc) => (Some(loc.line()), Some(loc.column())),
            None => (None, None),
        };
        let mut text = err.to_string();
        if let (Some(l), Some(c)) = (line, column) {
            let suffix = format!(" at line {l} column {c}");
            if let Some(stripped) = text.strip_suffix(&suffix) {
                text = stripped.to_owned();
            }
        }
        // A path has no spaces; a message always has.
        let (mut key, message) = match text.split_once(": ") {
            Some((p, m)) if !p.is_empty() && !p.contains(' ') => (p.to_owned(), m.to_owned()),
            _ => (String::new(), text),
        };
        if let Some(rest) = message.strip_prefix("unknown field `")
            && let Some((field, _)) = rest.split_once('`')
        {
            key = if key.is_empty() {
                field.to_owned()
            } else {
                format!("{key}.{field}")
            };
        }
        ConfigError::Parse {
            key,
            message,
            line,
            column,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small value types

/// A secret value resolved from the environment. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How long after its first publication a release may be replaced or reverted.
/// In YAML: a number of seconds, or `null` / `unlimited` for no window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplaceWindow {
    /// Replacing is allowed for this many seconds after the first publication.
    Secs(u64),
    /// Replacing is always allowed.
    Unlimited,
}

impl ReplaceWindow {
    /// The window as a duration; `None` for [`ReplaceWindow::Unlimited`].
    pub fn as_duration(self) -> Option<Duration> {
        match self {
            ReplaceWindow::Secs(s) => Some(Duration::from_secs(s)),
            ReplaceWindow::Unlimited => None,
        }
    }
}

impl Serialize for ReplaceWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ReplaceWindow::Secs(n) => s.serialize_u64(*n),
            ReplaceWindow::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

impl<'de> Deserialize<'de> for ReplaceWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ReplaceWindow;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds, null or \"unlimited\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ReplaceWindow::Secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(ReplaceWindow::Secs)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "unlimited" {
                    Ok(ReplaceWindow::Unlimited)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ReplaceWindow::Unlimited)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ReplaceWindow::Unlimited)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                d.deserialize_any(V)
            }
        }
        d.deserialize_any(V)
    }
}

/// A present `replace_window_secs` override, including `null`, is `Some(..)`.
fn some_window<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ReplaceWindow>, D::Error> {
    ReplaceWindow::deserialize(d).map(Some)
}

/// Where an upstream's registry public key comes from. In YAML: `builtin` (hex.pm's key),
/// inline PEM text (starting with `-----BEGIN`), or a path to a PEM file (relative to the
/// config file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKeySource {
    /// [`HEXPM_PUBLIC_KEY_PEM`].
    Builtin,
    /// A PEM file.
    File(PathBuf),
    /// PEM text given inline.
    Inline(String),
}

impl PublicKeySource {
    /// The PEM text.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when a key file cannot be read.
    pub fn pem(&self) -> Result<String, ConfigError> {
        match self {
            PublicKeySource::Builtin => Ok(HEXPM_PUBLIC_KEY_PEM.to_owned()),
            PublicKeySource::Inline(pem) => Ok(pem.clone()),
            PublicKeySource::File(path) => {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
}

impl Serialize for PublicKeySource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PublicKeySource::Builtin => s.serialize_str("builtin"),
            PublicKeySource::File(p) => s.serialize_str(&p.to_string_lossy()),
            PublicKeySource::Inline(pem) => s.serialize_str(pem),
        }
    }
}

impl<'de> Deserialize<'de> for PublicKeySource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if s == "builtin" {
            PublicKeySource::Builtin
        } else if s.trim_start().starts_with("-----BEGIN") {
            PublicKeySource::Inline(s)
        } else {
            PublicKeySource::File(PathBuf::from(s))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Sections

/// The whole deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Base URL clients use to reach the proxy (no trailing slash after loading).
    pub public_url: String,
    /// Repository served for `/api/...` and repository paths without `/repos/<repo>`.
    pub default_repo: Option<String>,
    /// The proxy process (the only public listener).
    pub proxy: ProxyConfig,
    /// The publisher process (API writes).
    pub publisher: PublisherConfig,
    /// Prometheus endpoints.
    pub metrics: MetricsConfig,
    /// Where objects are stored.
    pub store: StoreConfig,
    /// API keys (hashes only).
    pub keys: Vec<KeyConfig>,
    /// Repositories by name.
    pub repos: BTreeMap<String, RepoConfig>,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            public_url: "http://localhost:4000".to_owned(),
            default_repo: None,
            proxy: ProxyConfig::default(),
            publisher: PublisherConfig::default(),
            metrics: MetricsConfig::default(),
            store: StoreConfig::default(),
            keys: Vec::new(),
            repos: BTreeMap::new(),
            log: LogConfig::default(),
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// The proxy process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address the proxy listens on. Default `127.0.0.1:4000`.
    pub listen: SocketAddr,
    /// Byte budget of the in-memory hot cache (0 disables it). Default 256 MiB.
    pub cache_bytes: u64,
    /// Worker threads; `None` = the number of CPUs. Default `None`.
    pub threads: Option<usize>,
    /// Whether idle worker threads take queued work from busy ones. Default `false`: each
    /// thread serves the connections it was given (pingora's no-steal runtime), which serves
    /// small files faster (fewer cross-thread wake-ups); CPU-heavy checks run on the blocking
    /// pool either way.
    pub work_stealing: bool,
    /// How long a cached mutable object (registry index) is served before it is re-checked
    /// against the store, in milliseconds. Default 1000.
    pub revalidate_ms: u64,
    /// URL the proxy forwards API writes to; `None` = `http://<publisher.listen>`.
    pub publisher_url: Option<String>,
    /// Time a client has to send a request line and all its headers, in milliseconds,
    /// counted from the connection's accept (or the end of the previous response on a kept
    /// alive connection); the connection is closed after it (slowloris). Default 30000.
    pub header_read_timeout_ms: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: loopback(4000),
            cache_bytes: 256 * MIB,
            threads: None,
            work_stealing: false,
            revalidate_ms: 1000,
            publisher_url: None,
            header_read_timeout_ms: 30_000,
        }
    }
}

/// The publisher process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublisherConfig {
    /// Address the publisher listens on. Default `127.0.0.1:4001`.
    pub listen: SocketAddr,
    /// Whether the proxy starts the publisher as its child process (development). Default
    /// `false`.
    pub spawn: bool,
    /// Upload limits.
    pub limits: LimitsConfig,
    /// Default replace/revert window for hosted repositories. Default 3600 s.
    pub replace_window_secs: ReplaceWindow,
    /// Whether several publisher processes may write to the store at once. With `store.kind:
    /// s3` the publisher then refuses to start when the bucket ignores conditional writes
    /// (`If-None-Match`/`If-Match`), because concurrent index updates could be lost. Set it to
    /// `false` only when exactly one publisher runs. Default `true`.
    pub multi_writer: bool,
    /// Time a client has to send a request line and all its headers, in milliseconds; the
    /// connection is closed after it (slowloris). Default 30000.
    pub header_read_timeout_ms: u64,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            listen: loopback(4001),
            spawn: false,
            limits: LimitsConfig::default(),
            replace_window_secs: ReplaceWindow::Secs(3600),
            multi_writer: true,
            header_read_timeout_ms: 30_000,
        }
    }
}

/// Limits applied to uploaded package and docs tarballs (hex-protocol §4.4, §5.1). The
/// publisher converts this into the tarball module's limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Package tarball size (the request body). Default 16 MiB.
    pub tarball_bytes: u64,
    /// Uncompressed size of `contents.tar.gz`. Default 128 MiB.
    pub unpacked_bytes: u64,
    /// Size of `metadata.config`. Default 1 MiB.
    pub metadata_bytes: u64,
    /// Number of entries in `contents.tar.gz`. Default 10000.
    pub max_entries: u64,
    /// Shortest package name. Default 2.
    pub name_min_len: usize,
    /// Longest package name. Default 64; at most 100 (storage key limit).
    pub name_max_len: usize,
    /// Whether hex.pm's reserved package names are refused. Default `true`.
    pub reserved_names: bool,
    /// Docs tarball limits.
    pub docs: DocsLimitsConfig,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            tarball_bytes: 16 * MIB,
            unpacked_bytes: 128 * MIB,
            metadata_bytes: MIB,
            max_entries: 10_000,
            name_min_len: 2,
            name_max_len: 64,
            reserved_names: true,
            docs: DocsLimitsConfig::default(),
        }
    }
}

/// Limits for docs tarballs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocsLimitsConfig {
    /// Compressed size. Default 16 MiB.
    pub tarball_bytes: u64,
    /// Uncompressed size. Default 128 MiB.
    pub unpacked_bytes: u64,
}

impl Default for DocsLimitsConfig {
    fn default() -> Self {
        DocsLimitsConfig {
            tarball_bytes: 16 * MIB,
            unpacked_bytes: 128 * MIB,
        }
    }
}

/// Prometheus endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// The proxy's `/metrics` address; the publisher uses the next port. `None` (`null`)
    /// disables metrics endpoints. Default `127.0.0.1:9100`.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: Some(loopback(9100)),
        }
    }
}

impl MetricsConfig {
    /// The publisher's metrics address: `listen` with port + 1 (port 0 stays 0). `None` when
    /// metrics are off or the port would overflow (rejected by validation).
    pub fn publisher_listen(&self) -> Option<SocketAddr> {
        let mut addr = self.listen?;
        if addr.port() != 0 {
            addr.set_port(addr.port().checked_add(1)?);
        }
        Some(addr)
    }
}

/// Storage backend kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A local directory (`store.root`).
    Local,
    /// An S3-compatible bucket (`store.s3`).
    S3,
}

/// Where objects are stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Backend. Default `local`.
    pub kind: StoreKind,
    /// Root directory of the local store (relative to the config file). Default `./data`.
    pub root: PathBuf,
    /// S3 settings; required when `kind: s3`, refused otherwise.
    pub s3: Option<S3Config>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Local,
            root: PathBuf::from("./data"),
            s3: None,
        }
    }
}

/// An S3-compatible bucket. Credentials come from the environment variables named here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name (required).
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`; objects live at
    /// `<prefix>/repos/...` (or `repos/...` when empty). Default empty.
    pub prefix: String,
    /// Region. Default `us-east-1`.
    pub region: String,
    /// Endpoint URL for non-AWS servers; `None` = AWS. Default `None`.
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS servers.
    /// Default `false`.
    pub force_path_style: bool,
    /// Name of the env var holding the access key id. Default `AWS_ACCESS_KEY_ID`.
    pub access_key_id_env: String,
    /// Name of the env var holding the secret access key. Default `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key_env: String,
    /// The AWS profile read from the shared files (`~/.aws/credentials`, `~/.aws/config`) when
    /// the standard variables are not set (and only with the standard variable names).
    /// Default: `AWS_PROFILE`, else `default`.
    pub profile: Option<String>,
    /// Timeouts and retries of the S3 client.
    pub timeouts: S3Timeouts,
    /// The credentials read from those variables (or the profile) at load time.
    #[serde(skip)]
    pub credentials: Option<S3Credentials>,
}

/// Timeouts and retries of the S3 client (`store.s3.timeouts`). A store that does not answer
/// within them is reported unavailable (503 to clients, `/readyz` not ready).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Timeouts {
    /// Establishing a connection. Default 5000.
    pub connect_ms: u64,
    /// Waiting for the first byte of a response. Default 30000.
    pub read_ms: u64,
    /// One attempt (request sent, response headers received). Default 60000.
    pub attempt_ms: u64,
    /// A whole operation, retries included. Default 120000.
    pub operation_ms: u64,
    /// Attempts per operation (1 = no retry). Default 3.
    pub max_attempts: u32,
    /// First retry backoff; later ones grow exponentially, with jitter. Default 100.
    pub initial_backoff_ms: u64,
    /// Cap on one backoff. Default 5000.
    pub max_backoff_ms: u64,
}

impl Default for S3Timeouts {
    fn default() -> Self {
        S3Timeouts {
            connect_ms: 5_000,
            read_ms: 30_000,
            attempt_ms: 60_000,
            operation_ms: 120_000,
            max_attempts: 3,
            initial_backoff_ms: 100,
            max_backoff_ms: 5_000,
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            prefix: String::new(),
            region: "us-east-1".to_owned(),
            endpoint: None,
            force_path_style: false,
            access_key_id_env: "AWS_ACCESS_KEY_ID".to_owned(),
            secret_access_key_env: "AWS_SECRET_ACCESS_KEY".to_owned(),
            profile: None,
            timeouts: S3Timeouts::default(),
            credentials: None,
        }
    }
}

/// S3 credentials resolved from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: Secret,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials (`AWS_SESSION_TOKEN` with the standard variable
    /// names, or `aws_session_token` of a profile).
    pub session_token: Option<Secret>,
}

/// Access level of a grant. `admin` implies `write` implies `read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read private repositories.
    Read,
    /// Publish, retire, publish docs.
    Write,
    /// Everything, including reverts outside the replace window and key management.
    Admin,
}

impl Access {
    /// Whether this level includes `needed`.
    pub fn allows(self, needed: Access) -> bool {
        self >= needed
    }
}

/// One permission of an API key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Repository name (must be configured).
    pub repo: String,
    /// Level.
    pub access: Access,
}

/// An API key. The file holds its SHA-256 (`sha256`) or, for development, the name of an env
/// var holding the plain key (`key_env`), hashed at load time; exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct KeyConfig {
    /// Key name, for logs (required, unique).
    pub name: String,
    /// Lowercase hex SHA-256 of the key (64 digits). Filled from `key_env` after loading.
    pub sha256: Option<String>,
    /// Env var holding the plain key.
    pub key_env: Option<String>,
    /// Permissions.
    pub grants: Vec<Grant>,
}

impl KeyConfig {
    /// The key hash as bytes; `None` if `sha256` is absent or malformed (not after loading).
    pub fn sha256_bytes(&self) -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(self.sha256.as_deref()?, &mut out).ok()?;
        Some(out)
    }

    /// The highest access this key has on `repo`, if any.
    pub fn access(&self, repo: &str) -> Option<Access> {
        self.grants
            .iter()
            .filter(|g| g.repo == repo)
            .map(|g| g.access)
            .max()
    }
}

/// A repository, by `kind`. (Deserialized through a flat struct rather than serde's buffering
/// internally-tagged enum, so that errors keep the key path, e.g. `repos.r.upstream.url`.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RepoConfig {
    /// Packages published here, signed with our key.
    Hosted(HostedRepoConfig),
    /// A read-through mirror of an upstream repository.
    Mirror(MirrorRepoConfig),
}

impl RepoConfig {
    /// Whether reads need no key.
    pub fn is_public(&self) -> bool {
        match self {
            RepoConfig::Hosted(h) => h.public,
            RepoConfig::Mirror(m) => m.public,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RepoKind {
    Hosted,
    Mirror,
}

/// Every key either kind of repository may have; checked against `kind` after parsing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    kind: RepoKind,
    private_key: Option<PathBuf>,
    #[serde(default, deserialize_with = "some_window")]
    replace_window_secs: Option<ReplaceWindow>,
    public: Option<bool>,
    upstream: Option<UpstreamConfig>,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    follow_deps: Option<bool>,
    offline: Option<bool>,
    package_ttl_secs: Option<u64>,
    index_ttl_secs: Option<u64>,
}

impl RawRepo {
    fn into_repo(self) -> Result<RepoConfig, String> {
        let present = |name: &'static str, is: bool| is.then_some(name);
        match self.kind {
            RepoKind::Hosted => {
                let foreign = [
                    present("upstream", self.upstream.is_some()),
                    present("allow", self.allow.is_some()),
                    present("deny", self.deny.is_some()),
                    present("follow_deps", self.follow_deps.is_some()),
                    present("offline", self.offline.is_some()),
                    present("package_ttl_secs", self.package_ttl_secs.is_some()),
                    present("index_ttl_secs", self.index_ttl_secs.is_some()),
                ];
                if let Some(field) = foreign.into_iter().flatten().next() {
                    return Err(format!(
                        "unknown field `{field}`, a hosted repository has `private_key`, \
                         `public`, `replace_window_secs`"
                    ));
                }
                let d = HostedRepoConfig::default();
                Ok(RepoConfig::Hosted(HostedRepoConfig {
                    private_key: self.private_key.unwrap_or(d.private_key),
                    public: self.public.unwrap_or(d.public),
                    replace_window_secs: self.replace_window_secs,
                }))
            }
            RepoKind::Mirror => {
                let foreign = [
                    present("private_key", self.private_key.is_some()),
                    present("replace_window_secs", self.replace_window_secs.is_some()),
                ];
                if let Some(field) = foreign.into_iter().flatten().next() {
                    return Err(format!(
                        "unknown field `{field}`, a mirror repository has `upstream`, `allow`, \
                         `deny`, `follow_deps`, `offline`, `package_ttl_secs`, \
                         `index_ttl_secs`, `public`"
                    ));
                }
                let d = MirrorRepoConfig::default();
                Ok(RepoConfig::Mirror(MirrorRepoConfig {
                    upstream: self.upstream.unwrap_or(d.upstream),
                    allow: self.allow,
                    deny: self.deny.unwrap_or(d.deny),
                    follow_deps: self.follow_deps.unwrap_or(d.follow_deps),
                    offline: self.offline.unwrap_or(d.offline),
                    package_ttl_secs: self.package_ttl_secs.unwrap_or(d.package_ttl_secs),
                    index_ttl_secs: self.index_ttl_secs.unwrap_or(d.index_ttl_secs),
                    public: self.public.unwrap_or(d.public),
                }))
            }
        }
    }
}

impl<'de> Deserialize<'de> for RepoConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RepoConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a repository mapping with `kind: hosted` or `kind: mirror`")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                // Errors returned from here get the repository's key path from the YAML
                // deserializer, and nested errors (upstream.*) keep theirs.
                let raw = RawRepo::deserialize(de::value::MapAccessDeserializer::new(map))?;
                raw.into_repo().map_err(de::Error::custom)
            }
        }
        d.deserialize_map(V)
    }
}

/// A hosted repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostedRepoConfig {
    /// PEM private key signing the registry (relative to the config file); generated on first
    /// start when missing. Required.
    pub private_key: PathBuf,
    /// `false`: reads need a key with `read` access. Default `true`.
    pub public: bool,
    /// Overrides `publisher.replace_window_secs` for this repository.
    #[serde(
        deserialize_with = "some_window",
        skip_serializing_if = "Option::is_none"
    )]
    pub replace_window_secs: Option<ReplaceWindow>,
}

impl Default for HostedRepoConfig {
    fn default() -> Self {
        HostedRepoConfig {
            private_key: PathBuf::new(),
            public: true,
            replace_window_secs: None,
        }
    }
}

/// A mirror repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MirrorRepoConfig {
    /// The upstream.
    pub upstream: UpstreamConfig,
    /// Package names or globs (`*`, `?`) that may be mirrored; `None` (absent) = all.
    pub allow: Option<Vec<String>>,
    /// Names or globs never mirrored (wins over `allow`). Default empty.
    pub deny: Vec<String>,
    /// Also allow the dependencies (including optional ones) of allowed packages. Default
    /// `true`.
    pub follow_deps: bool,
    /// Serve only what is stored; never contact the upstream. Default `false`.
    pub offline: bool,
    /// How long a stored `/packages/<name>` is served before re-fetching. Default 300.
    pub package_ttl_secs: u64,
    /// How long stored `names`/`versions` are served before re-fetching. Default 300.
    pub index_ttl_secs: u64,
    /// `false`: reads need a key with `read` access. Default `true`.
    pub public: bool,
}

impl Default for MirrorRepoConfig {
    fn default() -> Self {
        MirrorRepoConfig {
            upstream: UpstreamConfig::default(),
            allow: None,
            deny: Vec::new(),
            follow_deps: true,
            offline: false,
            package_ttl_secs: 300,
            index_ttl_secs: 300,
            public: true,
        }
    }
}

impl MirrorRepoConfig {
    /// Whether `name` passes `deny` and `allow` (dependency following is the caller's job).
    pub fn allows(&self, name: &str) -> bool {
        if self.deny.iter().any(|p| glob_match(p, name)) {
            return false;
        }
        match &self.allow {
            None => true,
            Some(list) => list.iter().any(|p| glob_match(p, name)),
        }
    }
}

/// `*` matches any run of characters, `?` exactly one; everything else literally.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

/// The upstream of a mirror.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Repository base URL. Default `https://repo.hex.pm`.
    pub url: String,
    /// The repository name upstream signs into its files (origin check). Default `hexpm`.
    pub name: String,
    /// Upstream's public key. Default `builtin` (hex.pm's key).
    pub public_key: PublicKeySource,
    /// Whole-request timeout, ms. Default 15000.
    pub timeout_ms: u64,
    /// Connect timeout, ms. Default 5000.
    pub connect_timeout_ms: u64,
    /// Retries on transport errors. Default 2.
    pub retries: u32,
    /// HTTP proxy URL for upstream requests; `none` disables; absent = from `https_proxy` /
    /// `http_proxy` (honouring `no_proxy`).
    pub proxy: Option<String>,
    /// The proxy actually used, resolved at load time from `proxy` and the environment.
    #[serde(skip)]
    pub effective_proxy: Option<String>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: "https://repo.hex.pm".to_owned(),
            name: "hexpm".to_owned(),
            public_key: PublicKeySource::Builtin,
            timeout_ms: 15_000,
            connect_timeout_ms: 5_000,
            retries: 2,
            proxy: None,
            effective_proxy: None,
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Format. Default `text`.
    pub format: LogFormat,
    /// `tracing` filter directive (`info`, `hexyard_proxy=debug,info`, ...). Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Looks up an environment variable (injectable for tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Config {
    /// Reads, parses, resolves and validates the file at `path`, using the process environment.
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, &process_env)
    }

    /// [`Config::load`] with an explicit environment.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with_env(
        path: impl AsRef<Path>,
        env: EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        Self::from_yaml_str_with_env(&text, base, env)
    }

    /// Parses YAML text, resolving relative paths against `base_dir`, using the process
    /// environment.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn from_yaml_str(s: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Self::from_yaml_str_with_env(s, base_dir, &process_env)
    }

    /// [`Config::from_yaml_str`] with an explicit environment.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn from_yaml_str_with_env(
        s: &str,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        // An empty document (or only comments) is the all-defaults configuration.
        let value: serde_yaml::Value =
            serde_yaml::from_str(s).map_err(|e| ConfigError::from_yaml(&e))?;
        let mut config: Config = if value.is_null() {
            Config::default()
        } else {
            serde_yaml::from_str(s).map_err(|e| ConfigError::from_yaml(&e))?
        };
        let base = std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
        config.resolve_paths(&base);
        let mut problems = config.resolve_env(env);
        if let Err(ConfigError::Invalid(more)) = config.validate() {
            problems.extend(more);
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.store.root);
        for repo in self.repos.values_mut() {
            match repo {
                RepoConfig::Hosted(h) => resolve(&mut h.private_key),
                RepoConfig::Mirror(m) => {
                    if let PublicKeySource::File(p) = &mut m.upstream.public_key {
                        resolve(p);
                    }
                }
            }
        }
        while self.public_url.ends_with('/') {
            self.public_url.pop();
        }
    }

    /// Hashes `key_env` keys, reads S3 credentials and the upstream proxy from `env`.
    fn resolve_env(&mut self, env: EnvLookup<'_>) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (i, key) in self.keys.iter_mut().enumerate() {
            let at = format!("keys[{i}]");
            match (&key.sha256, &key.key_env) {
                (Some(_), Some(_)) => {
                    problems.push(problem(at, "give either sha256 or key_env, not both"))
                }
                (None, None) => problems.push(problem(at, "sha256 or key_env is required")),
                (Some(h), None) => key.sha256 = Some(h.to_ascii_lowercase()),
                (None, Some(var)) => match env(var).filter(|v| !v.is_empty()) {
                    Some(plain) => {
                        let digest =
                            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, plain.as_bytes());
                        key.sha256 = Some(hex::encode(digest.as_ref()));
                    }
                    None => problems.push(problem(
                        format!("{at}.key_env"),
                        format!("environment variable {var} is not set"),
                    )),
                },
            }
        }
        if self.store.kind == StoreKind::S3
            && let Some(s3) = &mut self.store.s3
        {
            // An empty variable name is reported by `validate`.
            let lookup = |name: &str| env(name).filter(|v| !v.is_empty());
            let mut id = lookup(&s3.access_key_id_env);
            let mut secret = lookup(&s3.secret_access_key_env);
            let standard = s3.access_key_id_env == "AWS_ACCESS_KEY_ID"
                && s3.secret_access_key_env == "AWS_SECRET_ACCESS_KEY";
            let mut token = standard.then(|| lookup("AWS_SESSION_TOKEN")).flatten();
            if standard && (id.is_none() || secret.is_none()) {
                // The next step of the standard chain: the shared files' profile.
                match aws_profile::profile_credentials(s3.profile.as_deref(), env) {
                    Ok(Some((from, c))) => {
                        tracing::info!(source = %from, "S3 credentials from the AWS shared files");
                        id = Some(c.access_key_id.0);
                        secret = Some(c.secret_access_key.0);
                        token = c.session_token.map(|t| t.0);
                    }
                    Ok(None) => {}
                    Err(e) => problems.push(problem("store.s3.profile", e)),
                }
            }
            if id.is_none() && !s3.access_key_id_env.is_empty() {
                let also = if standard {
                    " (nor is there an AWS profile with credentials)"
                } else {
                    ""
                };
                problems.push(problem(
                    "store.s3.access_key_id_env",
                    format!(
                        "environment variable {} is not set{also}",
                        s3.access_key_id_env
                    ),
                ));
            }
            if secret.is_none() && !s3.secret_access_key_env.is_empty() {
                problems.push(problem(
                    "store.s3.secret_access_key_env",
                    format!(
                        "environment variable {} is not set",
                        s3.secret_access_key_env
                    ),
                ));
            }
            if let (Some(id), Some(secret)) = (id, secret) {
                s3.credentials = Some(S3Credentials {
                    access_key_id: Secret(id),
                    secret_access_key: Secret(secret),
                    session_token: token.map(Secret),
                });
            }
        }
        for repo in self.repos.values_mut() {
            if let RepoConfig::Mirror(m) = repo {
                m.upstream.effective_proxy = effective_proxy(&m.upstream, env);
            }
        }
        problems
    }

    /// Checks the rules a parsed configuration must follow. Collects every problem found.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing each problem with its key path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        check_url(&mut p, "public_url", &self.public_url);
        if let Some(d) = &self.default_repo
            && !self.repos.contains_key(d)
        {
            p.push(problem(
                "default_repo",
                format!("no repository named {d:?}"),
            ));
        }
        self.validate_processes(&mut p);
        self.validate_store(&mut p);
        self.validate_keys(&mut p);
        for (name, repo) in &self.repos {
            let at = format!("repos.{name}");
            if let Err(e) = KeyName::new(name, KeyComponent::Repo) {
                p.push(problem(&at, format!("invalid repository name: {e}")));
            }
            match repo {
                RepoConfig::Hosted(h) => {
                    if h.private_key.as_os_str().is_empty() {
                        p.push(problem(format!("{at}.private_key"), "required"));
                    }
                }
                RepoConfig::Mirror(m) => validate_mirror(&mut p, &at, m),
            }
        }
        if self.log.level.trim().is_empty() {
            p.push(problem("log.level", "must not be empty"));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(p))
        }
    }

    fn validate_processes(&self, p: &mut Vec<Problem>) {
        if self.proxy.threads == Some(0) {
            p.push(problem("proxy.threads", "must be at least 1 (or null)"));
        }
        if let Some(url) = &self.proxy.publisher_url {
            check_url(p, "proxy.publisher_url", url);
        }
        for (key, v) in [
            (
                "proxy.header_read_timeout_ms",
                self.proxy.header_read_timeout_ms,
            ),
            (
                "publisher.header_read_timeout_ms",
                self.publisher.header_read_timeout_ms,
            ),
        ] {
            if v == 0 {
                p.push(problem(key, "must be greater than 0"));
            }
        }
        let l = &self.publisher.limits;
        for (key, v) in [
            ("tarball_bytes", l.tarball_bytes),
            ("unpacked_bytes", l.unpacked_bytes),
            ("metadata_bytes", l.metadata_bytes),
            ("max_entries", l.max_entries),
            ("docs.tarball_bytes", l.docs.tarball_bytes),
            ("docs.unpacked_bytes", l.docs.unpacked_bytes),
        ] {
            if v == 0 {
                p.push(problem(
                    format!("publisher.limits.{key}"),
                    "must be greater than 0",
                ));
            }
        }
        if l.name_min_len == 0 || l.name_min_len > l.name_max_len {
            p.push(problem(
                "publisher.limits.name_min_len",
                "must be at least 1 and at most name_max_len",
            ));
        }
        if l.name_max_len > crate::storage::key::MAX_COMPONENT_LEN {
            p.push(problem(
                "publisher.limits.name_max_len",
                format!("must be at most {}", crate::storage::key::MAX_COMPONENT_LEN),
            ));
        }
        // Listeners must not collide (port 0 = pick any, never collides).
        let mut seen: BTreeMap<SocketAddr, &str> = BTreeMap::new();
        let mut listeners = vec![
            ("proxy.listen", Some(self.proxy.listen)),
            ("publisher.listen", Some(self.publisher.listen)),
            ("metrics.listen", self.metrics.listen),
        ];
        if let Some(m) = self.metrics.listen {
            match self.metrics.publisher_listen() {
                Some(pm) => listeners.push(("metrics.listen (publisher, port + 1)", Some(pm))),
                None => p.push(problem(
                    "metrics.listen",
                    format!(
                        "port {} leaves no room for the publisher's port + 1",
                        m.port()
                    ),
                )),
            }
        }
        for (key, addr) in listeners {
            let Some(addr) = addr.filter(|a| a.port() != 0) else {
                continue;
            };
            if let Some(other) = seen.insert(addr, key) {
                p.push(problem(key, format!("{addr} is already used by {other}")));
            }
        }
    }

    fn validate_store(&self, p: &mut Vec<Problem>) {
        match (self.store.kind, &self.store.s3) {
            (StoreKind::Local, Some(_)) => {
                p.push(problem("store.s3", "given, but store.kind is local"));
            }
            (StoreKind::Local, None) => {
                if self.store.root.as_os_str().is_empty() {
                    p.push(problem("store.root", "required"));
                }
            }
            (StoreKind::S3, None) => {
                p.push(problem("store.s3", "required when store.kind is s3"));
            }
            (StoreKind::S3, Some(s3)) => {
                if s3.bucket.is_empty() {
                    p.push(problem("store.s3.bucket", "required"));
                }
                if s3.region.is_empty() {
                    p.push(problem("store.s3.region", "required"));
                }
                if s3.prefix.starts_with('/')
                    || s3.prefix.ends_with('/')
                    || s3.prefix.split('/').any(|c| c == ".." || c == ".")
                {
                    p.push(problem(
                        "store.s3.prefix",
                        "no leading or trailing '/', no '.' or '..' segments",
                    ));
                }
                if let Some(e) = &s3.endpoint {
                    check_url(p, "store.s3.endpoint", e);
                }
                let t = &s3.timeouts;
                for (key, v) in [
                    ("connect_ms", t.connect_ms),
                    ("read_ms", t.read_ms),
                    ("attempt_ms", t.attempt_ms),
                    ("operation_ms", t.operation_ms),
                    ("max_attempts", u64::from(t.max_attempts)),
                ] {
                    if v == 0 {
                        p.push(problem(format!("store.s3.timeouts.{key}"), "must be > 0"));
                    }
                }
                if t.initial_backoff_ms > t.max_backoff_ms {
                    p.push(problem(
                        "store.s3.timeouts.initial_backoff_ms",
                        "must not exceed max_backoff_ms",
                    ));
                }
                for (key, v) in [
                    ("access_key_id_env", &s3.access_key_id_env),
                    ("secret_access_key_env", &s3.secret_access_key_env),
                ] {
                    if v.is_empty() {
                        p.push(problem(format!("store.s3.{key}"), "required"));
                    }
                }
            }
        }
    }

    fn validate_keys(&self, p: &mut Vec<Problem>) {
        let mut names = BTreeSet::new();
        let mut hashes = BTreeMap::new();
        for (i, key) in self.keys.iter().enumerate() {
            let at = format!("keys[{i}]");
            if key.name.is_empty() {
                p.push(problem(format!("{at}.name"), "required"));
            } else if !names.insert(key.name.as_str()) {
                p.push(problem(
                    format!("{at}.name"),
                    format!("duplicate key name {:?}", key.name),
                ));
            }
            if let Some(h) = &key.sha256 {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    p.push(problem(
                        format!("{at}.sha256"),
                        "must be 64 hexadecimal digits",
                    ));
                } else if let Some(first) = hashes.insert(h.to_ascii_lowercase(), i) {
                    p.push(problem(
                        format!("{at}.sha256"),
                        format!("same key as keys[{first}]"),
                    ));
                }
            }
            for (j, g) in key.grants.iter().enumerate() {
                if !self.repos.contains_key(&g.repo) {
                    p.push(problem(
                        format!("{at}.grants[{j}].repo"),
                        format!("no repository named {:?}", g.repo),
                    ));
                }
            }
        }
    }

    /// The URL the proxy forwards API requests to: `proxy.publisher_url`, or
    /// `http://<publisher.listen>`.
    pub fn publisher_url(&self) -> String {
        self.proxy
            .publisher_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.publisher.listen))
    }

    /// The replace window of a hosted repository (its override, else the publisher default);
    /// `None` when `repo` is not a hosted repository.
    pub fn replace_window(&self, repo: &str) -> Option<ReplaceWindow> {
        match self.repos.get(repo)? {
            RepoConfig::Hosted(h) => Some(
                h.replace_window_secs
                    .unwrap_or(self.publisher.replace_window_secs),
            ),
            RepoConfig::Mirror(_) => None,
        }
    }
}

fn validate_mirror(p: &mut Vec<Problem>, at: &str, m: &MirrorRepoConfig) {
    let u = &m.upstream;
    check_url(p, &format!("{at}.upstream.url"), &u.url);
    if let Err(e) = KeyName::new(&u.name, KeyComponent::Repo) {
        p.push(problem(
            format!("{at}.upstream.name"),
            format!("invalid repository name: {e}"),
        ));
    }
    if let PublicKeySource::File(path) = &u.public_key
        && !path.is_file()
    {
        p.push(problem(
            format!("{at}.upstream.public_key"),
            format!("no such file {}", path.display()),
        ));
    }
    for (key, v) in [
        ("timeout_ms", u.timeout_ms),
        ("connect_timeout_ms", u.connect_timeout_ms),
    ] {
        if v == 0 {
            p.push(problem(
                format!("{at}.upstream.{key}"),
                "must be greater than 0",
            ));
        }
    }
    if let Some(proxy) = u.proxy.as_deref().filter(|p| *p != "none") {
        check_url(p, &format!("{at}.upstream.proxy"), proxy);
    }
    let lists = [
        ("allow", m.allow.as_deref().unwrap_or(&[])),
        ("deny", &m.deny),
    ];
    for (key, list) in lists {
        for (i, pat) in list.iter().enumerate() {
            let ok = !pat.is_empty()
                && pat
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_*?".contains(c));
            if !ok {
                p.push(problem(
                    format!("{at}.{key}[{i}]"),
                    format!("{pat:?} is not a package name or glob ([a-z0-9_*?])"),
                ));
            }
        }
    }
}

fn check_url(p: &mut Vec<Problem>, key: &str, url: &str) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let ok = rest.is_some_and(|r| {
        !r.is_empty() && !r.starts_with('/') && !r.chars().any(|c| c.is_whitespace())
    });
    if !ok {
        p.push(problem(
            key,
            format!("{url:?} is not an http:// or https:// URL"),
        ));
    }
}

fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    Some(host.to_ascii_lowercase())
}

/// `proxy` if set (`none` = no proxy), else `https_proxy`/`http_proxy` (by the upstream's
/// scheme, lower case first) unless `no_proxy` matches the upstream host.
fn effective_proxy(u: &UpstreamConfig, env: EnvLookup<'_>) -> Option<String> {
    match u.proxy.as_deref() {
        Some("none") => return None,
        Some(p) => return Some(p.to_owned()),
        None => {}
    }
    let vars: [&str; 2] = if u.url.starts_with("https://") {
        ["https_proxy", "HTTPS_PROXY"]
    } else {
        ["http_proxy", "HTTP_PROXY"]
    };
    let proxy = vars.iter().find_map(|v| env(v).filter(|s| !s.is_empty()))?;
    let host = url_host(&u.url)?;
    let no_proxy = env("no_proxy")
        .or_else(|| env("NO_PROXY"))
        .unwrap_or_default();
    let bypass = no_proxy
        .split(',')
        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|e| e == "*" || host == e || host.ends_with(&format!(".{e}")));
    (!bypass).then_some(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("decimal", "decimal"));
        assert!(!glob_match("decimal", "decimals"));
        assert!(glob_match("phoenix*", "phoenix_html"));
        assert!(glob_match("phoenix*", "phoenix"));
        assert!(glob_match("*_html", "phoenix_html"));
        assert!(glob_match("p?x", "pix"));
        assert!(!glob_match("p?x", "px"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(!glob_match("*a*b", "xxaxxbxxc"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://repo.hex.pm").as_deref(),
            Some("repo.hex.pm")
        );
        assert_eq!(
            url_host("http://u:p@Example.com:8080/x").as_deref(),
            Some("example.com")
        );
        assert_eq!(url_host("http://[::1]:80/").as_deref(), Some("::1"));
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn access_order() {
        assert!(Access::Admin.allows(Access::Write));
        assert!(Access::Write.allows(Access::Read));
        assert!(!Access::Read.allows(Access::Write));
        assert!(!Access::Write.allows(Access::Admin));
    }
}
