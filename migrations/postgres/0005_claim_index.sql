-- The cleanup claim takes due, unexhausted rows oldest first (`ORDER BY created_at, id LIMIT n`).
-- The old index led with next_retry, so it could only find the due rows: every claim read all
-- of them and sorted them, a cost that grew with the queue. Keyed on the claim's order instead,
-- the scan walks the index oldest first, filters `next_retry` and the claim on the way and stops
-- after the batch. The partial predicate is the attempt limit (s3o_core::MAX_ATTEMPTS = 10),
-- written as a literal in the claim so the planner can use the index in generic plans too.
DROP INDEX IF EXISTS idx_cleanup_queue_claim;
CREATE INDEX idx_cleanup_queue_claim ON cleanup_queue (created_at, id) WHERE attempts < 10;
-- Claims and releases rewrite claimed_at/claimed_by, which no index covers: with room left on
-- each page those updates stay heap-only (HOT), adding no index entries for the next claim to
-- step over. Applies to pages written from now on.
ALTER TABLE cleanup_queue SET (fillfactor = 80);

-- The notifier's due list has the same shape (`next_retry <= now AND attempts < 10 ORDER BY
-- created_at, id LIMIT n`) and had the same index (on next_retry): the same fix.
DROP INDEX IF EXISTS idx_notification_outbox_pending;
CREATE INDEX idx_notification_outbox_pending ON notification_outbox (created_at, id)
    WHERE attempts < 10;
