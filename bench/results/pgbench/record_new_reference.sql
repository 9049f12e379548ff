-- record_object (new key): the reference's own statements (SPEC §4, §5.1)
\set i :i + 1
\set key 5000000000 + :client_id * 10000000 + :i
BEGIN;
SELECT pg_advisory_xact_lock(hashtext(:key));
SELECT backend_name, size_bytes, created_at, encrypted, (encryption_key IS NOT NULL AND length(encryption_key) > 0) FROM object_locations WHERE object_key = :key FOR UPDATE;
INSERT INTO object_locations (object_key, backend_name, size_bytes, encrypted, managed, created_at) VALUES (:key, :backend, :size, false, true, NOW());
UPDATE backend_quotas SET bytes_used = bytes_used + :size, updated_at = NOW() WHERE backend_name = :backend AND (bytes_limit = 0 OR bytes_used + orphan_bytes + :size <= bytes_limit);
COMMIT;
