#![doc = include_str!("../README.md")]

pub use deadpool_postgres;
pub use tokio_postgres;

/// Every column describing one copy, in the order [`objects::location_from_row`] reads them.
macro_rules! loc_cols {
    () => {
        "object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, \
         plaintext_size, content_hash, managed, last_scrubbed_at, storage_key, etag, \
         content_type, user_metadata"
    };
}

mod admin;
mod backend;
mod cleanup;
mod conn;
mod dashboard;
mod encryption;
mod error;
mod integrity;
mod locker;
mod multipart;
mod notification;
mod objects;
mod pending;
mod quota;
mod reader;
mod replication;
mod tls;
mod tx;
mod usage;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use s3o_core::breaker::{BreakerConfig, CircuitBreaker};
use s3o_core::engine::Engine;
use s3o_core::{MetadataStore, Result, StoreError};
use tokio_postgres::config::Host;

pub use admin::EXPECTED_SCHEMA_VERSION;
#[doc(hidden)]
pub use cleanup::claim_statement;
pub use conn::{SQL_TRACE_PARAM_SEP, SQL_TRACE_TARGET, log_sql_parameter_values};
pub use locker::{LOCK_WATCH_INTERVAL, LOCK_WATCH_TIMEOUT, leader_lock_key};
#[doc(hidden)]
pub use notification::due_notifications_statement;
#[doc(hidden)]
pub use reader::listing_statement;
pub use tls::SslMode;

use crate::conn::Db;

/// The accepted URL form, quoted in every URL error.
const URL_FORM: &str = "expected postgres://user[:password]@host[:port]/database\
[?sslmode=disable|prefer|require|verify-ca|verify-full&schema=NAME&pool_max_size=N\
&pool_wait_timeout_ms=N&pool_create_timeout_ms=N&pool_recycle_timeout_ms=N\
&pool_recycling=fast|verified|clean&lock_timeout_ms=N\
&instance_id=ID]";

/// Pool, breaker and schema settings. Every timeout is finite.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Most connections the pool holds (default 16).
    pub max_size: usize,
    /// How long a caller waits for a free connection (default 5 s).
    pub wait_timeout: Duration,
    /// How long creating a connection may take, TLS and authentication included (default 5 s).
    pub create_timeout: Duration,
    /// How long recycling (cleaning) a returned connection may take (default 5 s).
    pub recycle_timeout: Duration,
    /// Circuit-breaker settings.
    pub breaker: BreakerConfig,
    /// Schema every pooled connection uses; `None` keeps the server's `search_path`.
    pub schema: Option<String>,
    /// Longest wait for a lock (key lock, row lock) before a statement fails with
    /// `Database { kind: Busy }` (SQLSTATE 55P03): transactions retry a bounded number of
    /// times, and the breaker does not count it. Set on every pooled connection as the
    /// `lock_timeout` startup option (default 5 s; `None` waits forever). Migrations wait
    /// without limit regardless.
    pub lock_timeout: Option<Duration>,
    /// What the pool does with a connection before handing it out again (default
    /// [`Recycling::Fast`]: nothing beyond checking it is open). See [`Recycling`] for why
    /// that is safe and what the other choices cost.
    pub recycling: Recycling,
    /// This store's instance id: the claimant of cleanup rows born in its transactions (the
    /// outbox). `None` (default) ⇒ [`s3o_core::default_instance_id`] (`hostname-pid-random`).
    /// Give each process its own; cleanup workers pass the same id to their claims.
    pub instance_id: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            create_timeout: Duration::from_secs(5),
            recycle_timeout: Duration::from_secs(5),
            breaker: BreakerConfig::default(),
            schema: None,
            lock_timeout: Some(Duration::from_secs(5)),
            recycling: Recycling::Fast,
            instance_id: None,
        }
    }
}

