-- Multipart parts are charged to their upload's backend: from this version on every backend's
--     bytes_used == Σ size_bytes of its copies + Σ size_bytes of the parts of its open uploads
-- (a part is charged when recorded, under the quota guard, and released to the cleanup queue
-- when its upload completes, is aborted or expires). Parts recorded before were never charged:
-- charge them now. A backend may end up over its limit (the bytes are on it): it then admits
-- nothing until enough is deleted.
--
-- Upgrading: stop every writer built before this migration before applying it. An older
-- binary records parts without charging them and deletes uploads without releasing them.
UPDATE backend_quotas
SET bytes_used = bytes_used + (
        SELECT COALESCE(sum(p.size_bytes), 0)
        FROM multipart_parts p JOIN multipart_uploads u ON u.upload_id = p.upload_id
        WHERE u.backend_name = backend_quotas.backend_name)
WHERE EXISTS (
    SELECT 1 FROM multipart_parts p JOIN multipart_uploads u ON u.upload_id = p.upload_id
    WHERE u.backend_name = backend_quotas.backend_name);
