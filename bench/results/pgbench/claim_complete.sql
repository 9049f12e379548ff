-- claim_pending_cleanups + 100 × complete_cleanup_item: generated from the statements s3o sent (captured)
WITH picked AS ( SELECT id, claimed_at IS NOT NULL AS reclaimed FROM cleanup_queue WHERE next_retry <= NOW() AND attempts < 10 AND (claimed_at IS NULL OR claimed_at < NOW() - :s0p3::bigint * INTERVAL '1 microsecond') ORDER BY created_at, id LIMIT :s0p1 FOR UPDATE SKIP LOCKED), claimed AS ( UPDATE cleanup_queue c SET claimed_at = NOW(), claimed_by = :s0p2 FROM picked WHERE c.id = picked.id RETURNING c.id, c.backend_name, c.object_key, c.reason, c.attempts, c.size_bytes, c.claimed_at, c.claimed_by, picked.reclaimed) SELECT * FROM claimed ORDER BY id \aset
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
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c0 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c1 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c2 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c3 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c4 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c5 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c6 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c7 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c8 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c9 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c10 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c11 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c12 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c13 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c14 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c15 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c16 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c17 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c18 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c19 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c20 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c21 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c22 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c23 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c24 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c25 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c26 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c27 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c28 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c29 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c30 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c31 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c32 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c33 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c34 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c35 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c36 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c37 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c38 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c39 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c40 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c41 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c42 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c43 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c44 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c45 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c46 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c47 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c48 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c49 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c50 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c51 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c52 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c53 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c54 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c55 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c56 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c57 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c58 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c59 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c60 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c61 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c62 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c63 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c64 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c65 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c66 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c67 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c68 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c69 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c70 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c71 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c72 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c73 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c74 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c75 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c76 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c77 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c78 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c79 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c80 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c81 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c82 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c83 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c84 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c85 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c86 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c87 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c88 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c89 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c90 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c91 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c92 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c93 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c94 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c95 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c96 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c97 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c98 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
WITH gone AS (DELETE FROM cleanup_queue WHERE id = :c99 RETURNING backend_name, size_bytes) UPDATE backend_quotas q SET orphan_bytes = GREATEST(0, q.orphan_bytes - gone.size_bytes), updated_at = NOW() FROM gone WHERE q.backend_name = gone.backend_name;
