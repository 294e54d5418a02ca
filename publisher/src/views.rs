//! The maps the API returns (hexpm's `PackageView`/`ReleaseView` fields that mix and
//! rebar3_hex read; protocol doc §6.2). Built as [`Term`]s, rendered as Erlang terms or JSON.

use hexyard_common::etf::Term;
use hexyard_common::registry::proto;
use hexyard_common::tarball::Metadata;
use std::time::{Duration, UNIX_EPOCH};

/// URLs of a repository's API and files.
pub struct Urls<'a> {
    pub public_url: &'a str,
    pub repo: &'a str,
}

impl Urls<'_> {
    pub fn package(&self, name: &str) -> String {
        format!(
            "{}/api/repos/{}/packages/{name}",
            self.public_url, self.repo
        )
    }
    pub fn release(&self, name: &str, version: &str) -> String {
        format!("{}/releases/{version}", self.package(name))
    }
    pub fn tarball(&self, name: &str, version: &str) -> String {
        format!(
            "{}/repos/{}/tarballs/{name}-{version}.tar",
            self.public_url, self.repo
        )
    }
    pub fn docs(&self, name: &str, version: &str) -> String {
        format!(
            "{}/repos/{}/docs/{name}-{version}.tar.gz",
            self.public_url, self.repo
        )
    }
}

