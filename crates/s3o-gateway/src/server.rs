//! Start-up, the accept loop, `/health` and `/metrics`, graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::auth::SimpleAuth;
use s3s::host::MultiDomain;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backends::Backends;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::s3::GatewayS3;
use crate::workers::{Ctx, PassResult, Worker, Workers, WorkersReport};
use crate::{Config, GatewayError, LedgerHandle};

/// The gateway's entry point.
#[derive(Debug)]
pub struct Gateway;

/// A gateway serving in the background until [`RunningGateway::shutdown`].
pub struct RunningGateway {
    addr: SocketAddr,
    store: LedgerHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
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

/// What every connection shares.
struct Shared {
    s3: S3Service,
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
    /// Backends the ledger knows that the configuration does not list (reported by /health).
    unconfigured: Vec<String>,
    workers: Arc<Ctx>,
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
        let store_err = |source| GatewayError::Store {
            url: config.store.clone(),
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
        let backends = Arc::new(Backends::build(&config.backends)?);
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
        crate::store_metrics::install();
        let metrics = Arc::new(Metrics::default());
        let workers_ctx = Arc::new(Ctx::new(
            store.clone(),
            ledger.clone(),
            backends.clone(),
            &config,
        ));
        let s3 = GatewayS3::new(
            ledger.clone(),
            backends,
            config.buckets.iter().map(|b| b.name.clone()).collect(),
            config.region.clone(),
            metrics.clone(),
        );
        let mut builder = S3ServiceBuilder::new(s3);
        if !config.credentials.is_empty() {
            let mut auth = SimpleAuth::new();
            for c in &config.credentials {
                auth.register(c.access_key.clone(), c.secret_key.clone().into());
            }
            builder.set_auth(auth);
        }
        // Virtual-host addressing for `<bucket>.localhost:PORT`; IP hosts stay path-style.
        let port = addr.port();
        if let Ok(host) = MultiDomain::new([format!("localhost:{port}"), "localhost".to_owned()]) {
            builder.set_host(host);
        }
        let shared = Arc::new(Shared {
            s3: builder.build(),
            ledger,
            metrics,
            unconfigured,
            workers: workers_ctx.clone(),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, shared, stopped));
        let workers = Workers::start(&workers_ctx);
        Ok(RunningGateway {
            addr,
            store,
            stop: Some(stop),
            task: Some(task),
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

    /// `http://IP:PORT` of the bound address.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
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

    /// Stops accepting, lets in-flight requests finish (at most 30 s), stops the workers
    /// (each finishes the step in progress), then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(w) = self.workers.take() {
            w.shutdown(&self.workers_ctx).await;
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        // Dropped without shutdown (a test that panicked): stop accepting anyway.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(w) = &self.workers {
            w.signal_stop(&self.workers_ctx);
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                let shared = shared.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                });
                let conn = http.serve_connection(TokioIo::new(sock), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<s3s::Body> {
    if req.method() == hyper::Method::GET {
        match req.uri().path() {
            "/health" => return health(shared).await,
            "/metrics" => return metrics(shared).await,
            _ => {}
        }
    }
    let started = Instant::now();
    let resp = match shared.s3.call(req.map(s3s::Body::from)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = ?e, "s3 service failed");
            let mut r = Response::new(s3s::Body::from("internal error".to_owned()));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    };
    shared
        .metrics
        .record("http", resp.status().as_u16(), started.elapsed());
    resp
}

async fn health(shared: &Shared) -> Response<s3s::Body> {
    // Reads still work by broadcast while the ledger is down; writes answer 503 until it is back.
    let ledger_up = shared.ledger.cleanup_depths().await.is_ok();
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
    shared.workers.metrics.render(&mut out);
    crate::s3::render_store_metrics(&shared.ledger, &mut out).await;
    crate::store_metrics::render(&mut out);
    let mut r = Response::new(s3s::Body::from(out));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
