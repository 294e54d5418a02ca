//! Reading the lock files of the two Hex clients, to know exactly which releases a build needs
//! (protocol doc §3.4, §8.1, §12):
//!
//! - `mix.lock`, an Elixir term file: `%{"app": {:hex, :name, "1.0.0", "inner", [:mix],
//!   [deps...], "repo", "outer"}, ...}`. Read by a small bounded Elixir term reader (maps,
//!   tuples, lists, keyword lists, atoms, strings, integers); entries that are not `:hex` (git,
//!   path) are skipped.
//! - `rebar.lock`, an Erlang term file read with [`crate::tarball::term::parse_terms`]:
//!   `{"1.2.0", [{<<"app">>, {pkg, <<"name">>, <<"1.0.0">>}, Level}, ...]}.` followed by
//!   `[{pkg_hash, [...]}, {pkg_hash_ext, [...]}].`, or the old form, a bare list. Entries that
//!   are not `pkg` (git) are skipped; a `pkg` without a repository is from `hexpm`.
//!
//! Checksums come out as lowercase hex (rebar3 writes them uppercase).

use crate::tarball::term::{Term, parse_terms};

/// Largest lock file accepted.
pub const MAX_LOCK_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting accepted in a `mix.lock`.
pub const MAX_DEPTH: usize = 64;

/// One locked Hex release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    /// The dependency's (OTP application) name, the lock's key.
    pub app: String,
    /// The Hex package name (differs from `app` for `hex: :other` dependencies).
    pub name: String,
    /// The exact version.
    pub version: String,
    /// The repository the client fetched it from (`hexpm` when the lock names none).
    pub repo: String,
    /// SHA-256 of the tarball's contents (`CHECKSUM`, mix's 4th field / rebar3's `pkg_hash`),
    /// lowercase hex, when the lock records it.
    pub inner_checksum: Option<String>,
    /// SHA-256 of the tarball file (mix's 8th field / rebar3's `pkg_hash_ext`), lowercase hex,
    /// when the lock records it.
    pub outer_checksum: Option<String>,
}

/// Which client wrote a lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFormat {
    /// `mix.lock`.
    Mix,
    /// `rebar.lock`.
    Rebar,
}

/// Why a lock file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockfileError {
    /// Over [`MAX_LOCK_BYTES`].
    #[error("lock file is larger than {MAX_LOCK_BYTES} bytes")]
    TooLarge,
    /// Not valid term syntax (with the position when known).
    #[error("lock file syntax error at byte {offset}: {message}")]
    Syntax {
        /// Byte offset (for `mix.lock`) or 0 with the position in `message` (for `rebar.lock`).
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// Well-formed terms of the wrong shape (names the entry when it can).
    #[error("unexpected lock file content: {0}")]
    Shape(String),
}

/// Guesses the format from the first significant character: `%` is a `mix.lock`, anything
/// else a `rebar.lock`.
pub fn detect(bytes: &[u8]) -> LockFormat {
    let first = bytes
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
        .unwrap_or(b'{');
    if first == b'%' {
        LockFormat::Mix
    } else {
        LockFormat::Rebar
    }
}

/// Parses a lock file of either format (see [`detect`]).
///
/// # Errors
/// As [`parse_mix_lock`] and [`parse_rebar_lock`].
pub fn parse(bytes: &[u8]) -> Result<Vec<LockedPackage>, LockfileError> {
    match detect(bytes) {
        LockFormat::Mix => parse_mix_lock(bytes),
        LockFormat::Rebar => parse_rebar_lock(bytes),
    }
}

// ---------------------------------------------------------------------------------------------
// mix.lock

/// An Elixir term, as far as `mix.lock` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ex {
    Str(String),
    Atom(String),
    Int(i64),
    List(Vec<Ex>),
    Tuple(Vec<Ex>),
    Map(Vec<(Ex, Ex)>),
}

struct ExParser<'a> {
    s: &'a [u8],
    pos: usize,
}

type ExResult<T> = Result<T, LockfileError>;

