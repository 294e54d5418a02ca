//! `metadata.config`: the typed view of a package's metadata (protocol doc §4.3), read
//! from and written to Erlang term text.
//!
//! Reading: every top-level term must be a `{Key, Value}` pair with a binary (or string)
//! key; keys must be unique. `name` and `version` are required text; `app`,
//! `description`, `elixir` are optional text; `licenses`, `build_tools`, `files` optional
//! lists of text; `links` an optional list of `{Name, Url}` pairs or a map;
//! `requirements` optional, in any of the three shapes clients write (mix's list of
//! proplists with a `name` key, rebar3_hex's `{Name, Props}` list, `[]`) or a map. Known
//! keys with the wrong type are errors; unknown keys are kept in [`Metadata::other`].
//! Binaries that are not UTF-8 are read as Latin-1, as hex_core does.
//!
//! Writing ([`encode_metadata`]) follows mix: one `{<<"key">>,Value}.` per line, keys
//! sorted.

use super::term::{Term, TermError, parse_terms, write_term};

/// One dependency of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Package name of the dependency.
    pub name: String,
    /// OTP application name, when given (mix and rebar3_hex always give it).
    pub app: Option<String>,
    /// Version requirement, e.g. `~> 1.0` (not validated here).
    pub requirement: String,
    /// Whether the dependency is optional (default `false`).
    pub optional: bool,
    /// Repository the dependency comes from, when given (rebar3_hex never gives it).
    pub repository: Option<String>,
}

impl Requirement {
    /// A non-optional requirement with `app` = `name` and no repository.
    pub fn new(name: impl Into<String>, requirement: impl Into<String>) -> Self {
        let name = name.into();
        Requirement {
            app: Some(name.clone()),
            name,
            requirement: requirement.into(),
            optional: false,
            repository: None,
        }
    }
}

/// The typed content of `metadata.config`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Package name (not validated here; see [`crate::names`]).
    pub name: String,
    /// Release version text (not validated here; see [`crate::version`]).
    pub version: String,
    /// OTP application name.
    pub app: Option<String>,
    /// One-line description.
    pub description: Option<String>,
    /// License identifiers.
    pub licenses: Vec<String>,
    /// `(name, url)` links in source order.
    pub links: Vec<(String, String)>,
    /// Build tools (`mix`, `rebar3`, `make`).
    pub build_tools: Vec<String>,
    /// Files and directories the package ships.
    pub files: Vec<String>,
    /// Elixir version requirement.
    pub elixir: Option<String>,
    /// Dependencies, sorted by name.
    pub requirements: Vec<Requirement>,
    /// The `extra` key's value, kept as written.
    pub extra: Option<Term>,
    /// Every other key (e.g. `maintainers`, `parameters`), in source order.
    pub other: Vec<(String, Term)>,
}

/// Why `metadata.config` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Not Erlang term text; carries line and column.
    #[error("metadata.config is not valid Erlang terms: {0}")]
    Syntax(#[from] TermError),
    /// Top-level term number `index` (0-based) is not a `{<<"key">>, Value}` pair.
    #[error("metadata.config term #{index} is not a {{key, value}} pair with a binary key")]
    NotKeyValue { index: usize },
    /// A key appears twice (top level, or a requirement name twice).
    #[error("metadata.config has duplicate key {0:?}")]
    DuplicateKey(String),
    /// A required field is absent (`name`, `version`, or a requirement's `requirement`).
    #[error("metadata.config is missing {0:?}")]
    MissingField(String),
    /// A known field has the wrong type; `field` is a path such as
    /// `requirements[1].optional`.
    #[error("metadata.config field {field:?} must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
}

const TEXT: &str = "a binary";
const TEXT_LIST: &str = "a list of binaries";
const KV: &str = "a list of {key, value} pairs or a map";

fn text(t: &Term, field: &str) -> Result<String, MetadataError> {
    t.as_text().ok_or_else(|| MetadataError::WrongType {
        field: field.to_owned(),
        expected: TEXT,
    })
}

/// Text, or `None` for the atom `nil` (what Elixir writes for an absent value).
fn opt_text(t: &Term, field: &str) -> Result<Option<String>, MetadataError> {
    match t {
        Term::Atom(a) if a == "nil" => Ok(None),
        _ => text(t, field).map(Some),
    }
}

