//! Bucket operations: ListBuckets, HeadBucket, GetBucketLocation, CreateBucket,
//! DeleteBucket.

use super::*;

impl GatewayS3 {
    pub(super) async fn do_list_buckets(
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

    pub(super) async fn do_head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..HeadBucketOutput::default()
        }))
    }

    pub(super) async fn do_get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket(&req.input.bucket)?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    pub(super) async fn do_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let b = &req.input.bucket;
        if self.buckets.contains(b) {
            // Buckets are virtual and come from the configuration: creating a configured
            // one succeeds (as S3 answers its owner in us-east-1).
            Ok(S3Response::new(CreateBucketOutput::default()))
        } else {
            Err(s3_error!(
                AccessDenied,
                "bucket {b} is not in the gateway configuration; buckets are added there"
            ))
        }
    }

    pub(super) async fn do_delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let b = &req.input.bucket;
        match self.do_list(b, "", "", "", Some(1)).await {
            Err(e) => Err(e),
            Ok(l) if !l.objects.is_empty() => {
                Err(s3_error!(BucketNotEmpty, "bucket {b} holds objects"))
            }
            // The virtual bucket stays configured; deleting an empty one is a no-op.
            Ok(_) => Ok(S3Response::new(DeleteBucketOutput::default())),
        }
    }
}
