//! The 8 real tarballs in `fixtures/hex/registry/tarballs/`: they parse, their checksums
//! match the fixture README / decoded JSON, every limit trips just below their real sizes,
//! `build_outer` rebuilds them byte for byte, and `TarballBuilder` output parses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use hexyard_common::names::NameRules;
use hexyard_common::tarball::{
    Metadata, Requirement, TarballBuilder, TarballError, TarballLimits, Term, build_outer, parse,
};

const HEX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/hex/");

/// (name, version, outer sha256, inner checksum) from fixtures/hex/README.md's table.
const TABLE: [(&str, &str, &str, &str); 8] = [
    (
        "fx_core",
        "0.1.0",
        "425e8f3f5fdfac322fe49b95ae7af185e802b0ba7fee41a442c5dd9a41612fbf",
        "f0cacdb47df660373153c880942711ee8e703dd2a40c5fea8c3293609b35715f",
    ),
    (
        "fx_core",
        "0.2.0",
        "8249223f919ce8d128d6b99f1cf0209379a2338157bb625d73a9ad86c230a0b8",
        "8f306a7d6c82bd2f169ddea13936bfa65f3d95113da2f0ffaedb069d2758f927",
    ),
    (
        "fx_core",
        "1.0.0-rc.1",
        "16f585c86f43a8bb50bd3b63c6c1e16680385fa19ac2a6b12f83777bc75e560c",
        "28efc54102f83d7106987611516e44d048da65a35343f0bfb9930becabb69058",
    ),
    (
        "fx_json",
        "0.3.0",
        "9926e8fd81f9628d811de66f4621f223d1fe60580fd1fe509f1956b56f4c1ba6",
        "4198a2f48701544c23b711d597dd1d3b7bee2c95c0c9ba4d4bb6b9d406557122",
    ),
    (
        "fx_opt",
        "1.0.0",
        "a99f482edb06c0ab319c5d14107427f3d3594fcc23c50656929eada04c46717f",
        "f71ea2da3cfab7908d0226c42b97e5c7033ed570a0a5dd62dc2745a8698d01cd",
    ),
    (
        "fx_erl",
        "0.1.0",
        "ecb3764d8a5388b15a2bd2bc676cae511326e6f08bf017286e9f709f59bdc676",
        "059054b51354d769f0f6fe40facfbf7a684b24e6fe01031af383609d4ed37b63",
    ),
    (
        "fx_unicode",
        "0.1.0",
        "7695248df096dd15cb8ba4bf1878778c3a9ced0968d6145c8ec178b729f81141",
        "68989d1ed8a5ef27d7cc4670acacce73fa8f8c60b71ec15f25685fb4b5a271da",
    ),
    (
        "fx_alias",
        "0.1.0",
        "b5caa354b75c0e085a92104adccebe7195c11ebf36d3ca6e121b75d8f0d1981b",
        "15e1d540c611c74a1b482cf3be111f0ed81144bb7d5786d92c31489023214811",
    ),
];

fn tarball(name: &str, version: &str) -> Vec<u8> {
    std::fs::read(format!("{HEX}registry/tarballs/{name}-{version}.tar")).unwrap()
}

fn decoded(name: &str, version: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{HEX}decoded/tarballs/{name}-{version}.json"));
    serde_json::from_str(&text.unwrap()).unwrap()
}