/// How a pooled connection is checked before reuse (`pool_recycling=fast|verified|clean` in
/// the URL).
///
/// **Why `Fast` is the default and safe.** A connection can only carry something into its
/// next checkout if it goes back to the pool holding session state, and none does:
/// - The store never changes session settings on a pooled connection: the schema
///   (`search_path`) and `lock_timeout` are startup options of every connection, so they are
///   the same on every checkout. The one `SET` the store sends (migrations' `lock_timeout =
///   0`) is on a connection that is always closed afterwards, never pooled. No statement uses
///   `LISTEN`, temporary tables, cursors or `SET SESSION`.
/// - Transactions never return mid-way: `COMMIT`/`ROLLBACK` is confirmed before the
///   connection goes back; a transaction dropped mid-statement or whose end fails closes its
///   connection instead (`tx.rs`; `sync_quota_limits` closes its connection on any error).
/// - Session advisory locks return unlocked or not at all: a leader lock is unlocked on its
///   own connection, which is pooled again only when `pg_advisory_unlock` answered `true`
///   (the lock was held exactly once there and is now released); a failed, timed-out or
///   `false` unlock, or a caller gone without a runtime, closes the connection (`locker.rs`).
///   A try-lock that was refused leaves nothing to release. The migration lock's connection
///   is always closed.
///
/// Prepared statements (the per-connection statement cache) are meant to outlive checkouts
/// under every method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recycling {
    /// Reuse the connection as it is if the driver has not seen it close: no round trip per
    /// checkout. A connection whose server silently vanished (a network partition rather than
    /// a restart, which closes the socket) fails its next statement instead of being
    /// replaced at checkout; the breaker and the caller's retry see that failure.
    #[default]
    Fast,
    /// Send an empty query first (one round trip per checkout): a dead connection is replaced
    /// before use.
    Verified,
    /// Reset the session first (one round trip per checkout: `CLOSE ALL`, `RESET ALL`,
    /// `UNLISTEN *`, `pg_advisory_unlock_all()`, `DISCARD TEMP`, …): a safety net against
    /// session state that, per the argument above, the store never leaves behind.
    Clean,
}

impl Recycling {
    fn parse(v: &str) -> Result<Recycling> {
        match v {
            "fast" => Ok(Recycling::Fast),
            "verified" => Ok(Recycling::Verified),
            "clean" => Ok(Recycling::Clean),
            _ => Err(url_err("pool_recycling must be fast, verified or clean")),
        }
    }

    fn method(self) -> RecyclingMethod {
        match self {
            Recycling::Fast => RecyclingMethod::Fast,
            Recycling::Verified => RecyclingMethod::Verified,
            Recycling::Clean => RecyclingMethod::Clean,
        }
    }
}

/// Where a store connects, without secrets: what logs and `Debug` show.
#[derive(Clone)]
struct Target {
    hosts: String,
    dbname: String,
    user: String,
    ssl: SslMode,
    schema: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgres://{}@{}/{} (sslmode={}",
            self.user,
            self.hosts,
            self.dbname,
            self.ssl.as_str()
        )?;
        if let Some(s) = &self.schema {
            write!(f, ", schema={s}")?;
        }
        f.write_str(")")
    }
}

/// The PostgreSQL metadata store. Cheap to share behind an `Arc`; every method is `Send`.
pub struct PgStore {
    db: Db,
    target: Target,
    schema: Option<String>,
    instance_id: Arc<str>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.db.pool.status();
        f.debug_struct("PgStore")
            .field("target", &self.target.to_string())
            .field("pool_size", &status.size)
            .field("pool_max_size", &status.max_size)
            .field("breaker", &self.db.breaker.state())
            .finish()
    }
}

/// A connection URL split into the driver's config and s3o's own settings.
pub(crate) struct ParsedUrl {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) ssl: SslMode,
    pub(crate) root_cert: Option<String>,
    pub(crate) options: PgOptions,
}

impl fmt::Debug for ParsedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio_postgres::Config's Debug already redacts the password.
        f.debug_struct("ParsedUrl")
            .field("config", &self.config)
            .field("ssl", &self.ssl)
            .field("root_cert", &self.root_cert)
            .field("options", &self.options)
            .finish()
    }
}

fn url_err(why: impl Into<String>) -> StoreError {
    StoreError::invalid("database URL", format!("{}; {URL_FORM}", why.into()))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The raw passwords of a URL, to scrub them from driver messages: the userinfo's
/// (`user:password@`) and every `password=` query parameter's (libpq accepts both).
fn raw_passwords(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some((_, rest)) = url.split_once("://") else {
        return out;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, pw)) = userinfo.split_once(':')
        && !pw.is_empty()
    {
        out.push(pw.to_owned());
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split('&') {
            if let Some(("password", pw)) = pair.split_once('=')
                && !pw.is_empty()
            {
                out.push(pw.to_owned());
            }
        }
    }
    out
}

