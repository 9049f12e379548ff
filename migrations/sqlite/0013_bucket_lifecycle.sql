-- A bucket's lifecycle rules (S3 PutBucketLifecycleConfiguration), as a JSON array of rule
-- objects (see s3o_core::LifecycleRule): '[]' = none. Seeded with the bucket from the
-- configuration, then managed over the S3 API; a configuration sync never touches it.
ALTER TABLE buckets ADD COLUMN lifecycle TEXT NOT NULL DEFAULT '[]';
