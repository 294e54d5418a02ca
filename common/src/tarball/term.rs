//! A bounded reader and writer for the Erlang term text found in `metadata.config`.
//!
//! It accepts what hex_core's `safe_erl_term` lexer plus `erl_parse:parse_term` accept
//! (protocol doc §4.3): binaries (`<<"...">>`, `<<"..."/utf8>>`, byte lists
//! `<<90,195,188>>`, mixed segments), strings `"..."` with Erlang escapes, bare and
//! quoted atoms, integers (optional sign, optional `Radix#Digits`), lists, tuples and
//! maps `#{K => V}`, `%` comments; every term ends with `.`. Improper lists (`[H|T]`),
//! floats, characters (`$a`), variables and expressions are refused. Nesting is capped at
//! [`MAX_DEPTH`] so hostile input cannot exhaust the stack. Errors carry a 1-based line
//! and column (in characters).
//!
//! Input that is not valid UTF-8 is read as Latin-1, as hex_core does.

use std::fmt;

/// Deepest nesting of lists, tuples, maps and binaries accepted.
pub const MAX_DEPTH: usize = 64;

/// One Erlang term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// `<<...>>`: raw bytes.
    Binary(Vec<u8>),
    /// `"..."`: a string literal (an Erlang char list).
    Str(String),
    /// A bare or quoted atom, without quotes (`true`, `false`, `nil` are atoms too).
    Atom(String),
    /// An integer that fits in `i64`.
    Integer(i64),
    /// `[...]`.
    List(Vec<Term>),
    /// `{...}`.
    Tuple(Vec<Term>),
    /// `#{K => V, ...}`, pairs in source order.
    Map(Vec<(Term, Term)>),
}

impl Term {
    /// Text of a binary (UTF-8, or Latin-1 when not valid UTF-8, as hex_core decodes)
    /// or of a string literal; `None` for other terms.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Term::Binary(b) => Some(bytes_to_text(b)),
            Term::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// `Some(true)` / `Some(false)` for the atoms `true` / `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Term::Atom(a) if a == "true" => Some(true),
            Term::Atom(a) if a == "false" => Some(false),
            _ => None,
        }
    }

    /// A binary holding `s` as UTF-8.
    pub fn binary(s: &str) -> Term {
        Term::Binary(s.as_bytes().to_vec())
    }
}

/// Bytes as text: UTF-8 when valid, else Latin-1 (every byte is one code point).
pub fn bytes_to_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => b.iter().map(|&c| char::from(c)).collect(),
    }
}

/// A syntax error at a position of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct TermError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
    /// What is wrong there.
    pub kind: TermErrorKind,
}

/// The kinds of [`TermError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermErrorKind {
    /// A character no token starts with (e.g. `:` in JSON, `|`, `$`, uppercase variables).
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// A valid token in the wrong place.
    #[error("unexpected {found}, expected {expected}")]
    UnexpectedToken {
        found: String,
        expected: &'static str,
    },
    /// Input ended inside a term.
    #[error("unexpected end of input, expected {expected}")]
    UnexpectedEof { expected: &'static str },
    /// A string or quoted atom without its closing quote.
    #[error("unterminated quoted text")]
    Unterminated,
    /// A malformed `\` escape.
    #[error("invalid escape sequence")]
    BadEscape,
    /// An integer outside `i64`, or a malformed radix integer.
    #[error("integer out of range or malformed")]
    BadInteger,
    /// A binary segment value outside 0..=255.
    #[error("binary segment value {0} is not a byte")]
    ByteOutOfRange(i64),
    /// A binary segment type other than `/utf8`, or a `/utf8` value that is no code point.
    #[error("unsupported binary segment")]
    BadSegment,
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
}