/// ISO-8601 UTC text of a registry timestamp (`1970-01-01T00:00:00Z` when absent).
pub fn iso8601(ts: Option<&proto::Timestamp>) -> String {
    let secs = ts.map_or(0, |t| t.seconds.max(0));
    let t = UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs());
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (d / 86_400, d % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let (y, mo, da) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!("{y:04}-{mo:02}-{da:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// API spelling of a retirement reason.
pub fn reason_name(reason: i32) -> &'static str {
    match reason {
        1 => "invalid",
        2 => "security",
        3 => "deprecated",
        4 => "renamed",
        _ => "other",
    }
}

/// Registry value of an API retirement reason.
pub fn reason_value(name: &str) -> Option<proto::RetirementReason> {
    Some(match name {
        "other" => proto::RetirementReason::RetiredOther,
        "invalid" => proto::RetirementReason::RetiredInvalid,
        "security" => proto::RetirementReason::RetiredSecurity,
        "deprecated" => proto::RetirementReason::RetiredDeprecated,
        "renamed" => proto::RetirementReason::RetiredRenamed,
        _ => return None,
    })
}

fn retirement(r: Option<&proto::RetirementStatus>) -> Term {
    match r {
        None => Term::nil(),
        Some(r) => Term::map([
            ("reason", Term::bin(reason_name(r.reason))),
            (
                "message",
                r.message.as_deref().map_or_else(Term::nil, Term::bin),
            ),
        ]),
    }
}

fn opt_text(s: Option<&str>) -> Term {
    s.map_or_else(Term::nil, Term::bin)
}

/// The release map (`GET /packages/NAME/releases/VERSION`, publish responses).
pub fn release_map(
    urls: &Urls<'_>,
    name: &str,
    release: &proto::Release,
    meta: Option<&Metadata>,
    has_docs: bool,
    publisher: Option<&str>,
) -> Term {
    let v = release.version.as_str();
    let checksum = release
        .outer_checksum
        .as_deref()
        .map(hex::encode)
        .unwrap_or_default();
    let at = iso8601(release.published_at.as_ref());
    let requirements = Term::map(release.dependencies.iter().map(|d| {
        (
            d.package.as_str(),
            Term::map([
                ("app", Term::bin(d.app.as_deref().unwrap_or(&d.package))),
                ("requirement", Term::bin(&d.requirement)),
                ("optional", Term::bool(d.optional.unwrap_or(false))),
                ("repository", opt_text(d.repository.as_deref())),
            ]),
        )
    }));
    let meta_map = Term::map([
        (
            "app",
            opt_text(meta.and_then(|m| m.app.as_deref()).or(Some(name))),
        ),
        (
            "build_tools",
            Term::List(
                meta.map_or_else(Vec::new, |m| m.build_tools.iter().map(Term::bin).collect()),
            ),
        ),
        ("elixir", opt_text(meta.and_then(|m| m.elixir.as_deref()))),
    ]);
    Term::map([
        ("version", Term::bin(v)),
        ("checksum", Term::bin(checksum)),
        (
            "inner_checksum",
            Term::bin(hex::encode(&release.inner_checksum)),
        ),
        ("has_docs", Term::bool(has_docs)),
        ("inserted_at", Term::bin(&at)),
        ("updated_at", Term::bin(&at)),
        ("url", Term::bin(urls.release(name, v))),
        ("html_url", Term::bin(urls.release(name, v))),
        ("package_url", Term::bin(urls.package(name))),
        ("tarball_url", Term::bin(urls.tarball(name, v))),
        (
            "docs_html_url",
            if has_docs {
                Term::bin(urls.docs(name, v))
            } else {
                Term::nil()
            },
        ),
        ("meta", meta_map),
        ("requirements", requirements),
        ("retirement", retirement(release.retired.as_ref())),
        (
            "publisher",
            match publisher {
                Some(p) => Term::map([("username", Term::bin(p)), ("email", Term::nil())]),
                None => Term::nil(),
            },
        ),
        ("downloads", Term::Int(0)),
        ("configs", Term::map(Vec::<(&str, Term)>::new())),
    ])
}

/// The package map (`GET /packages/NAME`, search results). `latest_meta` is the metadata of
/// the newest release (description, licenses, links).
pub fn package_map(
    urls: &Urls<'_>,
    pkg: &proto::Package,
    latest_meta: Option<&Metadata>,
    docs: &dyn Fn(&str) -> bool,
) -> Term {
    let name = pkg.name.as_str();
    // Newest first, as hex.pm lists them (mix hex.info takes the first stable one).
    let releases: Vec<Term> = pkg
        .releases
        .iter()
        .rev()
        .map(|r| {
            let at = iso8601(r.published_at.as_ref());
            Term::map([
                ("version", Term::bin(&r.version)),
                ("url", Term::bin(urls.release(name, &r.version))),
                ("has_docs", Term::bool(docs(&r.version))),
                ("inserted_at", Term::bin(at)),
            ])
        })
        .collect();
    let retirements = Term::map(pkg.releases.iter().filter_map(|r| {
        r.retired
            .as_ref()
            .map(|s| (r.version.as_str(), retirement(Some(s))))
    }));
    let latest = pkg.releases.last().map(|r| r.version.clone());
    let latest_stable = pkg
        .releases
        .iter()
        .rev()
        .find(|r| !r.version.contains('-'))
        .map(|r| r.version.clone())
        .or_else(|| latest.clone());
    let first_at = pkg
        .releases
        .iter()
        .filter_map(|r| r.published_at.as_ref())
        .min_by_key(|t| t.seconds);
    let last_at = pkg
        .releases
        .iter()
        .filter_map(|r| r.published_at.as_ref())
        .max_by_key(|t| t.seconds);
    let meta = Term::map([
        (
            "description",
            opt_text(latest_meta.and_then(|m| m.description.as_deref())),
        ),
        (
            "licenses",
            Term::List(
                latest_meta.map_or_else(Vec::new, |m| m.licenses.iter().map(Term::bin).collect()),
            ),
        ),
        (
            "links",
            Term::map(
                latest_meta
                    .map(|m| {
                        m.links
                            .iter()
                            .map(|(k, v)| (k.as_str(), Term::bin(v)))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            ),
        ),
        ("maintainers", Term::List(vec![])),
    ]);
    Term::map([
        ("name", Term::bin(name)),
        ("repository", Term::bin(&pkg.repository)),
        ("url", Term::bin(urls.package(name))),
        ("html_url", Term::bin(urls.package(name))),
        ("docs_html_url", Term::nil()),
        ("meta", meta),
        ("releases", Term::List(releases)),
        ("retirements", retirements),
        ("latest_version", opt_text(latest.as_deref())),
        ("latest_stable_version", opt_text(latest_stable.as_deref())),
        ("inserted_at", Term::bin(iso8601(first_at))),
        ("updated_at", Term::bin(iso8601(last_at))),
        ("downloads", Term::map(Vec::<(&str, Term)>::new())),
        ("configs", Term::map(Vec::<(&str, Term)>::new())),
        ("owners", Term::List(vec![])),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        let t = |s| {
            iso8601(Some(&proto::Timestamp {
                seconds: s,
                nanos: 0,
            }))
        };
        assert_eq!(t(0), "1970-01-01T00:00:00Z");
        assert_eq!(t(1_710_496_800), "2024-03-15T10:00:00Z");
        assert_eq!(t(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(t(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(iso8601(None), "1970-01-01T00:00:00Z");
    }
}
