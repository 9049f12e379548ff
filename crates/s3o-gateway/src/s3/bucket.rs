//! Bucket operations: ListBuckets, HeadBucket, GetBucketLocation, CreateBucket,
//! DeleteBucket. Buckets are ledger state; the configuration's `[[buckets]]` are synced into
//! the ledger at start.

use std::sync::Mutex;
use std::time::Duration;

use s3o_store::{BucketSpec, limits};

use super::*;

/// How long a bucket read from the ledger is trusted without asking again. Another gateway
/// on the same ledger may delete it meanwhile; that only delays its 404, since every commit
/// checks the bucket in its own transaction.
const BUCKET_TTL: Duration = Duration::from_secs(5);

/// The buckets known to exist, so most requests skip a ledger read. Only positive answers are
/// kept (a bucket another gateway creates is seen at once); this process's own deletions
/// forget theirs immediately.
pub(super) struct BucketCache {
    /// The configuration's buckets: assumed to exist while the ledger cannot answer, so reads
    /// keep being served by broadcast during an outage.
    configured: BTreeSet<String>,
    /// Bucket → when the ledger last confirmed it, and the number of forgets so far: a
    /// confirmation read before a forget (a PUT that saw the bucket just before this process
    /// deleted it) must not put the entry back.
    seen: Mutex<(HashMap<String, Instant>, u64)>,
}

impl BucketCache {
    /// A cache whose outage fallback is `configured`.
    pub(super) fn new(configured: BTreeSet<String>) -> Self {
        BucketCache {
            configured,
            seen: Mutex::default(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Instant>, u64)> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, name: &str) -> bool {
        self.seen()
            .0
            .get(name)
            .is_some_and(|at| at.elapsed() < BUCKET_TTL)
    }

    /// The forget count to pass to [`BucketCache::confirm`], read before asking the ledger.
    fn epoch(&self) -> u64 {
        self.seen().1
    }

    /// Caches a confirmation read at `epoch`, unless a forget came since.
    fn confirm(&self, name: &str, epoch: u64) {
        let mut seen = self.seen();
        if seen.1 == epoch {
            seen.0.insert(name.to_owned(), Instant::now());
        }
    }

    fn forget(&self, name: &str) {
        let mut seen = self.seen();
        seen.0.remove(name);
        seen.1 += 1;
    }

    /// Whether `name` is believed to exist when the ledger cannot say.
    fn known(&self, name: &str) -> bool {
        self.configured.contains(name) || self.seen().0.contains_key(name)
    }
}

impl GatewayS3 {
    /// Checks that bucket `name` exists (the ledger's answer, cached for [`BUCKET_TTL`]).
    /// While the ledger is down, a configured or previously seen bucket is assumed to exist.
    pub(super) async fn bucket(&self, name: &str) -> S3Result<()> {
        if self.buckets.fresh(name) {
            return Ok(());
        }
        let epoch = self.buckets.epoch();
        match self.ledger.bucket(name).await {
            Ok(_) => {
                self.buckets.confirm(name, epoch);
                Ok(())
            }
            Err(StoreError::BucketNotFound { .. } | StoreError::InvalidInput { .. }) => {
                self.buckets.forget(name);
                Err(s3_error!(NoSuchBucket, "bucket {name} does not exist"))
            }
            Err(e) if is_outage(&e) && self.buckets.known(name) => Ok(()),
            Err(e) => Err(write_err(e)),
        }
    }

    /// The location constraint this gateway answers: empty for `us-east-1`, as S3 does.
    fn location(&self) -> Option<BucketLocationConstraint> {
        (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()))
    }

