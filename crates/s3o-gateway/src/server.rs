//! Start-up, the accept loop, `/health` and `/metrics`, graceful shutdown.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3o_store::{BucketSettings, BucketSpec};
use s3s::host::MultiDomain;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument as _;

use crate::admission::{Admission, IdleTimeoutBody, Refusal, Ticket, TicketBody, error_response};

use crate::auth::Keys;
use crate::backends::Backends;
use crate::config::BackendConfig;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::s3::GatewayS3;
use crate::tls::TlsState;
use crate::workers::{Ctx, PassResult, Worker, Workers, WorkersReport};
use crate::{Config, GatewayError, LedgerHandle};

/// The gateway's entry point.
#[derive(Debug)]
pub struct Gateway;

/// A gateway serving in the background until [`RunningGateway::shutdown`].
pub struct RunningGateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The configuration as applied (start, then each reload's applied parts).
    config: Mutex<Config>,
    operator_addr: Option<SocketAddr>,
    store: LedgerHandle,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
    workers_ctx: Arc<Ctx>,
    workers: Option<Workers>,
}

impl std::fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGateway")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The `[server]` settings the request path reads, resolved once.
struct Settings {
    header_timeout: Duration,
    body_idle_timeout: Duration,
    shutdown_grace: Duration,
    /// `/health` and `/metrics` are served by their own listener, not the S3 one.
    separate_operator: bool,
    max_connections: usize,
    anonymous: bool,
}

/// What [`RunningGateway::reload`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Settings now in effect.
    pub applied: Vec<String>,
    /// Settings that differ from the running ones and take effect only after a restart.
    pub needs_restart: Vec<String>,
}

/// What every connection shares.
struct Shared {
    s3: S3Service,
    settings: Settings,
    admission: Admission,
    /// Permits for open connections (`max_connections`), shared by both listeners.
    connections: Arc<Semaphore>,
    /// The last `/health` ledger probe and when it ran.
    health_cache: Mutex<Option<(Instant, bool)>>,
    /// The bearer token of the operator endpoints (reloadable).
    operator_token: std::sync::RwLock<Option<String>>,
    /// SigV4 keys (reloadable); `None` in anonymous mode.
    keys: Option<Keys>,
    /// The S3 listener's certificate when it serves HTTPS (reloadable).
    tls: Option<TlsState>,
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
    /// Backends the ledger knows that the configuration does not list (reported by /health).
    unconfigured: Vec<String>,
    workers: Arc<Ctx>,
    /// The S3 face's read cache, for `/metrics`.
    read_cache: Option<Arc<crate::read_cache::ReadCache>>,
}

