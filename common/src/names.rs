//! Package name rules (protocol doc §5.1).
//!
//! hex.pm accepts names matching `^[a-z][a-z0-9_]*$`, at least 2 characters long, that
//! are not on its reserved list. [`NameRules`] holds the tunable parts (length bounds,
//! whether the reserved list applies) so the deployment config can adjust them;
//! [`NameRules::check`] applies them.

use serde::Deserialize;

/// hex.pm's reserved package names (hexpm/hexpm `lib/hexpm/repository/package.ex`):
/// Elixir and OTP applications, build tools, Windows device names and hex.pm's own
/// route-like words.
pub const RESERVED_NAMES: &[&str] = &[
    // Elixir
    "eex",
    "elixir",
    "elixirc",
    "ex_unit",
    "iex",
    "logger",
    "mix",
    // OTP applications
    "otp",
    "asn1",
    "common_test",
    "compiler",
    "crypto",
    "debugger",
    "dialyzer",
    "diameter",
    "edoc",
    "eldap",
    "erl_docgen",
    "erl_interface",
    "erts",
    "et",
    "eunit",
    "ftp",
    "hipe",
    "inets",
    "jinterface",
    "kernel",
    "megaco",
    "mnesia",
    "observer",
    "odbc",
    "os_mon",
    "parsetools",
    "public_key",
    "reltool",
    "runtime_tools",
    "sasl",
    "snmp",
    "ssh",
    "ssl",
    "stdlib",
    "syntax_tools",
    "toolbar",
    "tools",
    "typer",
    "wx",
    "xmerl",
    "tftp",
    "httpc",
    "httpd",
    // executables and tools
    "erlang",
    "to_erl",
    "run_erl",
    "escript",
    "erlc",
    "erl",
    "epmd",
    "ct_run",
    "rebar",
    "rebar3",
    "hex",
    "hexpm",
    "mix_hex",
    // protocol-ish names
    "net",
    "http",
    "net_http",
    "gen_http",
    // Windows device names
    "nul",
    "con",
    "prn",
    "aux",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
    // hex.pm words
    "package",
    "organization",
    "www",
    "myapp",
    "lock",
    "locked",
    "all",
    "assets",
    "api",
    "docs",
    "preview",
    "search",
    "staging",
    "stats",
    "static",
];

/// Why a package name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("package name is empty")]
    Empty,
    /// Shorter than [`NameRules::min_len`].
    #[error("package name {name:?} is shorter than {min} characters")]
    TooShort { name: String, min: usize },
    /// Longer than [`NameRules::max_len`] (bytes). The name is not echoed back.
    #[error("package name is {len} bytes long, more than {max}")]
    TooLong { len: usize, max: usize },
    /// A character outside `[a-z0-9_]`, or a first character that is not `[a-z]`.
    /// `index` is the character index (0-based).
    #[error(
        "package name {name:?} has an invalid character {ch:?} at {index} (must match ^[a-z][a-z0-9_]*$)"
    )]
    BadCharacter {
        name: String,
        ch: char,
        index: usize,
    },
    /// The name is on [`RESERVED_NAMES`].
    #[error("package name {0:?} is reserved")]
    Reserved(String),
}

/// Tunable package-name rules. `Default` is hex.pm's: 2..=255 characters, reserved
/// names refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NameRules {
    /// Minimum length in characters (hex.pm: 2).
    pub min_len: usize,
    /// Maximum length in bytes (hex.pm has none; we default to 255).
    pub max_len: usize,
    /// Whether [`RESERVED_NAMES`] are refused.
    pub reserved: bool,
}

impl Default for NameRules {
    fn default() -> Self {
        NameRules {
            min_len: 2,
            max_len: 255,
            reserved: true,
        }
    }
}

impl NameRules {
    /// Checks `name` against the rules. `Err` says which rule failed; checks run in the
    /// order empty, too long, bad character, too short, reserved.
    pub fn check(&self, name: &str) -> Result<(), NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > self.max_len {
            return Err(NameError::TooLong {
                len: name.len(),
                max: self.max_len,
            });
        }
        for (index, ch) in name.chars().enumerate() {
            let ok = if index == 0 {
                ch.is_ascii_lowercase()
            } else {
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'
            };
            if !ok {
                return Err(NameError::BadCharacter {
                    name: name.to_owned(),
                    ch,
                    index,
                });
            }
        }
        // All characters are ASCII here, so bytes == characters.
        if name.len() < self.min_len {
            return Err(NameError::TooShort {
                name: name.to_owned(),
                min: self.min_len,
            });
        }
        if self.reserved && RESERVED_NAMES.contains(&name) {
            return Err(NameError::Reserved(name.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        let r = NameRules::default();
        for ok in ["fx_core", "ab", "a1", "a_", "phoenix_live_view", "x9_9"] {
            assert_eq!(r.check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_each_rule_with_its_variant() {
        let r = NameRules::default();
        assert_eq!(r.check(""), Err(NameError::Empty));
        assert_eq!(
            r.check("a"),
            Err(NameError::TooShort {
                name: "a".into(),
                min: 2
            })
        );
        assert_eq!(
            r.check(&"a".repeat(256)),
            Err(NameError::TooLong { len: 256, max: 255 })
        );
        assert_eq!(r.check(&"a".repeat(255)), Ok(()));
        assert_eq!(
            r.check("Bad-Name"),
            Err(NameError::BadCharacter {
                name: "Bad-Name".into(),
                ch: 'B',
                index: 0
            })
        );
        assert_eq!(
            r.check("bad-name"),
            Err(NameError::BadCharacter {
                name: "bad-name".into(),
                ch: '-',
                index: 3
            })
        );
        assert!(matches!(
            r.check("1abc"),
            Err(NameError::BadCharacter {
                ch: '1',
                index: 0,
                ..
            })
        ));
        assert!(matches!(
            r.check("_abc"),
            Err(NameError::BadCharacter {
                ch: '_',
                index: 0,
                ..
            })
        ));
        assert!(matches!(
            r.check("züri"),
            Err(NameError::BadCharacter {
                ch: 'ü',
                index: 1,
                ..
            })
        ));
        for reserved in [
            "elixir", "mix", "kernel", "com1", "lpt9", "api", "mix_hex", "et",
        ] {
            assert_eq!(
                r.check(reserved),
                Err(NameError::Reserved(reserved.into())),
                "{reserved}"
            );
        }
    }

    #[test]
    fn rules_are_tunable() {
        let r = NameRules {
            min_len: 4,
            max_len: 6,
            reserved: false,
        };
        assert_eq!(
            r.check("mix"),
            Err(NameError::TooShort {
                name: "mix".into(),
                min: 4
            })
        );
        assert_eq!(r.check("elixir"), Ok(()));
        assert_eq!(
            r.check("elixirc"),
            Err(NameError::TooLong { len: 7, max: 6 })
        );
    }

    #[test]
    fn reserved_list_is_valid_and_unique() {
        let r = NameRules {
            reserved: false,
            ..NameRules::default()
        };
        let mut seen = std::collections::HashSet::new();
        for n in RESERVED_NAMES {
            assert_eq!(r.check(n), Ok(()), "{n}");
            assert!(seen.insert(*n), "duplicate {n}");
        }
    }
}