    /// ListBuckets: every bucket (there is one owner), by name, filtered by `prefix` and
    /// paged by `max-buckets` (1..=10000) with a continuation token (the last name given).
    pub(super) async fn do_list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let i = req.input;
        let max = match i.max_buckets {
            None => usize::MAX,
            Some(n @ 1..=10_000) => usize::try_from(n).unwrap_or(usize::MAX),
            Some(n) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-buckets must be between 1 and 10000 (got {n})"
                ));
            }
        };
        let after = match &i.continuation_token {
            Some(t) => Some(super::list::decode_token(t)?),
            None => None,
        };
        let prefix = i.prefix.clone().unwrap_or_default();
        let mut all: Vec<_> = self
            .ledger
            .buckets()
            .await
            .map_err(write_err)?
            .into_iter()
            .filter(|b| b.name.starts_with(&prefix))
            .filter(|b| after.as_ref().is_none_or(|a| b.name.as_str() > a.as_str()))
            .collect();
        let token = (all.len() > max).then(|| {
            all.truncate(max);
            super::list::encode_token(&all[max - 1].name)
        });
        let buckets = all
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(to_s3_time(b.created_at)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            continuation_token: token,
            owner: Some(self.s3_owner()),
            prefix: i.prefix,
        }))
    }

    pub(super) async fn do_head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..HeadBucketOutput::default()
        }))
    }

    pub(super) async fn do_get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: self.location(),
        }))
    }

    /// Aborts every open multipart upload of bucket `b` (rows released with their parts'
    /// charge, parts deleted).
    async fn abort_uploads_of(&self, b: &str) -> S3Result<()> {
        let ups = self
            .ledger
            .uploads(&keys::bucket_prefix(b), 10_000)
            .await
            .map_err(write_err)?;
        for listed in ups {
            // The listing does not carry the backend: the upload's own row does.
            let up = match self.ledger.upload(&listed.upload_id).await {
                Ok(up) => up,
                Err(StoreError::MultipartUploadNotFound { .. }) => continue,
                Err(e) => return Err(write_err(e)),
            };
            self.end_upload(&up, "aborted upload")
                .await
                .map_err(write_err)?;
        }
        Ok(())
    }

    /// Versioning has never been enabled on any bucket here: the answer of a bucket whose
    /// versioning is unset (no Status), which SDKs and tools such as rclone ask before purging.
    pub(super) async fn do_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let i = req.input;
        let b = &i.bucket;
        if !self.allow_create_bucket {
            return Err(s3_error!(
                AccessDenied,
                "creating buckets is disabled on this gateway (allow_create_bucket = false)"
            ));
        }
        if let Err(e) = limits::bucket_name(b) {
            return Err(s3_error!(InvalidBucketName, "{e}"));
        }
        let asked = i
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default();
        // S3 takes no constraint (or "us-east-1") for us-east-1, and the region's own name
        // elsewhere; this gateway serves one region.
        let ours = asked == self.region || (asked.is_empty() && self.region == "us-east-1");
        if !ours {
            return Err(s3_error!(
                InvalidLocationConstraint,
                "this gateway serves region {:?}; the location constraint {asked:?} is not it",
                self.region
            ));
        }
        let acl = super::acl::create_bucket_acl(i.acl.as_ref())?;
        let mut spec = BucketSpec::new(b.as_str());
        spec.settings.extra = super::acl::bucket_acl_extra(acl);
        let epoch = self.buckets.epoch();
        if self.ledger.create_bucket(&spec).await.map_err(write_err)? {
            self.buckets.confirm(b, epoch);
            Ok(S3Response::new(CreateBucketOutput {
                location: Some(format!("/{b}")),
            }))
        } else if self.region == "us-east-1" {
            // S3's us-east-1 answers a re-creation of one's own bucket 200 (its legacy
            // behaviour, which SDKs and the s3-tests suite expect there); nothing changes.
            self.buckets.confirm(b, epoch);
            Ok(S3Response::new(CreateBucketOutput {
                location: Some(format!("/{b}")),
            }))
        } else {
            Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "bucket {b} already exists and is yours"
            ))
        }
    }

    pub(super) async fn do_delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let b = &req.input.bucket;
        // Forgotten before and after: a check racing the deletion may re-confirm it.
        self.buckets.forget(b);
        self.bucket(b).await?;
        // S3 deletes a bucket whose multipart uploads were never completed, discarding them
        // (clients and test suites empty a bucket of objects only). The store still refuses
        // the deletion if an object, a write in flight or a new upload is there when it runs.
        self.abort_uploads_of(b).await?;
        let r = self.ledger.delete_bucket(b).await;
        self.buckets.forget(b);
        match r {
            Ok(()) => Ok(S3Response::new(DeleteBucketOutput::default())),
            Err(StoreError::InvalidInput { .. }) => {
                Err(s3_error!(NoSuchBucket, "bucket {b} does not exist"))
            }
            Err(e) => Err(write_err(e)),
        }
    }
}
