//! The backends: object_store clients built from the configuration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::GatewayError;
use crate::config::{BackendConfig, BackendKind};

/// One pooled backend.
pub(crate) struct Backend {
    /// Name recorded in the ledger.
    pub(crate) name: String,
    /// The client.
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Chunk size of streamed uploads: S3 parts must be ≥ 5 MiB (all equal, for R2); a local
    /// directory takes any size, so it streams with less memory per request.
    pub(crate) chunk: usize,
    /// The backend's multipart uploads by id (S3), so a streamed write's upload can be recorded
    /// with its intent and aborted after a crash; `None` for a local directory.
    pub(crate) multipart: Option<Arc<dyn object_store::multipart::MultipartStore>>,
    /// What the reconciler needs beyond object_store to find writes a crash left open: the
    /// directory of a local backend (staging files), the signing details of an S3 one
    /// (ListMultipartUploads).
    pub(crate) raw: RawAccess,
    /// The backend's usage meter, for the calls made through [`RawAccess`] and
    /// [`Backend::single_put`] (the clients above count their own).
    pub(crate) meter: Arc<crate::usage::Meter>,
    /// Streamed single PUTs of bodies of known length (an S3 backend); `None` for a local
    /// directory, which streams to a file anyway.
    pub(crate) single_put: Option<crate::single_put::SinglePut>,
}

/// Direct access to a backend, for the calls object_store does not make.
pub(crate) enum RawAccess {
    /// A local directory and its client (which maps object paths to files).
    Local {
        root: std::path::PathBuf,
        fs: Arc<LocalFileSystem>,
    },
    /// An S3 endpoint and bucket, with the credentials to sign requests.
    S3(Box<S3Access>),
}

/// What signing a request to an S3 backend takes.
pub(crate) struct S3Access {
    pub(crate) endpoint: String,
    pub(crate) bucket: String,
    pub(crate) region: String,
    pub(crate) credential: object_store::aws::AwsCredential,
    pub(crate) options: ClientOptions,
}

/// Every configured backend, by name and in routing order.
pub(crate) struct Backends {
    order: Vec<String>,
    by_name: BTreeMap<String, Arc<Backend>>,
    /// Every call to a backend is counted here (the clients are wrapped in
    /// [`crate::usage::Metered`]), against its monthly budget.
    usage: Arc<crate::usage::Usage>,
}

impl Backends {
    /// Builds every backend (creating local directories). No network call is made.
    pub(crate) fn build(configs: &[BackendConfig]) -> Result<Backends, GatewayError> {
        let mut by_name = BTreeMap::new();
        let mut order = Vec::new();
        let usage = Arc::new(crate::usage::Usage::new(configs));
        for c in configs {
            let meter = usage
                .meter(&c.name)
                .cloned()
                .ok_or_else(|| GatewayError::Backend {
                    name: c.name.clone(),
                    why: "no usage meter".into(),
                })?;
            let b = build_one(c, meter).map_err(|why| GatewayError::Backend {
                name: c.name.clone(),
                why,
            })?;
            order.push(c.name.clone());
            by_name.insert(c.name.clone(), Arc::new(b));
        }
        Ok(Backends {
            order,
            by_name,
            usage,
        })
    }

    /// The usage meters of every backend.
    pub(crate) fn usage(&self) -> &crate::usage::Usage {
        &self.usage
    }

    /// True when `name` has reached a monthly usage limit: it takes no more work that would
    /// spend its budget (deletes and aborts still run).
    pub(crate) fn over_budget(&self, name: &str) -> bool {
        self.usage.over_budget(name)
    }

    /// Backend names in routing order without those over a monthly usage limit: the
    /// candidates of a new write.
    pub(crate) fn writable(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|n| {
                let over = self.over_budget(n);
                if over {
                    self.usage.rejected(n);
                }
                !over
            })
            .cloned()
            .collect()
    }

    /// Backend names in routing order.
    pub(crate) fn order(&self) -> &[String] {
        &self.order
    }

    /// The named backend; `None` for a name the configuration no longer has.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Backend>> {
        self.by_name.get(name)
    }

    /// Every backend in routing order.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.order.iter().filter_map(|n| self.by_name.get(n))
    }
}