fn scrub(msg: String, url: &str) -> String {
    let mut secrets = Vec::new();
    for pw in raw_passwords(url) {
        if let Some(decoded) = percent_decode(&pw)
            && !decoded.is_empty()
        {
            secrets.push(decoded);
        }
        secrets.push(pw);
    }
    // Longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
        .iter()
        .fold(msg, |m, secret| m.replace(secret.as_str(), "***"))
}

fn valid_schema(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && !s.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "schema name",
            "must be 1 to 63 characters of lowercase letters, digits and `_`, not starting \
             with a digit",
        ))
    }
}

fn parse_ms(key: &str, v: &str) -> Result<Duration> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| url_err(format!("{key} must be a positive integer (milliseconds)")))
}

fn is_loopback(h: &Host) -> bool {
    match h {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
                || name == "[::1]"
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    }
}

/// Splits `url` into the driver config and s3o settings, starting from `opts`.
pub(crate) fn parse_url(url: &str, mut opts: PgOptions) -> Result<ParsedUrl> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(url_err("the scheme must be postgres:// or postgresql://"));
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut ssl: Option<SslMode> = None;
    let mut root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let value = || percent_decode(v).ok_or_else(|| url_err(format!("bad encoding of {k}")));
        match k {
            "sslmode" => ssl = Some(SslMode::parse(&value()?)?),
            "sslrootcert" => root_cert = Some(value()?),
            "schema" => opts.schema = Some(value()?),
            "instance_id" => opts.instance_id = Some(value()?),
            "pool_max_size" => {
                opts.max_size = value()?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| url_err("pool_max_size must be a positive integer"))?;
            }
            "pool_wait_timeout_ms" => opts.wait_timeout = parse_ms(k, &value()?)?,
            "pool_create_timeout_ms" => opts.create_timeout = parse_ms(k, &value()?)?,
            "pool_recycle_timeout_ms" => opts.recycle_timeout = parse_ms(k, &value()?)?,
            "pool_recycling" => opts.recycling = Recycling::parse(&value()?)?,
            "lock_timeout_ms" => {
                // 0 waits forever, as PostgreSQL's own setting.
                opts.lock_timeout = match value()?.as_str() {
                    "0" => None,
                    v => Some(parse_ms(k, v)?),
                };
            }
            _ => kept.push(pair),
        }
    }
    if let Some(s) = &opts.schema {
        valid_schema(s)?;
    }
    if let Some(id) = &opts.instance_id {
        s3o_core::validate::text("instance id", id)?;
    }
    if opts.max_size == 0 {
        return Err(StoreError::invalid("pool max size", "must be at least 1"));
    }
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&rebuilt)
        .map_err(|e| url_err(scrub(e.to_string(), url)))?;
    if config.get_hosts().is_empty() {
        return Err(url_err("the URL names no host"));
    }
    if config.get_dbname().is_none() {
        return Err(url_err("the URL names no database"));
    }
    let ssl = ssl.unwrap_or_else(|| {
        if config.get_hosts().iter().all(is_loopback) {
            SslMode::Disable
        } else {
            SslMode::Prefer
        }
    });
    config.ssl_mode(ssl.driver_mode());
    config.connect_timeout(opts.create_timeout);
    if config.get_application_name().is_none() {
        config.application_name("s3o");
    }
    // Startup options, not SETs: they hold for the connection's whole life.
    let mut startup = Vec::new();
    if let Some(schema) = &opts.schema {
        startup.push(format!("-c search_path={schema}"));
    }
    if let Some(t) = opts.lock_timeout {
        // At least 1 ms: 0 would mean "no limit".
        startup.push(format!("-c lock_timeout={}", t.as_millis().max(1)));
    }
    if !startup.is_empty() {
        let opt = startup.join(" ");
        let merged = match config.get_options() {
            Some(existing) if !existing.is_empty() => format!("{existing} {opt}"),
            _ => opt,
        };
        config.options(&merged);
    }
    Ok(ParsedUrl {
        config,
        ssl,
        root_cert,
        options: opts,
    })
}

