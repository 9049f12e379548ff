-- s3o PostgreSQL schema, version 2: every index of the baseline. Listings, cursors and
-- prefix ranges compare keys as bytes, so every index they use is built with COLLATE "C".

-- object_locations
CREATE INDEX IF NOT EXISTS idx_object_locations_backend
    ON object_locations (backend_name);
CREATE INDEX IF NOT EXISTS idx_object_locations_key_pattern
    ON object_locations (object_key text_pattern_ops);
CREATE INDEX IF NOT EXISTS idx_object_locations_created
    ON object_locations (created_at);
CREATE INDEX IF NOT EXISTS idx_object_locations_key_created
    ON object_locations (object_key, created_at);
-- Reconcile cursor: backend_name = $1 AND object_key COLLATE "C" > $2 ORDER BY key.
CREATE INDEX IF NOT EXISTS idx_object_locations_backend_key_collate_c
    ON object_locations (backend_name, object_key COLLATE "C");
-- Listings: one row per key (oldest copy, ties by backend) over a byte-order key range.
-- The trailing columns let DISTINCT ON read the oldest copy first without a sort.
CREATE INDEX IF NOT EXISTS idx_object_locations_key_collate_c
    ON object_locations (object_key COLLATE "C", created_at, backend_name COLLATE "C");
CREATE INDEX IF NOT EXISTS idx_object_locations_managed
    ON object_locations (backend_name) WHERE managed;

-- multipart_uploads
CREATE INDEX IF NOT EXISTS idx_multipart_uploads_created
    ON multipart_uploads (created_at);
CREATE INDEX IF NOT EXISTS idx_multipart_uploads_key_pattern
    ON multipart_uploads (object_key text_pattern_ops);
CREATE INDEX IF NOT EXISTS idx_multipart_uploads_key_collate_c
    ON multipart_uploads (object_key COLLATE "C");
CREATE INDEX IF NOT EXISTS idx_multipart_uploads_backend_name
    ON multipart_uploads (backend_name);

-- cleanup_queue: the claim scan (due, not exhausted, oldest first).
CREATE INDEX IF NOT EXISTS idx_cleanup_queue_claim
    ON cleanup_queue (next_retry, created_at) WHERE attempts < 10;

-- cleanup_dlq
CREATE INDEX IF NOT EXISTS idx_cleanup_dlq_backend
    ON cleanup_dlq (backend_name);

-- pending_objects
CREATE INDEX IF NOT EXISTS idx_pending_objects_created
    ON pending_objects (created_at);
CREATE INDEX IF NOT EXISTS idx_pending_objects_backend
    ON pending_objects (backend_name);

-- notification_outbox
CREATE INDEX IF NOT EXISTS idx_notification_outbox_pending
    ON notification_outbox (next_retry) WHERE attempts < 10;
