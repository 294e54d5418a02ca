//! An in-process fake of repo.hex.pm for mirror tests: it serves REAL signed registry files
//! (the fixture registry, as `mix hex.registry build` made it, or re-signed with the fixture key
//! under the name `hexpm`), counts hits per path, answers `If-None-Match`, and can be told to
//! misbehave (slow, 5xx, cut bodies, bad signatures, wrong repository, wrong tarball bytes).

use bytes::Bytes;
use hexyard_common::registry::{self, proto};
use hexyard_common::signing::SigningKey;
use prost::Message;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the fake misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answer every request with this status.
    Status(u16),
    /// Send headers and half the body, then close.
    CutBody,
    /// Close the connection without answering.
    Refuse,
}

struct State {
    files: HashMap<String, Bytes>,
    hits: HashMap<String, usize>,
    fault: Fault,
    delay: Duration,
    /// Requests being answered now, and the most there were at once.
    in_flight: usize,
    peak_in_flight: usize,
}

/// Counts one request as in flight until dropped.
struct InFlight<'a>(&'a Mutex<State>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight -= 1;
    }
}

/// The running fake. Stops when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

fn fixture_key() -> SigningKey {
    let pem = String::from_utf8(crate::fixture("keys/private_key.pem")).unwrap_or_default();
    SigningKey::from_pem(&pem).unwrap_or_else(|e| panic!("fixture key: {e}"))
}

/// The fixture registry's files keyed by path (`names`, `packages/fx_core`, `tarballs/...`).
fn fixture_files() -> HashMap<String, Bytes> {
    let root = crate::fixtures().join("registry");
    let mut files = HashMap::new();
    for rel in ["names", "versions", "public_key"] {
        files.insert(
            rel.to_owned(),
            Bytes::from(crate::fixture(&format!("registry/{rel}"))),
        );
    }
    for dir in ["packages", "tarballs"] {
        let rd = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{e}"));
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            files.insert(format!("{dir}/{name}"), Bytes::from(bytes));
        }
    }
    files
}

