//! The rig every case runs on: in-process s3s-fs servers on loopback ports and local
//! directories as backends, the gateway started from a TOML configuration, an object_store S3
//! client and a raw SigV4 client pointed at it, and the ledger checks.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use s3o_gateway::{Config, Gateway, RunningGateway};
use s3o_store::{MetadataStore, StoreError};
use tempfile::TempDir;

use crate::faulty::{Faults, FaultyServer, faulty_server};
use crate::fs_backend::{BACKEND_AK, BACKEND_BUCKET, BACKEND_SK, Server, crypto, fs_server};
pub(crate) use crate::fs_backend::{REGION, s3_builder, s3_client};
use crate::raw::Raw;

/// Access key of the client the gateway accepts.
pub(crate) const AK: &str = "e2e-client";
/// Secret key of that client.
pub(crate) const SK: &str = "e2e-client-secret-0123456789";
/// The virtual bucket clients see.
pub(crate) const BUCKET: &str = "photos";

/// The ledger engine a case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ledger {
    /// Embedded SQLite file in the rig's temp dir.
    Sqlite,
    /// A fresh schema in the database of `S3O_PG_URL`.
    Postgres,
}

/// One backend of the rig.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    /// Backend name in the config and the ledger.
    pub(crate) name: &'static str,
    /// `true`: an s3s-fs server reached over HTTP; `false`: a local directory.
    pub(crate) s3: bool,
    /// Byte quota (0 = unlimited).
    pub(crate) quota: u64,
    /// An s3 backend served through the fault-injecting wrapper ([`crate::faulty`]).
    pub(crate) faulty: bool,
    /// `single_put_max_bytes` of an s3 backend (absent: the default).
    pub(crate) single_put_max: Option<u64>,
}

impl Spec {
    /// The same backend, sent every body over 5 MiB as a multipart upload (no streamed
    /// single PUT): for the cases about backend multipart uploads.
    pub(crate) const fn multipart_only(self) -> Spec {
        Spec {
            single_put_max: Some(0),
            ..self
        }
    }
}

/// An s3s-fs backend with `quota` bytes.
pub(crate) const fn s3(name: &'static str, quota: u64) -> Spec {
    Spec {
        name,
        s3: true,
        quota,
        faulty: false,
        single_put_max: None,
    }
}

/// An s3s-fs backend with `quota` bytes whose faults the test sets ([`Backend::faults`]).
pub(crate) const fn faulty(name: &'static str, quota: u64) -> Spec {
    Spec {
        name,
        s3: true,
        quota,
        faulty: true,
        single_put_max: None,
    }
}

/// A local-directory backend with `quota` bytes.
pub(crate) const fn local(name: &'static str, quota: u64) -> Spec {
    Spec {
        name,
        s3: false,
        quota,
        faulty: false,
        single_put_max: None,
    }
}

/// Two s3s-fs backends and a local directory, 1 GiB each: the default rig.
pub(crate) const THREE: [Spec; 3] = [
    s3("fs-a", 1 << 30),
    s3("fs-b", 1 << 30),
    local("disk-c", 1 << 30),
];

/// A backend as the test sees it: a direct client to its storage, bypassing the gateway.
pub(crate) struct Backend {
    /// Name in the config and the ledger.
    pub(crate) name: String,
    /// Direct access to what the backend holds.
    pub(crate) direct: Arc<dyn ObjectStore>,
    server: Option<Server>,
    /// The fault rules of a [`faulty`] backend.
    faults: Option<Arc<Faults>>,
    faulty_server: Option<FaultyServer>,
}

impl Backend {
    /// The fault rules and counters of this backend; panics unless it was made [`faulty`].
    pub(crate) fn faults(&self) -> &Faults {
        self.faults
            .as_deref()
            .unwrap_or_else(|| panic!("backend {} is not faulty", self.name))
    }

    /// Where a faulty backend's server listens; panics unless it was made [`faulty`].
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.faulty_server
            .as_ref()
            .unwrap_or_else(|| panic!("backend {} is not faulty", self.name))
            .addr
    }

    /// The fault rules of this backend, if it is [`faulty`].
    pub(crate) fn faults_if_any(&self) -> Option<&Faults> {
        self.faults.as_deref()
    }
}

