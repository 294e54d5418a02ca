//! [`S3Store`]: objects in an S3-compatible bucket (AWS S3, MinIO, Garage, Ceph, moto), through
//! aws-sdk-s3 with a hand-built client configuration (no `aws-config`).
//!
//! Layout: every object lives at `<prefix>/<StorageKey::path>` (or at the bare key path when
//! `store.s3.prefix` is empty), so several deployments can share a bucket and never see each
//! other's objects. The conditional-write probe uses `<prefix>/.hexyard-probe/<random>`, which
//! no listing returns.
//!
//! Semantics of the [`Store`] contract on S3:
//! - [`PutMode::CreateOnly`] sends `If-None-Match: *`; a `412` (or the `409` some servers send
//!   for a concurrent conditional write) is [`StoreError::AlreadyExists`].
//! - [`PutMode::IfMatch`] sends `If-Match: <etag>`; `412`, `409` and `404` are
//!   [`StoreError::PreconditionFailed`].
//! - Whether a server honours those headers atomically is checked by
//!   [`S3Store::supports_conditional_writes`]; stores that ignore them (Garage, s3rver) turn
//!   both modes into plain overwrites, so a caller that needs compare-and-set must probe first.
//! - ETags are the server's, quoted (`"<md5>"` for single-part uploads). They are content
//!   hashes: writing identical bytes again yields the same ETag. `If-Match` is then still a
//!   compare-and-set on the content a writer read, which is what index updates need.
//! - [`Store::put`] costs one `PutObject`: it returns the new ETag and size ([`Written`]),
//!   not the write time, which only a `HeadObject` would tell; [`Store::delete`] costs a
//!   `HeadObject` plus a `DeleteObject`
//!   (S3's delete does not say whether the object existed).
//! - Objects are written with `Content-Type` and `Cache-Control` from [`StorageKey`], so the
//!   bucket can be served by a CDN directly. The store does not know whether a repository is
//!   public, so it always writes the public form ([`StorageKey::cache_control`] with `true`);
//!   the proxy sets the private form itself when it serves a private repository.
//!
//! Resilience: connect/read/attempt/operation timeouts and the SDK's standard retry strategy
//! (exponential backoff with jitter) come from [`S3Options`]. A connection failure, a timeout,
//! a 5xx, throttling or refused credentials is [`StoreError::Unavailable`] with a message naming
//! the operation, the key and the endpoint.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream as SdkByteStream, DateTime};
use bytes::Bytes;
use futures::StreamExt;

use super::{
    ByteStream, KeyPrefix, ListEntry, Object, ObjectMeta, PutMode, StorageKey, Store, StoreError,
    Written,
};
use crate::config::{S3Config, S3Timeouts};

/// Name of the scratch folder (under the store prefix) used by
/// [`S3Store::supports_conditional_writes`].
pub const PROBE_DIR: &str = ".hexyard-probe";

/// Timeouts and retries of the S3 client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Options {
    /// Time to establish a TCP (and TLS) connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Time to wait for the first byte of a response. Default 30 s.
    pub read_timeout: Duration,
    /// Time for one attempt (request sent, response headers received). Default 60 s.
    pub attempt_timeout: Duration,
    /// Time for a whole operation, retries included. Default 120 s.
    pub operation_timeout: Duration,
    /// Attempts per operation (1 = no retry). Default 3.
    pub max_attempts: u32,
    /// First retry backoff; later ones grow exponentially, with jitter. Default 100 ms.
    pub initial_backoff: Duration,
    /// Cap on one backoff. Default 5 s.
    pub max_backoff: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        Self::from(&S3Timeouts::default())
    }
}

impl From<&S3Timeouts> for S3Options {
    fn from(t: &S3Timeouts) -> Self {
        S3Options {
            connect_timeout: Duration::from_millis(t.connect_ms),
            read_timeout: Duration::from_millis(t.read_ms),
            attempt_timeout: Duration::from_millis(t.attempt_ms),
            operation_timeout: Duration::from_millis(t.operation_ms),
            max_attempts: t.max_attempts,
            initial_backoff: Duration::from_millis(t.initial_backoff_ms),
            max_backoff: Duration::from_millis(t.max_backoff_ms),
        }
    }
}

/// A [`Store`] on an S3 bucket. Cheap to clone (the client is shared).
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// `""` or `"<prefix>/"`.
    prefix: String,
    endpoint: String,
}