fn describe(config: &tokio_postgres::Config, ssl: SslMode, schema: Option<String>) -> Target {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let hosts = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => format!("{name}:{port}"),
            #[cfg(unix)]
            Host::Unix(p) => p.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    Target {
        hosts,
        dbname: config.get_dbname().unwrap_or_default().to_owned(),
        user: config.get_user().unwrap_or_default().to_owned(),
        ssl,
        schema,
    }
}

/// Connects with default [`PgOptions`] (overridden by URL parameters) and returns the consumer
/// handle. Does **not** migrate (see [`MetadataStore::run_migrations`]). A malformed URL ⇒
/// `InvalidInput` naming the accepted form; an unreachable server or bad credentials ⇒
/// `Database { kind: Connection }` naming host and database.
pub async fn open(url: &str) -> Result<MetadataStore> {
    open_with(url, PgOptions::default()).await
}

/// [`open`] starting from `opts`; URL parameters override them.
pub async fn open_with(url: &str, opts: PgOptions) -> Result<MetadataStore> {
    PgStore::connect_with(url, opts)
        .await
        .map(MetadataStore::from_engine)
}

/// Wraps a pool the application already built (its own TLS, credentials rotation, hooks) and
/// returns the consumer handle after one ping. Does **not** migrate.
///
/// The pool's connections are used as they are: the store cannot set startup options on them,
/// so a schema other than the server's `search_path` must already be in their configuration
/// (e.g. `options=-c search_path=NAME` in the `tokio_postgres::Config`); `opts.schema` then only
/// names it, for leader-lock keys and logs. Likewise `opts.lock_timeout` is not applied (set
/// `-c lock_timeout=…` there too), and the pool settings of `opts` (`max_size`, timeouts,
/// recycling) are the pool's own. Queries cancelled after a timeout are cancelled without TLS.
/// Breaker and instance id come from `opts`.
pub async fn open_with_pool(pool: Pool, opts: PgOptions) -> Result<MetadataStore> {
    PgStore::from_pool(pool, opts)
        .await
        .map(MetadataStore::from_engine)
}

impl PgStore {
    /// The engine behind [`open_with_pool`].
    pub async fn from_pool(pool: Pool, opts: PgOptions) -> Result<PgStore> {
        if let Some(id) = &opts.instance_id {
            s3o_core::validate::text("instance id", id)?;
        }
        let store = PgStore {
            db: Db {
                pool,
                breaker: Arc::new(CircuitBreaker::new("postgres", opts.breaker)),
                cancel_tls: None,
            },
            target: Target {
                hosts: "(application pool)".to_owned(),
                dbname: String::new(),
                user: String::new(),
                ssl: SslMode::Disable,
                schema: opts.schema.clone(),
            },
            schema: opts.schema,
            instance_id: opts
                .instance_id
                .unwrap_or_else(s3o_core::default_instance_id)
                .into(),
        };
        drop(
            store
                .db
                .raw_client("connect through the application's pool")
                .await?,
        );
        Ok(store)
    }

