//! `metadata.config` of every fixture tarball parses to what hex_core decoded
//! (`decoded/tarballs/*.json`); requirement shapes; field errors; encode round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hexyard_common::tarball::{
    Metadata, MetadataError, Requirement, Term, TermError, TermErrorKind, encode_metadata,
};
use serde_json::{Value, json};

const DECODED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/hex/decoded/tarballs/"
);

fn fixtures() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(DECODED)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(out.len(), 8);
    out
}

/// hex_core's normalisation: lists of {binary, _} pairs become maps (recursively),
/// binaries strings, true/false booleans.
fn to_json(t: &Term) -> Value {
    match t {
        Term::Binary(_) | Term::Str(_) => Value::String(t.as_text().unwrap()),
        Term::Atom(a) => match t.as_bool() {
            Some(b) => Value::Bool(b),
            None => Value::String(a.clone()),
        },
        Term::Integer(i) => json!(i),
        Term::List(items) => {
            let pairs: Option<Vec<(String, &Term)>> = items
                .iter()
                .map(|i| match i {
                    Term::Tuple(kv) if kv.len() == 2 => Some((kv[0].as_text()?, &kv[1])),
                    _ => None,
                })
                .collect();
            match pairs {
                Some(p) if !p.is_empty() => {
                    Value::Object(p.into_iter().map(|(k, v)| (k, to_json(v))).collect())
                }
                _ => Value::Array(items.iter().map(to_json).collect()),
            }
        }
        Term::Tuple(items) => Value::Array(items.iter().map(to_json).collect()),
        Term::Map(pairs) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.as_text().unwrap(), to_json(v)))
                .collect(),
        ),
    }
}

/// Our typed view rendered the way `metadata_decoded_by_hex_core` is.
fn as_hex_core_json(m: &Metadata) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("name".into(), json!(m.name));
    o.insert("version".into(), json!(m.version));
    if let Some(a) = &m.app {
        o.insert("app".into(), json!(a));
    }
    if let Some(d) = &m.description {
        o.insert("description".into(), json!(d));
    }
    if let Some(e) = &m.elixir {
        o.insert("elixir".into(), json!(e));
    }
    o.insert("build_tools".into(), json!(m.build_tools));
    o.insert("files".into(), json!(m.files));
    o.insert("licenses".into(), json!(m.licenses));
    o.insert(
        "links".into(),
        Value::Object(m.links.iter().map(|(k, v)| (k.clone(), json!(v))).collect()),
    );
    let mut reqs = serde_json::Map::new();
    for r in &m.requirements {
        let mut ro = serde_json::Map::new();
        if let Some(a) = &r.app {
            ro.insert("app".into(), json!(a));
        }
        ro.insert("optional".into(), json!(r.optional));
        ro.insert("requirement".into(), json!(r.requirement));
        if let Some(repo) = &r.repository {
            ro.insert("repository".into(), json!(repo));
        }
        reqs.insert(r.name.clone(), Value::Object(ro));
    }
    o.insert("requirements".into(), Value::Object(reqs));
    if let Some(x) = &m.extra {
        o.insert("extra".into(), to_json(x));
    }
    for (k, v) in &m.other {
        o.insert(k.clone(), to_json(v));
    }
    Value::Object(o)
}

#[test]
fn every_fixture_metadata_matches_hex_core() {
    for (file, v) in fixtures() {
        let text = v["metadata.config"].as_str().unwrap();
        let m = Metadata::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            as_hex_core_json(&m),
            v["metadata_decoded_by_hex_core"],
            "{file}"
        );
    }
}