/// The credentials of `config`, or else the standard `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` read through `env`. Config credentials read
/// from the standard `AWS_ACCESS_KEY_ID` variable also take `AWS_SESSION_TOKEN` (temporary
/// credentials); credentials from other variables never do.
fn resolve_credentials(
    config: &S3Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Credentials, StoreError> {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(c) = &config.credentials {
        return Ok(Credentials::new(
            c.access_key_id.expose(),
            c.secret_access_key.expose(),
            c.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "hexyard-config",
        ));
    }
    match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(Credentials::new(
            id,
            secret,
            get("AWS_SESSION_TOKEN"),
            None,
            "hexyard-env",
        )),
        _ => Err(StoreError::Unavailable(
            "no S3 credentials: store.s3 has none and AWS_ACCESS_KEY_ID / \
             AWS_SECRET_ACCESS_KEY are not set"
                .to_owned(),
        )),
    }
}

/// `s` with surrounding double quotes, added when the server left them out.
fn quoted(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        s.to_owned()
    } else {
        format!("\"{s}\"")
    }
}

fn to_system_time(t: Option<&DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn to_size(n: Option<i64>, what: &str) -> Result<u64, StoreError> {
    n.and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("S3 returned no valid size for {what}")))
}

fn etag_of(e: Option<&str>, what: &str) -> Result<String, StoreError> {
    e.filter(|e| !e.trim_matches('"').is_empty())
        .map(quoted)
        .ok_or_else(|| StoreError::Corrupt(format!("S3 returned no ETag for {what}")))
}

/// The HTTP status of a failed call, when the server answered.
fn status<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

impl S3Store {
    /// Builds a store from `config` with its timeouts (`config.timeouts`). Does no I/O.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no credentials are configured nor in the environment.
    pub fn new(config: &S3Config) -> Result<Self, StoreError> {
        Self::with_options(config, &S3Options::from(&config.timeouts))
    }

    /// Builds a store from `config` with explicit timeouts and retries. Does no I/O.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no credentials are configured nor in the environment.
    pub fn with_options(config: &S3Config, options: &S3Options) -> Result<Self, StoreError> {
        let credentials = resolve_credentials(config, |name| std::env::var(name).ok())?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .operation_attempt_timeout(options.attempt_timeout)
            .operation_timeout(options.operation_timeout)
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(options.max_attempts.max(1))
            .with_initial_backoff(options.initial_backoff)
            .with_max_backoff(options.max_backoff);
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.force_path_style)
            .timeout_config(timeouts)
            .retry_config(retries)
            // Checksums only where S3 requires them: S3-compatible servers vary in their
            // support of the newer flexible checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        let client = Client::from_conf(builder.build());
        let prefix = config.prefix.trim_matches('/');
        Ok(S3Store {
            client,
            bucket: config.bucket.clone(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            endpoint: config
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("AWS S3 {}", config.region)),
        })
    }

    /// The underlying SDK client (for tests and tools).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The S3 object key of `key`: the store prefix, then [`StorageKey::path`].
    pub fn object_key(&self, key: &StorageKey) -> String {
        format!("{}{}", self.prefix, key.path())
    }

    /// The message of a failure that is not one of the contract's outcomes.
    fn unavailable<E>(
        &self,
        op: &str,
        what: &str,
        err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let at = format!("S3 {op} {what} (bucket {}, {})", self.bucket, self.endpoint);
        let msg = match err {
            SdkError::TimeoutError(_) => format!("{at}: timed out"),
            SdkError::DispatchFailure(f) if f.is_timeout() => {
                format!("{at}: timed out: {}", DisplayErrorContext(err))
            }
            SdkError::DispatchFailure(f) if f.is_io() => {
                format!(
                    "{at}: cannot reach the server: {}",
                    DisplayErrorContext(err)
                )
            }
            SdkError::ServiceError(e) => format!(
                "{at}: HTTP {} {}: {}",
                e.raw().status().as_u16(),
                e.err().code().unwrap_or("error"),
                e.err().message().unwrap_or("no message")
            ),
            _ => format!("{at}: {}", DisplayErrorContext(err)),
        };
        StoreError::Unavailable(msg)
    }

    /// Whether the server honours `If-None-Match: *` on PutObject: writes a scratch object
    /// create-only twice and returns `true` when the second write is refused. The scratch
    /// object is deleted afterwards. A `false` means conditional writes are silently ignored,
    /// so [`PutMode::CreateOnly`] and [`PutMode::IfMatch`] are not safe with several writers.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server cannot be reached or refuses the writes.
    pub async fn supports_conditional_writes(&self) -> Result<bool, StoreError> {
        let mut nonce = [0u8; 16];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| StoreError::Unavailable("no random numbers for the probe".to_owned()))?;
        let key = format!("{}{PROBE_DIR}/{}", self.prefix, hex::encode(nonce));
        let put = || {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .content_type("text/plain")
                .if_none_match("*")
                .body(SdkByteStream::from_static(
                    b"hexyard conditional write probe",
                ))
                .send()
        };
        put()
            .await
            .map_err(|e| self.unavailable("PutObject (probe)", &key, &e))?;
        let refused = match put().await {
            Ok(_) => false,
            Err(e) if matches!(status(&e), Some(409 | 412)) => true,
            Err(e) => return Err(self.unavailable("PutObject (probe)", &key, &e)),
        };
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.unavailable("DeleteObject (probe)", &key, &e))?;
        Ok(refused)
    }
}

