//! The registry v2 protobuf messages (proto2), written by hand for prost (protocol doc §3.2).
//!
//! Labels follow the `.proto` files exactly: `required` scalars are plain fields and are
//! always on the wire; `optional` scalars are `Option` so that presence survives a
//! decode/encode round trip (`Dependency.optional = false` and `Timestamp.nanos = 0` are on
//! the wire in files written by `mix hex.registry build` and are re-emitted). Enum fields are
//! `i32` so unknown values decode; use the generated getters (`reason()`, `severity()`) for
//! the typed view. Unknown fields are skipped on decode.
//!
//! Nested messages of the `.proto` files (`Names.Package`, `Versions.Package`) are
//! [`NamesPackage`] and [`VersionsPackage`] here.

/// `Signed`: the envelope of every registry file (after gunzip).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Signed {
    /// Serialized inner message (`Names`, `Versions`, `Package`).
    #[prost(bytes = "vec", required, tag = "1")]
    pub payload: Vec<u8>,
    /// RSASSA-PKCS1-v1_5 / SHA-512 signature over `payload`, raw bytes.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub signature: Option<Vec<u8>>,
}

/// `Names` (`/names`): every package of a repository.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Names {
    /// Packages, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub packages: Vec<NamesPackage>,
    /// Repository name (origin-checked).
    #[prost(string, required, tag = "2")]
    pub repository: String,
}

/// `Names.Package`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct NamesPackage {
    /// Package name.
    #[prost(string, required, tag = "1")]
    pub name: String,
    /// Last update of the package (tag 2 is reserved).
    #[prost(message, optional, tag = "3")]
    pub updated_at: Option<Timestamp>,
}

/// `Timestamp` (same shape in names.proto and package.proto).
#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, required, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second (always on the wire, even 0).
    #[prost(int32, required, tag = "2")]
    pub nanos: i32,
}

/// `Versions` (`/versions`): every version of every package of a repository.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Versions {
    /// Packages, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub packages: Vec<VersionsPackage>,
    /// Repository name (origin-checked).
    #[prost(string, required, tag = "2")]
    pub repository: String,
}

/// `Versions.Package`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct VersionsPackage {
    /// Package name.
    #[prost(string, required, tag = "1")]
    pub name: String,
    /// All versions, ascending by SemVer.
    #[prost(string, repeated, tag = "2")]
    pub versions: Vec<String>,
    /// Zero-based indexes into `versions` of retired releases (packed on the wire).
    #[prost(int32, repeated, packed = "true", tag = "3")]
    pub retired: Vec<i32>,
    /// Indexes into `versions` of releases with security advisories (packed; tag 4 is reserved).
    #[prost(int32, repeated, packed = "true", tag = "5")]
    pub with_advisories: Vec<i32>,
}

/// `Package` (`/packages/NAME`): all releases of one package.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Package {
    /// Releases, ascending by SemVer.
    #[prost(message, repeated, tag = "1")]
    pub releases: Vec<Release>,
    /// Package name (must equal NAME in the URL).
    #[prost(string, required, tag = "2")]
    pub name: String,
    /// Repository name (origin-checked).
    #[prost(string, required, tag = "3")]
    pub repository: String,
    /// Security advisories, referenced by `Release.advisory_indexes`.
    #[prost(message, repeated, tag = "4")]
    pub advisories: Vec<SecurityAdvisory>,
}

/// `Release`: one version of a package.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Release {
    /// Version string.
    #[prost(string, required, tag = "1")]
    pub version: String,
    /// 32-byte SHA-256 "inner" checksum (deprecated, still required).
    #[prost(bytes = "vec", required, tag = "2")]
    pub inner_checksum: Vec<u8>,
    /// Dependencies, sorted by package name.
    #[prost(message, repeated, tag = "3")]
    pub dependencies: Vec<Dependency>,
    /// Present when the release is retired.
    #[prost(message, optional, tag = "4")]
    pub retired: Option<RetirementStatus>,
    /// 32-byte SHA-256 of the whole tarball (effectively required by clients).
    #[prost(bytes = "vec", optional, tag = "5")]
    pub outer_checksum: Option<Vec<u8>>,
    /// Indexes into `Package.advisories` (not packed).
    #[prost(uint32, repeated, packed = "false", tag = "6")]
    pub advisory_indexes: Vec<u32>,
    /// Publish time.
    #[prost(message, optional, tag = "7")]
    pub published_at: Option<Timestamp>,
}

/// `Dependency` of a release.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Dependency {
    /// Dependency package name.
    #[prost(string, required, tag = "1")]
    pub package: String,
    /// Elixir-style version requirement.
    #[prost(string, required, tag = "2")]
    pub requirement: String,
    /// Optional dependency (hex.pm writes it only when true; mix always writes it).
    #[prost(bool, optional, tag = "3")]
    pub optional: Option<bool>,
    /// OTP application name, if it differs from `package`.
    #[prost(string, optional, tag = "4")]
    pub app: Option<String>,
    /// Repository name, only when it differs from the package's own repository.
    #[prost(string, optional, tag = "5")]
    pub repository: Option<String>,
}

/// `RetirementStatus` of a retired release.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct RetirementStatus {
    /// A [`RetirementReason`] value; unknown values are kept as is.
    #[prost(enumeration = "RetirementReason", required, tag = "1")]
    pub reason: i32,
    /// Free-text message.
    #[prost(string, optional, tag = "2")]
    pub message: Option<String>,
}

/// `RetirementReason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum RetirementReason {
    /// `other`
    RetiredOther = 0,
    /// `invalid`
    RetiredInvalid = 1,
    /// `security`
    RetiredSecurity = 2,
    /// `deprecated`
    RetiredDeprecated = 3,
    /// `renamed`
    RetiredRenamed = 4,
}

/// `SecurityAdvisory` (new, optional).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SecurityAdvisory {
    /// Advisory id.
    #[prost(string, required, tag = "1")]
    pub id: String,
    /// One-line summary.
    #[prost(string, required, tag = "2")]
    pub summary: String,
    /// Human-readable page.
    #[prost(string, required, tag = "3")]
    pub html_url: String,
    /// An [`AdvisorySeverity`] value; unknown values are kept as is.
    #[prost(enumeration = "AdvisorySeverity", optional, tag = "4")]
    pub severity: Option<i32>,
    /// CVSS score.
    #[prost(float, optional, tag = "5")]
    pub cvss_score: Option<f32>,
    /// Machine-readable endpoint.
    #[prost(string, required, tag = "6")]
    pub api_url: String,
    /// Other identifiers (CVE, GHSA, ...).
    #[prost(string, repeated, tag = "7")]
    pub aliases: Vec<String>,
}

/// `AdvisorySeverity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum AdvisorySeverity {
    /// `SEVERITY_NONE`
    SeverityNone = 0,
    /// `SEVERITY_LOW`
    SeverityLow = 1,
    /// `SEVERITY_MEDIUM`
    SeverityMedium = 2,
    /// `SEVERITY_HIGH`
    SeverityHigh = 3,
    /// `SEVERITY_CRITICAL`
    SeverityCritical = 4,
}