/// The outer entries, read with an independent tar reader (the `tar` crate).
fn outer_parts(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

fn part<'a>(parts: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &parts.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn good_tarballs_parse_with_the_published_checksums() {
    for (name, version, outer, inner) in TABLE {
        let bytes = tarball(name, version);
        let t = parse(&bytes, &TarballLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json = decoded(name, version);
        assert_eq!(t.name, name);
        assert_eq!(t.version.to_string(), version);
        assert_eq!(t.metadata.name, name);
        assert_eq!(t.metadata.version, version);
        assert_eq!(hex::encode(t.outer_checksum), outer, "{name}");
        assert_eq!(hex::encode(t.inner_checksum), inner, "{name}");
        assert_eq!(json["outer_sha256"], outer);
        assert_eq!(json["CHECKSUM_lowercase"], inner);
        assert_eq!(
            t.metadata_raw,
            json["metadata.config"].as_str().unwrap().as_bytes()
        );
        let entries = json["contents.tar.gz"]["entries"].as_array().unwrap();
        assert_eq!(t.files, entries.len() as u64, "{name}");
        // unpacked size checked against an independent gunzip
        let parts = outer_parts(&bytes);
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(part(&parts, "contents.tar.gz"))
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(t.unpacked_bytes, raw.len() as u64, "{name}");
    }
}

#[test]
fn each_limit_trips_just_below_the_real_size() {
    for (name, version, _, _) in TABLE {
        let bytes = tarball(name, version);
        let real = parse(&bytes, &TarballLimits::default()).unwrap();
        let exact = TarballLimits {
            tarball_bytes: bytes.len() as u64,
            unpacked_bytes: real.unpacked_bytes,
            metadata_bytes: real.metadata_raw.len() as u64,
            max_entries: real.files,
            name_rules: NameRules {
                min_len: name.len(),
                max_len: name.len(),
                reserved: true,
            },
        };
        assert_eq!(
            parse(&bytes, &exact).as_ref(),
            Ok(&real),
            "{name} at exact limits"
        );

        let l = TarballLimits {
            tarball_bytes: exact.tarball_bytes - 1,
            ..exact.clone()
        };
        assert_eq!(
            parse(&bytes, &l),
            Err(TarballError::TooLarge {
                size: exact.tarball_bytes,
                limit: exact.tarball_bytes - 1
            })
        );
        let l = TarballLimits {
            metadata_bytes: exact.metadata_bytes - 1,
            ..exact.clone()
        };
        assert_eq!(
            parse(&bytes, &l),
            Err(TarballError::MetadataTooLarge {
                size: exact.metadata_bytes,
                limit: exact.metadata_bytes - 1
            })
        );
        let l = TarballLimits {
            unpacked_bytes: exact.unpacked_bytes - 1,
            ..exact.clone()
        };
        assert_eq!(
            parse(&bytes, &l),
            Err(TarballError::UnpackedTooLarge {
                limit: exact.unpacked_bytes - 1,
                read: exact.unpacked_bytes
            })
        );
        let l = TarballLimits {
            max_entries: exact.max_entries - 1,
            ..exact.clone()
        };
        assert_eq!(
            parse(&bytes, &l),
            Err(TarballError::TooManyEntries {
                limit: exact.max_entries - 1
            })
        );
        let l = TarballLimits {
            name_rules: NameRules {
                max_len: name.len() - 1,
                ..exact.name_rules.clone()
            },
            ..exact.clone()
        };
        assert!(matches!(
            parse(&bytes, &l),
            Err(TarballError::InvalidName(_))
        ));
    }
}

#[test]
fn build_outer_reproduces_every_fixture_byte_for_byte() {
    for (name, version, _, _) in TABLE {
        let bytes = tarball(name, version);
        let parts = outer_parts(&bytes);
        let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["VERSION", "CHECKSUM", "metadata.config", "contents.tar.gz"]
        );
        let rebuilt = build_outer(
            part(&parts, "VERSION"),
            part(&parts, "metadata.config"),
            part(&parts, "contents.tar.gz"),
        );
        assert!(rebuilt == bytes, "{name}-{version} differs");
    }
}

