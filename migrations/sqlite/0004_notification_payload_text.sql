-- One notification payload form on both engines. SQLite's TEXT column already keeps the
-- payload verbatim; PostgreSQL's 0004 changes its column from jsonb to json to match.
-- Nothing to change here: the version number is kept in step with PostgreSQL's.
SELECT 1;
