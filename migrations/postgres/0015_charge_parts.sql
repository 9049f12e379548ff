-- Multipart parts are charged to their upload's backend: from this version on every backend's
--     bytes_used == Σ size_bytes of its copies + Σ size_bytes of the parts of its open uploads
-- (a part is charged when recorded, under the quota guard, and released to the cleanup queue
-- when its upload completes, is aborted or expires). Parts recorded before were never charged:
-- charge them now, to the quota row. The unused part of every stripe's grant is taken back
-- first (each stripe keeps what it charged; the next charge that needs more folds and
-- re-grants under the exact rule), so the stripes cannot admit bytes the parts now hold. A
-- backend may end up over its limit (the bytes are on it): it then admits nothing until
-- enough is deleted.
--
-- Upgrading: stop every writer built before this migration before applying it. An older
-- binary records parts without charging them and deletes uploads without releasing them.
UPDATE backend_quota_stripes SET bytes_granted = bytes_used
WHERE bytes_granted > bytes_used
  AND backend_name IN (SELECT u.backend_name FROM multipart_uploads u
                       JOIN multipart_parts p ON p.upload_id = u.upload_id);

UPDATE backend_quotas q
SET bytes_used = q.bytes_used + c.bytes, updated_at = NOW()
FROM (SELECT u.backend_name, SUM(p.size_bytes)::bigint AS bytes
      FROM multipart_parts p JOIN multipart_uploads u ON u.upload_id = p.upload_id
      GROUP BY u.backend_name) c
WHERE q.backend_name = c.backend_name;
