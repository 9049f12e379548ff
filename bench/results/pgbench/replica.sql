-- record_replica: generated from the statements s3o sent (captured)
\set i :i + 1
\set key 16000000000 + :client_id * 10000000 + :i
BEGIN;
SELECT pg_advisory_xact_lock(:s1p1::int4, hashtext(:key));
WITH known AS (SELECT EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = :s2p2) AS known), ins AS (INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed, storage_key, etag, content_type, user_metadata) SELECT o.object_key, :s2p2, o.size_bytes, o.created_at, o.encrypted, o.encryption_key, o.key_id, o.plaintext_size, o.content_hash, o.managed, o.storage_key, o.etag, o.content_type, o.user_metadata FROM object_locations o, known WHERE known.known AND o.object_key = :key AND o.backend_name = :s2p3 ON CONFLICT (object_key, backend_name) DO NOTHING RETURNING size_bytes) SELECT (SELECT known FROM known), (SELECT size_bytes FROM ins);
UPDATE backend_quota_stripes s SET bytes_used = s.bytes_used + :s3p2, updated_at = NOW() FROM (SELECT stripe FROM backend_quota_stripes WHERE backend_name = :s3p1 AND bytes_used + :s3p2 <= bytes_granted ORDER BY (stripe + 16 - (:client_id % 16)::smallint) % 16 LIMIT 1 FOR UPDATE SKIP LOCKED) pick WHERE s.backend_name = :s3p1 AND s.stripe = pick.stripe RETURNING 1;
COMMIT;
