-- promote_pending: generated from the statements s3o sent (captured)
\set i :i + 1
\set key 25000000000 + :client_id * 10000000 + :i
BEGIN;
SELECT pg_advisory_xact_lock(:s1p1::int4, hashtext(:key));
SELECT intent_id, object_key, backend_name, size_bytes, encrypted, encryption_key, key_id, plaintext_size, content_hash, created_at, managed, storage_key, etag, content_type, user_metadata FROM pending_objects WHERE intent_id = :key FOR UPDATE;
SELECT backend_name, size_bytes, created_at, encrypted, (encryption_key IS NOT NULL AND length(encryption_key) > 0), COALESCE(storage_key, '') FROM object_locations WHERE object_key = :key ORDER BY created_at, backend_name COLLATE "C" FOR UPDATE;
INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed, storage_key, etag, content_type, user_metadata) VALUES (:key, :s4p2, :s4p3, COALESCE(NULL, NOW()), :s4p5, NULL, NULL, NULL, NULL, :s4p10, NULL, NULL, NULL, NULL);
DELETE FROM pending_objects WHERE intent_id = :key;
UPDATE backend_quota_stripes s SET bytes_used = s.bytes_used + :s6p2, updated_at = NOW() FROM (SELECT stripe FROM backend_quota_stripes WHERE backend_name = :s6p1 AND bytes_used + :s6p2 <= bytes_granted ORDER BY (stripe + 16 - (:client_id % 16)::smallint) % 16 LIMIT 1 FOR UPDATE SKIP LOCKED) pick WHERE s.backend_name = :s6p1 AND s.stripe = pick.stripe RETURNING 1;
COMMIT;