    /// Connects with default [`PgOptions`] (overridden by URL parameters) and checks that a
    /// connection can be made. Does **not** migrate: call
    /// [`MetadataStore::run_migrations`](s3o_core::MetadataStore::run_migrations).
    ///
    /// A malformed URL ⇒ `InvalidInput` naming the accepted form; an unreachable server or
    /// bad credentials ⇒ `Database { kind: Connection }` naming host and database.
    pub async fn connect(url: &str) -> Result<PgStore> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// [`PgStore::connect`] starting from `opts`; URL parameters override them.
    pub async fn connect_with(url: &str, opts: PgOptions) -> Result<PgStore> {
        let parsed = parse_url(url, opts)?;
        let opts = parsed.options;
        let target = describe(&parsed.config, parsed.ssl, opts.schema.clone());
        let manager_config = ManagerConfig {
            recycling_method: opts.recycling.method(),
        };
        let cancel_tls = tls::connector(parsed.ssl, parsed.root_cert.as_deref())?;
        // Without the `tls` feature the connector is the driver's `Copy` `NoTls`.
        #[cfg_attr(not(feature = "tls"), allow(clippy::clone_on_copy))]
        let manager = match cancel_tls.clone() {
            Some(tls) => Manager::from_config(parsed.config, tls, manager_config),
            None => Manager::from_config(parsed.config, tokio_postgres::NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(opts.max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.wait_timeout))
            .create_timeout(Some(opts.create_timeout))
            .recycle_timeout(Some(opts.recycle_timeout))
            .build()
            .map_err(|e| url_err(format!("cannot build the pool: {e}")))?;
        let store = PgStore {
            db: Db {
                pool,
                breaker: Arc::new(CircuitBreaker::new("postgres", opts.breaker)),
                cancel_tls,
            },
            target,
            schema: opts.schema,
            instance_id: opts
                .instance_id
                .unwrap_or_else(s3o_core::default_instance_id)
                .into(),
        };
        // Ping: fail at startup, not on the first request.
        let ctx = format!(
            "connect to {} (check host, port, database, credentials and sslmode)",
            store.target
        );
        drop(store.db.raw_client(&ctx).await?);
        tracing::info!(target_db = %store.target, max_size = opts.max_size, "postgres store connected");
        Ok(store)
    }

    /// The store's circuit breaker (state, stats, manual recovery).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.db.breaker
    }
}

