//! Test support: start the real hexyard processes on loopback ports with a config written for
//! the test, talk to them over real sockets, and look at what they stored.
//!
//! The binaries are taken from the cargo target directory next to the test executable
//! (`.ci/test` builds them first), or from `HEXYARD_BIN_DIR`.

pub mod http;
pub mod upstream;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `shared/fixtures/hex`, next to the repository.
pub fn fixtures() -> PathBuf {
    hexyard_common::testing::fixtures_dir()
}

/// Reads a fixture file.
pub fn fixture(rel: &str) -> Vec<u8> {
    let p = fixtures().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The directory holding the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HEXYARD_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/it-HASH -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The path of binary `name`, which must have been built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`; .ci/test does)",
        p.display()
    );
    p
}

/// Loopback ports for test servers, from below the kernel's ephemeral range (see
/// [`hexyard_common::testing::ports`]).
pub use hexyard_common::testing::ports::{free_port, free_port_pair};

/// The hosted repo of test deployments: named like the fixtures were built for.
pub const REPO: &str = "fixture_repo";

/// API keys the test configs define.
pub const WRITE_KEY: &str = "secret";
pub const READ_KEY: &str = "readonly-key";
pub const OTHER_KEY: &str = "other-repo-key";
pub const ADMIN_KEY: &str = "admin-key";

/// SHA-256 hex of a key, as configured.
pub fn key_hash(key: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes()).as_ref())
}

/// A test deployment: a temp dir holding the config, the store and the keys.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub publisher_addr: SocketAddr,
    pub proxy_addr: SocketAddr,
    /// The S3 server of a [`StoreBackend::S3`] deployment.
    pub moto: Option<MotoServer>,
    /// Environment variables given to every process started for this env.
    pub process_env: Vec<(String, String)>,
}

/// Options of a test deployment.
#[derive(Clone, Debug)]
pub struct EnvOptions {
    /// Extra YAML appended under `repos:` (indented by 2).
    pub extra_repos: String,
    /// `publisher.replace_window_secs`.
    pub replace_window: String,
    /// `fixture_repo` public?
    pub public: bool,
    /// Limits block under `publisher.limits` (YAML flow map), e.g. `{tarball_bytes: 100000}`.
    pub limits: String,
    /// `default_repo`.
    pub default_repo: Option<String>,
    /// The store the deployment uses.
    pub store: StoreBackend,
}

/// The store of a test deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreBackend {
    /// `store.kind: local` in the env's temp dir.
    #[default]
    Local,
    /// `store.kind: s3`: a [`MotoServer`] started for the env, with its own bucket
    /// ([`S3_BUCKET`]); credentials reach the processes through the environment variables
    /// [`S3_KEY_ID_ENV`] and [`S3_SECRET_ENV`] (set on the spawned processes only).
    S3,
}

/// Where a stored object lives (see `TestEnv::place`).
enum Place<'a> {
    File(PathBuf),
    S3(&'a MotoServer, String),
}

/// The bucket of an S3 test deployment (each deployment has its own moto server).
pub const S3_BUCKET: &str = "hexyard-test";
/// The variable naming the access key id in S3 test configs.
pub const S3_KEY_ID_ENV: &str = "HEXYARD_TEST_S3_ACCESS_KEY_ID";
/// The variable naming the secret access key in S3 test configs.
pub const S3_SECRET_ENV: &str = "HEXYARD_TEST_S3_SECRET_ACCESS_KEY";

pub use hexyard_common::testing::s3::MotoServer;

/// The `store:` section (top level) for `bucket` at `endpoint`, credentials from
/// [`S3_KEY_ID_ENV`]/[`S3_SECRET_ENV`].
pub fn s3_store_yaml(endpoint: &str, bucket: &str) -> String {
    format!(
        "store:\n  kind: s3\n  s3:\n    bucket: {bucket}\n    region: us-east-1\n    endpoint: \"{endpoint}\"\n    force_path_style: true\n    access_key_id_env: {S3_KEY_ID_ENV}\n    secret_access_key_env: {S3_SECRET_ENV}\n"
    )
}

/// The environment a process needs for S3 test configs.
pub fn s3_env() -> Vec<(String, String)> {
    vec![
        (
            S3_KEY_ID_ENV.to_owned(),
            hexyard_common::testing::s3::ACCESS_KEY_ID.to_owned(),
        ),
        (
            S3_SECRET_ENV.to_owned(),
            hexyard_common::testing::s3::SECRET_ACCESS_KEY.to_owned(),
        ),
    ]
}

/// Runs `f` to completion on a fresh current-thread runtime (for the async S3 client).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
        .block_on(f)
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            extra_repos: String::new(),
            replace_window: "3600".into(),
            public: true,
            limits: "{}".into(),
            default_repo: Some("fixture_repo".into()),
            store: StoreBackend::Local,
        }
    }
}

impl EnvOptions {
    /// The default options on `store`.
    pub fn on(store: StoreBackend) -> Self {
        EnvOptions {
            store,
            ..EnvOptions::default()
        }
    }
}

impl TestEnv {
    /// A deployment with hosted `fixture_repo` (and `other_repo`) on a local store.
    pub fn new(opts: EnvOptions) -> TestEnv {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let publisher_addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let proxy_addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let default_repo = opts
            .default_repo
            .as_deref()
            .map(|r| format!("default_repo: {r}\n"))
            .unwrap_or_default();
        let (moto, store, process_env) = match opts.store {
            StoreBackend::Local => (
                None,
                "store:\n  kind: local\n  root: ./data\n".to_owned(),
                vec![],
            ),
            StoreBackend::S3 => {
                let moto = MotoServer::start();
                block_on(moto.create_bucket(S3_BUCKET));
                let yaml = s3_store_yaml(&moto.endpoint(), S3_BUCKET);
                (Some(moto), yaml, s3_env())
            }
        };
        let yaml = format!(
            r#"public_url: http://{proxy_addr}
{default_repo}proxy:
  listen: {proxy_addr}
publisher:
  listen: {publisher_addr}
  spawn: false
  replace_window_secs: {window}
  limits: {limits}
metrics: {{listen: null}}
{store}keys:
  - name: writer
    sha256: {w}
    grants: [{{repo: fixture_repo, access: write}}]
  - name: reader
    sha256: {r}
    grants: [{{repo: fixture_repo, access: read}}]
  - name: other
    sha256: {o}
    grants: [{{repo: other_repo, access: write}}]
  - name: admin
    sha256: {a}
    grants: [{{repo: fixture_repo, access: admin}}, {{repo: other_repo, access: admin}}]
repos:
  fixture_repo:
    kind: hosted
    private_key: ./keys/fixture_repo.pem
    public: {public}
  other_repo:
    kind: hosted
    private_key: ./keys/other_repo.pem
{extra}"#,
            window = opts.replace_window,
            limits = opts.limits,
            w = key_hash(WRITE_KEY),
            r = key_hash(READ_KEY),
            o = key_hash(OTHER_KEY),
            a = key_hash(ADMIN_KEY),
            public = opts.public,
            extra = opts.extra_repos,
        );
        let config_path = dir.path().join("hexyard.yaml");
        std::fs::write(&config_path, yaml).unwrap_or_else(|e| panic!("writing config: {e}"));
        TestEnv {
            dir,
            config_path,
            publisher_addr,
            proxy_addr,
            moto,
            process_env,
        }
    }

    /// The store root.
    pub fn store_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A stored object's path: `repos/<repo>/<rel>`.
    pub fn object_path(&self, repo: &str, rel: &str) -> PathBuf {
        self.store_root().join("repos").join(repo).join(rel)
    }

    /// A stored object's bytes, if it exists: read from disk, or with a raw SDK `GetObject`
    /// of `repos/<repo>/<rel>` on S3 (panics when moto fails otherwise than with a 404).
    pub fn object(&self, repo: &str, rel: &str) -> Option<Vec<u8>> {
        match self.place(repo, rel) {
            Place::File(path) => std::fs::read(path).ok(),
            Place::S3(moto, key) => s3_get(moto, S3_BUCKET, &key),
        }
    }

    /// Where `repos/<repo>/<rel>` lives: its file, or its key on the S3 server.
    fn place(&self, repo: &str, rel: &str) -> Place<'_> {
        match &self.moto {
            None => Place::File(self.object_path(repo, rel)),
            Some(moto) => Place::S3(moto, format!("repos/{repo}/{rel}")),
        }
    }

    /// Writes `repos/<repo>/<rel>` behind hexyard's back (a file, or a raw SDK `PutObject`).
    pub fn put_object(&self, repo: &str, rel: &str, bytes: &[u8]) {
        match self.place(repo, rel) {
            Place::File(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
                }
                std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            Place::S3(moto, key) => {
                let put = moto.client().put_object().bucket(S3_BUCKET).key(&key);
                block_on(put.body(bytes.to_vec().into()).send())
                    .unwrap_or_else(|e| panic!("PutObject {key}: {e:?}"));
            }
        }
    }

    /// Deletes `repos/<repo>/<rel>` behind hexyard's back; panics if it did not exist.
    pub fn delete_object(&self, repo: &str, rel: &str) {
        assert!(
            self.object(repo, rel).is_some(),
            "{repo}/{rel} does not exist"
        );
        match self.place(repo, rel) {
            Place::File(path) => {
                std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            Place::S3(moto, key) => {
                block_on(
                    moto.client()
                        .delete_object()
                        .bucket(S3_BUCKET)
                        .key(&key)
                        .send(),
                )
                .unwrap_or_else(|e| panic!("DeleteObject {key}: {e:?}"));
            }
        }
    }

    /// When `repos/<repo>/<rel>` was last written (file mtime, or S3 `LastModified`, which has
    /// one-second resolution): equal stamps mean nobody wrote it in between.
    pub fn object_stamp(&self, repo: &str, rel: &str) -> String {
        match self.place(repo, rel) {
            Place::File(path) => {
                let m = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                format!("{m:?}")
            }
            Place::S3(moto, key) => {
                let out = block_on(
                    moto.client()
                        .head_object()
                        .bucket(S3_BUCKET)
                        .key(&key)
                        .send(),
                )
                .unwrap_or_else(|e| panic!("HeadObject {key}: {e:?}"));
                format!("{:?} {:?}", out.last_modified(), out.e_tag())
            }
        }
    }

    /// The `Content-Type` and `Cache-Control` an S3 object was stored with (raw `HeadObject`);
    /// `None` when it does not exist. Panics on a local deployment.
    pub fn s3_object_headers(&self, repo: &str, rel: &str) -> Option<(String, String)> {
        let moto = self
            .moto
            .as_ref()
            .unwrap_or_else(|| panic!("not an S3 deployment"));
        let key = format!("repos/{repo}/{rel}");
        block_on(async {
            match moto
                .client()
                .head_object()
                .bucket(S3_BUCKET)
                .key(&key)
                .send()
                .await
            {
                Ok(out) => Some((
                    out.content_type().unwrap_or_default().to_owned(),
                    out.cache_control().unwrap_or_default().to_owned(),
                )),
                Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => None,
                Err(e) => panic!("HeadObject {key}: {e:?}"),
            }
        })
    }

    /// Stops the S3 server (SIGKILL). Panics on a local deployment.
    pub fn s3_stop(&mut self) {
        self.moto
            .as_mut()
            .unwrap_or_else(|| panic!("not an S3 deployment"))
            .stop();
    }

    /// Starts the S3 server again on the same port and creates the bucket again: moto keeps
    /// nothing across a restart, so the store is empty afterwards.
    pub fn s3_restart(&mut self) {
        let moto = self
            .moto
            .as_mut()
            .unwrap_or_else(|| panic!("not an S3 deployment"));
        moto.restart();
        block_on(moto.create_bucket(S3_BUCKET));
    }

    /// The public key a repo serves (as written to the store).
    pub fn public_key(&self, repo: &str) -> hexyard_common::signing::VerifyingKey {
        let pem = self
            .object(repo, "public_key")
            .unwrap_or_else(|| panic!("{repo} has no public_key"));
        hexyard_common::signing::VerifyingKey::from_pem(&String::from_utf8_lossy(&pem))
            .unwrap_or_else(|e| panic!("bad public key: {e}"))
    }

    /// Every stored object (path relative to the store root => bytes), for "nothing changed"
    /// assertions. Lock and temp files are not objects.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        if let Some(moto) = &self.moto {
            return s3_snapshot(moto, S3_BUCKET, "repos/");
        }
        let mut out = std::collections::BTreeMap::new();
        let root = self.store_root().join("repos");
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(b) = std::fs::read(&p) {
                    let rel = p
                        .strip_prefix(&root)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .into_owned();
                    out.insert(rel, b);
                }
            }
        }
        out
    }

    /// Starts a publisher process on this env's config (on `addr`, default the configured one).
    pub fn start_publisher(&self) -> Process {
        self.start_with("hexyard-publisher", &self.config_path, self.publisher_addr)
    }

    /// Starts a proxy process (it forwards `/api` to the publisher at `publisher_addr`).
    pub fn start_proxy(&self) -> Process {
        self.start_with("hexyard-proxy", &self.config_path, self.proxy_addr)
    }

    /// Runs binary `name` on this env's config (`addr`: where it would listen), expecting it to
    /// refuse to start: its exit status and log once it exited within `within`.
    pub fn run_to_exit(
        &self,
        name: &str,
        addr: SocketAddr,
        within: Duration,
    ) -> (std::process::ExitStatus, String) {
        let mut p = Process::spawn(name, &self.config_path, addr, &[], &self.process_env);
        let status = p
            .wait_exit(within)
            .unwrap_or_else(|| panic!("{name} did not exit; log:\n{}", p.log_text()));
        (status, p.log_text())
    }

    /// Starts binary `name` on `config`, listening on `addr`, with [`TestEnv::process_env`].
    pub fn start_with(&self, name: &str, config: &Path, addr: SocketAddr) -> Process {
        Process::start_with_env(name, config, addr, &[], &self.process_env)
    }

    /// Writes a copy of the config with `edit` applied, as `hexyard-<tag>.yaml`; returns its path.
    pub fn config_variant(&self, tag: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
        let text = std::fs::read_to_string(&self.config_path).unwrap_or_default();
        let path = self.dir.path().join(format!("hexyard-{tag}.yaml"));
        std::fs::write(&path, edit(text)).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    /// Starts another proxy on the same store, on its own port, forwarding `/api` to the
    /// publisher at `publisher`.
    pub fn start_proxy_for(&self, publisher: SocketAddr) -> Process {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let path = self.config_variant(&format!("proxy-{port}"), |text| {
            text.replace(
                &format!("proxy:\n  listen: {}\n", self.proxy_addr),
                &format!("proxy:\n  listen: {addr}\n  publisher_url: http://{publisher}\n"),
            )
        });
        self.start_with("hexyard-proxy", &path, addr)
    }

    /// Starts another publisher on the same store, on its own port.
    pub fn start_second_publisher(&self) -> Process {
        let port = free_port();
        let text = std::fs::read_to_string(&self.config_path).unwrap_or_default();
        let text = text.replace(
            &format!("listen: {}", self.publisher_addr),
            &format!("listen: 127.0.0.1:{port}"),
        );
        let path = self.dir.path().join(format!("hexyard-{port}.yaml"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let addr = format!("127.0.0.1:{port}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        self.start_with("hexyard-publisher", &path, addr)
    }

    /// Runs a publisher subcommand to completion: (exit success, stdout + stderr).
    pub fn publisher_command(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(bin("hexyard-publisher"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .envs(self.process_env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap_or_else(|e| panic!("running hexyard-publisher: {e}"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}

/// A running process, killed when dropped.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Process {
    /// Starts `bin --config FILE ARGS..` and waits until `addr` accepts connections.
    pub fn start(name: &str, config: &Path, addr: SocketAddr, args: &[&str]) -> Process {
        Process::start_with_env(name, config, addr, args, &[])
    }

    /// [`Process::start`] with extra environment variables for the process (the test process's
    /// own environment is never changed).
    pub fn start_with_env(
        name: &str,
        config: &Path,
        addr: SocketAddr,
        args: &[&str],
        env: &[(String, String)],
    ) -> Process {
        let mut p = Process::spawn(name, config, addr, args, env);
        p.wait_ready();
        p
    }

    /// Starts the process without waiting for it to listen (for processes expected to exit).
    pub fn spawn(
        name: &str,
        config: &Path,
        addr: SocketAddr,
        args: &[&str],
        env: &[(String, String)],
    ) -> Process {
        let log = config.with_extension(format!("{}.log", addr.port()));
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let err_file = log_file.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(bin(name))
            .arg("--config")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(err_file))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process { child, addr, log }
    }

    /// Waits (up to `timeout`) for the process to exit; its status, `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "process exited with {status} before listening; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "process did not listen on {} within 30 s; log:\n{}",
            self.addr,
            self.log_text()
        );
    }

    /// What the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The YAML of a mirror repo named `name` in front of `upstream` (indented for `repos:`).