/// The PostgreSQL URL of this run, or `None` when PostgreSQL cases are skipped. Panics when
/// `S3O_REQUIRE_PG=1` and no URL is set, so CI cannot skip them silently.
pub(crate) fn pg_url() -> Option<String> {
    match std::env::var("S3O_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("S3O_REQUIRE_PG").as_deref() != Ok("1"),
                "S3O_REQUIRE_PG=1 but S3O_PG_URL is not set"
            );
            eprintln!("skipped: S3O_PG_URL is not set (PostgreSQL ledger cases)");
            None
        }
    }
}

/// `url` with `param` appended to its query string.
pub(crate) fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// A fresh, unique schema name for one PostgreSQL case.
fn schema_name() -> String {
    format!("gw_e2e_{}", uuid::Uuid::new_v4().simple())
}

/// How [`Rig::start`] should build the gateway.
pub(crate) struct Options<'a> {
    /// Backends in routing order.
    pub(crate) backends: &'a [Spec],
    /// `pack` or `spread`.
    pub(crate) routing: &'a str,
    /// Overrides the ledger URL (the outage case points it through a proxy).
    pub(crate) store_url: Option<String>,
}

/// The gateway and everything around it.
pub(crate) struct Rig {
    gateway: Option<RunningGateway>,
    /// object_store S3 client on the virtual bucket, through the gateway.
    pub(crate) client: AmazonS3,
    /// Signed raw requests to the gateway, for answers object_store does not expose.
    pub(crate) raw: Raw,
    /// The backends, in config order.
    pub(crate) backends: Vec<Backend>,
    /// PostgreSQL: base URL and the schema to drop at the end.
    pg: Option<(String, String)>,
    /// The configuration the gateway was started with (drain, a second gateway process).
    pub(crate) config: Config,
    /// Its TOML text, without the extra sections given to [`Rig::start_with`].
    pub(crate) toml: String,
    /// Holds backend directories and the SQLite ledger until the rig is dropped.
    _dir: TempDir,
}

impl Rig {
    /// The default rig ([`THREE`], `pack`) on `ledger`; `None` when that ledger is skipped.
    pub(crate) async fn new(ledger: Ledger) -> Option<Rig> {
        Rig::start(
            ledger,
            Options {
                backends: &THREE,
                routing: "pack",
                store_url: None,
            },
        )
        .await
    }

    /// Starts backends and the gateway; `None` when `ledger` is PostgreSQL and no URL is set.
    pub(crate) async fn start(ledger: Ledger, opts: Options<'_>) -> Option<Rig> {
        Rig::start_with(ledger, opts, "").await
    }