impl Engine for PgStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn breaker(&self) -> &CircuitBreaker {
        PgStore::breaker(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<ParsedUrl> {
        parse_url(url, PgOptions::default())
    }

    #[test]
    fn tls_modes_parse_from_the_url() {
        use tokio_postgres::config::SslMode as Drv;
        let cases = [
            (
                "postgres://u@db.example.com/app",
                SslMode::Prefer,
                Drv::Prefer,
            ),
            ("postgres://u@127.0.0.1/app", SslMode::Disable, Drv::Disable),
            (
                "postgres://u@localhost:5433/app",
                SslMode::Disable,
                Drv::Disable,
            ),
            (
                "postgres://u@db.example.com/app?sslmode=require",
                SslMode::Require,
                Drv::Require,
            ),
            (
                "postgresql://u@db.example.com/app?sslmode=verify-full",
                SslMode::VerifyFull,
                Drv::Require,
            ),
            (
                "postgres://u@db.example.com/app?sslmode=verify-ca&connect_timeout=3",
                SslMode::VerifyCa,
                Drv::Require,
            ),
            (
                "postgres://u@127.0.0.1/app?sslmode=disable",
                SslMode::Disable,
                Drv::Disable,
            ),
            (
                "postgres://u@127.0.0.1/app?sslmode=require",
                SslMode::Require,
                Drv::Require,
            ),
        ];
        for (url, mode, drv) in cases {
            let p = parse(url).unwrap();
            assert_eq!(p.ssl, mode, "{url}");
            assert_eq!(p.config.get_ssl_mode(), drv, "{url}");
        }
        let p =
            parse("postgres://u@h/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem").unwrap();
        assert_eq!(p.root_cert.as_deref(), Some("/etc/ca.pem"));
        let e = parse("postgres://u@h/app?sslmode=verify").unwrap_err();
        assert!(matches!(e, StoreError::InvalidInput { .. }));
        assert!(e.to_string().contains("verify-full"), "{e}");
    }

    #[test]
    fn s3o_parameters_are_stripped_and_applied() {
        let p = parse(
            "postgres://u:pw@h:6543/app?pool_max_size=7&schema=t_1&pool_wait_timeout_ms=250\
             &pool_create_timeout_ms=300&pool_recycle_timeout_ms=400&application_name=x",
        )
        .unwrap();
        assert_eq!(p.options.recycling, Recycling::Fast, "the default");
        for (v, want) in [
            ("fast", Recycling::Fast),
            ("verified", Recycling::Verified),
            ("clean", Recycling::Clean),
        ] {
            let q = parse(&format!("postgres://u@h/app?pool_recycling={v}")).unwrap();
            assert_eq!(q.options.recycling, want);
        }
        assert_eq!(p.options.max_size, 7);
        assert_eq!(p.options.schema.as_deref(), Some("t_1"));
        assert_eq!(p.options.wait_timeout, Duration::from_millis(250));
        assert_eq!(p.options.create_timeout, Duration::from_millis(300));
        assert_eq!(p.options.recycle_timeout, Duration::from_millis(400));
        assert_eq!(p.config.get_ports(), &[6543]);
        assert_eq!(p.config.get_dbname(), Some("app"));
        assert_eq!(p.config.get_application_name(), Some("x"));
        assert_eq!(
            p.config.get_options(),
            Some("-c search_path=t_1 -c lock_timeout=5000")
        );
        assert_eq!(
            p.config.get_connect_timeout(),
            Some(&Duration::from_millis(300))
        );
    }

    #[test]
    fn malformed_urls_name_the_accepted_form() {
        for url in [
            "mysql://u@h/db",
            "postgres://u@h/db?pool_max_size=zero",
            "postgres://u@h/db?pool_max_size=0",
            "postgres://u@h/db?pool_wait_timeout_ms=-1",
            "postgres://u@h/db?schema=Bad-Name",
            "postgres://u:pw@h:notaport/db",
            "postgres://u@h/db?no_such_option=1",
            "postgres://u@h/db?pool_recycling=sometimes",
            "postgres://u@/db",
        ] {
            let e = parse(url).unwrap_err();
            assert!(matches!(e, StoreError::InvalidInput { .. }), "{url}: {e:?}");
        }
        let e = parse("mysql://u@h/db").unwrap_err();
        assert!(e.to_string().contains("postgres://user"), "{e}");
    }

    #[test]
    fn password_never_appears_in_errors_or_debug() {
        let secret = "s3cr3t-Pa55";
        let bad = [
            format!("postgres://admin:{secret}@h:notaport/db"),
            format!("postgres://admin:{secret}@h/db?no_such_option=1"),
            format!("postgres://admin:{secret}@h/db?sslmode=bogus"),
            format!("postgres://admin:{secret}@h/db?pool_max_size=x"),
            format!("mysql://admin:{secret}@h/db"),
        ];
        for url in &bad {
            let e = parse(url).unwrap_err();
            assert!(!e.to_string().contains(secret), "{e}");
            assert!(!format!("{e:?}").contains(secret), "{e:?}");
        }
        let p = parse(&format!("postgres://admin:{secret}@db.example.com/app")).unwrap();
        assert_eq!(p.config.get_password(), Some(secret.as_bytes()));
        assert!(!format!("{p:?}").contains(secret));
        let t = describe(&p.config, p.ssl, None);
        assert!(!t.to_string().contains(secret));
        assert_eq!(
            t.to_string(),
            "postgres://admin@db.example.com:5432/app (sslmode=prefer)"
        );
        // Percent-encoded passwords are scrubbed in both spellings.
        assert_eq!(
            scrub("x p%40ss y p@ss".into(), "postgres://u:p%40ss@h/db"),
            "x *** y ***"
        );
        // A `password=` query parameter is a password too (libpq accepts it), alone or
        // alongside a userinfo one.
        assert_eq!(
            scrub(
                "a qp%21w b qp!w c".into(),
                "postgres://u@h/db?sslmode=disable&password=qp%21w"
            ),
            "a *** b *** c"
        );
        assert_eq!(
            scrub("one two".into(), "postgres://u:one@h/db?password=two"),
            "*** ***"
        );
        assert_eq!(scrub("x".into(), "postgres://u@h/db?password="), "x");
        for url in [
            format!("postgres://admin@h:notaport/db?password={secret}"),
            format!("postgres://admin@h/db?password={secret}&no_such_option=1"),
            format!("postgres://admin@h/db?password={secret}&sslmode=bogus"),
            format!("postgres://admin@h/db?no_such_option={secret}&password={secret}"),
        ] {
            let e = parse(&url).unwrap_err();
            assert!(!e.to_string().contains(secret), "{e}");
            assert!(!format!("{e:?}").contains(secret), "{e:?}");
        }
        let p = parse(&format!(
            "postgres://admin@db.example.com/app?password={secret}"
        ))
        .unwrap();
        assert_eq!(p.config.get_password(), Some(secret.as_bytes()));
        assert!(!format!("{p:?}").contains(secret));
    }
}
