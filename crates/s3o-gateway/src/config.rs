//! The gateway's configuration: one TOML file, `${VAR}` references expanded from the
//! environment, unknown keys refused by name.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything the gateway needs to serve. Fields are public so tests can build one in code;
/// [`Config::validate`] runs on every path that starts a gateway. `Debug` redacts secrets.
#[derive(Clone, Deserialize, PartialEq, Eq)]
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
    /// Serve unsigned requests to anyone. Required when `credentials` is empty (a gateway
    /// never becomes open by forgetting its credentials); refused together with credentials.
    #[serde(default)]
    pub anonymous: bool,
    /// The ledger's initial buckets, synced at start (created when missing, their settings
    /// refreshed, never deleted); ledger keys are `<bucket>/<object key>`.
    #[serde(default)]
    pub buckets: Vec<BucketConfig>,
    /// Serve CreateBucket over S3 (default true); false keeps the set of buckets to the
    /// configuration and what the ledger already holds.
    #[serde(default = "yes")]
    pub allow_create_bucket: bool,
    /// Backends, in routing order.
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
    /// Background workers (`[workers]`); every setting has a default.
    #[serde(default)]
    pub workers: crate::workers::WorkersConfig,
    /// Connection hygiene, admission limits and operator endpoints (`[server]`).
    #[serde(default)]
    pub server: ServerConfig,
    /// Logging of the binary (`[log]`).
    #[serde(default)]
    pub log: LogConfig,
    /// Envelope encryption at rest (`[encryption]`); absent: nothing is encrypted.
    #[serde(default)]
    pub encryption: Option<crate::crypto::config::EncryptionConfig>,
    /// The one owner every bucket and object is reported under (`[owner]`).
    #[serde(default)]
    pub owner: OwnerConfig,
    /// The web console's sessions and uploads (`[console]`); every setting has a default.
    #[serde(default)]
    pub console: crate::ConsoleConfig,
}

/// `[owner]`: the account S3 answers name as owner (ListBuckets, listings, ACLs). The gateway
/// has one owner: every configured credential acts as it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OwnerConfig {
    /// The canonical user id (default `s3o`).
    #[serde(default = "default_owner")]
    pub id: String,
    /// The display name (default: the id).
    #[serde(default)]
    pub display_name: Option<String>,
}

fn default_owner() -> String {
    "s3o".to_owned()
}

