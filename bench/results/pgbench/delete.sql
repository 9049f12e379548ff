-- delete_object: generated from the statements s3o sent (captured)
\set i :i + 1
\set key 13000000000 + :client_id * 10000000 + :i
BEGIN;
SELECT pg_advisory_xact_lock(:s1p1::int4, hashtext(:key));
SELECT backend_name, size_bytes, created_at, encrypted, (encryption_key IS NOT NULL AND length(encryption_key) > 0) FROM object_locations WHERE object_key = :key ORDER BY created_at, backend_name COLLATE "C" FOR UPDATE;
DELETE FROM object_locations WHERE object_key = :key;
UPDATE backend_quotas SET bytes_used = GREATEST(0, bytes_used - :s4p2), updated_at = NOW() WHERE backend_name = :s4p1;
COMMIT;