#[test]
fn builder_output_parses_and_its_checksum_is_right() {
    let bytes = TarballBuilder::new("my_pkg", "1.2.3-beta.1")
        .app("my_app")
        .description("Zürich demo")
        .license("Apache-2.0")
        .link("Source", "https://example.com")
        .elixir("~> 1.14")
        .requirement(Requirement::new("zeta", "~> 1.0"))
        .requirement(Requirement {
            name: "alpha".into(),
            app: None,
            requirement: ">= 0.0.0".into(),
            optional: true,
            repository: Some("acme".into()),
        })
        .file("lib/my_pkg.ex", "defmodule MyPkg do\nend\n")
        .file("mix.exs", vec![0u8; 3000])
        .build()
        .unwrap();
    let t = parse(&bytes, &TarballLimits::default()).unwrap();
    assert_eq!(t.name, "my_pkg");
    assert_eq!(t.version.to_string(), "1.2.3-beta.1");
    assert_eq!(t.files, 2);
    assert_eq!(t.metadata.app.as_deref(), Some("my_app"));
    assert_eq!(t.metadata.description.as_deref(), Some("Zürich demo"));
    assert_eq!(t.metadata.files, ["lib/my_pkg.ex", "mix.exs"]);
    let names: Vec<&str> = t
        .metadata
        .requirements
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert!(t.metadata.requirements[0].optional);
    assert_eq!(
        t.metadata.requirements[0].repository.as_deref(),
        Some("acme")
    );

    // CHECKSUM is sha256 of the three other parts, and the parser agreed with it
    let parts = outer_parts(&bytes);
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in ["VERSION", "metadata.config", "contents.tar.gz"] {
        ctx.update(part(&parts, p));
    }
    let sum = ctx.finish();
    assert_eq!(
        part(&parts, "CHECKSUM"),
        hex::encode_upper(sum.as_ref()).as_bytes()
    );
    assert_eq!(&t.inner_checksum[..], sum.as_ref());
    assert_eq!(part(&parts, "VERSION"), b"3");

    // contents.tar.gz has hex_core's gzip header (mtime 0, OS byte 0)
    assert_eq!(
        &part(&parts, "contents.tar.gz")[..10],
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn builder_handles_long_paths_and_custom_metadata() {
    let long = format!("{}/{}.ex", "lib/deep".repeat(15), "f".repeat(80));
    let mut b = TarballBuilder::new("long_paths", "0.0.1").file(long.clone(), "x");
    b.metadata_mut()
        .other
        .push(("maintainers".into(), Term::List(vec![Term::binary("me")])));
    let t = parse(&b.build().unwrap(), &TarballLimits::default()).unwrap();
    assert_eq!(t.metadata.files, [long]);
    assert_eq!(
        t.metadata.other,
        [(
            "maintainers".to_string(),
            Term::List(vec![Term::binary("me")])
        )]
    );
    let too_long = "x".repeat(300);
    assert!(matches!(
        TarballBuilder::new("p_q", "1.0.0")
            .file(too_long, "x")
            .build(),
        Err(hexyard_common::tarball::BuildError::PathTooLong(_))
    ));
}

#[test]
fn hostile_inner_entries_built_by_hand_are_refused() {
    use hexyard_common::tarball::build::build_contents;
    let meta = TarballBuilder::new("evil", "1.0.0").metadata_config();
    let parse_contents = |contents: Vec<u8>| {
        parse(
            &build_outer(b"3", &meta, &contents),
            &TarballLimits::default(),
        )
    };
    let c = build_contents([("a/../../x", &b"x"[..])]).unwrap();
    assert_eq!(
        parse_contents(c),
        Err(TarballError::PathTraversal("a/../../x".into()))
    );

    // not gzip at all
    assert!(matches!(
        parse_contents(b"plain".to_vec()),
        Err(TarballError::BadGzip(_))
    ));
    // gzip of something that is not a tar
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &[1u8; 2048]).unwrap();
    assert!(matches!(
        parse_contents(gz.finish().unwrap()),
        Err(TarballError::BadContentsTar(_))
    ));
    // truncated gzip
    let mut c = build_contents([("lib/a.ex", &[7u8; 5000][..])]).unwrap();
    c.truncate(c.len() - 10);
    assert!(matches!(parse_contents(c), Err(TarballError::BadGzip(_))));

    // hard link, fifo, device, allowed dir and inner symlink: built with the tar crate
    let inner = |kind: tar::EntryType, path: &str, link: Option<&str>| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o644);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut h, path, &[][..]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
        gz.finish().unwrap()
    };
    assert_eq!(
        parse_contents(inner(tar::EntryType::Link, "lib/h", Some("mix.exs"))),
        Err(TarballError::HardLink("lib/h".into()))
    );
    assert_eq!(
        parse_contents(inner(tar::EntryType::Fifo, "lib/f", None)),
        Err(TarballError::SpecialFile {
            path: "lib/f".into(),
            kind: '6'
        })
    );
    assert_eq!(
        parse_contents(inner(tar::EntryType::Char, "lib/c", None)),
        Err(TarballError::SpecialFile {
            path: "lib/c".into(),
            kind: '3'
        })
    );
    assert!(parse_contents(inner(tar::EntryType::Directory, "lib/", None)).is_ok());
    assert!(parse_contents(inner(tar::EntryType::Symlink, "lib/s", Some("../mix.exs"))).is_ok());
    assert_eq!(
        parse_contents(inner(tar::EntryType::Symlink, "lib/s", Some("/etc/passwd"))),
        Err(TarballError::SymlinkEscape {
            path: "lib/s".into(),
            target: "/etc/passwd".into()
        })
    );
}