impl Default for OwnerConfig {
    fn default() -> Self {
        OwnerConfig {
            id: default_owner(),
            display_name: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("store", &crate::redact::url(&self.store))
            .field("region", &self.region)
            .field("routing", &self.routing)
            .field("credentials", &self.credentials)
            .field("anonymous", &self.anonymous)
            .field("buckets", &self.buckets)
            .field("allow_create_bucket", &self.allow_create_bucket)
            .field("backends", &self.backends)
            .field("workers", &self.workers)
            .field("server", &self.server)
            .field("log", &self.log)
            .field("encryption", &self.encryption)
            .field("owner", &self.owner)
            .field("console", &self.console)
            .finish()
    }
}

/// `[server]`: timeouts, caps and operator endpoints. Every setting has a default sized for
/// one process on a small machine; see the README's "Limits" section.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Seconds a connection may take to send a request's headers, counted from the first
    /// wait for them; also how long an idle keep-alive connection is kept (default 10).
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may go without delivering a byte before the request fails and
    /// the connection is closed: a stalled upload holds no slot for longer (default 30).
    pub body_idle_timeout_secs: u64,
    /// Open client connections at most; past it new connections wait in the kernel's accept
    /// queue (default 1024).
    pub max_connections: usize,
    /// Concurrent GET/HEAD requests at most; past it `503 SlowDown` (default 512).
    pub max_concurrent_reads: usize,
    /// Concurrent requests of every other method at most; past it `503 SlowDown` (default 128).
    pub max_concurrent_writes: usize,
    /// `Retry-After` seconds sent with `503 SlowDown` (default 1).
    pub retry_after_secs: u64,
    /// Bytes of request bodies all in-flight writes may buffer together; a write reserves its
    /// share before its body is read (default 256 MiB).
    pub body_buffer_bytes: u64,
    /// Milliseconds a write waits for its share of `body_buffer_bytes` before `503 SlowDown`
    /// (default 1000).
    pub body_buffer_wait_ms: u64,
    /// Seconds shutdown waits for in-flight requests before closing them (default 30).
    pub shutdown_grace_secs: u64,
    /// Bytes of small objects' bodies kept in memory for GETs (default 64 MiB; 0: no cache).
    /// Bodies are kept by storage path, which no write reuses, so the cache is never stale;
    /// a GET still asks the ledger which version is current first.
    pub read_cache_bytes: u64,
    /// Largest body the read cache keeps (default 256 KiB; 0: no cache). A GET of such an
    /// object buffers its whole body once (up to `max_concurrent_reads` of them at a time).
    pub read_cache_object_max_bytes: u64,
    /// A separate address serving only `/health` and `/metrics`; when set, the S3 listener no
    /// longer answers them (every path there is an object).
    pub metrics_listen: Option<SocketAddr>,
    /// When set, `/health` and `/metrics` require `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// `[server.tls]`: serve HTTPS on `listen` (the operator listener stays plain HTTP).
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: PEM files of the certificate chain and its private key, read at start and
/// again on SIGHUP.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout_secs: 10,
            body_idle_timeout_secs: 30,
            max_connections: 1024,
            max_concurrent_reads: 512,
            max_concurrent_writes: 128,
            retry_after_secs: 1,
            body_buffer_bytes: 256 * 1024 * 1024,
            body_buffer_wait_ms: 1000,
            shutdown_grace_secs: 30,
            read_cache_bytes: 64 * 1024 * 1024,
            read_cache_object_max_bytes: 256 * 1024,
            metrics_listen: None,
            metrics_token: None,
            tls: None,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("body_idle_timeout_secs", &self.body_idle_timeout_secs)
            .field("max_connections", &self.max_connections)
            .field("max_concurrent_reads", &self.max_concurrent_reads)
            .field("max_concurrent_writes", &self.max_concurrent_writes)
            .field("retry_after_secs", &self.retry_after_secs)
            .field("body_buffer_bytes", &self.body_buffer_bytes)
            .field("body_buffer_wait_ms", &self.body_buffer_wait_ms)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("read_cache_bytes", &self.read_cache_bytes)
            .field(
                "read_cache_object_max_bytes",
                &self.read_cache_object_max_bytes,
            )
            .field("metrics_listen", &self.metrics_listen)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .finish()
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_idle_timeout_secs", self.body_idle_timeout_secs),
            ("max_connections", self.max_connections as u64),
            ("max_concurrent_reads", self.max_concurrent_reads as u64),
            ("max_concurrent_writes", self.max_concurrent_writes as u64),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("[server] {name} must be at least 1"));
            }
        }
        // Permits are counted in KiB in a u32-sized semaphore acquisition; 1 MiB is the
        // least that lets one local-backend write through at all.
        if self.body_buffer_bytes < 1024 * 1024 || self.body_buffer_bytes > (1 << 50) {
            return Err("[server] body_buffer_bytes must be between 1 MiB and 1 PiB".into());
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err("[server] metrics_token must not be empty when set".into());
        }
        Ok(())
    }
}

/// `[log]`: what the binary logs and how. `RUST_LOG`, when set, overrides `level`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// An env-filter directive: `info` (default), `debug`, `s3o_gateway=debug,info`, ...
    pub level: String,
    /// `text` (default, one human-readable line per event) or `json` (one object per line).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
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
            anonymous: false,
            buckets: Vec::new(),
            allow_create_bucket: true,
            backends: Vec::new(),
            workers: crate::workers::WorkersConfig::default(),
            server: ServerConfig::default(),
            log: LogConfig::default(),
            encryption: None,
            owner: OwnerConfig::default(),
            console: crate::ConsoleConfig::default(),
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

/// A client key pair accepted by SigV4. `Debug` shows the access key only.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// May call the admin API (`/admin/api/`) and sign in to the console (default false).
    #[serde(default)]
    pub admin: bool,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .field("admin", &self.admin)
            .finish()
    }
}

/// A virtual bucket.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Bucket name as clients see it.
    pub name: String,
    /// Copies the replicator keeps of every object of the bucket (default 1).
    #[serde(default = "one")]
    pub replication_factor: u32,
    /// Encrypt new objects of this bucket (overrides `[encryption] encrypt`; needs
    /// `[encryption]`).
    #[serde(default)]
    pub encrypt: Option<bool>,
    /// Lifecycle rules (`[[buckets.lifecycle]]`): the bucket's initial rules, written when the
    /// ledger creates the bucket; after that the S3 API manages them (a restart never resets
    /// rules changed over S3).
    #[serde(default)]
    pub lifecycle: Vec<LifecycleRuleConfig>,
}