#[test]
fn fx_unicode_byte_list_binaries_decode_as_utf8() {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DECODED}fx_unicode-0.1.0.json")).unwrap(),
    )
    .unwrap();
    let m = Metadata::parse(v["metadata.config"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(
        m.description.as_deref(),
        Some("Zürich – ünïcode ✓ fixture: naïve café, 東京, emoji 🚀 (non-ASCII metadata test).")
    );
    assert_eq!(
        m.links,
        [
            (
                "Café ☕".to_string(),
                "https://example.com/fixtures/caf%C3%A9".to_string()
            ),
            (
                "Source".to_string(),
                "https://example.com/fixtures/fx_unicode".to_string()
            ),
        ]
    );
}

#[test]
fn fx_json_mix_requirements_are_typed_and_sorted() {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DECODED}fx_json-0.3.0.json")).unwrap(),
    )
    .unwrap();
    let m = Metadata::parse(v["metadata.config"].as_str().unwrap().as_bytes()).unwrap();
    let repo = Some("fixture_repo".to_string());
    assert_eq!(
        m.requirements,
        [
            Requirement {
                name: "fx_alias".into(),
                app: Some("fx_alias_app".into()),
                requirement: "~> 0.1".into(),
                optional: false,
                repository: repo.clone()
            },
            Requirement {
                name: "fx_core".into(),
                app: Some("fx_core".into()),
                requirement: "~> 0.2".into(),
                optional: false,
                repository: repo.clone()
            },
            Requirement {
                name: "fx_opt".into(),
                app: Some("fx_opt".into()),
                requirement: "~> 1.0".into(),
                optional: true,
                repository: repo
            },
        ]
    );
}

const HEAD: &str = "{<<\"name\">>,<<\"pkg\">>}.\n{<<\"version\">>,<<\"1.0.0\">>}.\n";

fn with(extra: &str) -> Result<Metadata, MetadataError> {
    Metadata::parse(format!("{HEAD}{extra}").as_bytes())
}

#[test]
fn all_requirement_shapes() {
    let expected = vec![
        Requirement {
            name: "a_dep".into(),
            app: Some("a_app".into()),
            requirement: "~> 1.0".into(),
            optional: true,
            repository: None,
        },
        Requirement {
            name: "b_dep".into(),
            app: None,
            requirement: ">= 0.0.0".into(),
            optional: false,
            repository: Some("hexpm".into()),
        },
    ];
    // 1. mix: list of proplists with a name key (given out of order: output is sorted)
    let mix = r#"{<<"requirements">>,[
        [{<<"name">>,<<"b_dep">>},{<<"optional">>,false},{<<"repository">>,<<"hexpm">>},{<<"requirement">>,<<">= 0.0.0">>}],
        [{<<"app">>,<<"a_app">>},{<<"name">>,<<"a_dep">>},{<<"optional">>,true},{<<"requirement">>,<<"~> 1.0">>}]]}."#;
    assert_eq!(with(mix).unwrap().requirements, expected);
    // 2. rebar3_hex: {Name, Props}
    let rebar = r#"{<<"requirements">>,[
        {<<"b_dep">>,[{<<"repository">>,<<"hexpm">>},{<<"requirement">>,<<">= 0.0.0">>}]},
        {<<"a_dep">>,[{<<"app">>,<<"a_app">>},{<<"optional">>,true},{<<"requirement">>,<<"~> 1.0">>}]}]}."#;
    assert_eq!(with(rebar).unwrap().requirements, expected);
    // 3. empty list, and absent
    assert_eq!(with("{<<\"requirements\">>,[]}.").unwrap().requirements, []);
    assert_eq!(with("").unwrap().requirements, []);
    // map forms
    let map = r#"{<<"requirements">>,#{
        <<"a_dep">> => #{<<"app">> => <<"a_app">>, <<"optional">> => true, <<"requirement">> => <<"~> 1.0">>},
        <<"b_dep">> => [{<<"repository">>,<<"hexpm">>},{<<"requirement">>,<<">= 0.0.0">>},{<<"unknown">>,1}]}}."#;
    assert_eq!(with(map).unwrap().requirements, expected);
    let list_of_maps = r#"{<<"requirements">>,[
        #{<<"name">> => <<"a_dep">>, <<"app">> => <<"a_app">>, <<"optional">> => true, <<"requirement">> => <<"~> 1.0">>},
        #{<<"name">> => <<"b_dep">>, <<"repository">> => <<"hexpm">>, <<"requirement">> => <<">= 0.0.0">>, <<"app">> => nil}]}."#;
    assert_eq!(with(list_of_maps).unwrap().requirements, expected);
}