impl Gateway {
    /// Opens (and migrates) the ledger, syncs quotas, builds backends, binds `config.listen`
    /// (port 0 allowed) and serves in the background until shutdown.
    ///
    /// Backends the ledger knows but the configuration no longer lists are reported in the
    /// log (their rows and bytes are kept, never dropped).
    pub async fn start(config: Config) -> Result<RunningGateway, GatewayError> {
        config.validate()?;
        // object_store's reqwest is built without a TLS provider: install ring's (once per
        // process; a second install fails harmlessly).
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The URL may carry a password: only its redacted form goes into errors.
        let store_err = |source| GatewayError::Store {
            url: crate::redact::url(&config.store),
            source,
        };
        let store = s3o_store::open(&config.store).await.map_err(store_err)?;
        let ledger = Arc::new(Ledger::new(store.clone(), config.routing));
        let limits: Vec<(String, i64)> = config
            .backends
            .iter()
            .map(|b| {
                (
                    b.name.clone(),
                    i64::try_from(b.quota_bytes).unwrap_or(i64::MAX),
                )
            })
            .collect();
        let unconfigured = match ledger.prepare(&limits).await {
            Ok(u) => u,
            Err(e) => {
                store.close().await;
                return Err(store_err(e));
            }
        };
        for name in &unconfigured {
            tracing::warn!(
                backend = %name,
                "backend is in the ledger but not in the configuration: its copies are kept \
                 and unreadable until it is configured again or its data is removed with the s3o CLI"
            );
            eprintln!(
                "s3o-gateway: warning: backend {name:?} is in the ledger but not in the configuration; its data is kept"
            );
        }
        // The configuration's buckets are the ledger's initial state: created when missing,
        // their settings refreshed, never deleted (buckets created over S3 stay).
        let specs: Vec<BucketSpec> = config
            .buckets
            .iter()
            .map(|b| BucketSpec {
                name: b.name.clone(),
                settings: BucketSettings {
                    replication_factor: b.replication_factor,
                    // Written only when the sync creates the bucket (validated with the
                    // configuration, so no rule is dropped here).
                    lifecycle: b
                        .lifecycle
                        .iter()
                        .filter_map(|r| r.to_rule().ok())
                        .collect(),
                    ..BucketSettings::default()
                },
            })
            .collect();
        if let Err(e) = ledger.sync_buckets(&specs).await {
            store.close().await;
            return Err(store_err(e));
        }
        let backends = Arc::new(Backends::build(&config.backends)?);
        // This month's usage as every gateway flushed it, so budgets hold across restarts.
        if let Err(e) = backends.usage().refresh(&store).await {
            tracing::warn!(error = %e, "could not read this month's backend usage; budgets count from zero until the next flush");
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| GatewayError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: config.listen,
            source,
        })?;
        let operator_listener = match config.server.metrics_listen {
            None => None,
            Some(at) => {
                let bind_err = |source| GatewayError::Bind { addr: at, source };
                let l = TcpListener::bind(at).await.map_err(bind_err)?;
                let a = l.local_addr().map_err(bind_err)?;
                Some((l, a))
            }
        };
        crate::store_metrics::install();
        let metrics = Arc::new(Metrics::default());
        let mut ctx = Ctx::new(store.clone(), ledger.clone(), backends.clone(), &config);
        // Replication factors are the ledger's, buckets created over S3 included; the workers
        // read them again at every pass (`Ctx::current_factors`), this is the start snapshot.
        match ledger.buckets().await {
            Ok(all) => {
                ctx.factors = all
                    .into_iter()
                    .map(|b| (b.name, i64::from(b.settings.replication_factor.max(1))))
                    .collect();
            }
            Err(e) => {
                store.close().await;
                return Err(store_err(e));
            }
        }
        let crypto = crate::crypto::gateway::Crypto::from_config(&config)
            .map_err(|why| GatewayError::Config(crate::ConfigError::Invalid(why)))?;
        ctx.crypto.clone_from(&crypto);
        let workers_ctx = Arc::new(ctx);
        let max_chunk = backends.all().map(|b| b.chunk).max().unwrap_or(0);
        let read_cache = crate::read_cache::ReadCache::new(
            config.server.read_cache_bytes,
            config.server.read_cache_object_max_bytes,
        )
        .map(Arc::new);
        let s3 = GatewayS3::new(
            ledger.clone(),
            backends,
            config.buckets.iter().map(|b| b.name.clone()).collect(),
            config.allow_create_bucket,
            config.region.clone(),
            metrics.clone(),
            crate::s3::intent_heartbeat(config.workers.reaper.min_age.0),
        )
        .with_crypto(crypto.clone())
        .with_read_cache(read_cache.clone())
        .with_owner(
            config.owner.id.clone(),
            config
                .owner
                .display_name
                .clone()
                .unwrap_or_else(|| config.owner.id.clone()),
        );
        let admin_s3 = s3.clone();
        let anonymous_access = crate::s3::Anonymous::new(s3.clone());
        let mut builder = S3ServiceBuilder::new(s3);
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
            crate::s3::post::s3s_config(),
        ))));
        let keys = (!config.credentials.is_empty()).then(|| Keys::new(&config.credentials));
        if let Some(k) = &keys {
            builder.set_auth(k.clone());
            // Unsigned requests: answered where a bucket's canned ACL grants everyone.
            builder.set_access(anonymous_access);
        }
        builder.set_route(
            crate::admin::AdminRoute::new(
                keys.clone(),
                store.clone(),
                ledger.clone(),
                workers_ctx.clone(),
                admin_s3,
                crypto,
                unconfigured.clone(),
            )
            .with_console(&config.console),
        );
        let tls = match &config.server.tls {
            None => None,
            Some(c) => Some(TlsState::new(
                crate::tls::load(c).map_err(|why| GatewayError::Tls { why })?,
            )),
        };
        // Virtual-host addressing for `<bucket>.localhost:PORT`; IP hosts stay path-style.
        let port = addr.port();
        if let Ok(host) = MultiDomain::new([format!("localhost:{port}"), "localhost".to_owned()]) {
            builder.set_host(host);
        }
        let sc = &config.server;
        let shared = Arc::new(Shared {
            s3: builder.build(),
            settings: Settings {
                header_timeout: Duration::from_secs(sc.header_read_timeout_secs),
                body_idle_timeout: Duration::from_secs(sc.body_idle_timeout_secs),
                shutdown_grace: Duration::from_secs(sc.shutdown_grace_secs),
                separate_operator: operator_listener.is_some(),
                max_connections: sc.max_connections,
                anonymous: config.anonymous,
            },
            operator_token: std::sync::RwLock::new(sc.metrics_token.clone()),
            keys,
            tls,
            admission: Admission::new(sc, max_chunk),
            connections: Arc::new(Semaphore::new(sc.max_connections)),
            health_cache: Mutex::new(None),
            ledger,
            metrics,
            unconfigured,
            workers: workers_ctx.clone(),
            read_cache,
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(serve(
            listener,
            shared.clone(),
            Role::S3,
            stopped.clone(),
        ))];
        let operator_addr = operator_listener.as_ref().map(|(_, a)| *a);
        if let Some((l, _)) = operator_listener {
            tasks.push(tokio::spawn(serve(
                l,
                shared.clone(),
                Role::Operator,
                stopped,
            )));
        }
        let workers = Workers::start(&workers_ctx);
        Ok(RunningGateway {
            addr,
            shared,
            config: Mutex::new(config),
            operator_addr,
            store,
            stop: Some(stop),
            tasks,
            workers_ctx,
            workers: Some(workers),
        })
    }
}