/// Re-signs a registry file's payload with `repository` set to `repo` (fixture key).
pub fn resign_as(path: &str, gz: &[u8], repo: &str) -> Bytes {
    let key = fixture_key();
    let signed = registry::open_signed(gz, 64 << 20).unwrap_or_else(|e| panic!("{path}: {e}"));
    let out = if path == "names" {
        let mut m =
            proto::Names::decode(signed.payload.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        m.repository = repo.to_owned();
        registry::encode_signed(&m, &key)
    } else if path == "versions" {
        let mut m =
            proto::Versions::decode(signed.payload.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        m.repository = repo.to_owned();
        registry::encode_signed(&m, &key)
    } else {
        let mut m =
            proto::Package::decode(signed.payload.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        m.repository = repo.to_owned();
        registry::encode_signed(&m, &key)
    };
    Bytes::from(out.unwrap_or_else(|e| panic!("{e}")))
}

/// Signs an arbitrary package message with the fixture key.
pub fn sign_package(pkg: &proto::Package) -> Bytes {
    Bytes::from(registry::encode_signed(pkg, &fixture_key()).unwrap_or_else(|e| panic!("{e}")))
}

/// The files of a repository `repo` holding exactly `tarballs` (any order, several releases
/// of one package allowed), signed with the fixture key: `names`, `versions`, `public_key`, one
/// `packages/<name>` per package (each release with its inner and outer checksum, as the
/// tarball's own `CHECKSUM` and SHA-256 give them; no dependencies are listed) and
/// `tarballs/<name>-<version>.tar`. For synthetic upstreams (benchmarks, large mirrors).
pub fn registry_of(repo: &str, tarballs: Vec<Vec<u8>>) -> HashMap<String, Bytes> {
    use hexyard_common::tarball::{self, TarballLimits};
    let key = fixture_key();
    let signed = |r: Result<Vec<u8>, registry::RegistryError>| {
        Bytes::from(r.unwrap_or_else(|e| panic!("signing: {e}")))
    };
    let mut files = HashMap::new();
    let mut releases: std::collections::BTreeMap<String, Vec<proto::Release>> =
        std::collections::BTreeMap::new();
    for body in tarballs {
        let t = tarball::parse(&body, &TarballLimits::default())
            .unwrap_or_else(|e| panic!("synthetic tarball: {e}"));
        let version = t.metadata.version;
        files.insert(
            format!("tarballs/{}-{version}.tar", t.name),
            Bytes::from(body),
        );
        releases.entry(t.name).or_default().push(proto::Release {
            version,
            inner_checksum: t.inner_checksum.to_vec(),
            outer_checksum: Some(t.outer_checksum.to_vec()),
            ..Default::default()
        });
    }
    let packages: Vec<proto::Package> = releases
        .into_iter()
        .map(|(name, r)| registry::build_package(repo, &name, r))
        .collect();
    for p in &packages {
        let file = signed(registry::encode_signed(p, &key));
        files.insert(format!("packages/{}", p.name), file);
    }
    let versions = registry::build_versions(repo, &packages);
    let names = registry::build_names(
        repo,
        packages
            .iter()
            .map(|p| (p.name.clone(), proto::Timestamp::default())),
    );
    files.insert(
        "versions".to_owned(),
        signed(registry::encode_signed(&versions, &key)),
    );
    files.insert(
        "names".to_owned(),
        signed(registry::encode_signed(&names, &key)),
    );
    files.insert(
        "public_key".to_owned(),
        Bytes::from(crate::fixture("registry/public_key")),
    );
    files
}

impl FakeUpstream {
    /// Serves the fixture registry exactly as built (repository `fixture_repo`).
    pub fn fixture() -> FakeUpstream {
        Self::serve(fixture_files())
    }

    /// Serves the fixture registry re-signed (fixture key) with repository `hexpm`, so clients
    /// configured with that key for `hexpm` accept it through `HEX_CDN`/`HEX_MIRROR_URL`.
    pub fn as_hexpm() -> FakeUpstream {
        let mut files = fixture_files();
        let paths: Vec<String> = files.keys().cloned().collect();
        for p in paths {
            if p == "names" || p == "versions" || p.starts_with("packages/") {
                let resigned = resign_as(&p, &files[&p], "hexpm");
                files.insert(p, resigned);
            }
        }
        Self::serve(files)
    }

    /// Serves a synthetic repository `repo` holding `tarballs` ([`registry_of`]).
    pub fn synthetic(repo: &str, tarballs: Vec<Vec<u8>>) -> FakeUpstream {
        Self::serve(registry_of(repo, tarballs))
    }

    fn serve(files: HashMap<String, Bytes>) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let state = Arc::new(Mutex::new(State {
            files,
            hits: HashMap::new(),
            fault: Fault::None,
            delay: Duration::ZERO,
            in_flight: 0,
            peak_in_flight: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || {
                            let _ = handle(stream, &st);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FakeUpstream { addr, state, stop }
    }

    /// The base URL to configure as a mirror's `upstream.url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// Hits on one path (`packages/fx_core`).
    pub fn hits(&self, path: &str) -> usize {
        self.with(|s| s.hits.get(path).copied().unwrap_or(0))
    }
    /// Hits on every path.
    pub fn total_hits(&self) -> usize {
        self.with(|s| s.hits.values().sum())
    }
    pub fn reset_hits(&self) {
        self.with(|s| {
            s.hits.clear();
            s.peak_in_flight = s.in_flight;
        });
    }
    /// The most requests answered at once since the start or the last `reset_hits`.
    pub fn peak_in_flight(&self) -> usize {
        self.with(|s| s.peak_in_flight)
    }
    pub fn set_fault(&self, f: Fault) {
        self.with(|s| s.fault = f);
    }
    pub fn set_delay(&self, d: Duration) {
        self.with(|s| s.delay = d);
    }
    /// Replaces (or adds) a file.
    pub fn set_file(&self, path: &str, bytes: impl Into<Bytes>) {
        let b = bytes.into();
        self.with(|s| s.files.insert(path.to_owned(), b));
    }
    /// Serves the fixture registry file `path` re-signed (fixture key) for repository `repo`:
    /// a file that verifies but names another repository.
    pub fn set_resigned_as(&self, path: &str, repo: &str) {
        let fixture = crate::fixture(&format!("registry/{path}"));
        self.set_file(path, resign_as(path, &fixture, repo));
    }
    pub fn file(&self, path: &str) -> Option<Bytes> {
        self.with(|s| s.files.get(path).cloned())
    }
    pub fn remove_file(&self, path: &str) {
        self.with(|s| s.files.remove(path));
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn etag_of(b: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    format!("\"{}\"", &hex::encode(d.as_ref())[..24])
}

fn handle(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_owned();
    let mut inm = None;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("if-none-match")
        {
            inm = Some(v.trim().to_owned());
        }
    }
    let (file, fault, delay) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        *s.hits.entry(path.clone()).or_default() += 1;
        s.in_flight += 1;
        s.peak_in_flight = s.peak_in_flight.max(s.in_flight);
        (s.files.get(&path).cloned(), s.fault.clone(), s.delay)
    };
    let _in_flight = InFlight(state);
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let mut out = stream;
    match fault {
        Fault::Refuse => return Ok(()),
        Fault::Status(code) => {
            let body = format!("fault {code}\n");
            write!(
                out,
                "HTTP/1.1 {code} Fault\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return Ok(());
        }
        _ => {}
    }
    match file {
        None => {
            write!(
                out,
                "HTTP/1.1 404 Not Found\r\ncontent-length: 10\r\nconnection: close\r\n\r\nnot found\n"
            )?;
        }
        Some(body) => {
            let etag = etag_of(&body);
            if inm.as_deref() == Some(etag.as_str()) {
                write!(
                    out,
                    "HTTP/1.1 304 Not Modified\r\netag: {etag}\r\nconnection: close\r\n\r\n"
                )?;
                return Ok(());
            }
            write!(
                out,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\netag: {etag}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
                body.len()
            )?;
            if fault == Fault::CutBody {
                out.write_all(&body[..body.len() / 2])?;
                return Ok(());
            }
            out.write_all(&body)?;
        }
    }
    out.flush()
}