impl<'a> ExParser<'a> {
    fn err<T>(&self, message: impl Into<String>) -> ExResult<T> {
        Err(LockfileError::Syntax {
            offset: self.pos,
            message: message.into(),
        })
    }

    fn skip_ws(&mut self) {
        while let Some(&c) = self.s.get(self.pos) {
            if c.is_ascii_whitespace() {
                self.pos += 1;
            } else if c == b'#' {
                while let Some(&c) = self.s.get(self.pos) {
                    if c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> ExResult<()> {
        if self.eat(c) {
            Ok(())
        } else {
            self.err(format!("expected {:?}", char::from(c)))
        }
    }

    fn value(&mut self, depth: usize) -> ExResult<Ex> {
        if depth > MAX_DEPTH {
            return self.err(format!("nesting deeper than {MAX_DEPTH}"));
        }
        match self.peek() {
            None => self.err("unexpected end of input"),
            Some(b'%') => {
                self.pos += 1;
                self.expect(b'{')?;
                self.map(depth)
            }
            Some(b'{') => {
                self.pos += 1;
                let items = self.seq(b'}', depth)?;
                Ok(Ex::Tuple(items))
            }
            Some(b'[') => {
                self.pos += 1;
                let items = self.seq(b']', depth)?;
                Ok(Ex::List(items))
            }
            Some(b'"') => Ok(Ex::Str(self.string()?)),
            Some(b':') => {
                self.pos += 1;
                if self.s.get(self.pos) == Some(&b'"') {
                    Ok(Ex::Atom(self.string()?))
                } else {
                    Ok(Ex::Atom(self.ident()?))
                }
            }
            Some(c) if c.is_ascii_digit() || c == b'-' => self.int(),
            Some(c) if c.is_ascii_lowercase() || c == b'_' => {
                let id = self.ident()?;
                match id.as_str() {
                    "true" | "false" | "nil" => Ok(Ex::Atom(id)),
                    _ => self.err(format!("unexpected identifier {id:?}")),
                }
            }
            Some(c) => self.err(format!("unexpected character {:?}", char::from(c))),
        }
    }

    /// Items up to `close`, with keyword entries (`key: value`) turned into 2-tuples; a
    /// trailing comma is allowed.
    fn seq(&mut self, close: u8, depth: usize) -> ExResult<Vec<Ex>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(items);
            }
            if let Some(key) = self.keyword_key()? {
                let v = self.value(depth + 1)?;
                items.push(Ex::Tuple(vec![Ex::Atom(key), v]));
            } else {
                items.push(self.value(depth + 1)?);
            }
            if !self.eat(b',') {
                self.expect(close)?;
                return Ok(items);
            }
        }
    }

    fn map(&mut self, depth: usize) -> ExResult<Ex> {
        let mut pairs = Vec::new();
        loop {
            if self.eat(b'}') {
                return Ok(Ex::Map(pairs));
            }
            let (k, v) = if let Some(key) = self.keyword_key()? {
                (Ex::Atom(key), self.value(depth + 1)?)
            } else {
                let k = self.value(depth + 1)?;
                if !(self.eat(b'=') && self.s.get(self.pos) == Some(&b'>')) {
                    return self.err("expected => in map");
                }
                self.pos += 1;
                (k, self.value(depth + 1)?)
            };
            pairs.push((k, v));
            if !self.eat(b',') {
                self.expect(b'}')?;
                return Ok(Ex::Map(pairs));
            }
        }
    }

    /// `key:` or `"key":` followed by whitespace (a keyword key); restores the position and
    /// returns `None` otherwise.
    fn keyword_key(&mut self) -> ExResult<Option<String>> {
        let start = self.pos;
        let key = match self.peek() {
            Some(b'"') => self.string()?,
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.ident()?,
            _ => return Ok(None),
        };
        let colon = self.s.get(self.pos) == Some(&b':');
        let then_ws = self
            .s
            .get(self.pos + 1)
            .is_some_and(|c| c.is_ascii_whitespace());
        if colon && then_ws {
            self.pos += 1;
            Ok(Some(key))
        } else {
            self.pos = start;
            Ok(None)
        }
    }

    fn ident(&mut self) -> ExResult<String> {
        let start = self.pos;
        while let Some(&c) = self.s.get(self.pos) {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'@' {
                self.pos += 1;
            } else {
                break;
            }
        }
        // Atoms may end in ? or !.
        if matches!(self.s.get(self.pos), Some(b'?' | b'!')) {
            self.pos += 1;
        }
        if self.pos == start {
            return self.err("expected a name");
        }
        Ok(String::from_utf8_lossy(self.s.get(start..self.pos).unwrap_or_default()).into_owned())
    }

    fn int(&mut self) -> ExResult<Ex> {
        let start = self.pos;
        if self.s.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        while let Some(&c) = self.s.get(self.pos) {
            if c.is_ascii_digit() || c == b'_' {
                self.pos += 1;
            } else {
                break;
            }
        }
        let text: String = String::from_utf8_lossy(self.s.get(start..self.pos).unwrap_or_default())
            .chars()
            .filter(|&c| c != '_')
            .collect();
        match text.parse() {
            Ok(n) => Ok(Ex::Int(n)),
            Err(_) => self.err("integer out of range or malformed"),
        }
    }

    fn string(&mut self) -> ExResult<String> {
        // At the opening quote.
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.pos).copied() {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = self.s.get(self.pos + 1).copied();
                    let byte = match c {
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(b'r') => b'\r',
                        Some(b'\\') => b'\\',
                        Some(b'"') => b'"',
                        Some(b'#') => b'#',
                        _ => return self.err("unsupported escape sequence"),
                    };
                    out.push(byte);
                    self.pos += 2;
                }
                Some(b'#') if self.s.get(self.pos + 1) == Some(&b'{') => {
                    return self.err("string interpolation is not allowed in a lock file");
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out).or_else(|_| self.err("string is not UTF-8"))
    }
}