impl RunningGateway {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the `metrics_listen` listener, when one is configured.
    pub fn operator_addr(&self) -> Option<SocketAddr> {
        self.operator_addr
    }

    /// `http://IP:PORT` of the bound address (`https://` when `[server.tls]` is set).
    pub fn endpoint(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Applies what can change while serving from `new` (a re-read configuration file):
    /// SigV4 credentials, the operator token, the TLS certificate (re-read from its files
    /// even when the paths are unchanged) and backend quotas. Everything else that differs
    /// is listed as needing a restart and left as it runs. An invalid configuration, an
    /// unreadable certificate or a failed quota update changes nothing.
    pub async fn reload(&self, new: &Config) -> Result<ReloadReport, GatewayError> {
        new.validate()?;
        let old = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut report = ReloadReport::default();
        let mut applied = old.clone();
        // Fallible steps first, so a failure leaves everything as it was.
        let tls = match (&self.shared.tls, &new.server.tls) {
            (Some(_), Some(c)) => {
                Some(crate::tls::load(c).map_err(|why| GatewayError::Tls { why })?)
            }
            (None, None) => None,
            _ => {
                report.needs_restart.push("server.tls (on/off)".into());
                None
            }
        };
        if new.backends != old.backends {
            let shape = |b: &[BackendConfig]| -> Vec<BackendConfig> {
                b.iter()
                    .map(|b| BackendConfig {
                        quota_bytes: 0,
                        ..b.clone()
                    })
                    .collect()
            };
            if shape(&new.backends) == shape(&old.backends) {
                let limits: Vec<(String, i64)> = new
                    .backends
                    .iter()
                    .map(|b| {
                        (
                            b.name.clone(),
                            i64::try_from(b.quota_bytes).unwrap_or(i64::MAX),
                        )
                    })
                    .collect();
                self.store
                    .sync_quota_limits(&limits)
                    .await
                    .map_err(|source| GatewayError::Store {
                        url: crate::redact::url(&old.store),
                        source,
                    })?;
                applied.backends = new.backends.clone();
                report.applied.push("backends.quota_bytes".into());
            } else {
                report.needs_restart.push("backends".into());
            }
        }
        if let (Some(state), Some(fresh), Some(c)) = (&self.shared.tls, tls, &new.server.tls) {
            state.replace(fresh);
            applied.server.tls = Some(c.clone());
            report
                .applied
                .push("server.tls (certificate re-read)".into());
        }
        if new.credentials != old.credentials || new.anonymous != old.anonymous {
            match (&self.shared.keys, new.credentials.is_empty()) {
                (Some(keys), false) => {
                    keys.replace(&new.credentials);
                    applied.credentials = new.credentials.clone();
                    report.applied.push("credentials".into());
                }
                _ => report
                    .needs_restart
                    .push("credentials (anonymous mode on/off)".into()),
            }
        }
        if new.server.metrics_token != old.server.metrics_token {
            *self
                .shared
                .operator_token
                .write()
                .unwrap_or_else(|e| e.into_inner()) = new.server.metrics_token.clone();
            applied.server.metrics_token = new.server.metrics_token.clone();
            report.applied.push("server.metrics_token".into());
        }
        let rest_server = |c: &Config| crate::config::ServerConfig {
            metrics_token: None,
            tls: None,
            ..c.server.clone()
        };
        let others = [
            ("listen", new.listen != old.listen),
            ("store", new.store != old.store),
            ("region", new.region != old.region),
            ("routing", new.routing != old.routing),
            ("buckets", new.buckets != old.buckets),
            ("workers", new.workers != old.workers),
            (
                "server (limits, timeouts, metrics_listen)",
                rest_server(new) != rest_server(&old),
            ),
            ("log.format", new.log.format != old.log.format),
            ("encryption", new.encryption != old.encryption),
        ];
        for (name, changed) in others {
            if changed {
                report.needs_restart.push(name.into());
            }
        }
        // The level is applied by the process that owns the log subscriber.
        applied.log.level = new.log.level.clone();
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = applied;
        Ok(report)
    }

    /// The ledger handle the gateway uses.
    pub fn store(&self) -> &LedgerHandle {
        &self.store
    }

    /// One pass of every background worker, in [`Worker::ALL`] order, each under its leader
    /// lock, whether or not the workers run in the background: deterministic repair for
    /// tests and operators.
    pub async fn run_workers_once(&self) -> WorkersReport {
        crate::workers::run_all_once(&self.workers_ctx).await
    }

    /// One pass of one worker, under its leader lock.
    pub async fn run_worker_once(&self, worker: Worker) -> PassResult {
        crate::workers::run_pass(&self.workers_ctx, worker).await
    }

    /// Stops accepting, lets in-flight requests finish (at most `shutdown_grace_secs`, then
    /// their connections are closed), stops the workers (each finishes the step in
    /// progress), then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        if let Some(w) = self.workers.take() {
            w.shutdown(&self.workers_ctx).await;
        }
        // The last counts of this process. Flushes are additive, so one made while another
        // gateway holds the flush lock is safe too.
        let ctx = &self.workers_ctx;
        if !matches!(
            crate::workers::run_pass(ctx, Worker::UsageFlush).await,
            PassResult::Ran(_)
        ) && let Err(e) = ctx.backends.usage().flush(&ctx.store).await
        {
            tracing::warn!(error = %e, "could not flush the backend usage counters at shutdown");
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        // Dropped without shutdown (a test that panicked): stop accepting anyway.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(w) = &self.workers {
            w.signal_stop(&self.workers_ctx);
        }
    }
}