/// One lifecycle rule of a configured bucket.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LifecycleRuleConfig {
    /// The rule's id (default empty).
    #[serde(default)]
    pub id: String,
    /// Whether the rule acts (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Keys of the bucket the rule applies to start with this (default: every key).
    #[serde(default)]
    pub prefix: String,
    /// Objects expire this many days after they were written.
    #[serde(default)]
    pub expiration_days: Option<u32>,
    /// Objects expire once this RFC 3339 instant (`2027-01-01T00:00:00Z`) has passed.
    #[serde(default)]
    pub expiration_date: Option<String>,
    /// Multipart uploads open this many days are aborted.
    #[serde(default)]
    pub abort_incomplete_upload_days: Option<u32>,
    /// Only objects carrying all these tags expire (`tags = { class = "scratch" }`).
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Versioned buckets: noncurrent versions are deleted this many days after they became
    /// noncurrent (S3 `NoncurrentVersionExpiration`).
    #[serde(default)]
    pub noncurrent_days: Option<u32>,
    /// With `noncurrent_days`: the newest this many noncurrent versions of a key are kept.
    #[serde(default)]
    pub newer_noncurrent_versions: Option<u32>,
    /// Versioned buckets: a delete marker left as its key's only version is removed.
    #[serde(default)]
    pub expired_object_delete_marker: bool,
}

impl LifecycleRuleConfig {
    /// The rule as the ledger stores it; the error names what is wrong.
    pub fn to_rule(&self) -> Result<s3o_store::LifecycleRule, String> {
        let expiration_date = match &self.expiration_date {
            None => None,
            Some(t) => {
                let at =
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| format!("expiration_date {t:?} is not RFC 3339: {e}"))?;
                let micros = i64::try_from(at.unix_timestamp_nanos() / 1000)
                    .map_err(|_| format!("expiration_date {t:?} is out of range"))?;
                Some(s3o_store::Timestamp::from_micros(micros))
            }
        };
        Ok(s3o_store::LifecycleRule {
            id: self.id.clone(),
            enabled: self.enabled,
            prefix: self.prefix.clone(),
            expiration_days: self.expiration_days,
            expiration_date,
            abort_incomplete_upload_days: self.abort_incomplete_upload_days,
            tags: self.tags.clone(),
            noncurrent_days: self.noncurrent_days,
            newer_noncurrent_versions: self.newer_noncurrent_versions,
            expired_object_delete_marker: self.expired_object_delete_marker,
        })
    }
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

impl BucketConfig {
    /// A bucket with one copy per object.
    pub fn new(name: impl Into<String>) -> Self {
        BucketConfig {
            name: name.into(),
            replication_factor: 1,
            lifecycle: Vec::new(),
            encrypt: None,
        }
    }
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

/// One backend the gateway pools. `Debug` redacts the secret key and endpoint passwords.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
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
    /// Requests the gateway may make to this backend per calendar month (UTC); 0 = unlimited.
    #[serde(default)]
    pub api_request_limit: u64,
    /// Bytes the gateway may read from this backend per calendar month; 0 = unlimited.
    #[serde(default)]
    pub egress_byte_limit: u64,
    /// Bytes the gateway may write to this backend per calendar month; 0 = unlimited.
    #[serde(default)]
    pub ingress_byte_limit: u64,
    /// Whether bodies sent to an `s3` backend carry their SHA-256 in the signature (one more
    /// hash pass over every byte, on each side). Absent: signed over `http://`, where the
    /// signature is the only proof that the bytes arrived as sent; unsigned over `https://`,
    /// where TLS already proves it. See [`BackendConfig::signs_payload`].
    #[serde(default)]
    pub sign_payload: Option<bool>,
    /// Bodies longer than 5 MiB and up to this many bytes go to an `s3` backend as one
    /// streamed PUT; longer ones as a multipart upload of 5 MiB parts. Absent:
    /// [`DEFAULT_SINGLE_PUT_MAX`]. At most 5 GiB (S3's limit for one PUT); 0 or anything up
    /// to 5 MiB sends every body over 5 MiB as a multipart upload. See
    /// [`BackendConfig::single_put_max`].
    #[serde(default)]
    pub single_put_max_bytes: Option<u64>,
}

/// Default [`BackendConfig::single_put_max_bytes`]: one streamed PUT costs the backend one
/// request and no assembly, a multipart upload 2 + n requests and one more read and write of
/// every byte; past this size a failure costs less to retry part by part (parts are retried,
/// a streamed body cannot be).
pub const DEFAULT_SINGLE_PUT_MAX: u64 = 128 * 1024 * 1024;