const MIB: usize = 1024 * 1024;

/// How long connecting to an S3 backend may take.
pub(crate) const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an S3 backend may keep a request waiting for its next byte (headers included):
/// long enough for a 5 MiB part at a slow link's pace, short enough that a hung backend holds
/// no request or worker for long.
pub(crate) const BACKEND_READ_TIMEOUT: Duration = Duration::from_secs(60);

fn build_one(c: &BackendConfig, meter: Arc<crate::usage::Meter>) -> Result<Backend, String> {
    use crate::usage::Metered;
    match c.kind {
        BackendKind::Local => {
            let path = c.path.as_ref().ok_or("local backend needs `path`")?;
            std::fs::create_dir_all(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let fs = Arc::new(
                LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| e.to_string())?
                    .with_automatic_cleanup(true),
            );
            Ok(Backend {
                name: c.name.clone(),
                store: Arc::new(Metered::new(meter.clone(), fs.clone())),
                chunk: MIB,
                multipart: None,
                raw: RawAccess::Local {
                    root: path.clone(),
                    fs,
                },
                meter,
                single_put: None,
            })
        }
        BackendKind::S3 => {
            let get = |v: &Option<String>, f: &str| {
                v.clone().ok_or_else(|| format!("s3 backend needs `{f}`"))
            };
            // No overall request timeout: it would cut long streamed bodies. Connect and
            // per-read timeouts catch a dead or hung backend instead (a read that waits longer
            // than BACKEND_READ_TIMEOUT for its next byte fails and is retried), and few
            // retries keep a read's failover to another copy quick.
            let options = ClientOptions::new()
                .with_timeout_disabled()
                .with_connect_timeout(BACKEND_CONNECT_TIMEOUT)
                .with_read_timeout(BACKEND_READ_TIMEOUT)
                .with_allow_http(true);
            let retry = RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
            };
            let region = c.region.clone().unwrap_or_else(|| "us-east-1".to_owned());
            let raw = RawAccess::S3(Box::new(S3Access {
                endpoint: get(&c.endpoint, "endpoint")?,
                bucket: get(&c.bucket, "bucket")?,
                region: region.clone(),
                credential: object_store::aws::AwsCredential {
                    key_id: get(&c.access_key, "access_key")?,
                    secret_key: get(&c.secret_key, "secret_key")?,
                    token: None,
                },
                options: options.clone(),
            }));
            let single_put =
                crate::single_put::SinglePut::new(&crate::single_put::SinglePutConfig {
                    endpoint: &get(&c.endpoint, "endpoint")?,
                    bucket: &get(&c.bucket, "bucket")?,
                    region: &region,
                    key_id: &get(&c.access_key, "access_key")?,
                    secret: &get(&c.secret_key, "secret_key")?,
                    signed: c.signs_payload(),
                    max: c.single_put_max(),
                    connect_timeout: BACKEND_CONNECT_TIMEOUT,
                    read_timeout: BACKEND_READ_TIMEOUT,
                })?;
            let s3 = AmazonS3Builder::new()
                .with_endpoint(get(&c.endpoint, "endpoint")?)
                .with_bucket_name(get(&c.bucket, "bucket")?)
                .with_region(region)
                .with_access_key_id(get(&c.access_key, "access_key")?)
                .with_secret_access_key(get(&c.secret_key, "secret_key")?)
                .with_virtual_hosted_style_request(false)
                .with_unsigned_payload(!c.signs_payload())
                .with_client_options(options)
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?;
            let s3 = Arc::new(Metered::new(meter.clone(), Arc::new(s3)));
            Ok(Backend {
                name: c.name.clone(),
                store: s3.clone(),
                chunk: 5 * MIB,
                multipart: Some(s3),
                raw,
                meter,
                single_put: Some(single_put),
            })
        }
    }
}
