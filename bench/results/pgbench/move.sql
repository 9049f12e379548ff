-- move_object_location: generated from the statements s3o sent (captured)
\set i :i + 1
\set key 19000000000 + :client_id * 10000000 + :i
BEGIN;
SELECT pg_advisory_xact_lock(:s1p1::int4, hashtext(:key));
SELECT EXISTS (SELECT 1 FROM object_locations WHERE object_key = :key AND backend_name = :s2p2);
SELECT object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed, last_scrubbed_at FROM object_locations WHERE object_key = :key AND backend_name = :s3p2 FOR UPDATE;
DELETE FROM object_locations WHERE object_key = :key AND backend_name = :s4p2;
INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed) VALUES (:key, :s5p2, :s5p3, COALESCE(:s5p4, NOW()), :s5p5, NULL, NULL, NULL, NULL, :s5p10);
UPDATE backend_quotas SET bytes_used = GREATEST(0, bytes_used - :s6p2), updated_at = NOW() WHERE backend_name = :s6p1;
WITH known AS (SELECT 1 FROM backend_quotas WHERE backend_name = :s7p1), charged AS (UPDATE backend_quotas SET bytes_used = bytes_used + :s7p2, updated_at = NOW() WHERE backend_name = :s7p1 AND (bytes_limit = 0 OR bytes_used + orphan_bytes + :s7p2 <= bytes_limit) RETURNING 1) SELECT EXISTS (SELECT 1 FROM known), EXISTS (SELECT 1 FROM charged);
COMMIT;