fn text_list(t: &Term, field: &str) -> Result<Vec<String>, MetadataError> {
    let wrong = || MetadataError::WrongType {
        field: field.to_owned(),
        expected: TEXT_LIST,
    };
    match t {
        Term::List(items) => items
            .iter()
            .map(|i| i.as_text().ok_or_else(wrong))
            .collect(),
        _ => Err(wrong()),
    }
}

/// A list of `{Key, Value}` 2-tuples with text keys, or a map with text keys.
fn kv<'a>(t: &'a Term, field: &str) -> Result<Vec<(String, &'a Term)>, MetadataError> {
    let wrong = || MetadataError::WrongType {
        field: field.to_owned(),
        expected: KV,
    };
    match t {
        Term::List(items) => items
            .iter()
            .map(|i| match i {
                Term::Tuple(kv) => match kv.as_slice() {
                    [k, v] => k.as_text().map(|k| (k, v)).ok_or_else(wrong),
                    _ => Err(wrong()),
                },
                _ => Err(wrong()),
            })
            .collect(),
        Term::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| k.as_text().map(|k| (k, v)).ok_or_else(wrong))
            .collect(),
        _ => Err(wrong()),
    }
}

fn requirement(
    outer_name: Option<String>,
    props: &Term,
    field: &str,
) -> Result<Requirement, MetadataError> {
    let mut name = outer_name;
    let mut app = None;
    let mut req = None;
    let mut optional = false;
    let mut repository = None;
    for (k, v) in kv(props, field)? {
        let f = || format!("{field}.{k}");
        match k.as_str() {
            "name" if name.is_none() => name = Some(text(v, &f())?),
            "app" => app = opt_text(v, &f())?,
            "requirement" => req = Some(text(v, &f())?),
            "optional" => {
                optional = match v {
                    Term::Atom(a) if a == "nil" => false,
                    _ => v.as_bool().ok_or_else(|| MetadataError::WrongType {
                        field: f(),
                        expected: "true or false",
                    })?,
                }
            }
            "repository" => repository = opt_text(v, &f())?,
            _ => {}
        }
    }
    Ok(Requirement {
        name: name.ok_or_else(|| MetadataError::MissingField(format!("{field}.name")))?,
        app,
        requirement: req
            .ok_or_else(|| MetadataError::MissingField(format!("{field}.requirement")))?,
        optional,
        repository,
    })
}

