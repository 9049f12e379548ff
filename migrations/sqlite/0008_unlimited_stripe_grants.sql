-- Unlimited backends' stripe grants (PostgreSQL's 0008): there, the stripes' grants of a backend
-- without a limit summed past the largest integer. SQLite has no stripes, and its single guarded
-- quota row refuses a charge that would overflow. Nothing to change here: the version number is
-- kept in step with PostgreSQL's.
SELECT 1;
