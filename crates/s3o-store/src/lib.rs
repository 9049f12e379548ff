#![doc = include_str!("../README.md")]

/// A bucket's CORS configuration and S3's limits on it.
pub use s3o_core::cors;
/// A fresh version id, for a commit whose id is announced before it
/// ([`MetadataStore::commit_announced_version`]).
pub use s3o_core::ops::new_version_id;
/// Metric names the handle records (cargo feature `metrics`, on by default).
#[cfg(feature = "metrics")]
pub use s3o_core::telemetry as metrics;
pub use s3o_core::tx::BoxFuture;
/// Input limits every engine enforces before SQL (id lengths, sizes, timestamps, pages).
pub use s3o_core::validate as limits;
pub use s3o_core::{
    Access, BackendCapacity, BadCopyRemoval, BoxError, BreakerConfig, BreakerState, BreakerStats,
    Bucket, BucketBusy, BucketSettings, BucketSpec, CleanupClaim, CleanupDlqItem, CleanupEntry,
    CleanupItem, CleanupOutcome, CleanupQueueStates, ConvertedCopy, CorsConfig, CorsRule,
    CreateMultipartUploadParams, Cursor, DbErrorKind, DeletedCopy, EncryptedLocation,
    ImportOutcome, ImportedObject, KeyBound, KeyCensus, KeyHolder, LifecycleRule,
    ListDelimitedResult, ListObjectsResult, LockId, MAX_ATTEMPTS, MIGRATE_HINT, MetadataStore,
    MoveOutcome, MultipartPart, MultipartUpload, NotificationRow, ObjectAttributes, ObjectChecksum,
    ObjectLocation, PartLayout, PendingObject, PendingPromoteResult, QuotaStat, ReplicaOutcome,
    Result, S3Error, SchemaVersion, StoreError, StoredForm, Timestamp, UnencryptedLocation,
    UsageLimits, UsageStat, WrappedKey, WrappedKeyAt, WritePrecondition, default_instance_id,
    default_part_path, quota_admits, s3_error_for,
};
/// Versioning (DESIGN decision 25): bucket state, version reads, outcomes and listings.
pub use s3o_core::{
    CURRENT_SEQ, Committed, DeleteOutcome, NULL_VERSION_ID, NoncurrentCopy, NoncurrentReplicas,
    ObjectVersion, VersionListing, Versioning,
};
/// Lifecycle in versioned buckets: what a rule's noncurrent actions ask, what they removed.
pub use s3o_core::{NoncurrentExpiry, VersionAge, VersionExpiry, due_versions};
/// Versions, delete markers and noncurrent bytes per backend.
pub use s3o_core::{NoncurrentStat, VersionStats};

/// The PostgreSQL engine: [`pg::PgOptions`], [`pg::open_with`], TLS modes.
#[cfg(feature = "postgres")]
pub use s3o_pg as pg;
/// The SQLite engine: [`sqlite::SqliteOptions`], [`sqlite::open_with`].
#[cfg(feature = "sqlite")]
pub use s3o_sqlite as sqlite;

/// The URL schemes [`Store::open`] accepts, whatever features are enabled.
pub const ACCEPTED_SCHEMES: [&str; 3] = ["sqlite:", "postgres://", "postgresql://"];

/// The database engines the facade knows about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// SQLite, through `s3o_sqlite::SqliteStore` (cargo feature `sqlite`).
    Sqlite,
    /// PostgreSQL, through `s3o_pg::PgStore` (cargo feature `postgres`).
    Postgres,
}

impl Engine {
    /// Every engine, enabled or not.
    pub const ALL: [Engine; 2] = [Engine::Sqlite, Engine::Postgres];

    /// The engine a URL names, by scheme. Unknown scheme ⇒ `InvalidInput` listing the
    /// accepted schemes. Does not check that the engine was compiled in.
    pub fn for_url(url: &str) -> Result<Engine> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            let scheme = url.split_once(':').map_or(url, |(s, _)| s);
            Err(StoreError::invalid(
                "store URL",
                format!(
                    "unknown scheme {scheme:?}; accepted schemes: {}",
                    ACCEPTED_SCHEMES.join(", ")
                ),
            ))
        }
    }

    /// The name [`MetadataStore::engine`] reports for this engine.
    pub const fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }

    /// The cargo feature of `s3o-store` that compiles this engine in.
    pub const fn cargo_feature(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }

    /// True when this engine was compiled into this build.
    pub const fn is_enabled(self) -> bool {
        match self {
            Engine::Sqlite => cfg!(feature = "sqlite"),
            Engine::Postgres => cfg!(feature = "postgres"),
        }
    }
}

/// How [`Store::open`] prepares the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Apply pending migrations ([`MetadataStore::run_migrations`]) before returning.
    pub migrate: bool,
}

/// The unified entry point: opens the engine a URL names.
#[derive(Debug)]
pub struct Store;

impl Store {
    /// Opens the store the URL names (`sqlite:…` ⇒ SQLite, `postgres://`/`postgresql://` ⇒
    /// PostgreSQL) and, with `options.migrate`, applies pending migrations.
    ///
    /// An engine compiled out ⇒ `InvalidInput` naming the cargo feature to enable; an unknown
    /// scheme ⇒ `InvalidInput` listing the accepted schemes. Neither opens anything.
    pub async fn open(url: &str, options: OpenOptions) -> Result<MetadataStore> {
        let engine = Engine::for_url(url)?;
        let store = open_engine(engine, url).await?;
        finish_open(store, options).await
    }
}