#[async_trait]
impl Store for S3Store {
    async fn get(&self, key: &StorageKey) -> Result<Option<Object>, StoreError> {
        let Some((meta, body)) = self.get_object(key).await? else {
            return Ok(None);
        };
        let body = body
            .collect()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "S3 GetObject {key} ({}): body cut short: {}",
                    self.endpoint,
                    DisplayErrorContext(&e)
                ))
            })?
            .into_bytes();
        if body.len() as u64 != meta.size {
            return Err(StoreError::Corrupt(format!(
                "S3 GetObject {key}: read {} bytes, expected {}",
                body.len(),
                meta.size
            )));
        }
        Ok(Some(Object { meta, body }))
    }

    async fn get_stream(
        &self,
        key: &StorageKey,
    ) -> Result<Option<(ObjectMeta, ByteStream)>, StoreError> {
        let Some((meta, body)) = self.get_object(key).await? else {
            return Ok(None);
        };
        let what = format!("{key} ({})", self.endpoint);
        let stream = futures::stream::try_unfold(
            (body, meta.size, what),
            |(mut body, remaining, what)| async move {
                match body.try_next().await {
                    Ok(Some(chunk)) => {
                        let remaining =
                            remaining.checked_sub(chunk.len() as u64).ok_or_else(|| {
                                StoreError::Corrupt(format!("S3 GetObject {what}: body too long"))
                            })?;
                        Ok(Some((chunk, (body, remaining, what))))
                    }
                    Ok(None) if remaining == 0 => Ok(None),
                    Ok(None) => Err(StoreError::Corrupt(format!(
                        "S3 GetObject {what}: body ended {remaining} bytes early"
                    ))),
                    Err(e) => Err(StoreError::Unavailable(format!(
                        "S3 GetObject {what}: body cut short: {}",
                        DisplayErrorContext(&e)
                    ))),
                }
            },
        )
        .boxed();
        Ok(Some((meta, stream)))
    }

    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>, StoreError> {
        let object_key = self.object_key(key);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .send()
            .await
        {
            Ok(out) => {
                let what = key.path();
                Ok(Some(ObjectMeta {
                    size: to_size(out.content_length(), &what)?,
                    etag: etag_of(out.e_tag(), &what)?,
                    last_modified: to_system_time(out.last_modified()),
                }))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.unavailable("HeadObject", &key.path(), &e)),
        }
    }

    async fn put(
        &self,
        key: &StorageKey,
        body: Bytes,
        mode: PutMode,
    ) -> Result<Written, StoreError> {
        let object_key = self.object_key(key);
        let size = body.len() as u64;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .content_type(key.content_type())
            .cache_control(key.cache_control(true))
            .body(SdkByteStream::from(body));
        req = match &mode {
            PutMode::CreateOnly => req.if_none_match("*"),
            PutMode::IfMatch(etag) => req.if_match(etag),
            PutMode::Overwrite => req,
        };
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) => {
                return Err(match (&mode, status(&e)) {
                    (PutMode::CreateOnly, Some(409 | 412)) => StoreError::AlreadyExists,
                    (PutMode::IfMatch(_), Some(404 | 409 | 412)) => StoreError::PreconditionFailed,
                    _ => self.unavailable("PutObject", &key.path(), &e),
                });
            }
        };
        Ok(Written {
            size,
            etag: etag_of(out.e_tag(), &key.path())?,
        })
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool, StoreError> {
        if self.head(key).await?.is_none() {
            return Ok(false);
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| self.unavailable("DeleteObject", &key.path(), &e))?;
        Ok(true)
    }

    async fn list(&self, prefix: &KeyPrefix) -> Result<Vec<ListEntry>, StoreError> {
        let list_prefix = format!("{}{}", self.prefix, prefix.path());
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&list_prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.unavailable("ListObjectsV2", &list_prefix, &e))?;
            for obj in page.contents() {
                let Some(path) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                let Some(key) = StorageKey::from_path(path) else {
                    continue;
                };
                if !prefix.matches(&key) {
                    continue;
                }
                out.push(ListEntry {
                    size: to_size(obj.size(), path)?,
                    etag: etag_of(obj.e_tag(), path)?,
                    last_modified: to_system_time(obj.last_modified()),
                    key,
                });
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        out.sort_by_cached_key(|e| e.key.path());
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("s3://{}/{} ({})", self.bucket, self.prefix, self.endpoint)
    }
}

