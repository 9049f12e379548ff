-- promote_pending: generated from the statements s3o sent (captured)
\set i :i + 1
\set key 25000000000 + :client_id * 10000000 + :i
BEGIN;
SELECT pg_advisory_xact_lock(:s1p1::int4, hashtext(:key));
SELECT intent_id, object_key, backend_name, size_bytes, encrypted, encryption_key, key_id, plaintext_size, content_hash, created_at FROM pending_objects WHERE intent_id = :key FOR UPDATE;
SELECT backend_name, size_bytes, created_at, encrypted, (encryption_key IS NOT NULL AND length(encryption_key) > 0) FROM object_locations WHERE object_key = :key ORDER BY created_at, backend_name COLLATE "C" FOR UPDATE;
INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed) VALUES (:key, :s4p2, :s4p3, COALESCE(NULL, NOW()), :s4p5, NULL, NULL, NULL, NULL, :s4p10);
DELETE FROM pending_objects WHERE intent_id = :key;
WITH known AS (SELECT 1 FROM backend_quotas WHERE backend_name = :s6p1), charged AS (UPDATE backend_quotas SET bytes_used = bytes_used + :s6p2, updated_at = NOW() WHERE backend_name = :s6p1 AND (bytes_limit = 0 OR bytes_used + orphan_bytes + :s6p2 <= bytes_limit) RETURNING 1) SELECT EXISTS (SELECT 1 FROM known), EXISTS (SELECT 1 FROM charged);
COMMIT;
