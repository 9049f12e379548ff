-- Buckets are ledger state (DESIGN decision 23). One row per bucket; its objects are the
-- ledger keys under '<name>/'. The name is compared in byte order (BINARY, like keys).
--   replication_factor  copies the replicator keeps of each object (>= 1)
--   max_bytes           byte quota of the bucket, 0 = none (stored; not yet enforced)
--   max_objects         object-count quota of the bucket, 0 = none (stored; not yet enforced)
--   routing             JSON array of backend names new objects may go to; '[]' = every backend
--   extra               JSON object of settings managed over S3 (CORS, lifecycle, versioning)
-- Deletion and commits into a bucket meet on this row (see s3o_core::ops::delete_bucket).
CREATE TABLE buckets (
    name               TEXT    NOT NULL PRIMARY KEY,
    created_at         INTEGER NOT NULL,
    replication_factor INTEGER NOT NULL DEFAULT 1 CHECK (replication_factor >= 1),
    max_bytes          INTEGER NOT NULL DEFAULT 0 CHECK (max_bytes >= 0),
    max_objects        INTEGER NOT NULL DEFAULT 0 CHECK (max_objects >= 0),
    routing            TEXT    NOT NULL DEFAULT '[]',
    extra              TEXT    NOT NULL DEFAULT '{}'
) STRICT;

-- A bucket's deletion asks whether any intent of a key under '<name>/' exists.
CREATE INDEX idx_pending_objects_key ON pending_objects (object_key);