/// `upstream_name` is the repository name the upstream signs (`fixture_repo` or `hexpm`);
/// `extra` is more keys for the repo, one per line, without indentation.
pub fn mirror_yaml(
    name: &str,
    upstream: &upstream::FakeUpstream,
    upstream_name: &str,
    extra: &[&str],
) -> String {
    let key = fixtures().join("keys/public_key.pem");
    let mut s = format!(
        "  {name}:\n    kind: mirror\n    upstream: {{url: \"{}\", name: {upstream_name}, public_key: \"{}\", timeout_ms: 2000, connect_timeout_ms: 1000, retries: 1, proxy: none}}\n",
        upstream.url(),
        key.display()
    );
    for line in extra {
        s.push_str(&format!("    {line}\n"));
    }
    s
}

/// A GET through `addr`.
pub fn get(addr: SocketAddr, path: &str) -> http::Response {
    http::Request::new("GET", path)
        .send(addr)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Publisher test helpers.

/// The fixture uploads (`publish/<file>.tar`) in an order that satisfies their dependencies.
pub const FIXTURE_ORDER: &[&str] = &[
    "fx_core-0.1.0",
    "fx_core-0.2.0",
    "fx_core-1.0.0-rc.1",
    "fx_opt-1.0.0",
    "fx_alias-0.1.0",
    "fx_json-0.3.0",
    "fx_erl-0.1.0",
    "fx_unicode-0.1.0",
];

/// An API request with the headers Hex 2.5.1 sends, using `key` (if any).
pub fn api(method: &str, path: &str, key: Option<&str>) -> http::Request {
    http::Request::new(method, path).hex_api(key)
}

/// Sends `req` to `addr`, panicking on an I/O error.
pub fn send(req: &http::Request, addr: SocketAddr) -> http::Response {
    req.send(addr)
        .unwrap_or_else(|e| panic!("{} {}: {e}", req.method, req.path))
}

/// Uploads `body` to `path` exactly as mix does (expect: 100-continue) with `key`.
pub fn upload(addr: SocketAddr, path: &str, key: Option<&str>, body: Vec<u8>) -> http::Response {
    send(&api("POST", path, key).upload(body), addr)
}

/// Publishes the fixture `publish/<file>.tar` to `prefix` + `/packages/NAME/releases?replace=false`
/// (`prefix` is `/api` or `/api/repos/REPO`) with the write key.
pub fn publish_fixture_at(addr: SocketAddr, prefix: &str, file: &str) -> http::Response {
    let name = file.split('-').next().unwrap_or(file);
    upload(
        addr,
        &format!("{prefix}/packages/{name}/releases?replace=false"),
        Some(WRITE_KEY),
        fixture(&format!("publish/{file}.tar")),
    )
}

/// Publishes fixtures in order through `/api`, asserting each is created.
pub fn publish_fixtures(addr: SocketAddr, files: &[&str]) {
    for file in files {
        let r = publish_fixture_at(addr, "/api", file);
        assert_eq!(r.status, 201, "{file}: {}", body_text(&r));
    }
}

/// A response body as text, for assertion messages.
pub fn body_text(r: &http::Response) -> String {
    match hexyard_common::etf::decode(&r.body) {
        Ok(t) => format!("{t:?}"),
        Err(_) => String::from_utf8_lossy(&r.body).into_owned(),
    }
}

/// The `(status, message, errors)` of an Erlang-term error body; `errors` as field => text.
pub fn error_of(r: &http::Response) -> (i64, String, Vec<(String, String)>) {
    use hexyard_common::etf::Term;
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.hex+erlang"),
        "error body is not an Erlang term: {}",
        body_text(r)
    );
    let t = r.term();
    let status = match t.get("status") {
        Some(Term::Int(n)) => *n,
        other => panic!("no integer status in {t:?}: {other:?}"),
    };
    let message = t
        .get("message")
        .and_then(Term::as_str)
        .unwrap_or_else(|| panic!("no message in {t:?}"))
        .to_owned();
    let errors = match t.get("errors") {
        None => vec![],
        Some(Term::Map(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap_or_default().to_owned(),
                    v.as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        Some(other) => panic!("errors is not a map: {other:?}"),
    };
    (status, message, errors)
}

/// Asserts `r` is an error with `status`, a term body whose status field agrees, and a
/// message containing `message_part`; returns the errors.
pub fn assert_error(r: &http::Response, status: u16, message_part: &str) -> Vec<(String, String)> {
    assert_eq!(r.status, status, "{}", body_text(r));
    let (s, m, errors) = error_of(r);
    assert_eq!(s, i64::from(status));
    assert!(
        m.contains(message_part),
        "message {m:?} does not contain {message_part:?}"
    );
    errors
}

/// Asserts a 422 whose `errors[field]` contains `part`.
pub fn assert_validation(r: &http::Response, field: &str, part: &str) {
    let errors = assert_error(r, 422, "Validation error");
    let text = errors
        .iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no error on {field:?}: {errors:?}"));
    assert!(
        text.contains(part),
        "errors[{field}] = {text:?} does not contain {part:?}"
    );
}

/// A minimal valid package built with the common tarball builder.
pub fn package_tarball(name: &str, version: &str) -> Vec<u8> {
    hexyard_common::tarball::TarballBuilder::new(name, version)
        .description(format!("{name} test package"))
        .license("Apache-2.0")
        .link("GitHub", format!("https://example.invalid/{name}"))
        .file(
            format!("lib/{name}.ex"),
            format!("# {name} {version}\n").into_bytes(),
        )
        .build()
        .unwrap_or_else(|e| panic!("building {name} {version}: {e}"))
}

impl TestEnv {
    /// The repo's decoded, verified `names` (None when not stored).
    pub fn names(&self, repo: &str) -> Option<hexyard_common::registry::proto::Names> {
        let body = self.object(repo, "names")?;
        Some(
            hexyard_common::registry::decode_names(&body, &self.public_key(repo), repo)
                .unwrap_or_else(|e| panic!("{repo}/names does not verify: {e}")),
        )
    }

    /// The names listed in `names`.
    pub fn name_list(&self, repo: &str) -> Vec<String> {
        self.names(repo)
            .map(|n| n.packages.into_iter().map(|p| p.name).collect())
            .unwrap_or_default()
    }

    /// The repo's decoded, verified `versions` (None when not stored).
    pub fn versions(&self, repo: &str) -> Option<hexyard_common::registry::proto::Versions> {
        let body = self.object(repo, "versions")?;
        Some(
            hexyard_common::registry::decode_versions(&body, &self.public_key(repo), repo)
                .unwrap_or_else(|e| panic!("{repo}/versions does not verify: {e}")),
        )
    }

    /// The `versions` entry of one package.
    pub fn versions_of(
        &self,
        repo: &str,
        name: &str,
    ) -> Option<hexyard_common::registry::proto::VersionsPackage> {
        self.versions(repo)?
            .packages
            .into_iter()
            .find(|p| p.name == name)
    }

    /// The repo's decoded, verified `packages/<name>` (None when not stored).
    pub fn package(
        &self,
        repo: &str,
        name: &str,
    ) -> Option<hexyard_common::registry::proto::Package> {
        let body = self.object(repo, &format!("packages/{name}"))?;
        Some(
            hexyard_common::registry::decode_package(&body, &self.public_key(repo), repo, name)
                .unwrap_or_else(|e| panic!("{repo}/packages/{name} does not verify: {e}")),
        )
    }
}

/// A test deployment ([`TestEnv::new`]; kept as the short name the publisher tests use).
pub fn env(opts: EnvOptions) -> TestEnv {
    TestEnv::new(opts)
}

// ---------------------------------------------------------------------------------------------
// S3 helpers (raw SDK calls, independent of hexyard's S3 backend).

/// The bytes of object `key` in `bucket`, `None` on a 404. Panics on other failures.
pub fn s3_get(moto: &MotoServer, bucket: &str, key: &str) -> Option<Vec<u8>> {
    block_on(async {
        match moto
            .client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Some(
                out.body
                    .collect()
                    .await
                    .unwrap_or_else(|e| panic!("GetObject {key} body: {e}"))
                    .into_bytes()
                    .to_vec(),
            ),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => None,
            Err(e) => panic!("GetObject {key}: {e:?}"),
        }
    })
}

/// Every object under `prefix` in `bucket` (key without `prefix` => bytes).
pub fn s3_snapshot(
    moto: &MotoServer,
    bucket: &str,
    prefix: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let keys = block_on(async {
        let client = moto.client();
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListObjectsV2 {prefix}: {e:?}"));
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        keys
    });
    keys.into_iter()
        .filter_map(|k| {
            let body = s3_get(moto, bucket, &k)?;
            Some((k.strip_prefix(prefix).unwrap_or(&k).to_owned(), body))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The real rebar3 client.

/// Whether `rebar3` runs.
pub fn rebar3_available() -> bool {
    Command::new("rebar3")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An Erlang binary literal of `s`.
pub fn erl_binary(s: &str) -> String {
    format!("<<\"{}\">>", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `{hex, ...}` entry of a rebar.config that replaces the repos with one at `repo_url`
/// named `repo`, trusting `pem`.
pub fn rebar3_hex_config(repo: &str, repo_url: &str, pem: &str) -> String {
    format!(
        "{{hex, [{{repos, replace, [#{{name => {}, repo_url => {}, repo_public_key => {}}}]}}]}}.",
        erl_binary(repo),
        erl_binary(repo_url),
        erl_binary(pem)
    )
}

/// A project `dir/<name>` depending on fx_erl (which depends on fx_core), with `hex_config`
/// as its `{hex, ...}` entry. Returns the project dir.
pub fn rebar3_project(dir: &Path, name: &str, hex_config: &str) -> PathBuf {
    let p = dir.join(name);
    let write = |rel: &str, text: String| {
        std::fs::write(p.join(rel), text).unwrap_or_else(|e| panic!("writing {rel}: {e}"))
    };
    std::fs::create_dir_all(p.join("src")).unwrap_or_else(|e| panic!("{e}"));
    write(
        "rebar.config",
        format!("{{deps, [fx_erl]}}.\n{hex_config}\n"),
    );
    write(
        "src/myapp.app.src",
        "{application, myapp, [{vsn, \"0.1.0\"}, {applications, [kernel, stdlib, fx_erl]}]}.\n"
            .to_owned(),
    );
    write(
        "src/myapp.erl",
        "-module(myapp).\n-export([hi/0]).\nhi() -> fx_erl:hello().\n".to_owned(),
    );
    p
}

/// Runs `rebar3 ARGS` in `project` with a private `home`: (success, stdout + stderr).
pub fn rebar3_run(project: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    rebar3_run_with(project, home, &[], args)
}

/// [`rebar3_run`] with extra environment variables (e.g. `HEX_CDN`).
pub fn rebar3_run_with(
    project: &Path,
    home: &Path,
    envs: &[(&str, &str)],
    args: &[&str],
) -> (bool, String) {
    let mut cmd = Command::new("rebar3");
    cmd.args(args)
        .current_dir(project)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("REBAR_CACHE_DIR", home.join("cache"))
        .env("REBAR_GLOBAL_CONFIG_DIR", home.join("global"))
        .env("QUIET", "");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running rebar3: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Publishes fx_core 0.1.0/0.2.0 and fx_erl through `proxy`, then runs `rebar3 get-deps` for a
/// project depending on fx_erl from the hosted repo, and checks the lock: fx_core 0.2.0, and the
/// stored fx_erl tarball's SHA-256 as `pkg_hash_ext`. Returns the project dir.
pub fn rebar3_gets_deps_from_hosted(env: &TestEnv, proxy: SocketAddr) -> PathBuf {
    assert!(
        rebar3_available(),
        "rebar3 is not installed (.ci/setup installs it)"
    );
    for file in ["fx_core-0.1.0", "fx_core-0.2.0", "fx_erl-0.1.0"] {
        let r = publish_fixture_at(proxy, "/api", file);
        assert_eq!(r.status, 201, "{file}: {}", body_text(&r));
    }
    let pem =
        String::from_utf8(env.object(REPO, "public_key").unwrap_or_default()).unwrap_or_default();
    let hex = rebar3_hex_config(REPO, &format!("http://{proxy}/repos/{REPO}"), &pem);
    let home = env.dir.path().join("home");
    let p = rebar3_project(env.dir.path(), "app", &hex);
    let (ok, out) = rebar3_run(&p, &home, &["get-deps"]);
    assert!(ok, "rebar3 get-deps failed:\n{out}");
    let lock = std::fs::read_to_string(p.join("rebar.lock")).unwrap_or_default();
    assert!(
        lock.contains("{<<\"fx_core\">>,{pkg,<<\"fx_core\">>,<<\"0.2.0\">>},1}"),
        "{lock}"
    );
    let tarball = env
        .object(REPO, "tarballs/fx_erl-0.1.0.tar")
        .unwrap_or_default();
    let sha = hex::encode_upper(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &tarball,
    ));
    assert!(lock.contains(&sha), "{lock}");
    p
}

// ---------------------------------------------------------------------------------------------
// A TCP gate in front of a server, to cut it off without stopping it.

/// A TCP forwarder on a loopback port in front of `target`. While up it forwards every
/// connection; [`TcpGate::set_up`]`(false)` cuts every open connection and closes new ones at
/// once, as if the server were gone, while the server keeps its state. [`TcpGate::cut_on`]
/// arms a trigger: the first client chunk containing the given bytes is not forwarded and
/// takes the gate down (a fault at an exact request).
pub struct TcpGate {
    pub addr: SocketAddr,
    state: std::sync::Arc<GateState>,
}

struct GateState {
    up: std::sync::atomic::AtomicBool,
    conns: std::sync::Mutex<Vec<TcpStream>>,
    trigger: std::sync::Mutex<Option<Vec<u8>>>,
}

impl GateState {
    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()));
        for c in conns {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn is_up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl TcpGate {
    /// Starts forwarding `127.0.0.1:<free port>` to `target`.
    pub fn start(target: SocketAddr) -> TcpGate {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("gate bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("gate addr: {e}"));
        let state = std::sync::Arc::new(GateState {
            up: std::sync::atomic::AtomicBool::new(true),
            conns: std::sync::Mutex::new(Vec::new()),
            trigger: std::sync::Mutex::new(None),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if !st.is_up() {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                {
                    let mut conns = st.conns.lock().unwrap_or_else(|p| p.into_inner());
                    for s in [&client, &server] {
                        if let Ok(c) = s.try_clone() {
                            conns.push(c);
                        }
                    }
                }
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let up = st.clone();
                std::thread::spawn(move || gate_copy(client, server, Some(&up)));
                std::thread::spawn(move || gate_copy(s2, c2, None));
            }
        });
        TcpGate { addr, state }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Opens (`true`) or cuts (`false`) the gate.
    pub fn set_up(&self, up: bool) {
        if up {
            self.state
                .up
                .store(true, std::sync::atomic::Ordering::SeqCst);
        } else {
            self.state.cut();
        }
    }

    /// Whether the gate is open.
    pub fn is_up(&self) -> bool {
        self.state.is_up()
    }

    /// Arms the trigger: the next client chunk containing `needle` is dropped and cuts the gate.
    pub fn cut_on(&self, needle: &str) {
        *self.state.trigger.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(needle.as_bytes().to_vec());
    }
}

/// Copies `from` to `to` until EOF; with `gate`, checks each chunk against the trigger first.
fn gate_copy(mut from: TcpStream, mut to: TcpStream, gate: Option<&std::sync::Arc<GateState>>) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = buf.get(..n).unwrap_or_default();
        if let Some(g) = gate {
            let mut trigger = g.trigger.lock().unwrap_or_else(|p| p.into_inner());
            let hit = trigger
                .as_ref()
                .is_some_and(|t| chunk.windows(t.len()).any(|w| w == t.as_slice()));
            if hit {
                *trigger = None;
                drop(trigger);
                g.cut();
                break;
            }
            if !g.is_up() {
                break;
            }
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}