    /// As [`Rig::start`], with `extra` appended to the configuration (e.g. `[workers.…]`).
    pub(crate) async fn start_with(ledger: Ledger, opts: Options<'_>, extra: &str) -> Option<Rig> {
        crypto();
        let dir = tempfile::tempdir().expect("tempdir");
        let (store_url, pg) = match ledger {
            Ledger::Sqlite => (
                format!("sqlite://{}", dir.path().join("ledger.db").display()),
                None,
            ),
            Ledger::Postgres => {
                let base = pg_url()?;
                let schema = schema_name();
                let url = opts.store_url.clone().unwrap_or_else(|| base.clone());
                (
                    with_param(&url, &format!("schema={schema}")),
                    Some((base, schema)),
                )
            }
        };
        let mut toml = format!(
            "listen = \"127.0.0.1:0\"\nstore = {store_url:?}\nregion = {REGION:?}\n\
             routing = {:?}\n\n[[credentials]]\naccess_key = {AK:?}\nsecret_key = {SK:?}\n\n\
             [[buckets]]\nname = {BUCKET:?}\n",
            opts.routing
        );
        let mut backends = Vec::new();
        for spec in opts.backends {
            let root = dir.path().join(spec.name);
            if spec.s3 {
                std::fs::create_dir_all(root.join(BACKEND_BUCKET)).expect("backend dir");
                let (server, faults, faulty_server) = if spec.faulty {
                    let faults = Arc::new(Faults::default());
                    let s = faulty_server(&root, faults.clone()).await;
                    (None, Some(faults), Some(s))
                } else {
                    (Some(fs_server(&root).await), None, None)
                };
                let addr = match (&server, &faulty_server) {
                    (Some(s), _) => s.addr,
                    (None, Some(s)) => s.addr,
                    (None, None) => unreachable!("one server is started"),
                };
                let endpoint = format!("http://{addr}");
                toml.push_str(&format!(
                    "\n[[backends]]\nname = {:?}\nkind = \"s3\"\nendpoint = {endpoint:?}\n\
                     bucket = {BACKEND_BUCKET:?}\nregion = {REGION:?}\n\
                     access_key = {BACKEND_AK:?}\nsecret_key = {BACKEND_SK:?}\nquota_bytes = {}\n",
                    spec.name, spec.quota
                ));
                if let Some(max) = spec.single_put_max {
                    toml.push_str(&format!("single_put_max_bytes = {max}\n"));
                }
                backends.push(Backend {
                    name: spec.name.into(),
                    direct: Arc::new(s3_client(&endpoint, BACKEND_BUCKET, BACKEND_AK, BACKEND_SK)),
                    server,
                    faults,
                    faulty_server,
                });
            } else {
                std::fs::create_dir_all(&root).expect("backend dir");
                let path = root.display().to_string();
                toml.push_str(&format!(
                    "\n[[backends]]\nname = {:?}\nkind = \"local\"\npath = {path:?}\n\
                     quota_bytes = {}\n",
                    spec.name, spec.quota
                ));
                backends.push(Backend {
                    name: spec.name.into(),
                    direct: Arc::new(LocalFileSystem::new_with_prefix(&root).expect("local fs")),
                    server: None,
                    faults: None,
                    faulty_server: None,
                });
            }
        }
        let full = format!("{toml}\n{extra}");
        let config =
            Config::from_toml_str(&full).unwrap_or_else(|e| panic!("config refused: {e}\n{full}"));
        let gateway = Gateway::start(config.clone())
            .await
            .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
        let endpoint = gateway.endpoint();
        Some(Rig {
            client: s3_client(&endpoint, BUCKET, AK, SK),
            raw: Raw::new(&endpoint),
            gateway: Some(gateway),
            backends,
            pg,
            config,
            toml,
            _dir: dir,
        })
    }

    /// The running gateway.
    pub(crate) fn gateway(&self) -> &RunningGateway {
        self.gateway.as_ref().expect("gateway running")
    }

    /// The ledger handle the gateway uses.
    pub(crate) fn store(&self) -> &MetadataStore {
        self.gateway().store()
    }

    /// Every object physically on each backend: `backend → [(path, size)]`, read directly.
    pub(crate) async fn physical(&self) -> BTreeMap<String, Vec<(String, u64)>> {
        let mut out = BTreeMap::new();
        for b in &self.backends {
            let mut objects: Vec<(String, u64)> = b
                .direct
                .list(None)
                .map_ok(|m| (m.location.to_string(), m.size))
                .try_collect()
                .await
                .unwrap_or_else(|e| panic!("listing backend {}: {e}", b.name));
            objects.sort();
            out.insert(b.name.clone(), objects);
        }
        out
    }

    /// Total bytes physically stored across every backend.
    pub(crate) async fn physical_bytes(&self) -> u64 {
        self.physical()
            .await
            .values()
            .flat_map(|v| v.iter().map(|(_, s)| *s))
            .sum()
    }

    /// Ledger copies of client key `key` in the virtual bucket: `[(backend, size)]`.
    pub(crate) async fn placement(&self, key: &str) -> Vec<(String, i64)> {
        let copies = match self
            .store()
            .get_all_object_locations(&format!("{BUCKET}/{key}"))
            .await
        {
            Ok(copies) => copies,
            Err(StoreError::ObjectNotFound { .. }) => Vec::new(),
            Err(e) => panic!("get_all_object_locations({key}): {e}"),
        };
        let mut v: Vec<(String, i64)> = copies
            .into_iter()
            .map(|l| (l.backend_name, l.size_bytes))
            .collect();
        v.sort();
        v
    }