fn ex_text(t: &Ex) -> Option<&str> {
    match t {
        Ex::Str(s) | Ex::Atom(s) => Some(s),
        _ => None,
    }
}

/// Parses a `mix.lock`.
///
/// # Errors
/// [`LockfileError::TooLarge`], [`LockfileError::Syntax`] (with the byte offset), or
/// [`LockfileError::Shape`] when the file is not one map of `:hex` (or other SCM) tuples.
pub fn parse_mix_lock(bytes: &[u8]) -> Result<Vec<LockedPackage>, LockfileError> {
    if bytes.len() > MAX_LOCK_BYTES {
        return Err(LockfileError::TooLarge);
    }
    let mut p = ExParser { s: bytes, pos: 0 };
    let top = p.value(0)?;
    if p.peek().is_some() {
        return p.err("trailing content after the lock map");
    }
    let Ex::Map(pairs) = top else {
        return Err(LockfileError::Shape("mix.lock is not a map".into()));
    };
    let mut out = Vec::new();
    for (k, v) in &pairs {
        let app = ex_text(k)
            .ok_or_else(|| LockfileError::Shape("a mix.lock key is not a string".into()))?;
        let Ex::Tuple(items) = v else {
            return Err(LockfileError::Shape(format!(
                "entry {app:?} is not a tuple"
            )));
        };
        if items.first() != Some(&Ex::Atom("hex".into())) {
            continue; // git, path, ...
        }
        let field = |i: usize| items.get(i).and_then(ex_text);
        let bad = |what: &str| LockfileError::Shape(format!("entry {app:?}: {what}"));
        let name = field(1).ok_or_else(|| bad("no package name"))?;
        let version = field(2).ok_or_else(|| bad("no version"))?;
        let inner = field(3).map(str::to_ascii_lowercase);
        // Older locks stop after the deps; the repo and outer checksum came with Hex 0.18/0.20.
        let repo = field(6).unwrap_or("hexpm");
        let outer = field(7).map(str::to_ascii_lowercase);
        out.push(LockedPackage {
            app: app.to_owned(),
            name: name.to_owned(),
            version: version.to_owned(),
            repo: repo.to_owned(),
            inner_checksum: inner,
            outer_checksum: outer,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// rebar.lock

fn text(t: &Term) -> Option<String> {
    match t {
        Term::Atom(a) => Some(a.clone()),
        other => other.as_text(),
    }
}

/// Parses a `rebar.lock` (versioned `{"1.2.0", Deps}.` + hashes, or the old bare list).
///
/// # Errors
/// [`LockfileError::TooLarge`], [`LockfileError::Syntax`] (position in the message), or
/// [`LockfileError::Shape`].
pub fn parse_rebar_lock(bytes: &[u8]) -> Result<Vec<LockedPackage>, LockfileError> {
    if bytes.len() > MAX_LOCK_BYTES {
        return Err(LockfileError::TooLarge);
    }
    let terms = parse_terms(bytes).map_err(|e| LockfileError::Syntax {
        offset: 0,
        message: e.to_string(),
    })?;
    let mut it = terms.iter();
    let deps = match it.next() {
        Some(Term::Tuple(t)) => match t.as_slice() {
            [_, Term::List(deps)] => deps,
            _ => {
                return Err(LockfileError::Shape(
                    "the first term is not {Version, Deps}".into(),
                ));
            }
        },
        Some(Term::List(deps)) => deps,
        Some(_) => {
            return Err(LockfileError::Shape(
                "the first term is not {Version, Deps} or a list".into(),
            ));
        }
        None => return Ok(Vec::new()),
    };
    let mut hashes: Vec<(String, String, String)> = Vec::new(); // (kind, app, hex)
    if let Some(Term::List(props)) = it.next() {
        for prop in props {
            if let Term::Tuple(kv) = prop
                && let [Term::Atom(kind), Term::List(entries)] = kv.as_slice()
            {
                for e in entries {
                    if let Term::Tuple(pair) = e
                        && let [a, h] = pair.as_slice()
                        && let (Some(a), Some(h)) = (text(a), text(h))
                    {
                        hashes.push((kind.clone(), a, h.to_ascii_lowercase()));
                    }
                }
            }
        }
    }
    let hash = |kind: &str, app: &str| {
        hashes
            .iter()
            .find(|(k, a, _)| k == kind && a == app)
            .map(|(_, _, h)| h.clone())
    };
    let mut out = Vec::new();
    for d in deps {
        let Term::Tuple(parts) = d else {
            return Err(LockfileError::Shape("a dependency is not a tuple".into()));
        };
        let (Some(app), Some(Term::Tuple(source))) = (parts.first().and_then(text), parts.get(1))
        else {
            return Err(LockfileError::Shape(
                "a dependency is not {Name, Source, Level}".into(),
            ));
        };
        if source.first() != Some(&Term::Atom("pkg".into())) {
            continue; // git, ...
        }
        let bad = |what: &str| LockfileError::Shape(format!("dependency {app:?}: {what}"));
        let name = source
            .get(1)
            .and_then(text)
            .ok_or_else(|| bad("no package name"))?;
        let version = source
            .get(2)
            .and_then(text)
            .ok_or_else(|| bad("no version"))?;
        let repo = source
            .get(3)
            .and_then(text)
            .unwrap_or_else(|| "hexpm".into());
        out.push(LockedPackage {
            inner_checksum: hash("pkg_hash", &app),
            outer_checksum: hash("pkg_hash_ext", &app),
            app,
            name,
            version,
            repo,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(crate::testing::fixtures_dir().join("verify").join(name)).unwrap()
    }

    fn pkg(
        app: &str,
        name: &str,
        version: &str,
        repo: &str,
        inner: &str,
        outer: &str,
    ) -> LockedPackage {
        LockedPackage {
            app: app.into(),
            name: name.into(),
            version: version.into(),
            repo: repo.into(),
            inner_checksum: Some(inner.into()),
            outer_checksum: Some(outer.into()),
        }
    }

    #[test]
    fn reads_the_real_mix_lock_with_an_aliased_app() {
        let b = fixture("mix_fx_json.mix.lock");
        assert_eq!(detect(&b), LockFormat::Mix);
        let got = parse(&b).unwrap();
        assert_eq!(
            got,
            vec![
                pkg(
                    "fx_alias_app",
                    "fx_alias",
                    "0.1.0",
                    "fixture_repo",
                    "15e1d540c611c74a1b482cf3be111f0ed81144bb7d5786d92c31489023214811",
                    "b5caa354b75c0e085a92104adccebe7195c11ebf36d3ca6e121b75d8f0d1981b"
                ),
                pkg(
                    "fx_core",
                    "fx_core",
                    "0.2.0",
                    "fixture_repo",
                    "8f306a7d6c82bd2f169ddea13936bfa65f3d95113da2f0ffaedb069d2758f927",
                    "8249223f919ce8d128d6b99f1cf0209379a2338157bb625d73a9ad86c230a0b8"
                ),
                pkg(
                    "fx_json",
                    "fx_json",
                    "0.3.0",
                    "fixture_repo",
                    "4198a2f48701544c23b711d597dd1d3b7bee2c95c0c9ba4d4bb6b9d406557122",
                    "9926e8fd81f9628d811de66f4621f223d1fe60580fd1fe509f1956b56f4c1ba6"
                ),
            ]
        );
    }

    #[test]
    fn reads_every_mix_lock_fixture() {
        let misc = parse(&fixture("mix_misc.mix.lock")).unwrap();
        let names: Vec<_> = misc.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fx_alias",
                "fx_core",
                "fx_erl",
                "fx_json",
                "fx_opt",
                "fx_unicode"
            ]
        );
        let pre = parse(&fixture("mix_prerelease.mix.lock")).unwrap();
        assert_eq!(pre.len(), 1);
        assert_eq!(pre[0].version, "1.0.0-rc.1");
    }

    #[test]
    fn reads_the_real_rebar_lock_with_uppercase_hashes() {
        let b = fixture("rebar3_fx_json.rebar.lock");
        assert_eq!(detect(&b), LockFormat::Rebar);
        let got = parse(&b).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0],
            pkg(
                "fx_alias_app",
                "fx_alias",
                "0.1.0",
                "hexpm",
                "15e1d540c611c74a1b482cf3be111f0ed81144bb7d5786d92c31489023214811",
                "b5caa354b75c0e085a92104adccebe7195c11ebf36d3ca6e121b75d8f0d1981b"
            )
        );
        let erl = parse(&fixture("rebar3_fx_erl.rebar.lock")).unwrap();
        let v: Vec<_> = erl
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(v, [("fx_core", "0.2.0"), ("fx_erl", "0.1.0")]);
    }

    #[test]
    fn skips_git_entries_and_reads_old_forms() {
        let mix = br#"%{
  "a": {:git, "https://x/a.git", "abc", []},
  "b": {:hex, :b, "1.0.0", "AA", [:mix], [{:c, "~> 1.0", [hex: :c]}]},
}"#;
        let got = parse(mix).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].repo, "hexpm");
        assert_eq!(got[0].inner_checksum.as_deref(), Some("aa"));
        assert_eq!(got[0].outer_checksum, None);
        let old =
            b"[{<<\"x\">>,{pkg,<<\"x\">>,<<\"2.0.0\">>},0},{<<\"g\">>,{git,\"u\",{ref,\"r\"}},0}].";
        let got = parse(old).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].name.as_str(), got[0].outer_checksum.clone()),
            ("x", None)
        );
    }

    #[test]
    fn refuses_broken_and_hostile_input() {
        assert!(matches!(
            parse(b"%{\"a\": {:hex, :a, \"1\""),
            Err(LockfileError::Syntax { .. })
        ));
        assert!(matches!(
            parse(b"%{\"a\": \"#{System.cmd}\"}"),
            Err(LockfileError::Syntax { .. })
        ));
        assert!(matches!(
            parse(b"%{\"a\": 1}"),
            Err(LockfileError::Shape(_))
        ));
        let deep = format!("%{{\"a\": {}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(LockfileError::Syntax { .. })
        ));
        assert!(matches!(
            parse(b"{\"1.2.0\", foo}."),
            Err(LockfileError::Shape(_))
        ));
        let big = vec![b' '; MAX_LOCK_BYTES + 1];
        assert_eq!(parse(&big), Err(LockfileError::TooLarge));
    }
}
