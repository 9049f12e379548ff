-- claim_pending_cleanups + 100 × complete_cleanup_item: generated from the statements s3o sent (captured)
WITH picked AS ( SELECT id, claimed_at IS NOT NULL AS reclaimed FROM cleanup_queue WHERE next_retry <= NOW() AND attempts < 10 AND (claimed_at IS NULL OR claimed_at < NOW() - :s0p3::bigint * INTERVAL '1 microsecond') ORDER BY created_at, id LIMIT :s0p1 FOR UPDATE SKIP LOCKED), claimed AS ( UPDATE cleanup_queue c SET claimed_at = NOW(), claimed_by = :s0p2 WHERE c.id = ANY (ARRAY(SELECT id FROM picked)) RETURNING c.id, c.backend_name, c.object_key, c.reason, c.attempts, c.size_bytes, c.claimed_at, c.claimed_by, COALESCE(c.storage_key, c.object_key) AS path) SELECT claimed.*, picked.reclaimed FROM claimed JOIN picked USING (id) ORDER BY id \aset
\set c0 :id - 99
\set c1 :id - 98
\set c2 :id - 97
\set c3 :id - 96
\set c4 :id - 95
\set c5 :id - 94
\set c6 :id - 93
\set c7 :id - 92
\set c8 :id - 91
\set c9 :id - 90
\set c10 :id - 89
\set c11 :id - 88
\set c12 :id - 87
\set c13 :id - 86
\set c14 :id - 85
\set c15 :id - 84
\set c16 :id - 83
\set c17 :id - 82
\set c18 :id - 81
\set c19 :id - 80
\set c20 :id - 79
\set c21 :id - 78
\set c22 :id - 77
\set c23 :id - 76
\set c24 :id - 75
\set c25 :id - 74
\set c26 :id - 73
\set c27 :id - 72
\set c28 :id - 71
\set c29 :id - 70
\set c30 :id - 69
\set c31 :id - 68
\set c32 :id - 67
\set c33 :id - 66
\set c34 :id - 65
\set c35 :id - 64
\set c36 :id - 63
\set c37 :id - 62
\set c38 :id - 61
\set c39 :id - 60
\set c40 :id - 59
\set c41 :id - 58
\set c42 :id - 57
\set c43 :id - 56
\set c44 :id - 55
\set c45 :id - 54
\set c46 :id - 53
\set c47 :id - 52
\set c48 :id - 51
\set c49 :id - 50
\set c50 :id - 49
\set c51 :id - 48
\set c52 :id - 47
\set c53 :id - 46
\set c54 :id - 45
\set c55 :id - 44
\set c56 :id - 43
\set c57 :id - 42
\set c58 :id - 41
\set c59 :id - 40
\set c60 :id - 39
\set c61 :id - 38
\set c62 :id - 37
\set c63 :id - 36
\set c64 :id - 35
\set c65 :id - 34
\set c66 :id - 33
\set c67 :id - 32
\set c68 :id - 31
\set c69 :id - 30
\set c70 :id - 29
\set c71 :id - 28
\set c72 :id - 27
\set c73 :id - 26
\set c74 :id - 25
\set c75 :id - 24
\set c76 :id - 23
\set c77 :id - 22
\set c78 :id - 21
\set c79 :id - 20
\set c80 :id - 19
\set c81 :id - 18
\set c82 :id - 17
\set c83 :id - 16
\set c84 :id - 15
\set c85 :id - 14
\set c86 :id - 13
\set c87 :id - 12
\set c88 :id - 11
\set c89 :id - 10
\set c90 :id - 9
\set c91 :id - 8
\set c92 :id - 7
\set c93 :id - 6
\set c94 :id - 5
\set c95 :id - 4
\set c96 :id - 3
\set c97 :id - 2
\set c98 :id - 1
\set c99 :id - 0
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c0 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c0;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s4p2), updated_at = NOW() WHERE backend_name = :s4p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c1 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c1;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s9p2), updated_at = NOW() WHERE backend_name = :s9p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c2 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c2;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s14p2), updated_at = NOW() WHERE backend_name = :s14p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c3 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c3;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s19p2), updated_at = NOW() WHERE backend_name = :s19p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c4 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c4;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s24p2), updated_at = NOW() WHERE backend_name = :s24p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c5 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c5;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s29p2), updated_at = NOW() WHERE backend_name = :s29p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c6 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c6;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s34p2), updated_at = NOW() WHERE backend_name = :s34p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c7 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c7;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s39p2), updated_at = NOW() WHERE backend_name = :s39p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c8 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c8;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s44p2), updated_at = NOW() WHERE backend_name = :s44p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c9 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c9;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s49p2), updated_at = NOW() WHERE backend_name = :s49p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c10 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c10;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s54p2), updated_at = NOW() WHERE backend_name = :s54p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c11 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c11;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s59p2), updated_at = NOW() WHERE backend_name = :s59p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c12 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c12;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s64p2), updated_at = NOW() WHERE backend_name = :s64p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c13 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c13;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s69p2), updated_at = NOW() WHERE backend_name = :s69p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c14 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c14;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s74p2), updated_at = NOW() WHERE backend_name = :s74p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c15 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c15;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s79p2), updated_at = NOW() WHERE backend_name = :s79p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c16 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c16;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s84p2), updated_at = NOW() WHERE backend_name = :s84p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c17 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c17;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s89p2), updated_at = NOW() WHERE backend_name = :s89p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c18 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c18;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s94p2), updated_at = NOW() WHERE backend_name = :s94p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c19 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c19;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s99p2), updated_at = NOW() WHERE backend_name = :s99p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c20 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c20;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s104p2), updated_at = NOW() WHERE backend_name = :s104p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c21 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c21;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s109p2), updated_at = NOW() WHERE backend_name = :s109p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c22 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c22;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s114p2), updated_at = NOW() WHERE backend_name = :s114p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c23 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c23;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s119p2), updated_at = NOW() WHERE backend_name = :s119p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c24 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c24;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s124p2), updated_at = NOW() WHERE backend_name = :s124p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c25 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c25;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s129p2), updated_at = NOW() WHERE backend_name = :s129p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c26 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c26;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s134p2), updated_at = NOW() WHERE backend_name = :s134p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c27 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c27;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s139p2), updated_at = NOW() WHERE backend_name = :s139p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c28 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c28;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s144p2), updated_at = NOW() WHERE backend_name = :s144p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c29 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c29;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s149p2), updated_at = NOW() WHERE backend_name = :s149p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c30 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c30;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s154p2), updated_at = NOW() WHERE backend_name = :s154p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c31 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c31;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s159p2), updated_at = NOW() WHERE backend_name = :s159p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c32 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c32;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s164p2), updated_at = NOW() WHERE backend_name = :s164p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c33 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c33;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s169p2), updated_at = NOW() WHERE backend_name = :s169p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c34 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c34;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s174p2), updated_at = NOW() WHERE backend_name = :s174p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c35 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c35;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s179p2), updated_at = NOW() WHERE backend_name = :s179p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c36 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c36;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s184p2), updated_at = NOW() WHERE backend_name = :s184p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c37 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c37;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s189p2), updated_at = NOW() WHERE backend_name = :s189p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c38 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c38;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s194p2), updated_at = NOW() WHERE backend_name = :s194p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c39 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c39;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s199p2), updated_at = NOW() WHERE backend_name = :s199p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c40 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c40;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s204p2), updated_at = NOW() WHERE backend_name = :s204p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c41 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c41;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s209p2), updated_at = NOW() WHERE backend_name = :s209p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c42 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c42;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s214p2), updated_at = NOW() WHERE backend_name = :s214p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c43 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c43;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s219p2), updated_at = NOW() WHERE backend_name = :s219p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c44 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c44;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s224p2), updated_at = NOW() WHERE backend_name = :s224p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c45 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c45;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s229p2), updated_at = NOW() WHERE backend_name = :s229p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c46 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c46;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s234p2), updated_at = NOW() WHERE backend_name = :s234p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c47 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c47;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s239p2), updated_at = NOW() WHERE backend_name = :s239p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c48 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c48;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s244p2), updated_at = NOW() WHERE backend_name = :s244p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c49 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c49;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s249p2), updated_at = NOW() WHERE backend_name = :s249p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c50 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c50;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s254p2), updated_at = NOW() WHERE backend_name = :s254p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c51 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c51;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s259p2), updated_at = NOW() WHERE backend_name = :s259p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c52 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c52;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s264p2), updated_at = NOW() WHERE backend_name = :s264p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c53 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c53;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s269p2), updated_at = NOW() WHERE backend_name = :s269p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c54 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c54;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s274p2), updated_at = NOW() WHERE backend_name = :s274p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c55 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c55;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s279p2), updated_at = NOW() WHERE backend_name = :s279p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c56 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c56;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s284p2), updated_at = NOW() WHERE backend_name = :s284p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c57 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c57;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s289p2), updated_at = NOW() WHERE backend_name = :s289p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c58 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c58;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s294p2), updated_at = NOW() WHERE backend_name = :s294p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c59 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c59;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s299p2), updated_at = NOW() WHERE backend_name = :s299p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c60 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c60;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s304p2), updated_at = NOW() WHERE backend_name = :s304p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c61 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c61;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s309p2), updated_at = NOW() WHERE backend_name = :s309p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c62 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c62;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s314p2), updated_at = NOW() WHERE backend_name = :s314p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c63 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c63;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s319p2), updated_at = NOW() WHERE backend_name = :s319p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c64 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c64;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s324p2), updated_at = NOW() WHERE backend_name = :s324p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c65 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c65;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s329p2), updated_at = NOW() WHERE backend_name = :s329p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c66 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c66;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s334p2), updated_at = NOW() WHERE backend_name = :s334p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c67 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c67;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s339p2), updated_at = NOW() WHERE backend_name = :s339p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c68 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c68;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s344p2), updated_at = NOW() WHERE backend_name = :s344p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c69 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c69;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s349p2), updated_at = NOW() WHERE backend_name = :s349p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c70 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c70;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s354p2), updated_at = NOW() WHERE backend_name = :s354p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c71 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c71;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s359p2), updated_at = NOW() WHERE backend_name = :s359p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c72 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c72;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s364p2), updated_at = NOW() WHERE backend_name = :s364p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c73 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c73;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s369p2), updated_at = NOW() WHERE backend_name = :s369p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c74 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c74;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s374p2), updated_at = NOW() WHERE backend_name = :s374p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c75 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c75;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s379p2), updated_at = NOW() WHERE backend_name = :s379p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c76 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c76;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s384p2), updated_at = NOW() WHERE backend_name = :s384p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c77 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c77;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s389p2), updated_at = NOW() WHERE backend_name = :s389p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c78 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c78;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s394p2), updated_at = NOW() WHERE backend_name = :s394p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c79 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c79;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s399p2), updated_at = NOW() WHERE backend_name = :s399p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c80 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c80;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s404p2), updated_at = NOW() WHERE backend_name = :s404p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c81 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c81;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s409p2), updated_at = NOW() WHERE backend_name = :s409p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c82 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c82;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s414p2), updated_at = NOW() WHERE backend_name = :s414p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c83 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c83;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s419p2), updated_at = NOW() WHERE backend_name = :s419p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c84 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c84;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s424p2), updated_at = NOW() WHERE backend_name = :s424p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c85 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c85;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s429p2), updated_at = NOW() WHERE backend_name = :s429p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c86 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c86;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s434p2), updated_at = NOW() WHERE backend_name = :s434p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c87 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c87;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s439p2), updated_at = NOW() WHERE backend_name = :s439p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c88 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c88;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s444p2), updated_at = NOW() WHERE backend_name = :s444p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c89 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c89;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s449p2), updated_at = NOW() WHERE backend_name = :s449p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c90 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c90;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s454p2), updated_at = NOW() WHERE backend_name = :s454p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c91 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c91;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s459p2), updated_at = NOW() WHERE backend_name = :s459p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c92 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c92;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s464p2), updated_at = NOW() WHERE backend_name = :s464p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c93 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c93;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s469p2), updated_at = NOW() WHERE backend_name = :s469p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c94 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c94;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s474p2), updated_at = NOW() WHERE backend_name = :s474p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c95 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c95;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s479p2), updated_at = NOW() WHERE backend_name = :s479p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c96 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c96;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s484p2), updated_at = NOW() WHERE backend_name = :s484p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c97 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c97;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s489p2), updated_at = NOW() WHERE backend_name = :s489p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c98 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c98;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s494p2), updated_at = NOW() WHERE backend_name = :s494p1;
COMMIT;
BEGIN;
SELECT id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, storage_key FROM cleanup_queue WHERE id = :c99 AND claimed_by = :claimed_by AND claimed_at = :claimed_at FOR UPDATE;
DELETE FROM cleanup_queue WHERE id = :c99;
UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - :s499p2), updated_at = NOW() WHERE backend_name = :s499p1;
COMMIT;
