-- One notification payload form on both engines: `json` keeps the payload's text exactly as
-- given (after validation), as SQLite's TEXT column does; `jsonb` rewrote whitespace and key
-- order, so the two engines returned different text for the same payload.
ALTER TABLE notification_outbox ALTER COLUMN payload TYPE json USING payload::json;
