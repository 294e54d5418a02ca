//! S3 credentials from the AWS shared files, the profile step of the standard AWS chain:
//! `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`) section `[<profile>]`, then
//! `~/.aws/config` (or `AWS_CONFIG_FILE`) section `[profile <profile>]` (`[default]` for the
//! default profile). The profile is `store.s3.profile`, else `AWS_PROFILE`, else `default`.
//! Only static keys are read (`aws_access_key_id`, `aws_secret_access_key`,
//! `aws_session_token`); SSO, `credential_process` and role assumption are not supported.

use super::{EnvLookup, S3Credentials, Secret};
use std::io::Read;
use std::path::PathBuf;

/// Largest shared file read (they are a few hundred bytes).
const FILE_LIMIT: u64 = 1024 * 1024;

/// The credentials of the profile, `Ok(None)` when no file has them; `Err` for a file that
/// exists but cannot be read.
pub(crate) fn profile_credentials(
    profile: Option<&str>,
    env: EnvLookup<'_>,
) -> Result<Option<(String, S3Credentials)>, String> {
    let var = |n: &str| env(n).filter(|v| !v.is_empty());
    let profile = profile
        .map(str::to_owned)
        .or_else(|| var("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    let home = var("HOME").map(PathBuf::from);
    let file = |override_var: &str, name: &str| {
        var(override_var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let sources = [
        (
            file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            profile.clone(),
        ),
        (
            file("AWS_CONFIG_FILE", "config"),
            if profile == "default" {
                profile.clone()
            } else {
                format!("profile {profile}")
            },
        ),
    ];
    for (path, section) in sources {
        let Some(path) = path else { continue };
        let text = match read_bounded(&path) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let values = section_values(&text, &section);
        let get = |k: &str| {
            values
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        if let (Some(id), Some(secret)) = (get("aws_access_key_id"), get("aws_secret_access_key")) {
            return Ok(Some((
                format!("profile {profile:?} in {}", path.display()),
                S3Credentials {
                    access_key_id: Secret(id),
                    secret_access_key: Secret(secret),
                    session_token: get("aws_session_token").map(Secret),
                },
            )));
        }
    }
    Ok(None)
}

fn read_bounded(path: &std::path::Path) -> std::io::Result<Option<String>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    f.take(FILE_LIMIT).read_to_string(&mut text)?;
    Ok(Some(text))
}

/// The `key = value` pairs of `[section]` in an INI text (keys lower-cased; comments and
/// other sections skipped).
fn section_values(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> {
        move |k| vars.get(k).cloned()
    }

    #[test]
    fn reads_the_profile_from_the_credentials_then_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let aws = dir.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "# comment\n[default]\naws_access_key_id = AKID\naws_secret_access_key=SECRET\n\n[ci]\naws_access_key_id = CIID\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            "[profile ci]\nregion = eu-west-1\naws_access_key_id = CFGID\naws_secret_access_key = CFGSECRET\naws_session_token = TOKEN\n",
        )
        .unwrap();
        let home = dir.path().to_string_lossy().into_owned();
        let env = lookup(HashMap::from([("HOME", home.clone())]));
        let (from, c) = profile_credentials(None, &env).unwrap().unwrap();
        assert!(from.starts_with("profile \"default\""), "{from}");
        assert_eq!(c.access_key_id.expose(), "AKID");
        assert_eq!(c.secret_access_key.expose(), "SECRET");
        assert!(c.session_token.is_none());
        // `ci` is incomplete in the credentials file; the config file has it whole.
        let env = lookup(HashMap::from([
            ("HOME", home.clone()),
            ("AWS_PROFILE", "ci".to_owned()),
        ]));
        let (_, c) = profile_credentials(None, &env).unwrap().unwrap();
        assert_eq!(c.access_key_id.expose(), "CFGID");
        assert_eq!(c.session_token.as_ref().map(Secret::expose), Some("TOKEN"));
        // The config's profile wins over AWS_PROFILE; a missing profile is no credentials.
        assert!(profile_credentials(Some("nope"), &env).unwrap().is_none());
        // Files named by the variables.
        let other = dir.path().join("creds");
        std::fs::write(
            &other,
            "[x]\naws_access_key_id=X\naws_secret_access_key=Y\n",
        )
        .unwrap();
        let env = lookup(HashMap::from([(
            "AWS_SHARED_CREDENTIALS_FILE",
            other.to_string_lossy().into_owned(),
        )]));
        let (_, c) = profile_credentials(Some("x"), &env).unwrap().unwrap();
        assert_eq!(c.access_key_id.expose(), "X");
        // No HOME and no files: nothing, not an error.
        assert!(
            profile_credentials(None, &lookup(HashMap::new()))
                .unwrap()
                .is_none()
        );
    }
}
