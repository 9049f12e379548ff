-- Striped exact quota (PostgreSQL's 0006): there, charges to one backend go to one of several
-- stripe rows so that concurrent writers do not queue on one quota row. SQLite runs one write
-- transaction at a time anyway, so a stripe would buy nothing: the single guarded quota row
-- stays. Nothing to change here: the version number is kept in step with PostgreSQL's.
SELECT 1;
