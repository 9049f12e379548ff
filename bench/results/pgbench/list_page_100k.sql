-- list_objects (page of 1000): generated from the statements s3o sent (captured)
\set key 1000000000 + random(1, 98999)
SELECT DISTINCT ON (object_key COLLATE "C") object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed, last_scrubbed_at, storage_key, etag, content_type, user_metadata FROM object_locations WHERE object_key COLLATE "C" > :key ORDER BY object_key COLLATE "C", created_at, backend_name COLLATE "C" LIMIT :s0p2;