#[test]
fn field_errors_name_the_field() {
    assert_eq!(
        Metadata::parse(b"{<<\"name\">>,<<\"p\">>}.\n"),
        Err(MetadataError::MissingField("version".into()))
    );
    assert_eq!(
        Metadata::parse(b"{<<\"version\">>,<<\"1.0.0\">>}.\n"),
        Err(MetadataError::MissingField("name".into()))
    );
    assert_eq!(
        Metadata::parse(b"{<<\"name\">>,pkg}.\n{<<\"version\">>,<<\"1.0.0\">>}.\n"),
        Err(MetadataError::WrongType {
            field: "name".into(),
            expected: "a binary"
        })
    );
    assert_eq!(
        with("{<<\"licenses\">>,<<\"MIT\">>}."),
        Err(MetadataError::WrongType {
            field: "licenses".into(),
            expected: "a list of binaries"
        })
    );
    assert_eq!(
        with("{<<\"links\">>,[{<<\"a\">>,1}]}."),
        Err(MetadataError::WrongType {
            field: "links.a".into(),
            expected: "a binary"
        })
    );
    assert_eq!(
        with("{<<\"links\">>,[<<\"a\">>]}."),
        Err(MetadataError::WrongType {
            field: "links".into(),
            expected: "a list of {key, value} pairs or a map"
        })
    );
    assert_eq!(
        with(
            "{<<\"requirements\">>,[[{<<\"name\">>,<<\"x\">>},{<<\"optional\">>,maybe},{<<\"requirement\">>,<<\"1\">>}]]}."
        ),
        Err(MetadataError::WrongType {
            field: "requirements[0].optional".into(),
            expected: "true or false"
        })
    );
    assert_eq!(
        with("{<<\"requirements\">>,[[{<<\"name\">>,<<\"x\">>}]]}."),
        Err(MetadataError::MissingField(
            "requirements[0].requirement".into()
        ))
    );
    assert_eq!(
        with("{<<\"requirements\">>,[[{<<\"requirement\">>,<<\"~> 1.0\">>}]]}."),
        Err(MetadataError::MissingField("requirements[0].name".into()))
    );
    assert_eq!(
        with(
            "{<<\"requirements\">>,[{<<\"x\">>,[{<<\"requirement\">>,<<\"1\">>}]},{<<\"x\">>,[{<<\"requirement\">>,<<\"2\">>}]}]}."
        ),
        Err(MetadataError::DuplicateKey("requirements.x".into()))
    );
    assert_eq!(
        with("{<<\"requirements\">>,[42]}."),
        Err(MetadataError::WrongType {
            field: "requirements[0]".into(),
            expected: "a {name, properties} pair or a property list"
        })
    );
    assert_eq!(
        with("{<<\"name\">>,<<\"again\">>}."),
        Err(MetadataError::DuplicateKey("name".into()))
    );
    assert_eq!(
        with("{a,b,c}."),
        Err(MetadataError::NotKeyValue { index: 2 })
    );
    assert_eq!(
        with("{name,<<\"x\">>}."),
        Err(MetadataError::NotKeyValue { index: 2 })
    );
    assert_eq!(with("[]."), Err(MetadataError::NotKeyValue { index: 2 }));
}

#[test]
fn syntax_errors_carry_line_and_column() {
    assert_eq!(
        with("{<<\"files\">>,[<<\"a\">>|<<\"b\">>]}."),
        Err(MetadataError::Syntax(TermError {
            line: 3,
            column: 22,
            kind: TermErrorKind::UnexpectedChar('|')
        }))
    );
    assert_eq!(
        with("{<<\"extra\">>,\n  #{<<\"k\">> <<\"v\">>}}."),
        Err(MetadataError::Syntax(TermError {
            line: 4,
            column: 13,
            kind: TermErrorKind::UnexpectedToken {
                found: "'<<'".into(),
                expected: "'=>'"
            }
        }))
    );
    let deep = format!("{{<<\"extra\">>,{}{}}}.", "[".repeat(100), "]".repeat(100));
    let e = with(&deep).unwrap_err();
    assert!(
        matches!(
            e,
            MetadataError::Syntax(TermError {
                line: 3,
                kind: TermErrorKind::TooDeep(64),
                ..
            })
        ),
        "{e:?}"
    );
}

