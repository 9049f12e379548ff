-- Unlimited backends' stripe grants that cannot overflow. 0006 gave every stripe of a backend
-- without a limit a grant of 2^62: sixteen of them sum past the largest bigint, so enough large
-- charges were admitted for the stripes' total (q.bytes_used + Σ stripe.bytes_used) to leave
-- bigint, and every quota read then failed. From this version on the grants of an unlimited
-- backend share half of the headroom below the largest bigint, so for every backend
--     q.bytes_used + q.orphan_bytes + Σ stripe.bytes_granted <= (bytes_limit, or 2^63 - 1)
-- and no sum a reader or a fold computes can overflow. Here the unused part of the old grants
-- is taken back (each stripe keeps what it charged); the next charge that needs more folds the
-- stripes and grants under the new rule.
UPDATE backend_quota_stripes s SET bytes_granted = s.bytes_used
FROM backend_quotas q
WHERE q.backend_name = s.backend_name AND q.bytes_limit = 0 AND s.bytes_granted > s.bytes_used;
