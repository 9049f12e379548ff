-- s3o PostgreSQL schema, version 1: every table of the baseline (reference migrations
-- 00001-00014) plus object_locations.last_scrubbed_at for the deterministic scrub queue.
-- Foreign keys have no ON DELETE action except multipart_parts -> multipart_uploads, so a
-- backend row cannot be deleted while anything references it (delete_backend_data clears
-- every referencing table first).

CREATE TABLE backend_quotas (
    backend_name TEXT PRIMARY KEY,
    bytes_used   BIGINT NOT NULL DEFAULT 0,
    bytes_limit  BIGINT NOT NULL,
    orphan_bytes BIGINT NOT NULL DEFAULT 0,
    updated_at   TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE object_locations (
    object_key       TEXT NOT NULL,
    backend_name     TEXT NOT NULL REFERENCES backend_quotas (backend_name),
    size_bytes       BIGINT NOT NULL,
    created_at       TIMESTAMPTZ DEFAULT NOW(),
    encrypted        BOOLEAN NOT NULL DEFAULT FALSE,
    encryption_key   BYTEA,
    key_id           TEXT,
    plaintext_size   BIGINT,
    content_hash     TEXT,
    managed          BOOLEAN NOT NULL DEFAULT TRUE,
    last_scrubbed_at TIMESTAMPTZ NULL,
    PRIMARY KEY (object_key, backend_name)
);

CREATE TABLE multipart_uploads (
    upload_id      TEXT PRIMARY KEY,
    object_key     TEXT NOT NULL,
    backend_name   TEXT NOT NULL REFERENCES backend_quotas (backend_name),
    content_type   TEXT,
    metadata       JSONB,
    encryption_key BYTEA,
    key_id         TEXT,
    created_at     TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE multipart_parts (
    upload_id      TEXT NOT NULL REFERENCES multipart_uploads (upload_id) ON DELETE CASCADE,
    part_number    INT NOT NULL,
    etag           TEXT NOT NULL,
    size_bytes     BIGINT NOT NULL,
    encrypted      BOOLEAN NOT NULL DEFAULT FALSE,
    encryption_key BYTEA,
    key_id         TEXT,
    plaintext_size BIGINT,
    created_at     TIMESTAMPTZ DEFAULT NOW(),
    PRIMARY KEY (upload_id, part_number)
);

CREATE TABLE backend_usage (
    backend_name  TEXT NOT NULL REFERENCES backend_quotas (backend_name),
    period        TEXT NOT NULL,
    api_requests  BIGINT NOT NULL DEFAULT 0,
    egress_bytes  BIGINT NOT NULL DEFAULT 0,
    ingress_bytes BIGINT NOT NULL DEFAULT 0,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (backend_name, period)
);

CREATE TABLE cleanup_queue (
    id           BIGSERIAL PRIMARY KEY,
    backend_name TEXT NOT NULL REFERENCES backend_quotas (backend_name),
    object_key   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    next_retry   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    attempts     INT NOT NULL DEFAULT 0,
    last_error   TEXT,
    claimed_at   TIMESTAMPTZ,
    claimed_by   TEXT
);

CREATE TABLE cleanup_dlq (
    id                BIGSERIAL PRIMARY KEY,
    original_id       BIGINT NOT NULL,
    backend_name      TEXT NOT NULL REFERENCES backend_quotas (backend_name),
    object_key        TEXT NOT NULL,
    reason            TEXT NOT NULL,
    size_bytes        BIGINT NOT NULL DEFAULT 0,
    attempts          INT NOT NULL,
    first_enqueued_at TIMESTAMPTZ NOT NULL,
    moved_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_error        TEXT
);

CREATE TABLE pending_objects (
    intent_id      TEXT PRIMARY KEY,
    object_key     TEXT NOT NULL,
    backend_name   TEXT NOT NULL REFERENCES backend_quotas (backend_name),
    size_bytes     BIGINT NOT NULL,
    encrypted      BOOLEAN NOT NULL DEFAULT FALSE,
    encryption_key BYTEA,
    key_id         TEXT,
    plaintext_size BIGINT,
    content_hash   TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE notification_outbox (
    id           BIGSERIAL PRIMARY KEY,
    event_type   TEXT NOT NULL,
    payload      JSONB NOT NULL,
    endpoint_url TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    next_retry   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    attempts     INT NOT NULL DEFAULT 0,
    last_error   TEXT
);