#[test]
fn latin1_metadata_is_decoded() {
    let m = Metadata::parse(b"{<<\"name\">>,<<\"p\">>}.\n{<<\"version\">>,<<\"1.0.0\">>}.\n{<<\"description\">>,<<\"caf\xe9\">>}.\n").unwrap();
    assert_eq!(m.description.as_deref(), Some("café"));
}

#[test]
fn encode_is_mix_style_and_round_trips() {
    let m = Metadata {
        name: "demo".into(),
        version: "0.1.0".into(),
        app: Some("demo".into()),
        description: Some("Zürich \"demo\"".into()),
        licenses: vec!["MIT".into()],
        links: vec![("GitHub".into(), "https://x.invalid/demo".into())],
        build_tools: vec!["mix".into()],
        files: vec!["lib".into(), "lib/demo.ex".into()],
        elixir: Some("~> 1.14".into()),
        requirements: vec![
            Requirement::new("zz", "~> 1.0"),
            Requirement {
                name: "aa".into(),
                app: Some("aa".into()),
                requirement: "~> 0.1".into(),
                optional: true,
                repository: Some("acme".into()),
            },
        ],
        extra: Some(Term::List(vec![Term::Tuple(vec![
            Term::binary("k"),
            Term::Integer(1),
        ])])),
        other: vec![("parameters".into(), Term::List(vec![]))],
    };
    let text = String::from_utf8(encode_metadata(&m)).unwrap();
    assert_eq!(
        text,
        concat!(
            "{<<\"app\">>,<<\"demo\">>}.\n",
            "{<<\"build_tools\">>,[<<\"mix\">>]}.\n",
            "{<<\"description\">>,<<\"Zürich \\\"demo\\\"\"/utf8>>}.\n",
            "{<<\"elixir\">>,<<\"~> 1.14\">>}.\n",
            "{<<\"extra\">>,[{<<\"k\">>,1}]}.\n",
            "{<<\"files\">>,[<<\"lib\">>,<<\"lib/demo.ex\">>]}.\n",
            "{<<\"licenses\">>,[<<\"MIT\">>]}.\n",
            "{<<\"links\">>,[{<<\"GitHub\">>,<<\"https://x.invalid/demo\">>}]}.\n",
            "{<<\"name\">>,<<\"demo\">>}.\n",
            "{<<\"parameters\">>,[]}.\n",
            "{<<\"requirements\">>,[",
            "[{<<\"app\">>,<<\"aa\">>},{<<\"name\">>,<<\"aa\">>},{<<\"optional\">>,true},{<<\"repository\">>,<<\"acme\">>},{<<\"requirement\">>,<<\"~> 0.1\">>}],",
            "[{<<\"app\">>,<<\"zz\">>},{<<\"name\">>,<<\"zz\">>},{<<\"optional\">>,false},{<<\"requirement\">>,<<\"~> 1.0\">>}]]}.\n",
            "{<<\"version\">>,<<\"0.1.0\">>}.\n",
        )
    );
    let back = Metadata::parse(text.as_bytes()).unwrap();
    let mut sorted = m.clone();
    sorted.requirements.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(back, sorted);
}

#[test]
fn every_fixture_survives_encode_then_parse() {
    for (file, v) in fixtures() {
        let m = Metadata::parse(v["metadata.config"].as_str().unwrap().as_bytes()).unwrap();
        let again = Metadata::parse(&encode_metadata(&m)).unwrap();
        assert_eq!(again, m, "{file}");
    }
}
