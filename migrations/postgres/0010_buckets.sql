-- Buckets are ledger state (DESIGN decision 23). One row per bucket; its objects are the
-- ledger keys under '<name>/'. The name is compared in byte order (COLLATE "C", like keys).
--   replication_factor  copies the replicator keeps of each object (>= 1)
--   max_bytes           byte quota of the bucket, 0 = none (stored; not yet enforced)
--   max_objects         object-count quota of the bucket, 0 = none (stored; not yet enforced)
--   routing             backend names new objects may go to; '{}' = every backend
--   extra               settings managed over S3 (CORS, lifecycle, versioning)
-- Deletion and commits into a bucket meet on this row: a commit holds FOR KEY SHARE, the
-- deletion FOR UPDATE (see s3o_core::ops::delete_bucket).
CREATE TABLE IF NOT EXISTS buckets (
    name               TEXT COLLATE "C" PRIMARY KEY,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    replication_factor INT NOT NULL DEFAULT 1 CHECK (replication_factor >= 1),
    max_bytes          BIGINT NOT NULL DEFAULT 0 CHECK (max_bytes >= 0),
    max_objects        BIGINT NOT NULL DEFAULT 0 CHECK (max_objects >= 0),
    routing            TEXT[] NOT NULL DEFAULT '{}',
    extra              JSONB NOT NULL DEFAULT '{}'
);

-- A bucket's deletion asks whether any intent of a key under '<name>/' exists.
CREATE INDEX IF NOT EXISTS idx_pending_objects_key_collate_c
    ON pending_objects (object_key COLLATE "C");
