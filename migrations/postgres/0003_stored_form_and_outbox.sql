-- s3o PostgreSQL schema, version 3: where the bytes live and what the client sees, on every
-- row that describes bytes on a backend; intents keep `managed`; stuck cleanup rows
-- dead-lettered.
--
-- storage_key: the path of the bytes on the backend; NULL means "the object key itself", so
-- rows written before this version keep their meaning. etag / content_type: the client-visible
-- S3 attributes; user_metadata: x-amz-meta-* as one JSON object text (TEXT, not JSONB, so it
-- reads back byte for byte). NULL = absent. Adding nullable columns rewrites no table.

ALTER TABLE object_locations
    ADD COLUMN storage_key TEXT,
    ADD COLUMN etag TEXT,
    ADD COLUMN content_type TEXT,
    ADD COLUMN user_metadata TEXT;

-- Intents written before this version were all promoted as managed copies: keep that.
ALTER TABLE pending_objects
    ADD COLUMN storage_key TEXT,
    ADD COLUMN etag TEXT,
    ADD COLUMN content_type TEXT,
    ADD COLUMN user_metadata TEXT,
    ADD COLUMN managed BOOLEAN NOT NULL DEFAULT TRUE;

-- The physical path a cleanup must delete (NULL = object_key).
ALTER TABLE cleanup_queue ADD COLUMN storage_key TEXT;
ALTER TABLE cleanup_dlq ADD COLUMN storage_key TEXT;

-- Rows that reached the attempt limit (s3o_core::MAX_ATTEMPTS = 10) under older binaries were
-- never claimed again nor dead-lettered: move them to the DLQ now. Their bytes stay counted in
-- orphan_bytes (the DLQ counts), so no quota row changes.
WITH stuck AS (DELETE FROM cleanup_queue WHERE attempts >= 10 RETURNING *)
INSERT INTO cleanup_dlq (original_id, backend_name, object_key, reason, size_bytes, attempts,
                         first_enqueued_at, moved_at, last_error, storage_key)
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, NOW(),
       last_error, storage_key
FROM stuck ORDER BY id;