/// Parses a sequence of `Term.` forms (what `file:consult/1` reads).
/// `Err` is the first syntax error, with its position.
pub fn parse_terms(input: &[u8]) -> Result<Vec<Term>, TermError> {
    let chars: Vec<char> = match std::str::from_utf8(input) {
        Ok(s) => s.chars().collect(),
        Err(_) => input.iter().map(|&b| char::from(b)).collect(),
    };
    let mut p = Parser {
        lx: Lexer {
            chars,
            pos: 0,
            line: 1,
            col: 1,
        },
        peeked: None,
    };
    let mut out = Vec::new();
    loop {
        let t = p.peek()?;
        if t.tok == Tok::Eof {
            return Ok(out);
        }
        out.push(p.term(0)?);
        p.expect(Tok::Dot, "'.'")?;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Atom(String),
    Str(String),
    Int(i64),
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Hash,
    Plus,
    Minus,
    LtLt,
    GtGt,
    Arrow,
    Dot,
    Slash,
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Atom(a) => write!(f, "atom {a:?}"),
            Tok::Str(_) => f.write_str("string"),
            Tok::Int(i) => write!(f, "integer {i}"),
            Tok::LBrace => f.write_str("'{'"),
            Tok::RBrace => f.write_str("'}'"),
            Tok::LBracket => f.write_str("'['"),
            Tok::RBracket => f.write_str("']'"),
            Tok::Comma => f.write_str("','"),
            Tok::Hash => f.write_str("'#'"),
            Tok::Plus => f.write_str("'+'"),
            Tok::Minus => f.write_str("'-'"),
            Tok::LtLt => f.write_str("'<<'"),
            Tok::GtGt => f.write_str("'>>'"),
            Tok::Arrow => f.write_str("'=>'"),
            Tok::Dot => f.write_str("'.'"),
            Tok::Slash => f.write_str("'/'"),
            Tok::Eof => f.write_str("end of input"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: u32,
    col: u32,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: u32,
    col: u32,
}

impl Lexer {
    fn cur(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at(&self, off: usize) -> Option<char> {
        self.chars.get(self.pos + off).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.cur()?;
        self.pos += 1;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn err(&self, line: u32, col: u32, kind: TermErrorKind) -> TermError {
        TermError {
            line,
            column: col,
            kind,
        }
    }

    fn next(&mut self) -> Result<Token, TermError> {
        // whitespace ([\000-\s]) and % comments
        loop {
            match self.cur() {
                Some(c) if c <= ' ' => {
                    self.bump();
                }
                Some('%') => {
                    while let Some(c) = self.cur() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => break,
            }
        }
        let (line, col) = (self.line, self.col);
        let tok = |tok| Ok(Token { tok, line, col });
        let Some(c) = self.cur() else {
            return tok(Tok::Eof);
        };
        let single = match c {
            '{' => Some(Tok::LBrace),
            '}' => Some(Tok::RBrace),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            '#' => Some(Tok::Hash),
            '+' => Some(Tok::Plus),
            '-' => Some(Tok::Minus),
            // a dot followed by a digit would be a float, which is not accepted
            '.' if !self.at(1).is_some_and(|c| c.is_ascii_digit()) => Some(Tok::Dot),
            '/' => Some(Tok::Slash),
            _ => None,
        };
        if let Some(t) = single {
            self.bump();
            return tok(t);
        }
        let double = match (c, self.at(1)) {
            ('<', Some('<')) => Some(Tok::LtLt),
            ('>', Some('>')) => Some(Tok::GtGt),
            ('=', Some('>')) => Some(Tok::Arrow),
            _ => None,
        };
        if let Some(t) = double {
            self.bump();
            self.bump();
            return tok(t);
        }
        if c.is_ascii_lowercase() {
            let mut s = String::new();
            while let Some(c) = self.cur() {
                if c.is_ascii_alphanumeric() || c == '_' || c == '@' {
                    s.push(c);
                    self.bump();
                } else {
                    break;
                }
            }
            return tok(Tok::Atom(s));
        }
        if c.is_ascii_digit() {
            let i = self.integer(line, col)?;
            return tok(Tok::Int(i));
        }
        if c == '"' || c == '\'' {
            self.bump();
            let s = self.quoted(c, line, col)?;
            return tok(if c == '"' { Tok::Str(s) } else { Tok::Atom(s) });
        }
        Err(self.err(line, col, TermErrorKind::UnexpectedChar(c)))
    }

    fn integer(&mut self, line: u32, col: u32) -> Result<i64, TermError> {
        let bad = |s: &Self| s.err(line, col, TermErrorKind::BadInteger);
        let mut v: i64 = 0;
        while let Some(d) = self.cur().and_then(|c| c.to_digit(10)) {
            self.bump();
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(d)))
                .ok_or_else(|| bad(self))?;
        }
        // Radix#Digits, e.g. 16#FF
        if self.cur() == Some('#') && self.at(1).is_some_and(|c| c.is_ascii_alphanumeric()) {
            let radix = u32::try_from(v).ok().filter(|r| (2..=36).contains(r));
            let Some(radix) = radix else {
                return Err(bad(self));
            };
            self.bump();
            let mut r: i64 = 0;
            while let Some(c) = self.cur().filter(|c| c.is_ascii_alphanumeric()) {
                let Some(d) = c.to_digit(radix) else {
                    return Err(bad(self));
                };
                self.bump();
                r = r
                    .checked_mul(i64::from(radix))
                    .and_then(|r| r.checked_add(i64::from(d)))
                    .ok_or_else(|| bad(self))?;
            }
            return Ok(r);
        }
        Ok(v)
    }

    fn quoted(&mut self, q: char, line: u32, col: u32) -> Result<String, TermError> {
        let mut s = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(self.err(line, col, TermErrorKind::Unterminated));
            };
            if c == q {
                return Ok(s);
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let (el, ec) = (self.line, self.col.saturating_sub(1));
            let bad = |s: &Self| s.err(el, ec, TermErrorKind::BadEscape);
            let Some(e) = self.bump() else {
                return Err(self.err(line, col, TermErrorKind::Unterminated));
            };
            let ch = match e {
                'b' => '\u{8}',
                'd' => '\u{7f}',
                'e' => '\u{1b}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                's' => ' ',
                't' => '\t',
                'v' => '\u{b}',
                '0'..='7' => {
                    let mut v = e.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match self.cur().and_then(|c| c.to_digit(8)) {
                            Some(d) => {
                                self.bump();
                                v = v * 8 + d;
                            }
                            None => break,
                        }
                    }
                    char::from_u32(v).ok_or_else(|| bad(self))?
                }
                'x' => {
                    let mut v: u32 = 0;
                    if self.cur() == Some('{') {
                        self.bump();
                        let mut n = 0;
                        loop {
                            match self.bump() {
                                Some('}') if n > 0 => break,
                                Some(c) => {
                                    let d = c.to_digit(16).ok_or_else(|| bad(self))?;
                                    v = v
                                        .checked_mul(16)
                                        .and_then(|v| v.checked_add(d))
                                        .ok_or_else(|| bad(self))?;
                                    n += 1;
                                }
                                None => return Err(bad(self)),
                            }
                        }
                    } else {
                        for _ in 0..2 {
                            let d = self
                                .bump()
                                .and_then(|c| c.to_digit(16))
                                .ok_or_else(|| bad(self))?;
                            v = v * 16 + d;
                        }
                    }
                    char::from_u32(v).ok_or_else(|| bad(self))?
                }
                '^' => {
                    let c = self.bump().ok_or_else(|| bad(self))?;
                    char::from_u32(u32::from(c) & 31).ok_or_else(|| bad(self))?
                }
                other => other,
            };
            s.push(ch);
        }
    }
}

struct Parser {
    lx: Lexer,
    peeked: Option<Token>,
}

impl Parser {
    fn peek(&mut self) -> Result<&Token, TermError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lx.next()?);
        }
        match &self.peeked {
            Some(t) => Ok(t),
            // unreachable in practice: filled just above
            None => Err(self.lx.err(
                self.lx.line,
                self.lx.col,
                TermErrorKind::UnexpectedEof { expected: "a term" },
            )),
        }
    }

    fn next(&mut self) -> Result<Token, TermError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lx.next(),
        }
    }

    fn unexpected(t: &Token, expected: &'static str) -> TermError {
        let kind = if t.tok == Tok::Eof {
            TermErrorKind::UnexpectedEof { expected }
        } else {
            TermErrorKind::UnexpectedToken {
                found: t.tok.to_string(),
                expected,
            }
        };
        TermError {
            line: t.line,
            column: t.col,
            kind,
        }
    }

    fn expect(&mut self, want: Tok, expected: &'static str) -> Result<Token, TermError> {
        let t = self.next()?;
        if t.tok == want {
            Ok(t)
        } else {
            Err(Self::unexpected(&t, expected))
        }
    }

    fn signed_int(&mut self, first: &Token) -> Result<Option<i64>, TermError> {
        let neg = match first.tok {
            Tok::Int(i) => return Ok(Some(i)),
            Tok::Minus => true,
            Tok::Plus => false,
            _ => return Ok(None),
        };
        let t = self.next()?;
        match t.tok {
            Tok::Int(i) if neg => i.checked_neg().map(Some).ok_or(TermError {
                line: t.line,
                column: t.col,
                kind: TermErrorKind::BadInteger,
            }),
            Tok::Int(i) => Ok(Some(i)),
            _ => Err(Self::unexpected(&t, "an integer")),
        }
    }

    fn term(&mut self, depth: usize) -> Result<Term, TermError> {
        let t = self.next()?;
        if let Some(i) = self.signed_int(&t)? {
            return Ok(Term::Integer(i));
        }
        let nested = matches!(t.tok, Tok::LBracket | Tok::LBrace | Tok::Hash | Tok::LtLt);
        if nested && depth >= MAX_DEPTH {
            return Err(TermError {
                line: t.line,
                column: t.col,
                kind: TermErrorKind::TooDeep(MAX_DEPTH),
            });
        }
        match t.tok {
            Tok::Atom(a) => Ok(Term::Atom(a)),
            Tok::Str(s) => Ok(Term::Str(s)),
            Tok::LBracket => Ok(Term::List(self.seq(Tok::RBracket, "',' or ']'", depth)?)),
            Tok::LBrace => Ok(Term::Tuple(self.seq(Tok::RBrace, "',' or '}'", depth)?)),
            Tok::Hash => {
                self.expect(Tok::LBrace, "'{'")?;
                self.map(depth)
            }
            Tok::LtLt => self.binary(),
            _ => Err(Self::unexpected(&t, "a term")),
        }
    }

    fn seq(
        &mut self,
        close: Tok,
        expected: &'static str,
        depth: usize,
    ) -> Result<Vec<Term>, TermError> {
        let mut items = Vec::new();
        if self.peek()?.tok == close {
            self.next()?;
            return Ok(items);
        }
        loop {
            items.push(self.term(depth + 1)?);
            let t = self.next()?;
            if t.tok == close {
                return Ok(items);
            }
            if t.tok != Tok::Comma {
                return Err(Self::unexpected(&t, expected));
            }
        }
    }

    fn map(&mut self, depth: usize) -> Result<Term, TermError> {
        let mut pairs = Vec::new();
        if self.peek()?.tok == Tok::RBrace {
            self.next()?;
            return Ok(Term::Map(pairs));
        }
        loop {
            let k = self.term(depth + 1)?;
            self.expect(Tok::Arrow, "'=>'")?;
            let v = self.term(depth + 1)?;
            pairs.push((k, v));
            let t = self.next()?;
            match t.tok {
                Tok::RBrace => return Ok(Term::Map(pairs)),
                Tok::Comma => {}
                _ => return Err(Self::unexpected(&t, "',' or '}'")),
            }
        }
    }

    fn binary(&mut self) -> Result<Term, TermError> {
        let mut out = Vec::new();
        if self.peek()?.tok == Tok::GtGt {
            self.next()?;
            return Ok(Term::Binary(out));
        }
        loop {
            let t = self.next()?;
            let (line, column) = (t.line, t.col);
            let err = |kind| TermError { line, column, kind };
            enum Seg {
                Str(String),
                Int(i64),
            }
            let seg = match t.tok {
                Tok::Str(ref s) => Seg::Str(s.clone()),
                _ => match self.signed_int(&t)? {
                    Some(i) => Seg::Int(i),
                    None => return Err(Self::unexpected(&t, "a string or an integer")),
                },
            };
            let utf8 = if self.peek()?.tok == Tok::Slash {
                self.next()?;
                let spec = self.next()?;
                match spec.tok {
                    Tok::Atom(ref a) if a == "utf8" => true,
                    _ => {
                        return Err(TermError {
                            line: spec.line,
                            column: spec.col,
                            kind: TermErrorKind::BadSegment,
                        });
                    }
                }
            } else {
                false
            };
            match (seg, utf8) {
                (Seg::Str(s), true) => out.extend_from_slice(s.as_bytes()),
                (Seg::Str(s), false) => {
                    for c in s.chars() {
                        let b = u8::try_from(u32::from(c)).map_err(|_| {
                            err(TermErrorKind::ByteOutOfRange(i64::from(u32::from(c))))
                        })?;
                        out.push(b);
                    }
                }
                (Seg::Int(i), true) => {
                    let c = u32::try_from(i)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| err(TermErrorKind::BadSegment))?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                (Seg::Int(i), false) => {
                    let b = u8::try_from(i).map_err(|_| err(TermErrorKind::ByteOutOfRange(i)))?;
                    out.push(b);
                }
            }
            let t = self.next()?;
            match t.tok {
                Tok::GtGt => return Ok(Term::Binary(out)),
                Tok::Comma => {}
                _ => return Err(Self::unexpected(&t, "',' or '>>'")),
            }
        }
    }
}

