//! The gateway's configuration: one TOML file, `${VAR}` references expanded from the
//! environment, unknown keys refused by name.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything the gateway needs to serve. Fields are public so tests can build one in code;
/// [`Config::validate`] runs on every path that starts a gateway.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Ledger URL: `sqlite:///path/ledger.db` or `postgres://…`.
    pub store: String,
    /// Region clients sign for.
    #[serde(default = "default_region")]
    pub region: String,
    /// How a write picks its backend.
    #[serde(default)]
    pub routing: RoutingPolicy,
    /// Clients accepted by SigV4.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Virtual buckets served; ledger keys are `<bucket>/<object key>`.
    #[serde(default)]
    pub buckets: Vec<BucketConfig>,
    /// Backends, in routing order.
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl Default for Config {
    /// Loopback on a free port, an in-memory-free SQLite path left empty (must be set), no
    /// credentials, buckets or backends.
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: String::new(),
            region: default_region(),
            routing: RoutingPolicy::default(),
            credentials: Vec::new(),
            buckets: Vec::new(),
            backends: Vec::new(),
        }
    }
}

/// How a write chooses among backends with room.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoutingPolicy {
    /// The first backend in configuration order with room.
    #[default]
    Pack,
    /// The least utilised backend with room.
    Spread,
}

/// A client key pair accepted by SigV4.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

/// A virtual bucket.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Bucket name as clients see it.
    pub name: String,
}

/// What kind of storage a backend is.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A local directory (`path`).
    #[default]
    Local,
    /// An S3-compatible endpoint (`endpoint`, `bucket`, `region`, keys).
    S3,
}

/// One backend the gateway pools.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Unique name; the ledger records copies under it.
    pub name: String,
    /// Local directory or S3-compatible endpoint.
    pub kind: BackendKind,
    /// Directory of a `local` backend (created when missing).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Endpoint URL of an `s3` backend (`http://` is allowed).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Bucket on the `s3` endpoint holding the pooled bytes.
    #[serde(default)]
    pub bucket: Option<String>,
    /// Region the `s3` backend signs for (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Access key of the `s3` backend.
    #[serde(default)]
    pub access_key: Option<String>,
    /// Secret key of the `s3` backend.
    #[serde(default)]
    pub secret_key: Option<String>,
    /// Byte quota; 0 = unlimited.
    #[serde(default)]
    pub quota_bytes: u64,
}

impl BackendConfig {
    /// A local-directory backend.
    pub fn local(name: impl Into<String>, path: impl Into<PathBuf>, quota_bytes: u64) -> Self {
        BackendConfig {
            name: name.into(),
            kind: BackendKind::Local,
            path: Some(path.into()),
            quota_bytes,
            ..BackendConfig::default()
        }
    }

    /// An S3-compatible backend (region `us-east-1`).
    pub fn s3(
        name: impl Into<String>,
        endpoint: impl Into<String>,
        bucket: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
        quota_bytes: u64,
    ) -> Self {
        BackendConfig {
            name: name.into(),
            kind: BackendKind::S3,
            endpoint: Some(endpoint.into()),
            bucket: Some(bucket.into()),
            access_key: Some(access_key.into()),
            secret_key: Some(secret_key.into()),
            quota_bytes,
            ..BackendConfig::default()
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML or does not match the schema (unknown keys are named here).
    #[error("invalid config: {0}")]
    Parse(String),
    /// A `${VAR}` reference names a variable that is not set.
    #[error("config references ${{{var}}}, which is not set in the environment")]
    MissingEnv {
        /// The variable name.
        var: String,
    },
    /// A value breaks a rule (missing field for a backend kind, duplicate name, ...).
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Parses TOML text, expanding `${VAR}` in every string value first, then validates.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        let mut value: toml::Value =
            toml::from_str(s).map_err(|e| ConfigError::Parse(e.to_string()))?;
        expand_value(&mut value)?;
        let config: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file (see [`Config::from_toml_str`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_str(&text)
    }

    /// Checks the rules a parsed file cannot express: a store URL, at least one backend and
    /// one bucket, unique names, the fields each backend kind needs, quotas the ledger can hold.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.store.trim().is_empty() {
            return bad("`store` must name the ledger (sqlite:///path or postgres://...)".into());
        }
        if self.backends.is_empty() {
            return bad("at least one [[backends]] entry is required".into());
        }
        if self.buckets.is_empty() {
            return bad("at least one [[buckets]] entry is required".into());
        }
        let mut seen = BTreeSet::new();
        for b in &self.buckets {
            if !valid_bucket_name(&b.name) {
                return bad(format!(
                    "bucket name {:?} must be 3-63 characters of a-z, 0-9, '.', '-', starting and ending with a letter or digit",
                    b.name
                ));
            }
            if !seen.insert(&b.name) {
                return bad(format!("bucket {:?} is listed twice", b.name));
            }
        }
        let mut seen = BTreeSet::new();
        for c in &self.credentials {
            if c.access_key.is_empty() || c.secret_key.is_empty() {
                return bad("credentials need a non-empty access_key and secret_key".into());
            }
            if !seen.insert(&c.access_key) {
                return bad(format!("access key {:?} is listed twice", c.access_key));
            }
        }
        let mut seen = BTreeSet::new();
        for b in &self.backends {
            if b.name.is_empty() || b.name.len() > 255 || b.name.contains('\0') {
                return bad(format!(
                    "backend name {:?} must be 1-255 bytes without NUL",
                    b.name
                ));
            }
            if !seen.insert(&b.name) {
                return bad(format!("backend {:?} is listed twice", b.name));
            }
            if i64::try_from(b.quota_bytes).is_err() {
                return bad(format!(
                    "backend {:?}: quota_bytes exceeds {}",
                    b.name,
                    i64::MAX
                ));
            }
            let need = |field: &str, v: &Option<String>| match v {
                Some(s) if !s.is_empty() => Ok(()),
                _ => bad(format!("backend {:?} (kind s3) needs `{field}`", b.name)),
            };
            match b.kind {
                BackendKind::Local => {
                    if b.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                        return bad(format!("backend {:?} (kind local) needs `path`", b.name));
                    }
                }
                BackendKind::S3 => {
                    need("endpoint", &b.endpoint)?;
                    need("bucket", &b.bucket)?;
                    need("access_key", &b.access_key)?;
                    need("secret_key", &b.secret_key)?;
                }
            }
        }
        Ok(())
    }

