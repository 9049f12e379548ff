//! The demo: a gateway on 127.0.0.1 with an embedded SQLite ledger and two local-directory
//! backends with small quotas, everything under one data folder.

use std::path::{Path, PathBuf};

use crate::config::{BackendConfig, BucketConfig, Config, Credential, RoutingPolicy};

/// Access key the demo accepts.
pub const DEMO_ACCESS_KEY: &str = "s3o-demo";
/// Secret key the demo accepts.
pub const DEMO_SECRET_KEY: &str = "s3o-demo-secret";
/// The demo's bucket.
pub const DEMO_BUCKET: &str = "demo";
/// Quota of each demo backend: small, so filling the first one and spilling to the second
/// (then 507 when both are full) is easy to see.
pub const DEMO_QUOTA_BYTES: u64 = 16 * 1024 * 1024;

/// The demo's configuration and what to tell its user.
#[derive(Clone, Debug)]
pub struct DemoSetup {
    /// The configuration to start.
    pub config: Config,
    /// The absolute data folder.
    pub data_dir: PathBuf,
}

/// Builds the demo configuration under `data` (created when missing), listening on
/// 127.0.0.1:`port` (0 = any free port).
pub fn demo_config(data: &Path, port: u16) -> std::io::Result<DemoSetup> {
    std::fs::create_dir_all(data)?;
    let data_dir = data.canonicalize()?;
    let ledger = data_dir.join("ledger.db");
    let config = Config {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        store: format!("sqlite://{}", ledger.display()),
        region: "us-east-1".to_owned(),
        routing: RoutingPolicy::Pack,
        credentials: vec![Credential {
            access_key: DEMO_ACCESS_KEY.to_owned(),
            secret_key: DEMO_SECRET_KEY.to_owned(),
            admin: true,
        }],
        buckets: vec![BucketConfig::new(DEMO_BUCKET)],
        backends: vec![
            BackendConfig::local("disk-a", data_dir.join("disk-a"), DEMO_QUOTA_BYTES),
            BackendConfig::local("disk-b", data_dir.join("disk-b"), DEMO_QUOTA_BYTES),
        ],
        ..Config::default()
    };
    Ok(DemoSetup { config, data_dir })
}

impl DemoSetup {
    /// What the demo prints once serving at `endpoint`: credentials and commands to paste.
    pub fn banner(&self, endpoint: &str) -> String {
        format!(
            "s3o-gateway demo serving on {endpoint}
  data folder : {data}   (ledger.db, disk-a/, disk-b/; {q} MiB quota each)
  bucket      : {DEMO_BUCKET}
  access key  : {DEMO_ACCESS_KEY}
  secret key  : {DEMO_SECRET_KEY}
  region      : us-east-1
  metrics     : {endpoint}/metrics    health: {endpoint}/health
  console     : {endpoint}/admin/   (sign in with the keys above: they are the admin's)

Try it with the AWS CLI (pip install awscli):
  export AWS_ACCESS_KEY_ID={DEMO_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={DEMO_SECRET_KEY} AWS_DEFAULT_REGION=us-east-1
  aws --endpoint-url {endpoint} s3 cp ./README.md s3://{DEMO_BUCKET}/hello.md
  aws --endpoint-url {endpoint} s3 ls s3://{DEMO_BUCKET}/
  aws --endpoint-url {endpoint} s3 cp s3://{DEMO_BUCKET}/hello.md -

Press Ctrl-C to stop.",
            data = self.data_dir.display(),
            q = DEMO_QUOTA_BYTES / (1024 * 1024),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid_and_banner_names_everything() {
        let dir = tempfile::tempdir().unwrap();
        let setup = demo_config(dir.path(), 0).unwrap();
        setup.config.validate().unwrap();
        assert!(setup.config.store.starts_with("sqlite:///"));
        assert_eq!(setup.config.backends.len(), 2);
        let b = setup.banner("http://127.0.0.1:9000");
        for needle in [
            DEMO_ACCESS_KEY,
            DEMO_SECRET_KEY,
            DEMO_BUCKET,
            "aws --endpoint-url http://127.0.0.1:9000",
            "http://127.0.0.1:9000/admin/",
        ] {
            assert!(b.contains(needle), "{needle}");
        }
    }
}