/// Erlang reserved words: atoms with these names must be quoted.
const RESERVED_WORDS: &[&str] = &[
    "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case",
    "catch", "cond", "div", "else", "end", "fun", "if", "let", "maybe", "not", "of", "or",
    "orelse", "receive", "rem", "try", "when", "xor",
];

/// Appends the text form of `t` to `out`, in a form [`parse_terms`] (and `file:consult`)
/// reads back to the same term. Binaries holding ASCII text are written `<<"...">>`,
/// other UTF-8 text `<<"..."/utf8>>`, anything else as a byte list `<<1,2,3>>`.
pub fn write_term(t: &Term, out: &mut String) {
    match t {
        Term::Binary(b) => match std::str::from_utf8(b) {
            Ok("") => out.push_str("<<>>"),
            Ok(s) => {
                out.push_str("<<");
                write_quoted(s, '"', out);
                if !s.is_ascii() {
                    out.push_str("/utf8");
                }
                out.push_str(">>");
            }
            Err(_) => {
                out.push_str("<<");
                for (i, byte) in b.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&byte.to_string());
                }
                out.push_str(">>");
            }
        },
        Term::Str(s) => write_quoted(s, '"', out),
        Term::Atom(a) => {
            let bare = a.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
                && !RESERVED_WORDS.contains(&a.as_str());
            if bare {
                out.push_str(a);
            } else {
                write_quoted(a, '\'', out);
            }
        }
        Term::Integer(i) => out.push_str(&i.to_string()),
        Term::List(items) => write_seq(items, '[', ']', out),
        Term::Tuple(items) => write_seq(items, '{', '}', out),
        Term::Map(pairs) => {
            out.push_str("#{");
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_term(k, out);
                out.push_str(" => ");
                write_term(v, out);
            }
            out.push('}');
        }
    }
}