/// Which endpoints a listener serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The S3 listener (plus `/health` and `/metrics` on path-style requests when no
    /// separate operator listener is configured).
    S3,
    /// The `metrics_listen` listener: `/health` and `/metrics` only.
    Operator,
}

/// Accepts until `stop` flips, then drains: in-flight requests get `grace` to finish, idle
/// connections are closed at once, and whatever is left after `grace` is aborted.
async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    role: Role,
    mut stop: watch::Receiver<bool>,
) {
    let header_timeout = shared.settings.header_timeout;
    let timer = TokioTimer::new();
    let mut http = ConnBuilder::new(TokioExecutor::new());
    // The header timer also runs while a keep-alive connection waits for its next request,
    // so it doubles as the idle limit.
    http.http1()
        .timer(timer.clone())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    http.http2()
        .timer(timer)
        .keep_alive_interval(header_timeout)
        .keep_alive_timeout(header_timeout)
        .max_concurrent_streams(128);
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    let mut backoff = Duration::ZERO;
    loop {
        // The connection cap: past it we stop accepting, and new connections wait in the
        // kernel's queue instead of costing a descriptor and a task each.
        let permit = tokio::select! {
            p = shared.connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let (sock, peer) = match accepted {
            Ok((sock, peer)) => {
                backoff = Duration::ZERO;
                (sock, peer)
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOMEM: the listener stays readable, so an immediate retry
                // would spin a core; wait, doubling up to a second. Logged once per run.
                if backoff.is_zero() {
                    tracing::warn!(error = %e, "accept failed; backing off until it succeeds");
                }
                shared.metrics.event("accept_error");
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                drop(permit);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => continue,
                    _ = stop.changed() => break,
                }
            }
        };
        // Small answers (a HEAD, a 4 KiB GET) must not wait for the client's delayed ACK.
        let _ = sock.set_nodelay(true);
        let shared2 = shared.clone();
        // Who is calling, for the console's sign-in throttle and cookie.
        let peer = crate::admin::session::Peer {
            ip: peer.ip(),
            tls: role == Role::S3 && shared.tls.is_some(),
        };
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(peer);
            let shared = shared2.clone();
            async move { Ok::<_, Infallible>(handle(&shared, role, req).await) }
        });
        let http = http.clone();
        let watcher = graceful.watcher();
        let tls = shared.tls.as_ref().map(TlsState::current);
        tasks.spawn(async move {
            let _permit = permit;
            // hyper-util reads the first bytes to tell HTTP/1 from HTTP/2 without any timer;
            // a client that connects and sends nothing would be held here forever.
            // `peek` waits for a byte (or EOF) without consuming it; `readable()` may report
            // readiness spuriously and would let a silent client through.
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_timeout, sock.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let tls = match (role, &tls) {
                (Role::S3, Some(t)) => Some(t.clone()),
                _ => None,
            };
            match tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(sock), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                Some(config) => {
                    // The handshake gets the header timeout too: a client that stops halfway
                    // through it holds nothing for longer.
                    let accept = tokio_rustls::TlsAcceptor::from(config).accept(sock);
                    let Ok(Ok(stream)) = tokio::time::timeout(header_timeout, accept).await else {
                        return;
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    let grace = shared.settings.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        graceful.shutdown().await;
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = tasks.len(),
            grace_secs = grace.as_secs(),
            "shutdown grace elapsed; closing the remaining connections"
        );
        tasks.shutdown().await;
    }
}

/// A request id in S3's shape (16 upper-case hex digits), unique enough to find a request's
/// log lines.
fn request_id() -> String {
    format!("{:016X}", fastrand::u64(..))
}

async fn handle(shared: &Shared, role: Role, req: Request<Incoming>) -> Response<TicketBody> {
    let id = request_id();
    let span = tracing::info_span!("request", id = %id);
    async {
        let method = req.method().clone();
        let started = Instant::now();
        let mut resp = route(shared, role, req, &id).await;
        let status = resp.status().as_u16();
        if let Ok(v) = hyper::header::HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-amz-request-id", v);
        }
        shared.metrics.record("http", status, started.elapsed());
        // Paths name user objects: only at debug.
        tracing::debug!(%method, status, elapsed_ms = started.elapsed().as_millis() as u64, "request done");
        if status >= 500 {
            tracing::warn!(%method, status, "request failed");
        }
        resp
    }
    .instrument(span)
    .await
}

