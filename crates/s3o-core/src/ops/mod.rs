//! Every multi-statement operation, written once against [`crate::tx::TxAdapter`].
//!
//! Each operation validates its input before opening a transaction, then follows the global
//! lock order: key lock(s) first (sorted, de-duplicated), row locks next, `backend_quotas` rows
//! last and in sorted backend order ([`apply_quota_deltas`]). The quota update is the last
//! statement of a transaction where the operation allows it, so the hot quota row stays locked
//! as briefly as possible. Sizes charged or debited are always read from rows locked inside
//! the transaction, never taken from the caller.

mod backend;
mod buckets;
mod cleanup;
mod encryption;
mod integrity;
mod listing;
mod multipart;
mod objects;
mod pending;
mod quota;
mod replication;
mod tags;
mod versions;

pub use backend::delete_backend_data;
pub use buckets::{delete_bucket, sync_buckets};
pub use cleanup::{
    complete_cleanup_item, enqueue_orphaned_bytes, move_cleanup_to_dlq, retry_cleanup_item,
    sweep_stale_cleanup_queue_rows, write_off_cleanup_dlq,
};
pub use encryption::{
    convert_noncurrent_version, convert_version, mark_object_decrypted, mark_object_encrypted,
    rewrap_encryption_key, rewrap_stored_key,
};
pub use integrity::remove_bad_copy;
pub use listing::{
    DEFAULT_MAX_KEYS, MAX_MAX_KEYS, list_objects, list_objects_delimited, prefix_successor,
};
pub use multipart::{record_part, release_multipart_upload};
pub use objects::{
    commit_object_in_bucket, delete_object, delete_object_location, delete_object_version,
    delete_objects_batch, import_object, move_object_location, record_object, record_object_if,
    record_object_in_bucket,
};
pub use pending::{abandon_pending, intent_superseded, promote_pending};
pub use quota::{
    QuotaDeltas, apply_ledger_deltas, apply_quota_deltas, pick_backend_with_space,
    pick_least_utilized, reconcile_usage, require_known,
};
pub use replication::{record_replica, remove_excess_copy};
pub use tags::set_object_tags;
pub use versions::{delete_object_in_bucket, list_object_versions, new_version_id};
