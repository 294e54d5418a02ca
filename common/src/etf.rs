//! Erlang External Term Format, the `application/vnd.hex+erlang` media type (protocol doc §7).
//!
//! The API speaks it both ways: clients send retire and key bodies as terms and decode every
//! response whose content type says so. [`decode`] is a bounded parser for untrusted bytes
//! (depth, element count and total size are capped, atoms are never created, compressed terms
//! are refused); [`encode`] writes what OTP's `term_to_binary/1` writes for the same value,
//! except that atoms use `SMALL_ATOM_UTF8_EXT` (accepted by every client, §7).

use std::fmt;

const VERSION: u8 = 131;
const NEW_FLOAT: u8 = 70;
const SMALL_INTEGER: u8 = 97;
const INTEGER: u8 = 98;
const ATOM: u8 = 100;
const SMALL_TUPLE: u8 = 104;
const LARGE_TUPLE: u8 = 105;
const NIL: u8 = 106;
const STRING: u8 = 107;
const LIST: u8 = 108;
const BINARY: u8 = 109;
const SMALL_BIG: u8 = 110;
const LARGE_BIG: u8 = 111;
const MAP: u8 = 116;
const SMALL_ATOM: u8 = 115;
const ATOM_UTF8: u8 = 118;
const SMALL_ATOM_UTF8: u8 = 119;
const COMPRESSED: u8 = 80;

/// Nesting deeper than this is refused.
pub const MAX_DEPTH: usize = 64;

/// A term as the Hex API uses them: maps with binary keys, lists, tuples, binaries,
/// integers, floats and a few atoms.
#[derive(Clone, PartialEq)]
pub enum Term {
    /// A binary (`<<"text">>`): every string in the API.
    Binary(Vec<u8>),
    /// An atom, by name (`true`, `false`, `nil`, or any other the peer sent).
    Atom(String),
    /// An integer that fits in i64.
    Int(i64),
    /// A float.
    Float(f64),
    /// A proper list.
    List(Vec<Term>),
    /// A tuple.
    Tuple(Vec<Term>),
    /// A map, pairs in the order given.
    Map(Vec<(Term, Term)>),
}

