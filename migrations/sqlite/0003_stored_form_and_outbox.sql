-- s3o SQLite schema, version 3: where the bytes live and what the client sees, on every row
-- that describes bytes on a backend; intents keep `managed`; stuck cleanup rows dead-lettered.
--
-- storage_key: the path of the bytes on the backend; NULL means "the object key itself", so
-- rows written before this version keep their meaning. etag / content_type: the client-visible
-- S3 attributes; user_metadata: x-amz-meta-* as one JSON object text. NULL = absent.

ALTER TABLE object_locations ADD COLUMN storage_key TEXT;
ALTER TABLE object_locations ADD COLUMN etag TEXT;
ALTER TABLE object_locations ADD COLUMN content_type TEXT;
ALTER TABLE object_locations ADD COLUMN user_metadata TEXT;

ALTER TABLE pending_objects ADD COLUMN storage_key TEXT;
ALTER TABLE pending_objects ADD COLUMN etag TEXT;
ALTER TABLE pending_objects ADD COLUMN content_type TEXT;
ALTER TABLE pending_objects ADD COLUMN user_metadata TEXT;
-- Intents written before this version were all promoted as managed copies: keep that.
ALTER TABLE pending_objects ADD COLUMN managed INTEGER NOT NULL DEFAULT 1 CHECK (managed IN (0, 1));

-- The physical path a cleanup must delete (NULL = object_key).
ALTER TABLE cleanup_queue ADD COLUMN storage_key TEXT;
ALTER TABLE cleanup_dlq ADD COLUMN storage_key TEXT;

-- Rows that reached the attempt limit (s3o_core::MAX_ATTEMPTS = 10) under older binaries were
-- never claimed again nor dead-lettered: move them to the DLQ now. Their bytes stay counted in
-- orphan_bytes (the DLQ counts), so no quota row changes.
INSERT INTO cleanup_dlq (original_id, backend_name, object_key, reason, size_bytes, attempts,
                         first_enqueued_at, moved_at, last_error, storage_key)
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at,
       CAST(unixepoch('subsec') * 1000000 AS INTEGER), last_error, storage_key
FROM cleanup_queue WHERE attempts >= 10 ORDER BY id;
DELETE FROM cleanup_queue WHERE attempts >= 10;