    /// The ledger is clean and agrees with the backends, at a quiet moment:
    /// - `bytes_used == Σ size_bytes` of its copies, for every backend;
    /// - `orphan_bytes == Σ queue + DLQ bytes`, and both are empty (displaced bytes were
    ///   deleted at once and their cleanup rows completed);
    /// - no pending intent and no open multipart upload is left;
    /// - each backend physically holds exactly as many objects and bytes as the ledger says.
    pub(crate) async fn assert_clean(&self) {
        let store = self.store();
        let stats = store.get_quota_stats().await.expect("get_quota_stats");
        let cleanup = store
            .cleanup_bytes_by_backend()
            .await
            .expect("cleanup_bytes_by_backend");
        let counts = store.get_object_counts().await.expect("get_object_counts");
        let physical = self.physical().await;
        for b in &self.backends {
            let stat = stats
                .get(&b.name)
                .unwrap_or_else(|| panic!("no quota row for {}", b.name));
            let (copies, bytes) = store
                .backend_object_stats(&b.name)
                .await
                .expect("backend_object_stats");
            assert_eq!(
                stat.bytes_used, bytes,
                "{}: bytes_used must equal the sum of its copies' sizes",
                b.name
            );
            let (queued, dead) = cleanup.get(&b.name).copied().unwrap_or((0, 0));
            assert_eq!(
                stat.orphan_bytes,
                queued + dead,
                "{}: orphan_bytes must equal queue + DLQ bytes",
                b.name
            );
            assert_eq!(
                (queued, dead),
                (0, 0),
                "{}: displaced bytes must be deleted at once, leaving no cleanup row",
                b.name
            );
            assert_eq!(
                counts.get(&b.name).copied().unwrap_or(0),
                copies,
                "{}: object count",
                b.name
            );
            let held = &physical[&b.name];
            let held_bytes: u64 = held.iter().map(|(_, s)| *s).sum();
            assert_eq!(
                (held.len() as i64, held_bytes as i64),
                (copies, bytes),
                "{}: objects and bytes on the backend must be exactly the ledger's copies \
                 (held: {held:?})",
                b.name
            );
        }
        assert_eq!(store.count_pending().await.expect("count_pending"), 0);
        assert_eq!(store.cleanup_queue_depth().await.expect("queue depth"), 0);
        assert_eq!(store.cleanup_dlq_depth().await.expect("dlq depth"), 0);
        let uploads = store
            .list_multipart_uploads("", 1000)
            .await
            .expect("list_multipart_uploads");
        assert!(
            uploads.is_empty(),
            "open multipart uploads left: {uploads:?}"
        );
    }

    /// Puts `body` at `key` through the gateway with object_store.
    pub(crate) async fn put(&self, key: &str, body: impl Into<Bytes>) {
        let body: Bytes = body.into();
        self.client
            .put(&path(key), body.into())
            .await
            .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
    }

    /// Gets the whole body of `key` through the gateway with object_store.
    pub(crate) async fn get(&self, key: &str) -> Bytes {
        self.client
            .get(&path(key))
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {e}"))
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("GET {key} body: {e}"))
    }

    /// Shuts the gateway down gracefully, then drops a PostgreSQL case's schema.
    pub(crate) async fn finish(mut self) {
        // Held backend calls would keep the graceful shutdown waiting.
        for b in &self.backends {
            if let Some(f) = &b.faults {
                f.clear();
            }
        }
        if let Some(gw) = self.gateway.take() {
            gw.shutdown().await;
        }
        if let Some((base, schema)) = self.pg.take() {
            drop_schema(&base, &schema).await;
        }
        for b in &mut self.backends {
            b.server.take();
            b.faulty_server.take();
        }
    }
}

impl Drop for Rig {
    /// A case that panicked never reached [`Rig::finish`]: drop its schema anyway, on a
    /// runtime of its own (this may run inside the test's runtime).
    fn drop(&mut self) {
        if let Some((base, schema)) = self.pg.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_schema(&base, &schema));
                }
            })
            .join();
        }
    }
}

/// Drops `schema` in the database of `base` (best effort: a leftover schema is only clutter).
pub(crate) async fn drop_schema(base: &str, schema: &str) {
    use s3o_store::pg::tokio_postgres;
    let plain = base.split('?').next().unwrap_or(base);
    if let Ok((client, conn)) = tokio_postgres::connect(plain, tokio_postgres::NoTls).await {
        let task = tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
        drop(client);
        let _ = task.await;
    }
}

/// The object_store path of client key `key`, verbatim (spaces, `%`, `+` and non-ASCII
/// included; object_store percent-encodes it on the wire).
pub(crate) fn path(key: &str) -> Path {
    Path::parse(key).unwrap_or_else(|e| panic!("key {key:?} is not a valid path: {e}"))
}

/// `n` bytes of a pattern seeded by `seed`, so different versions differ everywhere.
pub(crate) fn body(n: usize, seed: u8) -> Bytes {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// Hex MD5 of `data`.
pub(crate) fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}