impl fmt::Debug for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Binary(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "<<{s:?}>>"),
                Err(_) => write!(f, "<<{b:?}>>"),
            },
            Term::Atom(a) => write!(f, "{a}"),
            Term::Int(i) => write!(f, "{i}"),
            Term::Float(x) => write!(f, "{x:?}"),
            Term::List(l) => f.debug_list().entries(l).finish(),
            Term::Tuple(t) => {
                write!(f, "{{")?;
                for (i, e) in t.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{e:?}")?;
                }
                write!(f, "}}")
            }
            Term::Map(m) => {
                write!(f, "#{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k:?} => {v:?}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

impl Term {
    /// A binary from text.
    pub fn bin(s: impl AsRef<str>) -> Term {
        Term::Binary(s.as_ref().as_bytes().to_vec())
    }
    /// `true` / `false`.
    pub fn bool(b: bool) -> Term {
        Term::Atom(if b { "true" } else { "false" }.to_owned())
    }
    /// The atom `nil` (Elixir's null).
    pub fn nil() -> Term {
        Term::Atom("nil".to_owned())
    }
    /// A map with binary keys.
    pub fn map<K: AsRef<str>>(pairs: impl IntoIterator<Item = (K, Term)>) -> Term {
        Term::Map(pairs.into_iter().map(|(k, v)| (Term::bin(k), v)).collect())
    }
    /// The value under binary key `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Term> {
        match self {
            Term::Map(m) => m
                .iter()
                .find(|(k, _)| matches!(k, Term::Binary(b) if b == key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    /// The text of a binary (UTF-8), if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Term::Binary(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The JSON rendering used when a client does not ask for Erlang terms: binaries become
    /// strings (lossy for non-UTF-8), `nil` null, booleans booleans, tuples arrays, maps objects
    /// keyed by the key's text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Term::Binary(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            Term::Atom(a) => match a.as_str() {
                "nil" | "undefined" => Value::Null,
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                other => Value::String(other.to_owned()),
            },
            Term::Int(i) => Value::from(*i),
            Term::Float(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
            Term::List(l) | Term::Tuple(l) => Value::Array(l.iter().map(Term::to_json).collect()),
            Term::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Term::Binary(b) => String::from_utf8_lossy(b).into_owned(),
                            Term::Atom(a) => a.clone(),
                            other => format!("{other:?}"),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }
}

/// Why a body is not an acceptable term.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtfError {
    #[error("empty body")]
    Empty,
    #[error("not an Erlang term: first byte {0} is not 131")]
    BadVersion(u8),
    #[error("compressed terms are not accepted")]
    Compressed,
    #[error("unexpected end of term at byte {0}")]
    Truncated(usize),
    #[error("unsupported term tag {tag} at byte {at}")]
    UnsupportedTag { tag: u8, at: usize },
    #[error("term nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("integer too large")]
    IntegerTooLarge,
    #[error("atom is not valid text")]
    BadAtom,
    #[error("{0} trailing bytes after the term")]
    Trailing(usize),
}

/// Decodes one term from `bytes` (which must start with the version byte 131 and hold
/// nothing after the term). Every length is checked against the bytes actually present
/// before anything is allocated, so a hostile length cannot make it reserve memory.
pub fn decode(bytes: &[u8]) -> Result<Term, EtfError> {
    let (&first, rest) = bytes.split_first().ok_or(EtfError::Empty)?;
    if first != VERSION {
        return Err(EtfError::BadVersion(first));
    }
    if rest.first() == Some(&COMPRESSED) {
        return Err(EtfError::Compressed);
    }
    let mut r = Reader { buf: bytes, pos: 1 };
    let term = r.term(0)?;
    if r.pos != bytes.len() {
        return Err(EtfError::Trailing(bytes.len() - r.pos));
    }
    Ok(term)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EtfError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(EtfError::Truncated(self.buf.len()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, EtfError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, EtfError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Result<usize, EtfError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    /// A count of elements that each take at least `min` bytes must fit in what is left.
    fn count(&self, n: usize, min: usize) -> Result<usize, EtfError> {
        let left = self.buf.len().saturating_sub(self.pos);
        if n.saturating_mul(min) > left {
            return Err(EtfError::Truncated(self.buf.len()));
        }
        Ok(n)
    }
    fn atom(&mut self, len: usize) -> Result<Term, EtfError> {
        let b = self.take(len)?;
        // ATOM_EXT is Latin-1; every atom the API uses is ASCII.
        let s = std::str::from_utf8(b).map_err(|_| EtfError::BadAtom)?;
        Ok(Term::Atom(s.to_owned()))
    }
    fn big(&mut self, n: usize) -> Result<Term, EtfError> {
        let sign = self.u8()?;
        let digits = self.take(n)?;
        let mut v: i128 = 0;
        for (i, &d) in digits.iter().enumerate() {
            if d == 0 {
                continue;
            }
            if i >= 8 {
                return Err(EtfError::IntegerTooLarge);
            }
            v |= i128::from(d) << (8 * i);
        }
        let v = if sign == 0 { v } else { -v };
        i64::try_from(v)
            .map(Term::Int)
            .map_err(|_| EtfError::IntegerTooLarge)
    }
    fn term(&mut self, depth: usize) -> Result<Term, EtfError> {
        if depth > MAX_DEPTH {
            return Err(EtfError::TooDeep);
        }
        let at = self.pos;
        let tag = self.u8()?;
        Ok(match tag {
            SMALL_INTEGER => Term::Int(i64::from(self.u8()?)),
            INTEGER => {
                let b = self.take(4)?;
                Term::Int(i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            }
            NEW_FLOAT => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Term::Float(f64::from_be_bytes(a))
            }
            ATOM | ATOM_UTF8 => {
                let n = self.u16()?;
                self.atom(n)?
            }
            SMALL_ATOM | SMALL_ATOM_UTF8 => {
                let n = usize::from(self.u8()?);
                self.atom(n)?
            }
            SMALL_TUPLE | LARGE_TUPLE => {
                let n = if tag == SMALL_TUPLE {
                    usize::from(self.u8()?)
                } else {
                    self.u32()?
                };
                let n = self.count(n, 1)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.term(depth + 1)?);
                }
                Term::Tuple(v)
            }
            NIL => Term::List(Vec::new()),
            STRING => {
                let n = self.u16()?;
                Term::List(
                    self.take(n)?
                        .iter()
                        .map(|&b| Term::Int(i64::from(b)))
                        .collect(),
                )
            }
            LIST => {
                let n = self.u32()?;
                let n = self.count(n, 1)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.term(depth + 1)?);
                }
                // Only proper lists: the tail must be NIL.
                let tail_at = self.pos;
                match self.u8()? {
                    NIL => {}
                    t => {
                        return Err(EtfError::UnsupportedTag {
                            tag: t,
                            at: tail_at,
                        });
                    }
                }
                Term::List(v)
            }
            BINARY => {
                let n = self.u32()?;
                Term::Binary(self.take(n)?.to_vec())
            }
            SMALL_BIG => {
                let n = usize::from(self.u8()?);
                self.big(n)?
            }
            LARGE_BIG => {
                let n = self.u32()?;
                self.big(n)?
            }
            MAP => {
                let n = self.u32()?;
                let n = self.count(n, 2)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.term(depth + 1)?;
                    let val = self.term(depth + 1)?;
                    v.push((k, val));
                }
                Term::Map(v)
            }
            other => return Err(EtfError::UnsupportedTag { tag: other, at }),
        })
    }
}