fn plain(r: Response<s3s::Body>) -> Response<TicketBody> {
    r.map(|b| TicketBody::new(b, Ticket::default()))
}

async fn route(
    shared: &Shared,
    role: Role,
    mut req: Request<Incoming>,
    id: &str,
) -> Response<TicketBody> {
    let operator_path =
        req.method() == hyper::Method::GET && matches!(req.uri().path(), "/health" | "/metrics");
    // The console's files and the admin API (`crate::admin`): on both listeners, and only
    // path-style on the S3 one (in virtual-host style `/admin/…` is a key of the host's bucket).
    let mut admin_call = false;
    if role == Role::Operator || is_path_style(&req) {
        let path = req.uri().path();
        if crate::admin::console::is_console_path(path)
            && matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD)
        {
            return plain(crate::admin::console::serve(path));
        }
        if crate::admin::is_api_path(path) {
            req.extensions_mut().insert(crate::admin::AdminPath);
            admin_call = true;
        }
    }
    match role {
        Role::Operator => {
            if operator_path {
                return plain(operator(shared, &req, id).await);
            }
            if !admin_call {
                return plain(error_response(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "this listener serves /health, /metrics, /admin/ and /admin/api/ only",
                    id,
                ));
            }
        }
        Role::S3 => {
            // Only path-style requests reach the operator endpoints: in virtual-host style
            // `/health` is the key `health` of the host's bucket.
            if operator_path && !shared.settings.separate_operator && is_path_style(&req) {
                return plain(operator(shared, &req, id).await);
            }
        }
    }
    // Browsers send CORS preflights unsigned; s3s would not route them. The admin API never
    // answers CORS (a bucket named `admin` must not open it to other origins).
    if !admin_call && let Some(r) = crate::s3::preflight(&shared.ledger, &req, id).await {
        return plain(r);
    }
    let cors = (!admin_call).then(|| crate::s3::cors_ask(&req)).flatten();
    if let Some(refusal) = edge_checks(shared, &mut req, id) {
        if admin_call {
            return plain(crate::admin::json_refusal(refusal).await);
        }
        return plain(refusal);
    }
    let ticket = match shared.admission.admit(&req).await {
        Ok(t) => t,
        Err(why) => {
            shared.metrics.event(match why {
                Refusal::Busy => "slow_down_busy",
                Refusal::Memory => "slow_down_memory",
            });
            return plain(shared.admission.slow_down(id, why));
        }
    };
    let idle = shared.settings.body_idle_timeout;
    let close = crate::s3::framing::expects_continue_without_body(&req);
    let req = req.map(|b| s3s::Body::http_body(IdleTimeoutBody::new(b, idle)));
    let req = match crate::s3::framing::frame_chunked_put(req, id).await {
        Ok(r) => r,
        Err(refused) => return refused.map(|b| TicketBody::new(b, ticket)),
    };
    let (req, form) = if crate::s3::post::is_form_upload(&req) {
        let (req, head) = crate::s3::post::record_head(req);
        (req, Some(head))
    } else {
        (req, None)
    };
    let attributes_call = crate::s3::edge::is_get_object_attributes(&req);
    let resp = match shared.s3.call(req).await {
        Ok(r) => match &form {
            Some(head) => {
                crate::s3::edge::with_request_id(crate::s3::post::policy_answer(r, head, id), id)
            }
            None if attributes_call => crate::s3::edge::unquoted_attributes_etag(r),
            None => crate::s3::edge::with_request_id(r, id),
        },
        Err(e) => {
            tracing::error!(error = ?e, "s3 service failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "internal error",
                id,
            )
        }
    };
    let mut resp = if admin_call {
        crate::admin::json_refusal(resp).await
    } else {
        resp
    };
    if let Some(ask) = &cors {
        crate::s3::cors_decorate(&shared.ledger, ask, &mut resp).await;
    }
    let mut resp = resp.map(|b| TicketBody::new(b, ticket));
    if close {
        crate::s3::framing::close_after(&mut resp);
    }
    resp
}

