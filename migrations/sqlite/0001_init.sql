-- s3o SQLite schema, version 1: every table.
--
-- Mirrors the PostgreSQL baseline (reference migrations 00001-00014) plus
-- object_locations.last_scrubbed_at. SQLite dialect:
--   * timestamps are INTEGER microseconds since the Unix epoch (UTC), always bound by the
--     application, never DEFAULTed from SQL text: ordering by time is exact;
--   * booleans are INTEGER 0/1, JSON is TEXT, byte strings are BLOB;
--   * text compares with BINARY collation (byte order), so no COLLATE "C" is needed;
--   * STRICT tables reject values of the wrong type.
-- Foreign keys carry no ON DELETE action except multipart_parts -> multipart_uploads.

CREATE TABLE backend_quotas (
    backend_name TEXT    NOT NULL PRIMARY KEY,
    bytes_used   INTEGER NOT NULL DEFAULT 0,
    bytes_limit  INTEGER NOT NULL CHECK (bytes_limit >= 0),   -- 0 = unlimited
    orphan_bytes INTEGER NOT NULL DEFAULT 0,                  -- freed, not yet deleted
    updated_at   INTEGER
) STRICT;

CREATE TABLE object_locations (
    object_key       TEXT    NOT NULL,
    backend_name     TEXT    NOT NULL REFERENCES backend_quotas (backend_name),
    size_bytes       INTEGER NOT NULL CHECK (size_bytes >= 0),
    created_at       INTEGER NOT NULL,
    encrypted        INTEGER NOT NULL DEFAULT 0 CHECK (encrypted IN (0, 1)),
    encryption_key   BLOB,                 -- packed base_nonce || wrapped DEK
    key_id           TEXT,
    plaintext_size   INTEGER,
    content_hash     TEXT,                 -- SHA-256 hex of the plaintext
    managed          INTEGER NOT NULL DEFAULT 1 CHECK (managed IN (0, 1)),
    last_scrubbed_at INTEGER,              -- NULL = never verified
    PRIMARY KEY (object_key, backend_name)
) STRICT;

CREATE TABLE multipart_uploads (
    upload_id      TEXT    NOT NULL PRIMARY KEY,
    object_key     TEXT    NOT NULL,
    backend_name   TEXT    NOT NULL REFERENCES backend_quotas (backend_name),
    content_type   TEXT,
    metadata       TEXT,                   -- JSON object; NULL when empty
    encryption_key BLOB,                   -- upload-level packed DEK
    key_id         TEXT,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE multipart_parts (
    upload_id      TEXT    NOT NULL REFERENCES multipart_uploads (upload_id) ON DELETE CASCADE,
    part_number    INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    etag           TEXT    NOT NULL,
    size_bytes     INTEGER NOT NULL CHECK (size_bytes >= 0),
    encrypted      INTEGER NOT NULL DEFAULT 0 CHECK (encrypted IN (0, 1)),
    encryption_key BLOB,
    key_id         TEXT,
    plaintext_size INTEGER,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
) STRICT;

CREATE TABLE backend_usage (
    backend_name  TEXT    NOT NULL REFERENCES backend_quotas (backend_name),
    period        TEXT    NOT NULL,        -- YYYY-MM
    api_requests  INTEGER NOT NULL DEFAULT 0,
    egress_bytes  INTEGER NOT NULL DEFAULT 0,
    ingress_bytes INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (backend_name, period)
) STRICT;

CREATE TABLE cleanup_queue (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    backend_name TEXT    NOT NULL REFERENCES backend_quotas (backend_name),
    object_key   TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    size_bytes   INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    next_retry   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    claimed_at   INTEGER,                  -- NULL = unclaimed
    claimed_by   TEXT
) STRICT;

CREATE TABLE cleanup_dlq (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    original_id       INTEGER NOT NULL,
    backend_name      TEXT    NOT NULL REFERENCES backend_quotas (backend_name),
    object_key        TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    size_bytes        INTEGER NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL,
    first_enqueued_at INTEGER NOT NULL,
    moved_at          INTEGER NOT NULL,
    last_error        TEXT
) STRICT;

CREATE TABLE pending_objects (
    intent_id      TEXT    NOT NULL PRIMARY KEY,
    object_key     TEXT    NOT NULL,
    backend_name   TEXT    NOT NULL REFERENCES backend_quotas (backend_name),
    size_bytes     INTEGER NOT NULL CHECK (size_bytes >= 0),
    encrypted      INTEGER NOT NULL DEFAULT 0 CHECK (encrypted IN (0, 1)),
    encryption_key BLOB,
    key_id         TEXT,
    plaintext_size INTEGER,
    content_hash   TEXT,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE notification_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type   TEXT    NOT NULL,
    payload      TEXT    NOT NULL,         -- CloudEvents JSON, verbatim
    endpoint_url TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    next_retry   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
) STRICT;