#[test]
fn hostile_outer_structures_are_refused() {
    let good = tarball("fx_opt", "1.0.0");
    let limits = TarballLimits::default();

    // a duplicate VERSION entry (appended before the end blocks)
    let parts = outer_parts(&good);
    let mut dup = build_outer(
        part(&parts, "VERSION"),
        part(&parts, "metadata.config"),
        part(&parts, "contents.tar.gz"),
    );
    dup.truncate(dup.len() - 1024);
    dup.extend_from_slice(&good[..1024]); // VERSION header + its data block
    dup.extend_from_slice(&[0u8; 1024]);
    assert_eq!(
        parse(&dup, &limits),
        Err(TarballError::DuplicateEntry("VERSION".into()))
    );

    // a header with a broken checksum
    let mut broken = good.clone();
    broken[0] = b'X';
    assert!(matches!(
        parse(&broken, &limits),
        Err(TarballError::Malformed(_))
    ));

    // a directory entry in the outer tar
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut h, "lib/", &[][..]).unwrap();
    let dir = b.into_inner().unwrap();
    assert_eq!(
        parse(&dir, &limits),
        Err(TarballError::NotRegularFile("lib/".into()))
    );

    // garbage after the end-of-archive marker
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    assert!(matches!(
        parse(&trailing, &limits),
        Err(TarballError::Malformed(_))
    ));
    // zero padding after it is fine
    let mut padded = good.clone();
    padded.extend_from_slice(&[0u8; 8192]);
    assert!(parse(&padded, &limits).is_ok());
    // no end-of-archive marker at all
    assert_eq!(
        parse(&good[..good.len() - 1024], &limits),
        Err(TarballError::Truncated)
    );

    // CHECKSUM in lowercase is accepted; malformed CHECKSUM is its own error
    let m = part(&parts, "metadata.config");
    let x = part(&parts, "contents.tar.gz");
    let lower = rewrite_checksum(&parts, |c| c.to_ascii_lowercase());
    assert_eq!(parse(&lower, &limits).unwrap().outer_checksum.len(), 32);
    let short = rewrite_checksum(&parts, |c| c[..63].to_vec());
    assert_eq!(parse(&short, &limits), Err(TarballError::BadChecksumFormat));
    // VERSION "3\n" is not "3"
    let nl = build_outer(b"3\n", m, x);
    assert_eq!(
        parse(&nl, &limits),
        Err(TarballError::UnsupportedVersion("3\n".into()))
    );
}

/// Rebuilds fx_opt's outer tar with a modified CHECKSUM entry (hand-written headers via the
/// tar crate, so the rest is unchanged in content).
fn rewrite_checksum(parts: &[(String, Vec<u8>)], f: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in parts {
        let data = if name == "CHECKSUM" {
            f(data)
        } else {
            data.clone()
        };
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn metadata_field_errors_surface_through_parse() {
    let m = b"{<<\"name\">>,<<\"ok_pkg\">>}.\n".to_vec();
    let x = hexyard_common::tarball::build::build_contents([]).unwrap();
    assert_eq!(
        parse(&build_outer(b"3", &m, &x), &TarballLimits::default()),
        Err(TarballError::Metadata(
            hexyard_common::tarball::MetadataError::MissingField("version".into())
        ))
    );
    let parsed =
        Metadata::parse(b"{<<\"name\">>,<<\"ok_pkg\">>}.\n{<<\"version\">>,<<\"1.0.0\">>}.\n");
    assert_eq!(parsed.unwrap().name, "ok_pkg");
}
