-- get_all_object_locations: generated from the statements s3o sent (captured)
\set key 1000000000 + random(1, 10000)
SELECT object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed, last_scrubbed_at, storage_key, etag, content_type, user_metadata FROM object_locations WHERE object_key = :key ORDER BY created_at, backend_name COLLATE "C";
