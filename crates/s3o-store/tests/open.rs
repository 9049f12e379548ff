//! The facade opens each compiled-in engine by URL, migrating only when asked.

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_url_opens_sqlite_and_migrates_on_request() {
    use s3o_store::{DbErrorKind, OpenOptions, Store};

    let dir = std::env::temp_dir().join(format!(
        "s3o-store-open-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("meta.db").display());

    let plain = s3o_store::open(&url).await.unwrap();
    assert_eq!(plain.engine(), "sqlite");
    let err = plain.verify_schema_version().await.unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Schema), "{err:?}");
    plain.close().await;

    let migrated = Store::open(&url, OpenOptions { migrate: true })
        .await
        .unwrap();
    let v = migrated.verify_schema_version().await.unwrap();
    assert_eq!(v.current, v.expected);
    migrated.close().await;

    let again = s3o_store::open_and_migrate(&url).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), v);
    again.close().await;
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs only with `S3O_PG_URL` set (the conformance suite covers PostgreSQL in depth).
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_url_opens_postgres() {
    use s3o_store::MetadataStore;
    use s3o_store::pg::tokio_postgres;

    let Ok(base) = std::env::var("S3O_PG_URL") else {
        eprintln!("SKIP postgres: S3O_PG_URL not set");
        return;
    };
    let schema = format!("facade_{}", std::process::id());
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema={schema}");
    let store = s3o_store::open_and_migrate(&url).await.unwrap();
    assert_eq!(store.engine(), "postgres");
    store.verify_schema_version().await.unwrap();
    store.close().await;
    let url = url.replacen("postgres://", "postgresql://", 1);
    let store: MetadataStore = s3o_store::open(&url).await.unwrap();
    assert_eq!(store.engine(), "postgres");
    store.verify_schema_version().await.unwrap();
    store.close().await;
    // Drop the schema through the driver the facade re-exports.
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
    drop(client);
    let _ = conn.await;
}

/// Explicit options reach the engine (instance id, breaker settings), the handle reports the
/// breaker's state, and options for the wrong engine are refused before anything opens.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_opens_with_explicit_options() {
    use s3o_store::sqlite::SqliteOptions;
    use s3o_store::{BreakerState, EngineOptions, OpenOptions, StoreError};

    let dir = std::env::temp_dir().join(format!("s3o-store-opts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("meta.db").display());
    let opts = SqliteOptions {
        instance_id: Some("worker-7".into()),
        ..SqliteOptions::default()
    };
    let store = s3o_store::open_with(
        &url,
        EngineOptions::Sqlite(opts),
        OpenOptions { migrate: true },
    )
    .await
    .unwrap();
    assert_eq!(store.instance_id(), "worker-7");
    assert_eq!(store.breaker_state(), BreakerState::Closed);
    store.register_backends(&[("a".into(), 10)]).await.unwrap();
    assert_eq!(
        store
            .list_backends()
            .await
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["a"]
    );
    // A routing list with a typo names it instead of answering "no space".
    let typo = store
        .get_backend_with_space(1, &["a".into(), "aa".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(&typo, StoreError::UnknownBackend { backend } if backend == "aa"),
        "{typo:?}"
    );
    store.remove_backend("a").await.unwrap();
    assert!(store.list_backends().await.unwrap().is_empty());
    store.close().await;

    #[cfg(feature = "postgres")]
    {
        let e = s3o_store::open_with(
            &url,
            EngineOptions::Postgres(s3o_store::pg::PgOptions::default()),
            OpenOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