/// The longest presigned URL lifetime SigV4 allows: 7 days.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// What S3 decides before authentication, and s3s does not: a presigned URL's lifetime
/// cap, ignoring an invalid `Range` (S3 answers the whole object), refusing signatures in
/// anonymous mode (nothing could verify them).
fn edge_checks(
    shared: &Shared,
    req: &mut Request<Incoming>,
    id: &str,
) -> Option<Response<s3s::Body>> {
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    };
    if let Some(expires) = param("X-Amz-Expires") {
        // A lifetime that is negative (already over) or past the cap is a URL that does not
        // grant access: 403, as the suite expects of S3.
        let refused = match expires.parse::<i64>() {
            Ok(n) if n < 0 => Some("Request has expired"),
            Ok(n) if n.unsigned_abs() > MAX_PRESIGNED_EXPIRY_SECS => {
                Some("X-Amz-Expires must be less than a week (in seconds) that is 604800")
            }
            Ok(_) => None,
            Err(_) => {
                return Some(error_response(
                    StatusCode::BAD_REQUEST,
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires should be a number",
                    id,
                ));
            }
        };
        if let Some(why) = refused {
            return Some(error_response(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                why,
                id,
            ));
        }
    }
    if shared.settings.anonymous
        && (req.headers().contains_key(hyper::header::AUTHORIZATION)
            || param("X-Amz-Signature").is_some()
            || param("Signature").is_some())
    {
        return Some(error_response(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "this gateway is anonymous (no credentials configured): send unsigned requests",
            id,
        ));
    }
    let range_ok = req.headers().get(hyper::header::RANGE).map(|v| {
        v.to_str()
            .ok()
            .is_some_and(|s| s3s::dto::Range::parse(s).is_ok())
    });
    if range_ok == Some(false) {
        // S3 ignores a Range it cannot parse (inverted, multi-range, bad unit) and answers
        // 200 with the whole object; s3s would refuse the request with 400.
        req.headers_mut().remove(hyper::header::RANGE);
    }
    crate::s3::edge::checks(req, id)
}

