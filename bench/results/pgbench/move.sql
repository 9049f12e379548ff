-- move_object_location: generated from the statements s3o sent (captured)
\set i :i + 1
\set key 19000000000 + :client_id * 10000000 + :i
BEGIN;
SELECT pg_advisory_xact_lock(:s1p1::int4, hashtext(:key));
SELECT EXISTS (SELECT 1 FROM object_locations WHERE object_key = :key AND backend_name = :s2p2);
SELECT object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed, last_scrubbed_at, storage_key, etag, content_type, user_metadata FROM object_locations WHERE object_key = :key AND backend_name = :s3p2 FOR UPDATE;
DELETE FROM object_locations WHERE object_key = :key AND backend_name = :s4p2;
INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed, storage_key, etag, content_type, user_metadata) VALUES (:key, :s5p2, :s5p3, COALESCE(:s5p4, NOW()), :s5p5, NULL, NULL, NULL, NULL, :s5p10, NULL, NULL, NULL, NULL);
INSERT INTO cleanup_queue (backend_name, object_key, storage_key, reason, size_bytes, claimed_at, claimed_by) VALUES (:s6p1, :key, NULL, :s6p4, :s6p5, NOW(), :s6p6) RETURNING id, claimed_at;
UPDATE backend_quotas SET bytes_used = bytes_used + :s7p2, updated_at = NOW() WHERE backend_name = :s7p1 RETURNING bytes_used;
UPDATE backend_quotas SET orphan_bytes = orphan_bytes + :s8p2, updated_at = NOW() WHERE backend_name = :s8p1;
UPDATE backend_quota_stripes s SET bytes_granted = s.bytes_used WHERE s.backend_name = :s9p1 AND s.bytes_granted > s.bytes_used AND EXISTS (SELECT 1 FROM backend_quotas q WHERE q.backend_name = :s9p1 AND q.bytes_limit > 0 AND q.bytes_used + q.orphan_bytes + (SELECT COALESCE(SUM(g.bytes_granted), 0) FROM backend_quota_stripes g WHERE g.backend_name = :s9p1) > q.bytes_limit);
UPDATE backend_quota_stripes s SET bytes_used = s.bytes_used + :s10p2, updated_at = NOW() FROM (SELECT stripe FROM backend_quota_stripes WHERE backend_name = :s10p1 AND bytes_used + :s10p2 <= bytes_granted ORDER BY (stripe + 16 - (:client_id % 16)::smallint) % 16 LIMIT 1 FOR UPDATE SKIP LOCKED) pick WHERE s.backend_name = :s10p1 AND s.stripe = pick.stripe RETURNING 1;
COMMIT;