impl S3Store {
    /// GetObject: `Ok(None)` on 404, else the metadata and the SDK body.
    async fn get_object(
        &self,
        key: &StorageKey,
    ) -> Result<Option<(ObjectMeta, SdkByteStream)>, StoreError> {
        let object_key = self.object_key(key);
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.unavailable("GetObject", &key.path(), &e)),
        };
        let what = key.path();
        let meta = ObjectMeta {
            size: to_size(out.content_length(), &what)?,
            etag: etag_of(out.e_tag(), &what)?,
            last_modified: to_system_time(out.last_modified()),
        };
        Ok(Some((meta, out.body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{S3Credentials, Secret};

    fn config(prefix: &str) -> S3Config {
        S3Config {
            bucket: "b".to_owned(),
            prefix: prefix.to_owned(),
            endpoint: Some("http://127.0.0.1:9".to_owned()),
            force_path_style: true,
            credentials: Some(S3Credentials {
                access_key_id: Secret::new("id"),
                secret_access_key: Secret::new("secret"),
                session_token: None,
            }),
            ..S3Config::default()
        }
    }

    #[test]
    fn object_keys_carry_the_prefix() {
        let key = StorageKey::tarball("hexpm", "foo", "1.0.0").unwrap();
        let plain = S3Store::new(&config("")).unwrap();
        assert_eq!(plain.object_key(&key), "repos/hexpm/tarballs/foo-1.0.0.tar");
        let nested = S3Store::new(&config("team/prod")).unwrap();
        assert_eq!(
            nested.object_key(&key),
            "team/prod/repos/hexpm/tarballs/foo-1.0.0.tar"
        );
        assert_eq!(nested.describe(), "s3://b/team/prod/ (http://127.0.0.1:9)");
    }

    #[test]
    fn etags_are_quoted() {
        assert_eq!(quoted("abc"), "\"abc\"");
        assert_eq!(quoted("\"abc\""), "\"abc\"");
        assert_eq!(etag_of(Some("abc"), "k").unwrap(), "\"abc\"");
        assert!(matches!(etag_of(None, "k"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            etag_of(Some("\"\""), "k"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn credentials_from_config_then_env() {
        let from_config = resolve_credentials(&config(""), |_| None).unwrap();
        assert_eq!(from_config.access_key_id(), "id");
        assert_eq!(from_config.secret_access_key(), "secret");
        assert_eq!(from_config.session_token(), None);
        // The session token resolved with the config (standard variables or a profile).
        let mut temporary = config("");
        if let Some(c) = &mut temporary.credentials {
            c.session_token = Some(Secret::new("t"));
        }
        let with_token = resolve_credentials(&temporary, |_| None).unwrap();
        assert_eq!(with_token.session_token(), Some("t"));

        let mut bare = config("");
        bare.credentials = None;
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("env-id".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-secret".to_owned()),
            "AWS_SESSION_TOKEN" => Some("tok".to_owned()),
            _ => None,
        };
        let from_env = resolve_credentials(&bare, env).unwrap();
        assert_eq!(from_env.access_key_id(), "env-id");
        assert_eq!(from_env.secret_access_key(), "env-secret");
        assert_eq!(from_env.session_token(), Some("tok"));

        let half = |name: &str| (name == "AWS_ACCESS_KEY_ID").then(|| "x".to_owned());
        let err = resolve_credentials(&bare, half).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.starts_with("no S3 credentials")),
            "{err:?}"
        );
    }
}
