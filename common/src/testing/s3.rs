//! A real S3 server for tests: [`MotoServer`] starts moto's S3 server (moto 5, installed by
//! `.ci/setup`) on a free loopback port, waits until it accepts connections, and kills it when
//! dropped. moto keeps everything in memory, so a restarted server starts empty.
//!
//! moto runs through `s3_server.py` (beside this file), which makes its conditional writes
//! atomic as S3's are: moto alone checks `If-Match` and then writes, so two racing writers can
//! both win. The interpreter is `$HEXYARD_MOTO_PYTHON` when set, else `python3` from `PATH`
//! (the one `.ci/setup` installs moto into). When moto is missing the helper panics with a
//! message saying to run `.ci/setup`: S3 tests fail rather than skip.

use std::net::{SocketAddr, TcpStream};

use super::ports::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

use crate::config::{S3Config, S3Credentials, Secret};

/// Access key id moto accepts (any value works; this one is used everywhere in the tests).
pub const ACCESS_KEY_ID: &str = "hexyard-test";
/// Secret access key paired with [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "hexyard-test-secret";
/// How long [`MotoServer::start`] waits for the port to open.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The script that runs moto with atomic conditional writes (see the module docs).
const S3_SERVER_PY: &str = include_str!("s3_server.py");

/// A running moto S3 server on 127.0.0.1. Killed (and reaped) on drop.
#[derive(Debug)]
pub struct MotoServer {
    exe: PathBuf,
    /// Extra environment of the server process.
    env: Vec<(&'static str, &'static str)>,
    port: u16,
    log: tempfile::NamedTempFile,
    child: Option<Child>,
}

/// The Python interpreter that runs moto: `$HEXYARD_MOTO_PYTHON`, else `python3`.
pub fn moto_python() -> PathBuf {
    std::env::var_os("HEXYARD_MOTO_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

impl MotoServer {
    /// Starts moto on a free loopback port and waits until it accepts connections.
    pub fn start() -> MotoServer {
        Self::start_with_env(vec![])
    }

    /// [`Self::start`] with the interpreter switching threads as often as it can (every
    /// microsecond instead of every 5 ms), so that a race inside the server shows up in a
    /// test that looks for one.
    pub fn start_stressed() -> MotoServer {
        Self::start_with_env(vec![("HEXYARD_MOTO_SWITCH_INTERVAL", "0.000001")])
    }

    fn start_with_env(env: Vec<(&'static str, &'static str)>) -> MotoServer {
        let mut server = MotoServer {
            exe: moto_python(),
            env,
            port: free_port(),
            log: tempfile::NamedTempFile::new().unwrap(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "moto is already running");
        let log = self.log.reopen().unwrap();
        let child = Command::new(&self.exe)
            .args([
                "-c",
                S3_SERVER_PY,
                "-H",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ])
            .envs(self.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (moto's S3 server): {e}; run `bash .ci/setup`",
                    self.exe.display()
                )
            });
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().unwrap()
            {
                self.child = None;
                panic!(
                    "moto's S3 server ({}) exited with {status} before listening on {addr} \
                     (is moto installed for it? run `bash .ci/setup`):\n{}",
                    self.exe.display(),
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto's S3 server did not listen on {addr} within {START_TIMEOUT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What moto printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: moto keeps nothing).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A raw SDK client for this server (path-style, test credentials, no retries).
    pub fn client(&self) -> Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "hexyard-test",
            ))
            .build();
        Client::from_conf(conf)
    }

    /// Creates `bucket`.
    pub async fn create_bucket(&self, bucket: &str) {
        self.client()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create bucket {bucket}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            });
    }

    /// A `store.s3` section for `bucket` on this server, with `prefix` and test credentials.
    pub fn s3_config(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            region: "us-east-1".to_owned(),
            endpoint: Some(self.endpoint()),
            force_path_style: true,
            credentials: Some(S3Credentials {
                access_key_id: Secret::new(ACCESS_KEY_ID),
                secret_access_key: Secret::new(SECRET_ACCESS_KEY),
                session_token: None,
            }),
            ..S3Config::default()
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
