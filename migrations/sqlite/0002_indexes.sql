-- s3o SQLite schema, version 2: every secondary index.
--
-- BINARY collation is byte order, so the key indexes serve byte-ordered listings, cursors and
-- prefix ranges (key >= prefix AND key < successor) directly. The primary key
-- (object_key, backend_name) already serves lookups and range scans by key.

-- Oldest copy per key (listings, expiry) and the per-key ordering of copies.
CREATE INDEX idx_object_locations_key_created
    ON object_locations (object_key, created_at, backend_name);
-- Per-backend key cursor (reconcile), backend filters, deletes and counts by backend.
CREATE INDEX idx_object_locations_backend_key
    ON object_locations (backend_name, object_key);
-- Rebalancer: a backend's copies, smallest first.
CREATE INDEX idx_object_locations_backend_size
    ON object_locations (backend_name, size_bytes, object_key);
-- Hash backfill: copies without a content hash, oldest first.
CREATE INDEX idx_object_locations_unhashed
    ON object_locations (created_at) WHERE content_hash IS NULL;
-- Scrub queue: least recently verified hashed copies.
CREATE INDEX idx_object_locations_scrub
    ON object_locations (coalesce(last_scrubbed_at, created_at), object_key, backend_name)
    WHERE content_hash IS NOT NULL AND managed = 1;

CREATE INDEX idx_multipart_uploads_created ON multipart_uploads (created_at);
CREATE INDEX idx_multipart_uploads_key_created ON multipart_uploads (object_key, created_at);
CREATE INDEX idx_multipart_uploads_backend ON multipart_uploads (backend_name);

-- Claimable cleanups: due rows below the attempt limit, oldest first.
CREATE INDEX idx_cleanup_queue_claim
    ON cleanup_queue (next_retry, created_at) WHERE attempts < 10;
-- Sweeps of one (backend, key) and backend removal.
CREATE INDEX idx_cleanup_queue_backend_key ON cleanup_queue (backend_name, object_key);

CREATE INDEX idx_cleanup_dlq_backend ON cleanup_dlq (backend_name);

CREATE INDEX idx_pending_objects_created ON pending_objects (created_at);
CREATE INDEX idx_pending_objects_backend ON pending_objects (backend_name);

CREATE INDEX idx_backend_usage_period ON backend_usage (period);

CREATE INDEX idx_notification_outbox_pending
    ON notification_outbox (next_retry) WHERE attempts < 10;