/// The largest body S3 takes in one PUT: the bound of `single_put_max_bytes`.
pub const S3_PUT_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

impl std::fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field(
                "endpoint",
                &self.endpoint.as_deref().map(crate::redact::url),
            )
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("quota_bytes", &self.quota_bytes)
            .field("api_request_limit", &self.api_request_limit)
            .field("egress_byte_limit", &self.egress_byte_limit)
            .field("ingress_byte_limit", &self.ingress_byte_limit)
            .field("sign_payload", &self.sign_payload)
            .field("single_put_max_bytes", &self.single_put_max_bytes)
            .finish()
    }
}

impl BackendConfig {
    /// Whether the bodies this `s3` backend receives are signed: `sign_payload` when set,
    /// otherwise unless the endpoint is `https://` (the profile of a PUT through the gateway
    /// shows the backend request's payload hash as about a sixth of the gateway's CPU).
    pub fn signs_payload(&self) -> bool {
        self.sign_payload.unwrap_or_else(|| {
            !self
                .endpoint
                .as_deref()
                .map(str::trim_start)
                .is_some_and(|e| {
                    e.get(..8)
                        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
                })
        })
    }

    /// The longest body this `s3` backend gets as one streamed PUT (`single_put_max_bytes`, or
    /// [`DEFAULT_SINGLE_PUT_MAX`]).
    pub fn single_put_max(&self) -> u64 {
        self.single_put_max_bytes.unwrap_or(DEFAULT_SINGLE_PUT_MAX)
    }

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
        let mut value: toml::Value = toml::from_str(s).map_err(|e| syntax_error(&e, s))?;
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

