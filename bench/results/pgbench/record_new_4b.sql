-- record_object (new key, 4 backends): generated from the statements s3o sent (captured)
\set i :i + 1
\set key 7000000000 + :client_id * 10000000 + :i
\set bk 1 + :client_id % 4
BEGIN;
SELECT pg_advisory_xact_lock(:s1p1::int4, hashtext(:key));
SELECT backend_name, size_bytes, created_at, encrypted, (encryption_key IS NOT NULL AND length(encryption_key) > 0), COALESCE(storage_key, '') FROM object_locations WHERE object_key = :key ORDER BY created_at, backend_name COLLATE "C" FOR UPDATE;
INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed, storage_key, etag, content_type, user_metadata) VALUES (:key, ('b' || :bk::int), :s3p3, COALESCE(NULL, NOW()), :s3p5, NULL, NULL, NULL, NULL, :s3p10, NULL, NULL, NULL, NULL);
UPDATE backend_quota_stripes s SET bytes_used = s.bytes_used + :s4p2, updated_at = NOW() FROM (SELECT stripe FROM backend_quota_stripes WHERE backend_name = ('b' || :bk::int) AND bytes_used + :s4p2 <= bytes_granted ORDER BY (stripe + 16 - (:client_id % 16)::smallint) % 16 LIMIT 1 FOR UPDATE SKIP LOCKED) pick WHERE s.backend_name = ('b' || :bk::int) AND s.stripe = pick.stripe RETURNING 1;
COMMIT;
