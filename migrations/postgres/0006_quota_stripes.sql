-- Striped exact quota. Every charge of a backend used to update its one backend_quotas row and
-- hold that row's lock until COMMIT, so writes to one backend committed one at a time. Charges
-- now go to one of the backend's stripe rows, each holding a grant: a share of the limit it may
-- charge up to without looking at the others (`bytes_used + n <= bytes_granted`).
--
-- Invariant, for a backend with a limit (bytes_limit > 0), at every commit:
--     q.bytes_used + q.orphan_bytes + Σ stripe.bytes_granted <= q.bytes_limit
-- and every stripe has bytes_used <= bytes_granted, so the backend's total used bytes
-- (q.bytes_used + Σ stripe.bytes_used) plus its orphan bytes never exceed the limit. Grants
-- change only under the backend_quotas row lock (taken first, stripes then in stripe order):
-- when a stripe runs dry the charging transaction folds every stripe into the quota row (used
-- bytes added to q.bytes_used, grants returned), checks the exact remainder and re-grants it.
-- A backend without a limit gets grants of 2^62 per stripe (never refused), so a charge reads
-- only its stripe row, never the limit. Readers report q.bytes_used plus the stripes' bytes_used.
--
-- Upgrading: stop every writer built before this migration before applying it. An older
-- binary charges only the quota row and would ignore the stripes' grants.
CREATE TABLE backend_quota_stripes (
    backend_name  TEXT     NOT NULL REFERENCES backend_quotas (backend_name) ON DELETE CASCADE,
    stripe        SMALLINT NOT NULL,
    bytes_used    BIGINT   NOT NULL DEFAULT 0,
    bytes_granted BIGINT   NOT NULL DEFAULT 0,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (backend_name, stripe)
) WITH (fillfactor = 50);

-- Stripes for the backends that exist (s3o-pg's QUOTA_STRIPES = 16); their grants start at
-- zero, so the first charge of each backend folds and grants.
INSERT INTO backend_quota_stripes (backend_name, stripe)
SELECT backend_name, g FROM backend_quotas, generate_series(0, 15) g;
