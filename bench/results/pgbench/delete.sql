-- delete_object: generated from the statements s3o sent (captured)
\set i :i + 1
\set key 13000000000 + :client_id * 10000000 + :i
BEGIN;
SELECT pg_advisory_xact_lock(:s1p1::int4, hashtext(:key));
SELECT backend_name, size_bytes, created_at, encrypted, (encryption_key IS NOT NULL AND length(encryption_key) > 0), COALESCE(storage_key, '') FROM object_locations WHERE object_key = :key ORDER BY created_at, backend_name COLLATE "C" FOR UPDATE;
DELETE FROM object_locations WHERE object_key = :key;
INSERT INTO cleanup_queue (backend_name, object_key, storage_key, reason, size_bytes, claimed_at, claimed_by) VALUES (:s4p1, :key, NULL, :s4p4, :s4p5, NOW(), :s4p6) RETURNING id, claimed_at;
UPDATE backend_quotas SET bytes_used = bytes_used + :s5p2, updated_at = NOW() WHERE backend_name = :s5p1 RETURNING bytes_used;
UPDATE backend_quotas SET orphan_bytes = orphan_bytes + :s6p2, updated_at = NOW() WHERE backend_name = :s6p1;
UPDATE backend_quota_stripes s SET bytes_granted = s.bytes_used WHERE s.backend_name = :s7p1 AND s.bytes_granted > s.bytes_used AND EXISTS (SELECT 1 FROM backend_quotas q WHERE q.backend_name = :s7p1 AND q.bytes_limit > 0 AND q.bytes_used + q.orphan_bytes + (SELECT COALESCE(SUM(g.bytes_granted), 0) FROM backend_quota_stripes g WHERE g.backend_name = :s7p1) > q.bytes_limit);
COMMIT;
