-- s3o PostgreSQL schema, version 14: S3 versioning (DESIGN decision 25).
--
-- buckets.versioning: NULL = never versioned, 'Enabled' or 'Suspended' (S3 never returns a
--   bucket to unversioned, and neither does the store).
-- object_locations keeps its role and contracts: it holds the *current* version of every key
--   (one row per copy). version_id names that version; NULL = the 'null' version (written while
--   the bucket was unversioned or suspended).
-- object_versions holds everything else of a versioned key: noncurrent versions (one row per
--   copy, every stored-form column carried over unchanged, bytes still charged to the
--   backend's bytes_used) and delete markers (backend_name NULL, size 0). seq orders a key's
--   versions (larger = newer); the current version is newer than every row here. A key whose
--   object_locations rows are gone but which has rows here is "deleted": its newest row is a
--   delete marker.
ALTER TABLE buckets ADD COLUMN versioning TEXT CHECK (versioning IN ('Enabled', 'Suspended'));
ALTER TABLE object_locations ADD COLUMN version_id TEXT;

CREATE TABLE object_versions (
    object_key       TEXT NOT NULL,
    version_id       TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    backend_name     TEXT REFERENCES backend_quotas (backend_name),  -- NULL = delete marker
    size_bytes       BIGINT NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    created_at       TIMESTAMPTZ NOT NULL,
    encrypted        BOOLEAN NOT NULL DEFAULT FALSE,
    encryption_key   BYTEA,
    key_id           TEXT,
    plaintext_size   BIGINT,
    content_hash     TEXT,
    managed          BOOLEAN NOT NULL DEFAULT TRUE,
    last_scrubbed_at TIMESTAMPTZ,
    storage_key      TEXT,
    etag             TEXT,
    content_type     TEXT,
    user_metadata    TEXT,
    attributes       TEXT,
    tags             TEXT
);

-- One row per copy of a version (one per marker).
CREATE UNIQUE INDEX idx_object_versions_copy
    ON object_versions (object_key, version_id, coalesce(backend_name, ''));
-- A key's versions newest first, and ListObjectVersions in key (byte) order.
CREATE INDEX idx_object_versions_seq ON object_versions (object_key COLLATE "C", seq);
-- Per-backend sums and backend removal.
CREATE INDEX idx_object_versions_backend ON object_versions (backend_name);