/// Opens the store the URL names, without migrating (see [`Store::open`]).
pub async fn open(url: &str) -> Result<MetadataStore> {
    Store::open(url, OpenOptions { migrate: false }).await
}

/// Opens the store the URL names and applies pending migrations (see [`Store::open`]).
pub async fn open_and_migrate(url: &str) -> Result<MetadataStore> {
    Store::open(url, OpenOptions { migrate: true }).await
}

fn compiled_out(engine: Engine) -> StoreError {
    StoreError::invalid(
        "store URL",
        format!(
            "the {} engine is not compiled in; enable the `{}` cargo feature of s3o-store",
            engine.name(),
            engine.cargo_feature()
        ),
    )
}

async fn open_engine(engine: Engine, url: &str) -> Result<MetadataStore> {
    match engine {
        #[cfg(feature = "sqlite")]
        Engine::Sqlite => s3o_sqlite::open(url).await,
        #[cfg(feature = "postgres")]
        Engine::Postgres => s3o_pg::open(url).await,
        #[allow(unreachable_patterns)]
        other => {
            let _ = url;
            Err(compiled_out(other))
        }
    }
}

/// Explicit settings for the engine a URL names (see [`open_with`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EngineOptions {
    /// SQLite settings (durability, timeouts, readers, breaker, instance id).
    #[cfg(feature = "sqlite")]
    Sqlite(s3o_sqlite::SqliteOptions),
    /// PostgreSQL settings (pool, timeouts, breaker, schema, lock timeout, instance id); URL
    /// parameters override them.
    #[cfg(feature = "postgres")]
    Postgres(s3o_pg::PgOptions),
}

impl EngineOptions {
    /// The engine these options are for.
    pub fn engine(&self) -> Engine {
        match *self {
            #[cfg(feature = "sqlite")]
            EngineOptions::Sqlite(_) => Engine::Sqlite,
            #[cfg(feature = "postgres")]
            EngineOptions::Postgres(_) => Engine::Postgres,
        }
    }
}

/// Opens the store `url` names with explicit engine settings and, with `options.migrate`,
/// applies pending migrations. Options for another engine than the URL's ⇒ `InvalidInput`
/// naming both; nothing is opened.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(unreachable_code, unused_variables)
)]
pub async fn open_with(
    url: &str,
    engine: EngineOptions,
    options: OpenOptions,
) -> Result<MetadataStore> {
    let named = Engine::for_url(url)?;
    if named != engine.engine() {
        return Err(StoreError::invalid(
            "store options",
            format!(
                "the URL names {} but the options are for {}",
                named.name(),
                engine.engine().name()
            ),
        ));
    }
    let store = match engine {
        #[cfg(feature = "sqlite")]
        EngineOptions::Sqlite(o) => s3o_sqlite::open_with(url, o).await?,
        #[cfg(feature = "postgres")]
        EngineOptions::Postgres(o) => s3o_pg::open_with(url, o).await?,
    };
    finish_open(store, options).await
}

async fn finish_open(store: MetadataStore, options: OpenOptions) -> Result<MetadataStore> {
    if options.migrate
        && let Err(e) = store.run_migrations().await
    {
        store.close().await;
        return Err(e);
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_why(r: Result<MetadataStore>) -> String {
        match r {
            Err(StoreError::InvalidInput { what, why }) => {
                assert_eq!(what, "store URL");
                why
            }
            Err(e) => panic!("expected InvalidInput, got {e:?}"),
            Ok(s) => panic!("expected an error, opened {}", s.engine()),
        }
    }

    #[tokio::test]
    async fn unknown_scheme_lists_accepted_schemes() {
        for url in [
            "mysql://localhost/db",
            "",
            "sqlite",
            "http://x",
            "postgres:/x",
        ] {
            let why = invalid_why(open(url).await);
            for scheme in ACCEPTED_SCHEMES {
                assert!(why.contains(scheme), "{url}: {why}");
            }
            let why = invalid_why(open_and_migrate(url).await);
            assert!(why.contains("unknown scheme"), "{url}: {why}");
        }
    }

    #[test]
    fn schemes_map_to_engines() {
        let table = [
            ("sqlite://x.db", Engine::Sqlite),
            ("sqlite::memory:", Engine::Sqlite),
            ("postgres://u@h/db", Engine::Postgres),
            ("postgresql://u@h/db?schema=s", Engine::Postgres),
        ];
        for (url, engine) in table {
            assert_eq!(Engine::for_url(url).unwrap(), engine, "{url}");
        }
        assert!(Engine::for_url("Postgres://h").is_err());
    }

    #[test]
    fn enabled_engines_follow_features() {
        assert_eq!(Engine::Sqlite.is_enabled(), cfg!(feature = "sqlite"));
        assert_eq!(Engine::Postgres.is_enabled(), cfg!(feature = "postgres"));
    }

    #[test]
    fn compiled_out_error_names_the_feature() {
        for engine in Engine::ALL {
            let StoreError::InvalidInput { why, .. } = compiled_out(engine) else {
                unreachable!()
            };
            assert!(why.contains(&format!("`{}` cargo feature", engine.cargo_feature())));
        }
    }

    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn postgres_compiled_out_names_feature() {
        let why = invalid_why(open("postgres://postgres@127.0.0.1/test").await);
        assert!(why.contains("`postgres` cargo feature"), "{why}");
    }

    #[cfg(not(feature = "sqlite"))]
    #[tokio::test]
    async fn sqlite_compiled_out_names_feature() {
        let why = invalid_why(open("sqlite::memory:").await);
        assert!(why.contains("`sqlite` cargo feature"), "{why}");
    }
}
