-- A backend being drained takes no new write: the drain sets `draining` when it starts and
-- clears it when it ends, and every gateway on this ledger reads it when it picks a backend for
-- a PUT, a new multipart upload, a Complete or a replica (the fence holds across processes).
ALTER TABLE backend_quotas ADD COLUMN IF NOT EXISTS draining BOOLEAN NOT NULL DEFAULT FALSE;
