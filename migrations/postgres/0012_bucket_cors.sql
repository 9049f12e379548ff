-- A bucket's CORS configuration (PutBucketCors), NULL when unset: the JSON text of
-- s3o_core::cors::CorsConfig ({"rules": [...]}, checked by s3o_core::cors::check before it is
-- written). It lives on the bucket row, so deleting the bucket removes it.
ALTER TABLE buckets ADD COLUMN cors TEXT;