fn write_seq(items: &[Term], open: char, close: char, out: &mut String) {
    out.push(open);
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_term(t, out);
    }
    out.push(close);
}

fn write_quoted(s: &str, q: char, out: &mut String) {
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push(q);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Term {
        let mut v = parse_terms(s.as_bytes()).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.remove(0)
    }

    fn err(s: &str) -> TermError {
        parse_terms(s.as_bytes()).unwrap_err()
    }

    fn b(s: &str) -> Term {
        Term::binary(s)
    }

    #[test]
    fn binaries_in_all_forms() {
        assert_eq!(one(r#"<<"abc">>."#), b("abc"));
        assert_eq!(one(r#"<<>>."#), Term::Binary(vec![]));
        assert_eq!(one(r#"<<"Zürich"/utf8>>."#), b("Zürich"));
        // without /utf8 a literal char is one byte (Latin-1), as in Erlang
        assert_eq!(one(r#"<<"ü">>."#), Term::Binary(vec![0xfc]));
        assert_eq!(one("<<90,195,188>>."), b("Zü"));
        assert_eq!(one(r#"<<"a", 98, "c"/utf8, 8364/utf8>>."#), b("abc€"));
        assert_eq!(one(r#"<<"\x{20AC}"/utf8>>."#), b("€"));
    }

    #[test]
    fn scalars_and_containers() {
        assert_eq!(one("foo_Bar@1."), Term::Atom("foo_Bar@1".into()));
        assert_eq!(one("'Quoted atom\\n'."), Term::Atom("Quoted atom\n".into()));
        assert_eq!(one("true.").as_bool(), Some(true));
        assert_eq!(one("-42."), Term::Integer(-42));
        assert_eq!(one("+ 7."), Term::Integer(7));
        assert_eq!(one("16#FF."), Term::Integer(255));
        assert_eq!(one("2#101."), Term::Integer(5));
        assert_eq!(one("9223372036854775807."), Term::Integer(i64::MAX));
        assert_eq!(
            one(r#""a\"b\\c\t\101\x41\^A\s\qz"."#),
            Term::Str("a\"b\\c\tAA\u{1} qz".into())
        );
        assert_eq!(
            one("% comment\n{[], [1,2], #{a => {}}, #{}} % trailing\n."),
            Term::Tuple(vec![
                Term::List(vec![]),
                Term::List(vec![Term::Integer(1), Term::Integer(2)]),
                Term::Map(vec![(Term::Atom("a".into()), Term::Tuple(vec![]))]),
                Term::Map(vec![]),
            ])
        );
        assert_eq!(parse_terms(b"a. b.\n c.").unwrap().len(), 3);
        assert_eq!(parse_terms(b"  % only a comment\n").unwrap(), vec![]);
    }

    #[test]
    fn latin1_input_is_accepted() {
        // 0xfc alone is not UTF-8: the whole input is read as Latin-1
        let t = parse_terms(b"<<\"Z\xfcrich\">>.").unwrap();
        assert_eq!(t, vec![Term::Binary(b"Z\xfcrich".to_vec())]);
        assert_eq!(t[0].as_text().unwrap(), "Zürich");
    }

    #[test]
    fn errors_have_exact_positions() {
        let e = err("{\"name\": \"x\"}.");
        assert_eq!((e.line, e.column), (1, 8));
        assert_eq!(e.kind, TermErrorKind::UnexpectedChar(':'));

        let e = err("{a,b}.\n[1|2].");
        assert_eq!(
            (e.line, e.column, e.kind),
            (2, 3, TermErrorKind::UnexpectedChar('|'))
        );

        let e = err("{a,b}\n{c,d}.");
        assert_eq!((e.line, e.column), (2, 1));
        assert_eq!(
            e.kind,
            TermErrorKind::UnexpectedToken {
                found: "'{'".into(),
                expected: "'.'"
            }
        );

        let e = err("{a, b");
        assert_eq!((e.line, e.column), (1, 6));
        assert_eq!(
            e.kind,
            TermErrorKind::UnexpectedEof {
                expected: "',' or '}'"
            }
        );

        let e = err("\n  <<\"abc>>.");
        assert_eq!(
            (e.line, e.column, e.kind),
            (2, 5, TermErrorKind::Unterminated)
        );

        let e = err("<<256>>.");
        assert_eq!(
            (e.line, e.column, e.kind),
            (1, 3, TermErrorKind::ByteOutOfRange(256))
        );

        let e = err("<<\"€\">>.");
        assert_eq!(
            (e.line, e.column, e.kind),
            (1, 3, TermErrorKind::ByteOutOfRange(8364))
        );

        let e = err("<<\"a\"/binary>>.");
        assert_eq!(
            (e.line, e.column, e.kind),
            (1, 7, TermErrorKind::BadSegment)
        );

        let e = err("9223372036854775808.");
        assert_eq!(
            (e.line, e.column, e.kind),
            (1, 1, TermErrorKind::BadInteger)
        );

        let e = err("37#1.");
        assert_eq!(e.kind, TermErrorKind::BadInteger);

        let e = err("\"\\x{zz}\".");
        assert_eq!((e.line, e.column, e.kind), (1, 2, TermErrorKind::BadEscape));

        let e = err("1.5.");
        assert_eq!(
            (e.line, e.column, e.kind),
            (1, 2, TermErrorKind::UnexpectedChar('.'))
        );

        let e = err("Var.");
        assert_eq!(
            (e.line, e.column, e.kind),
            (1, 1, TermErrorKind::UnexpectedChar('V'))
        );

        let e = err("#{a => }.");
        assert_eq!(
            (e.line, e.column, e.kind),
            (
                1,
                8,
                TermErrorKind::UnexpectedToken {
                    found: "'}'".into(),
                    expected: "a term"
                }
            )
        );
    }

    #[test]
    fn depth_bomb_is_refused_without_recursion_blowup() {
        let ok = format!("{}{}.", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_terms(ok.as_bytes()).is_ok());
        let deep = format!(
            "{}{}.",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let e = err(&deep);
        assert_eq!(
            (e.line, e.column, e.kind),
            (1, MAX_DEPTH as u32 + 1, TermErrorKind::TooDeep(MAX_DEPTH))
        );
        // a million openers: fails at the same place, quickly
        let bomb = "{".repeat(1_000_000);
        let e = err(&bomb);
        assert_eq!(e.kind, TermErrorKind::TooDeep(MAX_DEPTH));
        assert_eq!(e.column, MAX_DEPTH as u32 + 1);
    }

    #[test]
    fn write_then_parse_round_trips() {
        let t = Term::Tuple(vec![
            b("plain"),
            b("naïve \"quoted\" \\ \n"),
            Term::Binary(vec![0xff, 0x00, 0x41]),
            Term::Binary(vec![]),
            Term::Str("str'\"".into()),
            Term::Atom("ok".into()),
            Term::Atom("Needs Quote".into()),
            Term::Atom("and".into()),
            Term::Integer(-3),
            Term::List(vec![Term::Integer(1)]),
            Term::Map(vec![(b("k"), Term::Atom("true".into()))]),
        ]);
        let mut s = String::new();
        write_term(&t, &mut s);
        assert_eq!(
            s,
            r#"{<<"plain">>,<<"naïve \"quoted\" \\ \n"/utf8>>,<<255,0,65>>,<<>>,"str'\"",ok,'Needs Quote','and',-3,[1],#{<<"k">> => true}}"#
        );
        s.push('.');
        assert_eq!(parse_terms(s.as_bytes()).unwrap(), vec![t]);
    }
}
