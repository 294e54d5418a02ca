//! A small blocking HTTP/1.1 client that sends exactly the bytes a test asks for, so tests
//! can reproduce what the Hex clients send (raw `authorization`, `expect: 100-continue`, ...)
//! and look at exactly what comes back.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response as received.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the server answered `100 Continue` before the final response.
    pub continued: bool,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body decoded as an Erlang term.
    pub fn term(&self) -> hexyard_common::etf::Term {
        match hexyard_common::etf::decode(&self.body) {
            Ok(t) => t,
            Err(e) => panic!(
                "body is not an Erlang term ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            ),
        }
    }
    /// The text of a binary under `key` of a map body.
    pub fn term_str(&self, key: &str) -> Option<String> {
        self.term()
            .get(key)
            .and_then(|t| t.as_str().map(str::to_owned))
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the headers, wait for `100 Continue` (or a final answer) before the body.
    pub expect_continue: bool,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: vec![],
            body: vec![],
            expect_continue: false,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }
    /// The headers Hex 2.5.1 sends on an API call (protocol doc §12.1).
    pub fn hex_api(self, key: Option<&str>) -> Self {
        let r = self.header("accept", "application/vnd.hex+erlang").header(
            "user-agent",
            "hex_core/0.18.0 hex/2.5.1 (elixir/1.14.0) (OTP/25) (erts/13.1.5)",
        );
        match key {
            Some(k) => r.header("authorization", k),
            None => r,
        }
    }
    /// A tarball upload as mix sends it: octet-stream, content-length, expect 100-continue.
    pub fn upload(mut self, body: Vec<u8>) -> Self {
        self.expect_continue = true;
        self.headers
            .push(("content-type".into(), "application/octet-stream".into()));
        self.headers.push(("expect".into(), "100-continue".into()));
        self.headers.push(("connection".into(), "close".into()));
        self.body = body;
        self
    }

    /// Sends the request on a new connection and reads the response.
    pub fn send(&self, addr: SocketAddr) -> std::io::Result<Response> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = format!("{} {} HTTP/1.1\r\nhost: {addr}\r\n", self.method, self.path);
        let has_len = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has_len && (!self.body.is_empty() || self.method == "POST" || self.method == "PUT") {
            head.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut continued = false;
        if self.expect_continue {
            let (status, headers) = read_head(&mut reader)?;
            if status != 100 {
                // A final answer before the body was sent.
                let body = read_body(&mut reader, status, &headers, &self.method)?;
                return Ok(Response {
                    status,
                    headers,
                    body,
                    continued,
                });
            }
            continued = true;
        }
        stream.write_all(&self.body)?;
        stream.flush()?;
        let mut r = read_response(&mut reader, &self.method)?;
        r.continued |= continued;
        Ok(r)
    }
}

/// Reads one response (head and body) from a connection, skipping `100 Continue` heads.
pub fn read_response(r: &mut impl BufRead, method: &str) -> std::io::Result<Response> {
    let mut continued = false;
    loop {
        let (status, headers) = read_head(r)?;
        if status == 100 {
            continued = true;
            continue;
        }
        let body = read_body(r, status, &headers, method)?;
        return Ok(Response {
            status,
            headers,
            body,
            continued,
        });
    }
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = vec![];
    loop {
        let mut l = String::new();
        r.read_line(&mut l)?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

fn read_body(
    r: &mut impl BufRead,
    status: u16,
    headers: &[(String, String)],
    method: &str,
) -> std::io::Result<Vec<u8>> {
    let get = |k: &str| {
        headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.as_str())
    };
    if method == "HEAD" || status == 204 || status == 304 {
        return Ok(vec![]);
    }
    if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0; n];
        r.read_exact(&mut body)?;
        return Ok(body);
    }
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = vec![];
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(std::io::Error::other)?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end)?;
                return Ok(body);
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            chunk.truncate(n);
            body.extend(chunk);
        }
    }
    let mut body = vec![];
    r.read_to_end(&mut body)?;
    Ok(body)
}