fn requirements(t: &Term) -> Result<Vec<Requirement>, MetadataError> {
    let mut out = Vec::new();
    match t {
        Term::List(items) => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("requirements[{i}]");
                let r = match item {
                    // rebar3_hex: {Name, [{K, V}...]}
                    Term::Tuple(pair) => match pair.as_slice() {
                        [n, props] => requirement(Some(text(n, &field)?), props, &field)?,
                        _ => {
                            return Err(MetadataError::WrongType {
                                field,
                                expected: "a {name, properties} pair or a property list",
                            });
                        }
                    },
                    // mix: [{<<"name">>, N}, ...] (or a map with a name key)
                    Term::List(_) | Term::Map(_) => requirement(None, item, &field)?,
                    _ => {
                        return Err(MetadataError::WrongType {
                            field,
                            expected: "a {name, properties} pair or a property list",
                        });
                    }
                };
                out.push(r);
            }
        }
        Term::Map(pairs) => {
            for (i, (k, v)) in pairs.iter().enumerate() {
                let field = format!("requirements[{i}]");
                out.push(requirement(Some(text(k, &field)?), v, &field)?);
            }
        }
        _ => {
            return Err(MetadataError::WrongType {
                field: "requirements".into(),
                expected: "a list or a map",
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = out
        .windows(2)
        .find(|w| matches!(w, [a, b] if a.name == b.name))
    {
        let name = w.first().map(|r| r.name.clone()).unwrap_or_default();
        return Err(MetadataError::DuplicateKey(format!("requirements.{name}")));
    }
    Ok(out)
}

impl Metadata {
    /// Parses `metadata.config` text. `Err` is a syntax error (with position) or a
    /// structural one (see [`MetadataError`]).
    pub fn parse(bytes: &[u8]) -> Result<Metadata, MetadataError> {
        Metadata::from_terms(parse_terms(bytes)?)
    }

    /// Builds the typed view from already parsed top-level terms.
    pub fn from_terms(terms: Vec<Term>) -> Result<Metadata, MetadataError> {
        let mut m = Metadata::default();
        let mut name = None;
        let mut version = None;
        let mut seen = std::collections::HashSet::new();
        for (index, t) in terms.into_iter().enumerate() {
            let (key, value) = match t {
                Term::Tuple(mut kv) if kv.len() == 2 => {
                    let v = kv.pop();
                    let k = kv.pop();
                    match (k.as_ref().and_then(Term::as_text), v) {
                        (Some(k), Some(v)) if !k.is_empty() => (k, v),
                        _ => return Err(MetadataError::NotKeyValue { index }),
                    }
                }
                _ => return Err(MetadataError::NotKeyValue { index }),
            };
            if !seen.insert(key.clone()) {
                return Err(MetadataError::DuplicateKey(key));
            }
            match key.as_str() {
                "name" => name = Some(text(&value, "name")?),
                "version" => version = Some(text(&value, "version")?),
                "app" => m.app = opt_text(&value, "app")?,
                "description" => m.description = opt_text(&value, "description")?,
                "elixir" => m.elixir = opt_text(&value, "elixir")?,
                "licenses" => m.licenses = text_list(&value, "licenses")?,
                "build_tools" => m.build_tools = text_list(&value, "build_tools")?,
                "files" => m.files = text_list(&value, "files")?,
                "links" => {
                    m.links = kv(&value, "links")?
                        .into_iter()
                        .map(|(k, v)| Ok((k.clone(), text(v, &format!("links.{k}"))?)))
                        .collect::<Result<_, MetadataError>>()?;
                }
                "requirements" => m.requirements = requirements(&value)?,
                "extra" => m.extra = Some(value),
                _ => m.other.push((key, value)),
            }
        }
        m.name = name.ok_or_else(|| MetadataError::MissingField("name".into()))?;
        m.version = version.ok_or_else(|| MetadataError::MissingField("version".into()))?;
        Ok(m)
    }
}

fn text_term(s: &str) -> Term {
    Term::binary(s)
}

fn text_list_term(v: &[String]) -> Term {
    Term::List(v.iter().map(|s| text_term(s)).collect())
}

fn requirement_term(r: &Requirement) -> Term {
    let mut props = Vec::with_capacity(5);
    let pair = |k: &str, v: Term| Term::Tuple(vec![text_term(k), v]);
    if let Some(app) = &r.app {
        props.push(pair("app", text_term(app)));
    }
    props.push(pair("name", text_term(&r.name)));
    let optional = if r.optional { "true" } else { "false" };
    props.push(pair("optional", Term::Atom(optional.into())));
    if let Some(repo) = &r.repository {
        props.push(pair("repository", text_term(repo)));
    }
    props.push(pair("requirement", text_term(&r.requirement)));
    Term::List(props)
}

/// Writes `m` as `metadata.config` text the way mix does: one `{<<"key">>,Value}.` line
/// per key, keys sorted; `app`, `description`, `elixir` and `extra` only when set; the
/// list keys always; requirements as mix's list of property lists, sorted by name.
/// [`Metadata::parse`] reads the output back to an equal value.
pub fn encode_metadata(m: &Metadata) -> Vec<u8> {
    let mut entries: Vec<(&str, Term)> = Vec::with_capacity(12 + m.other.len());
    if let Some(app) = &m.app {
        entries.push(("app", text_term(app)));
    }
    entries.push(("build_tools", text_list_term(&m.build_tools)));
    if let Some(d) = &m.description {
        entries.push(("description", text_term(d)));
    }
    if let Some(e) = &m.elixir {
        entries.push(("elixir", text_term(e)));
    }
    if let Some(x) = &m.extra {
        entries.push(("extra", x.clone()));
    }
    entries.push(("files", text_list_term(&m.files)));
    entries.push(("licenses", text_list_term(&m.licenses)));
    entries.push((
        "links",
        Term::List(
            m.links
                .iter()
                .map(|(k, v)| Term::Tuple(vec![text_term(k), text_term(v)]))
                .collect(),
        ),
    ));
    entries.push(("name", text_term(&m.name)));
    let mut reqs: Vec<&Requirement> = m.requirements.iter().collect();
    reqs.sort_by(|a, b| a.name.cmp(&b.name));
    entries.push((
        "requirements",
        Term::List(reqs.into_iter().map(requirement_term).collect()),
    ));
    entries.push(("version", text_term(&m.version)));
    for (k, v) in &m.other {
        entries.push((k.as_str(), v.clone()));
    }
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::with_capacity(512);
    for (k, v) in entries {
        out.push('{');
        write_term(&text_term(k), &mut out);
        out.push(',');
        write_term(&v, &mut out);
        out.push_str("}.\n");
    }
    out.into_bytes()
}