/// Encodes a term as `term_to_binary/1` would (with UTF-8 atoms).
pub fn encode(term: &Term) -> Vec<u8> {
    let mut out = vec![VERSION];
    write(term, &mut out);
    out
}

fn write_len(out: &mut Vec<u8>, n: usize) {
    // Lengths of what we encode come from our own values, far below 4 GiB.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn write(term: &Term, out: &mut Vec<u8>) {
    match term {
        Term::Binary(b) => {
            out.push(BINARY);
            write_len(out, b.len());
            out.extend_from_slice(b);
        }
        Term::Atom(a) => {
            // SMALL_ATOM_UTF8 up to 255 bytes, ATOM_UTF8 (16-bit length) above, as OTP does:
            // a decoded atom (at most 65535 bytes) always round-trips. Longer text is cut at
            // a character boundary.
            let mut n = a.len().min(usize::from(u16::MAX));
            while !a.is_char_boundary(n) {
                n -= 1;
            }
            let b = a.as_bytes().get(..n).unwrap_or_default();
            if let Ok(len) = u8::try_from(n) {
                out.push(SMALL_ATOM_UTF8);
                out.push(len);
            } else {
                out.push(ATOM_UTF8);
                out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
            }
            out.extend_from_slice(b);
        }
        Term::Int(i) => {
            if (0..=255).contains(i) {
                out.push(SMALL_INTEGER);
                out.push(*i as u8);
            } else if let Ok(v) = i32::try_from(*i) {
                out.push(INTEGER);
                out.extend_from_slice(&v.to_be_bytes());
            } else {
                out.push(SMALL_BIG);
                let mag = i.unsigned_abs().to_le_bytes();
                let n = 8 - mag.iter().rev().take_while(|&&b| b == 0).count();
                out.push(n as u8);
                out.push(u8::from(*i < 0));
                out.extend_from_slice(&mag[..n]);
            }
        }
        Term::Float(x) => {
            out.push(NEW_FLOAT);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Term::List(l) => {
            if l.is_empty() {
                out.push(NIL);
                return;
            }
            out.push(LIST);
            write_len(out, l.len());
            for e in l {
                write(e, out);
            }
            out.push(NIL);
        }
        Term::Tuple(t) => {
            if t.len() <= 255 {
                out.push(SMALL_TUPLE);
                out.push(t.len() as u8);
            } else {
                out.push(LARGE_TUPLE);
                write_len(out, t.len());
            }
            for e in t {
                write(e, out);
            }
        }
        Term::Map(m) => {
            out.push(MAP);
            write_len(out, m.len());
            for (k, v) in m {
                write(k, out);
                write(v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn decodes_otp25_examples_from_the_protocol_doc() {
        // #{<<"message">> => <<"ok">>, <<"status">> => 404}
        let b = unhex(
            "83 74 00000002 6d 00000007 6d657373616765 6d 00000002 6f6b \
             6d 00000006 737461747573 62 00000194",
        );
        let t = decode(&b).unwrap();
        assert_eq!(t.get("message").and_then(Term::as_str), Some("ok"));
        assert_eq!(t.get("status"), Some(&Term::Int(404)));
        // [true, nil, 1.5, 70000, <<"a">>] with OTP 25's ATOM_EXT atoms.
        let b = unhex(
            "83 6c 00000005 64 0004 74727565 64 0003 6e696c 46 3ff8000000000000 \
             62 00011170 6d 00000001 61 6a",
        );
        let t = decode(&b).unwrap();
        assert_eq!(
            t,
            Term::List(vec![
                Term::bool(true),
                Term::nil(),
                Term::Float(1.5),
                Term::Int(70000),
                Term::bin("a"),
            ])
        );
    }

    #[test]
    fn encodes_like_term_to_binary() {
        let t = Term::map([("message", Term::bin("ok")), ("status", Term::Int(404))]);
        assert_eq!(
            encode(&t),
            unhex(
                "83 74 00000002 6d 00000007 6d657373616765 6d 00000002 6f6b \
                 6d 00000006 737461747573 62 00000194"
            )
        );
        assert_eq!(encode(&Term::List(vec![])), unhex("83 6a"));
        assert_eq!(encode(&Term::bool(true)), unhex("83 77 04 74727565"));
        for i in [
            0,
            255,
            256,
            -1,
            i64::from(i32::MAX) + 1,
            i64::MIN + 1,
            i64::MAX,
        ] {
            assert_eq!(decode(&encode(&Term::Int(i))).unwrap(), Term::Int(i), "{i}");
        }
    }

    #[test]
    fn refuses_hostile_input() {
        assert_eq!(decode(&[]), Err(EtfError::Empty));
        assert_eq!(decode(&[1, 2]), Err(EtfError::BadVersion(1)));
        assert_eq!(decode(&[131, 80, 0, 0, 0, 1]), Err(EtfError::Compressed));
        // A list that claims 4 billion elements in 6 bytes.
        assert!(matches!(
            decode(&unhex("83 6c ffffffff 6a")),
            Err(EtfError::Truncated(_))
        ));
        // A binary longer than the body.
        assert!(matches!(
            decode(&unhex("83 6d 00000010 61")),
            Err(EtfError::Truncated(_))
        ));
        // Deep nesting.
        let mut deep = vec![131];
        for _ in 0..1000 {
            deep.extend_from_slice(&[104, 1]);
        }
        deep.push(106);
        assert_eq!(decode(&deep), Err(EtfError::TooDeep));
        // Improper list, pid tag, trailing bytes.
        assert!(matches!(
            decode(&unhex("83 6c 00000001 61 01 61 02")),
            Err(EtfError::UnsupportedTag { tag: 97, .. })
        ));
        assert!(matches!(
            decode(&unhex("83 67 00")),
            Err(EtfError::UnsupportedTag { tag: 103, .. })
        ));
        assert_eq!(decode(&unhex("83 6a 00")), Err(EtfError::Trailing(1)));
        // A big integer beyond i64.
        assert_eq!(
            decode(&unhex("83 6e 09 00 000000000000000001")),
            Err(EtfError::IntegerTooLarge)
        );
    }

    #[test]
    fn renders_json() {
        let t = Term::map([
            ("a", Term::nil()),
            ("b", Term::List(vec![Term::bool(false), Term::Int(3)])),
        ]);
        assert_eq!(t.to_json().to_string(), r#"{"a":null,"b":[false,3]}"#);
    }
}
