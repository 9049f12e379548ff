-- record_object (new key, 4 backends): generated from the statements s3o sent (captured)
\set i :i + 1
\set key 7000000000 + :client_id * 10000000 + :i
\set bk 1 + :client_id % 4
BEGIN;
SELECT pg_advisory_xact_lock(:s1p1::int4, hashtext(:key));
SELECT backend_name, size_bytes, created_at, encrypted, (encryption_key IS NOT NULL AND length(encryption_key) > 0) FROM object_locations WHERE object_key = :key ORDER BY created_at, backend_name COLLATE "C" FOR UPDATE;
INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed) VALUES (:key, ('b' || :bk::int), :s3p3, COALESCE(NULL, NOW()), :s3p5, NULL, NULL, NULL, NULL, :s3p10);
WITH known AS (SELECT 1 FROM backend_quotas WHERE backend_name = ('b' || :bk::int)), charged AS (UPDATE backend_quotas SET bytes_used = bytes_used + :s4p2, updated_at = NOW() WHERE backend_name = ('b' || :bk::int) AND (bytes_limit = 0 OR bytes_used + orphan_bytes + :s4p2 <= bytes_limit) RETURNING 1) SELECT EXISTS (SELECT 1 FROM known), EXISTS (SELECT 1 FROM charged);
COMMIT;