    /// Checks the rules a parsed file cannot express: a store URL, at least one backend,
    /// bucket names by S3's rules, unique names, the fields each backend kind needs, quotas the ledger can hold.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.store.trim().is_empty() {
            return bad("`store` must name the ledger (sqlite:///path or postgres://...)".into());
        }
        if self.backends.is_empty() {
            return bad("at least one [[backends]] entry is required".into());
        }
        let mut seen = BTreeSet::new();
        for b in &self.buckets {
            if let Err(e) = s3o_store::limits::bucket_name(&b.name) {
                return bad(e.to_string());
            }
            if !seen.insert(&b.name) {
                return bad(format!("bucket {:?} is listed twice", b.name));
            }
            if b.replication_factor == 0 || b.replication_factor as usize > self.backends.len() {
                return bad(format!(
                    "bucket {:?}: replication_factor must be between 1 and the number of backends ({})",
                    b.name,
                    self.backends.len()
                ));
            }
            let rules = b
                .lifecycle
                .iter()
                .map(LifecycleRuleConfig::to_rule)
                .collect::<Result<Vec<_>, _>>()
                .and_then(|r| {
                    s3o_store::limits::lifecycle_rules(&r)
                        .map(|()| r)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = rules {
                return bad(format!("bucket {:?}: lifecycle: {e}", b.name));
            }
        }
        self.workers.validate().map_err(ConfigError::Invalid)?;
        match &self.encryption {
            Some(e) => e.validate().map_err(ConfigError::Invalid)?,
            None => {
                if let Some(b) = self.buckets.iter().find(|b| b.encrypt == Some(true)) {
                    return bad(format!(
                        "bucket {:?} sets encrypt = true but there is no [encryption] section",
                        b.name
                    ));
                }
            }
        }
        self.server.validate().map_err(ConfigError::Invalid)?;
        self.console.validate().map_err(ConfigError::Invalid)?;
        if self.credentials.is_empty() && !self.anonymous {
            return bad(
                "no [[credentials]]: add a key pair, or set `anonymous = true` to serve \
                 unsigned requests to anyone"
                    .into(),
            );
        }
        if !self.credentials.is_empty() && self.anonymous {
            return bad("`anonymous = true` cannot be combined with [[credentials]]".into());
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
            for (field, v) in [
                ("quota_bytes", b.quota_bytes),
                ("api_request_limit", b.api_request_limit),
                ("egress_byte_limit", b.egress_byte_limit),
                ("ingress_byte_limit", b.ingress_byte_limit),
            ] {
                if i64::try_from(v).is_err() {
                    return bad(format!(
                        "backend {:?}: {field} exceeds {}",
                        b.name,
                        i64::MAX
                    ));
                }
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
            if b.single_put_max() > S3_PUT_LIMIT {
                return bad(format!(
                    "backend {:?}: single_put_max_bytes exceeds {S3_PUT_LIMIT} (5 GiB, S3's \
                     limit for one PUT)",
                    b.name
                ));
            }
        }
        Ok(())
    }

    /// The backend names in routing order.
    pub fn backend_names(&self) -> Vec<String> {
        self.backends.iter().map(|b| b.name.clone()).collect()
    }
}

/// A TOML syntax error by line and message only: the default rendering quotes the offending
/// line, which may hold a password.
fn syntax_error(e: &toml::de::Error, text: &str) -> ConfigError {
    let line = e
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    match line {
        Some(n) => ConfigError::Parse(format!("line {n}: {}", e.message())),
        None => ConfigError::Parse(e.message().to_owned()),
    }
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
    fn payload_signing_follows_the_scheme_unless_set() {
        let c = Config::from_toml_str(FULL).unwrap();
        assert!(c.backends[1].signs_payload(), "http:// signs by default");
        let tls = FULL.replace("http://127.0.0.1:9001", "HTTPS://s3.example.com");
        let c = Config::from_toml_str(&tls).unwrap();
        assert!(!c.backends[1].signs_payload(), "https:// leaves it to TLS");
        let forced = tls.replace(
            "secret_key = \"s\"",
            "secret_key = \"s\"\nsign_payload = true",
        );
        let c = Config::from_toml_str(&forced).unwrap();
        assert!(c.backends[1].signs_payload());
        let off = FULL.replace(
            "secret_key = \"s\"",
            "secret_key = \"s\"\nsign_payload = false",
        );
        let c = Config::from_toml_str(&off).unwrap();
        assert!(!c.backends[1].signs_payload());
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
    fn no_credentials_needs_anonymous_and_never_both() {
        let start = FULL.find("[[credentials]]").unwrap();
        let end = FULL.find("[[buckets]]").unwrap();
        let none = format!("{}{}", &FULL[..start], &FULL[end..]);
        let e = Config::from_toml_str(&none).unwrap_err().to_string();
        assert!(e.contains("anonymous = true"), "{e}");
        let anon = format!("anonymous = true\n{none}");
        assert!(Config::from_toml_str(&anon).unwrap().anonymous);
        let both = format!("anonymous = true\n{FULL}");
        assert!(Config::from_toml_str(&both).is_err());
    }

    #[test]
    fn server_and_log_sections_default_and_parse() {
        let c = Config::from_toml_str(FULL).unwrap();
        assert_eq!(c.server, ServerConfig::default());
        assert_eq!(c.log.format, LogFormat::Text);
        let text = format!(
            "{FULL}\n[server]\nmax_concurrent_writes = 3\nmetrics_listen = \"127.0.0.1:0\"\n\
             [log]\nlevel = \"debug\"\nformat = \"json\"\n"
        );
        let c = Config::from_toml_str(&text).unwrap();
        assert_eq!(c.server.max_concurrent_writes, 3);
        assert_eq!(c.server.max_concurrent_reads, 512);
        assert!(c.server.metrics_listen.is_some());
        assert_eq!(c.log.format, LogFormat::Json);
        let zero = format!("{FULL}\n[server]\nmax_connections = 0\n");
        assert!(Config::from_toml_str(&zero).is_err());
        let typo = format!("{FULL}\n[server]\nmax_conections = 5\n");
        let e = Config::from_toml_str(&typo).unwrap_err().to_string();
        assert!(e.contains("max_conections"), "{e}");
    }

    #[test]
    fn debug_and_syntax_errors_hide_secrets() {
        let text = FULL
            .replace("sqlite:///tmp/x.db", "postgres://u:pgpass@h/db")
            .replace(
                "endpoint = \"http://127.0.0.1:9001\"",
                "endpoint = \"http://k:eppass@h\"",
            )
            .replace("secret_key = \"s\"", "secret_key = \"backendsecret\"");
        let c = Config::from_toml_str(&text).unwrap();
        let d = format!("{c:?}");
        for secret in ["pgpass", "eppass", "backendsecret", "s3o-gateway"] {
            assert!(!d.contains(secret), "{secret} in {d}");
        }
        let broken = text.replace("\"backendsecret\"", "\"backendsecret\" junk");
        let e = Config::from_toml_str(&broken).unwrap_err().to_string();
        assert!(e.starts_with("invalid config: line "), "{e}");
        assert!(!e.contains("backendsecret"), "{e}");
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
