//! The S3 operations: s3s's `S3` trait implemented on the ledger and the backends.

use std::collections::BTreeSet;
use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use crate::backends::Backends;
use crate::ledger::Ledger;
use crate::metrics::Metrics;

/// The gateway's S3 implementation.
pub(crate) struct GatewayS3 {
    ledger: Arc<Ledger>,
    backends: Arc<Backends>,
    buckets: BTreeSet<String>,
    region: String,
    metrics: Arc<Metrics>,
}

impl GatewayS3 {
    pub(crate) fn new(
        ledger: Arc<Ledger>,
        backends: Arc<Backends>,
        buckets: BTreeSet<String>,
        region: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        GatewayS3 {
            ledger,
            backends,
            buckets,
            region,
            metrics,
        }
    }

    fn bucket(&self, name: &str) -> S3Result<()> {
        if self.buckets.contains(name) {
            Ok(())
        } else {
            Err(s3_error!(NoSuchBucket, "bucket {name} is not configured"))
        }
    }
}

/// Appends the ledger's series (quota counters, cleanup depths) to a metrics page.
pub(crate) async fn render_store_metrics(ledger: &Ledger, out: &mut String) {
    use std::fmt::Write as _;
    if let Ok(stats) = ledger.quota_stats().await {
        out.push_str("# TYPE s3o_quota_bytes_used gauge\n");
        for (n, s) in &stats {
            let _ = writeln!(
                out,
                "s3o_quota_bytes_used{{backend=\"{n}\"}} {}",
                s.bytes_used
            );
        }
        out.push_str("# TYPE s3o_quota_bytes_limit gauge\n");
        for (n, s) in &stats {
            let _ = writeln!(
                out,
                "s3o_quota_bytes_limit{{backend=\"{n}\"}} {}",
                s.bytes_limit
            );
        }
        out.push_str("# TYPE s3o_quota_orphan_bytes gauge\n");
        for (n, s) in &stats {
            let _ = writeln!(
                out,
                "s3o_quota_orphan_bytes{{backend=\"{n}\"}} {}",
                s.orphan_bytes
            );
        }
    }
    let up = match ledger.cleanup_depths().await {
        Ok((q, d)) => {
            let _ = writeln!(
                out,
                "# TYPE s3o_cleanup_queue_depth gauge\ns3o_cleanup_queue_depth {q}"
            );
            let _ = writeln!(
                out,
                "# TYPE s3o_cleanup_dlq_depth gauge\ns3o_cleanup_dlq_depth {d}"
            );
            1
        }
        Err(_) => 0,
    };
    let _ = writeln!(out, "# TYPE s3o_ledger_up gauge\ns3o_ledger_up {up}");
}

#[async_trait::async_trait]
impl S3 for GatewayS3 {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .buckets
            .iter()
            .map(|b| Bucket {
                name: Some(b.clone()),
                bucket_region: Some(self.region.clone()),
                ..Bucket::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..ListBucketsOutput::default()
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..HeadBucketOutput::default()
        }))
    }
}