    /// The backend names in routing order.
    pub fn backend_names(&self) -> Vec<String> {
        self.backends.iter().map(|b| b.name.clone()).collect()
    }
}

/// S3's bucket naming rule, simplified: 3–63 of `a-z 0-9 . -`, alphanumeric at both ends.
fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Expands `${VAR}` in every string of the parsed document (keys are left alone), so a
/// secret never has to be written into the file and comments are never expanded.
fn expand_value(v: &mut toml::Value) -> Result<(), ConfigError> {
    match v {
        toml::Value::String(s) => *s = expand_env(s)?,
        toml::Value::Array(a) => a.iter_mut().try_for_each(expand_value)?,
        toml::Value::Table(t) => t.iter_mut().try_for_each(|(_, v)| expand_value(v))?,
        _ => {}
    }
    Ok(())
}

/// Replaces each `${NAME}` with the variable's value; `$$` is a literal `$`. An unset
/// variable is an error naming it, never an empty string.
pub(crate) fn expand_env(s: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(ConfigError::Invalid(format!("unterminated ${{ in {s:?}")));
            };
            let var = &body[..end];
            let value = std::env::var(var).map_err(|_| ConfigError::MissingEnv {
                var: var.to_owned(),
            })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
listen = "127.0.0.1:0"
store = "sqlite:///tmp/x.db"
region = "eu-west-1"
routing = "spread"

[[credentials]]
access_key = "demo"
secret_key = "${CARGO_PKG_NAME}"

[[buckets]]
name = "photos"

[[backends]]
name = "local-a"
kind = "local"
path = "/tmp/a"
quota_bytes = 1024

[[backends]]
name = "remote-b"
kind = "s3"
endpoint = "http://127.0.0.1:9001"
bucket = "pool-b"
access_key = "k"
secret_key = "s"
"#;

    // `cargo test` sets CARGO_PKG_NAME for the test process; setting variables ourselves would
    // need `unsafe`, which the workspace forbids.
    #[test]
    fn full_file_parses_with_env_expanded() {
        let c = Config::from_toml_str(FULL).unwrap();
        assert_eq!(c.credentials[0].secret_key, "s3o-gateway");
        assert_eq!(c.routing, RoutingPolicy::Spread);
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.backends[0].quota_bytes, 1024);
        assert_eq!(c.backends[1].kind, BackendKind::S3);
        assert_eq!(c.backends[1].quota_bytes, 0);
        assert_eq!(c.backend_names(), ["local-a", "remote-b"]);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let text = FULL.replace("quota_bytes = 1024", "quota_bytes = 1024\nqouta = 5");
        let e = Config::from_toml_str(&text).unwrap_err().to_string();
        assert!(e.contains("qouta"), "{e}");
        let top = format!("colour = 1\n{FULL}");
        let e = Config::from_toml_str(&top).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn missing_env_var_is_named() {
        let text = FULL.replace("CARGO_PKG_NAME", "S3O_GW_SURELY_UNSET_VAR");
        match Config::from_toml_str(&text) {
            Err(ConfigError::MissingEnv { var }) => assert_eq!(var, "S3O_GW_SURELY_UNSET_VAR"),
            other => panic!("expected MissingEnv, got {other:?}"),
        }
    }

    #[test]
    fn expansion_rules() {
        assert_eq!(expand_env("x${CARGO_PKG_NAME}y").unwrap(), "xs3o-gatewayy");
        assert_eq!(expand_env("$$5 and $x").unwrap(), "$5 and $x");
        assert!(matches!(expand_env("${oops"), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn kind_specific_fields_and_duplicates_are_checked() {
        let no_path = FULL.replace("path = \"/tmp/a\"\n", "");
        let e = Config::from_toml_str(&no_path).unwrap_err().to_string();
        assert!(e.contains("local-a") && e.contains("path"), "{e}");
        let no_endpoint = FULL.replace("endpoint = \"http://127.0.0.1:9001\"\n", "");
        let e = Config::from_toml_str(&no_endpoint).unwrap_err().to_string();
        assert!(e.contains("endpoint"), "{e}");
        let dup = FULL.replace("name = \"remote-b\"", "name = \"local-a\"");
        let e = Config::from_toml_str(&dup).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        let bad_bucket = FULL.replace("name = \"photos\"", "name = \"Photos_\"");
        assert!(Config::from_toml_str(&bad_bucket).is_err());
        let bad_routing = FULL.replace("\"spread\"", "\"random\"");
        let e = Config::from_toml_str(&bad_routing).unwrap_err().to_string();
        assert!(e.contains("random"), "{e}");
    }
}