/// True when the request addresses the gateway itself (an IP host, a configured base domain
/// or no host), false for `<bucket>.<domain>` and other names s3s takes as a bucket.
pub(crate) fn is_path_style<B>(req: &Request<B>) -> bool {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host());
    let Some(host) = host else { return true };
    let host = host.trim();
    if let Some(v6) = host.strip_prefix('[') {
        return v6
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<IpAddr>().is_ok());
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    name.parse::<IpAddr>().is_ok() || BASE_DOMAINS.iter().any(|d| d.eq_ignore_ascii_case(name))
}

/// The host names (any port) virtual-host addressing hangs buckets under.
const BASE_DOMAINS: [&str; 1] = ["localhost"];

/// `/health` or `/metrics`, behind the bearer token when one is configured.
async fn operator<B>(shared: &Shared, req: &Request<B>, id: &str) -> Response<s3s::Body> {
    let token = shared
        .operator_token
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(token) = &token {
        let sent = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(sent.as_bytes(), token.as_bytes()) {
            let mut r = error_response(
                StatusCode::UNAUTHORIZED,
                "AccessDenied",
                "a bearer token is required",
                id,
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    match req.uri().path() {
        "/health" => health(shared).await,
        _ => metrics(shared).await,
    }
}

/// Compares without stopping at the first differing byte, so timing does not reveal how
/// much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How long a `/health` answer is reused: a scraper hammering it costs one ledger query a
/// second at most.
const HEALTH_CACHE: Duration = Duration::from_secs(1);

async fn health(shared: &Shared) -> Response<s3s::Body> {
    // Reads still work by broadcast while the ledger is down; writes answer 503 until it is back.
    let cached = *shared
        .health_cache
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let ledger_up = match cached {
        Some((at, up)) if at.elapsed() < HEALTH_CACHE => up,
        _ => {
            let up = shared.ledger.cleanup_depths().await.is_ok();
            *shared
                .health_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), up));
            up
        }
    };
    let body = serde_json::json!({
        "status": if ledger_up { "ok" } else { "degraded" },
        "ledger": if ledger_up { "ok" } else { "unavailable" },
        "unconfigured_backends": shared.unconfigured,
    })
    .to_string();
    let mut r = Response::new(s3s::Body::from(body));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}
async fn metrics(shared: &Shared) -> Response<s3s::Body> {
    let mut out = String::new();
    shared.metrics.render(&mut out);
    shared.admission.render(&mut out);
    if let Some(c) = &shared.read_cache {
        c.render(&mut out);
    }
    let open = shared.settings.max_connections - shared.connections.available_permits();
    out.push_str("# HELP s3o_gateway_connections_open Client connections open (both listeners).\n");
    out.push_str("# TYPE s3o_gateway_connections_open gauge\n");
    out.push_str(&format!("s3o_gateway_connections_open {open}\n"));
    shared.workers.metrics.render(&mut out);
    shared.workers.backends.usage().render(&mut out);
    crate::s3::render_store_metrics(&shared.ledger, &mut out).await;
    crate::store_metrics::render(&mut out);
    let mut r = Response::new(s3s::Body::from(out));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
