-- A write that streams a large body opens a multipart upload on its backend; its id is recorded
-- with the write's intent as soon as the backend hands it out, so whoever ends the intent (the
-- pending reaper, after a crash) can abort the upload instead of leaving its parts billed.
ALTER TABLE pending_objects ADD COLUMN IF NOT EXISTS backend_upload_id TEXT;
