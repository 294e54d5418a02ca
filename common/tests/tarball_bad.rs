//! Every hostile upload in `fixtures/hex/bad/` is refused with the right variant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hexyard_common::names::NameError;
use hexyard_common::tarball::{
    MetadataError, TarballError, TarballLimits, TermError, TermErrorKind, parse,
};
use hexyard_common::version::VersionError;

const BAD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/hex/bad/"
);

fn parse_bad(file: &str) -> TarballError {
    let bytes = std::fs::read(format!("{BAD}{file}")).unwrap();
    parse(&bytes, &TarballLimits::default()).expect_err(file)
}

#[test]
fn every_bad_fixture_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(BAD)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tar"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "absolute_path.tar",
            "bad_checksum.tar",
            "empty.tar",
            "extra_entry.tar",
            "gzip_bomb.tar",
            "invalid_name.tar",
            "invalid_version.tar",
            "metadata_not_erlang.tar",
            "missing_version.tar",
            "path_traversal.tar",
            "symlink_escape.tar",
            "truncated.tar",
            "version_2.tar",
        ]
    );
}

#[test]
fn bad_checksum() {
    let e = parse_bad("bad_checksum.tar");
    let TarballError::ChecksumMismatch { expected, actual } = e else {
        panic!("{e:?}")
    };
    // make_bad.py wrote sha256("not the inner checksum"); the contents are fx_opt's
    assert_eq!(
        hex::encode(expected),
        "eafbd56c080ab775a8be02e9dcb4317627602219e5a6564118ffd5fb79996942"
    );
    assert_eq!(
        hex::encode(actual),
        "f71ea2da3cfab7908d0226c42b97e5c7033ed570a0a5dd62dc2745a8698d01cd"
    );
    assert_eq!(&expected[..4], &[234, 251, 213, 108]);
}

#[test]
fn path_traversal() {
    assert_eq!(
        parse_bad("path_traversal.tar"),
        TarballError::PathTraversal("../evil".into())
    );
}

#[test]
fn invalid_name() {
    assert_eq!(
        parse_bad("invalid_name.tar"),
        TarballError::InvalidName(NameError::BadCharacter {
            name: "Bad-Name".into(),
            ch: 'B',
            index: 0
        })
    );
}

#[test]
fn invalid_version() {
    let e = parse_bad("invalid_version.tar");
    assert!(
        matches!(&e, TarballError::InvalidVersion(VersionError::Syntax(v, _)) if v == "1.0"),
        "{e:?}"
    );
}

#[test]
fn truncated() {
    assert_eq!(parse_bad("truncated.tar"), TarballError::Truncated);
}

#[test]
fn empty() {
    assert_eq!(parse_bad("empty.tar"), TarballError::Empty);
}

#[test]
fn metadata_not_erlang() {
    // {"name": ... : the ':' at line 1, column 8 is where the Erlang lexer gives up
    assert_eq!(
        parse_bad("metadata_not_erlang.tar"),
        TarballError::Metadata(MetadataError::Syntax(TermError {
            line: 1,
            column: 8,
            kind: TermErrorKind::UnexpectedChar(':'),
        }))
    );
}

#[test]
fn gzip_bomb_stops_at_the_limit() {
    let limit = TarballLimits::default().unpacked_bytes;
    let e = parse_bad("gzip_bomb.tar");
    // read == limit + 1: inflation stopped at the first byte past the limit, not at 201 MiB
    assert_eq!(
        e,
        TarballError::UnpackedTooLarge {
            limit,
            read: limit + 1
        }
    );
}

#[test]
fn gzip_bomb_with_a_small_limit_inflates_only_that_much() {
    let bytes = std::fs::read(format!("{BAD}gzip_bomb.tar")).unwrap();
    let limits = TarballLimits {
        unpacked_bytes: 1 << 20,
        ..TarballLimits::default()
    };
    assert_eq!(
        parse(&bytes, &limits),
        Err(TarballError::UnpackedTooLarge {
            limit: 1 << 20,
            read: (1 << 20) + 1
        })
    );
}

#[test]
fn extra_entry() {
    assert_eq!(
        parse_bad("extra_entry.tar"),
        TarballError::UnexpectedEntry("extra.txt".into())
    );
}

#[test]
fn missing_version() {
    assert_eq!(
        parse_bad("missing_version.tar"),
        TarballError::MissingEntry("VERSION")
    );
}

#[test]
fn version_2() {
    assert_eq!(
        parse_bad("version_2.tar"),
        TarballError::UnsupportedVersion("2".into())
    );
}

#[test]
fn absolute_path() {
    assert_eq!(
        parse_bad("absolute_path.tar"),
        TarballError::AbsolutePath("/tmp/fx_evil".into())
    );
}

#[test]
fn symlink_escape() {
    assert_eq!(
        parse_bad("symlink_escape.tar"),
        TarballError::SymlinkEscape {
            path: "lib/escape".into(),
            target: "../../../../../etc/passwd".into()
        }
    );
}
