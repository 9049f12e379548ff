-- Each multipart part attempt is written at its own backend path, so a retried UploadPart that
-- fails verification can never destroy the part accepted before it. The path of the accepted
-- attempt is recorded with the part; NULL (parts recorded before this migration) means the
-- gateway's former fixed path for that part number.
ALTER TABLE multipart_parts ADD COLUMN IF NOT EXISTS storage_key TEXT;
