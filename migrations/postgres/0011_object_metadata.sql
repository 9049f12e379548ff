-- s3o PostgreSQL schema, version 11: the S3 object metadata kept beside ETag, type and user
-- metadata, on every row that describes an object version (copies and intents) and on
-- multipart uploads and parts.
--
-- attributes: one JSON object text (s3o_core::ObjectAttributes) of what is fixed when the
--   version is written: the stored response headers (cache-control, content-disposition,
--   content-encoding, content-language, expires), the checksum verified on upload
--   ({algorithm, type, value}) and a multipart object's part layout ([{size, checksum}]).
-- tags: the object's S3 tags as one JSON object text; the only column changed in place
--   (PutObjectTagging/DeleteObjectTagging, under the key lock, on every copy at once).
-- multipart_parts.checksum: a part's verified checksum (base64).
-- TEXT, not JSONB, so they read back byte for byte (as user_metadata). NULL = absent
-- everywhere; adding nullable columns rewrites no table.

ALTER TABLE object_locations
    ADD COLUMN IF NOT EXISTS attributes TEXT,
    ADD COLUMN IF NOT EXISTS tags TEXT;

ALTER TABLE pending_objects
    ADD COLUMN IF NOT EXISTS attributes TEXT,
    ADD COLUMN IF NOT EXISTS tags TEXT;

ALTER TABLE multipart_uploads
    ADD COLUMN IF NOT EXISTS attributes TEXT,
    ADD COLUMN IF NOT EXISTS tags TEXT;

ALTER TABLE multipart_parts ADD COLUMN IF NOT EXISTS checksum TEXT;
