//! # s3o-conformance
//!
//! The engine-agnostic conformance suite of the s3o metadata store. Every case is a plain
//! `pub async fn case(store: MetadataStore)` that panics when the contract is broken;
//! [`cases()`] lists them all, and [`for_each_case!`] hands the same list to a macro so each
//! engine's `cargo test` target gets one test per case. Each case receives a fresh, migrated
//! store and ends, when it mutated anything, with [`support::assert_ledger`]:
//! `bytes_used == Σ size_bytes` on every backend.
//!
//! Run it with `cargo test -p s3o-conformance` (one test per case per engine) or
//! `cargo run -p s3o-conformance --bin conformance -- --engine all` (a case × engine matrix).

// The workspace README's example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadme;

pub use s3o_store::BoxFuture;
use s3o_store::MetadataStore;

#[cfg(feature = "testcontainers")]
pub mod container;
pub mod harness;
pub mod support;

pub mod admin;
pub mod breaker;
pub mod buckets;
pub mod cleanup;
pub mod cors;
pub mod encryption;
pub mod integrity;
pub mod lifecycle;
pub mod listing;
pub mod locks;
pub mod metadata;
pub mod model;
pub mod multipart;
pub mod notification;
pub mod objects;
pub mod outbox;
pub mod pending;
pub mod quota;
pub mod replication;
pub mod usage;
pub mod validation;
pub mod versioning;

/// The store a case runs against.
pub type Db = MetadataStore;

/// One conformance case.
#[derive(Clone, Copy)]
pub struct Case {
    /// `module::function`.
    pub name: &'static str,
    /// Runs the case; panics on a broken contract.
    pub run: fn(Db) -> BoxFuture<'static, ()>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Calls `$callback! { module: [case, ...], ... }` with every case, each listed once.
#[macro_export]
macro_rules! for_each_case {
    ($callback:ident) => {
        $callback! {
            buckets: [
                create_get_round_trip,
                create_is_idempotent,
                concurrent_create_of_one_name,
                list_in_byte_order,
                name_rules,
                bad_settings_change_nothing,
                unknown_bucket_not_found,
                update_replaces_settings_and_keeps_created_at,
                extra_field_set_and_removed_alone,
                extra_field_refusals_change_nothing,
                sync_creates_refreshes_and_never_deletes,
                delete_empty_bucket,
                delete_refused_while_objects,
                delete_refused_while_multipart_upload,
                delete_refused_while_pending_write,
                commit_into_bucket_requires_the_bucket,
                delete_and_commit_never_both_succeed,
            ],
            cors: [
                cors_set_get_delete_round_trip,
                cors_invalid_config_changes_nothing,
                cors_unknown_bucket_not_found,
                cors_removed_with_its_bucket,
                cors_independent_of_bucket_settings,
            ],
            objects: [
                record_new_object_charges_quota,
                record_zero_size_object,
                overwrite_same_backend_is_not_displaced,
                overwrite_other_backend_displaces_copy,
                overwrite_replicated_object_displaces_every_other_copy,
                equal_size_overwrite_keeps_quota,
                stored_form_round_trips,
                plaintext_form_drops_encryption_fields,
                record_unknown_backend_changes_nothing,
                record_over_quota_changes_nothing,
                overwrite_admitted_by_net_delta,
                delete_object_returns_every_copy,
                delete_missing_object_is_not_found,
                batch_delete_empty_input,
                batch_delete_removes_rows_and_debits_quotas,
                batch_delete_duplicates_and_replicas,
                delete_object_location_debits_locked_size,
                delete_object_location_missing_copy,
                import_object_new_then_twice,
                import_never_overwrites,
                import_over_quota_rolls_back,
                import_unknown_backend,
                move_carries_stored_form_and_created_at,
                move_no_op_paths,
                move_of_an_overwritten_version_is_refused,
                move_over_target_quota_rolls_back,
                move_unknown_target_changes_nothing,
                object_backends_for_keys,
                locations_oldest_first,
                record_and_clear_pending,
                unicode_and_limit_keys_round_trip,
                concurrent_overwrites_keep_one_copy,
                concurrent_opposite_moves,
                concurrent_batch_deletes_overlapping,
                batch_delete_max_keys,
                object_backends_for_many_keys,
                overwrite_encrypted_with_plaintext,
                record_delete_record_cycle,
                gateway_fields_round_trip,
                conditional_if_none_match_first_committer_wins,
                conditional_if_match_checks_the_locked_version,
                concurrent_conditional_writes_commit_once,
            ],
            outbox: [
                removals_enqueue_their_bytes,
                stale_claimant_changes_nothing,
                single_copy_removals_return_their_claims,
                clear_pending_checks_ownership,
                backend_removal_racing_writes,
                queue_states_partition_rows,
                orphaned_bytes_enqueue_and_charge_together,
            ],
            listing: [
                flat_listing_byte_order,
                flat_pages_of_1,
                flat_pages_of_2,
                flat_pages_of_3,
                flat_pages_of_1000,
                delimited_pages_of_1,
                delimited_pages_of_2,
                delimited_pages_of_3,
                delimited_pages_of_1000,
                delimited_groups_and_leaves,
                delimited_pagination_no_duplicate,
                delimited_with_prefix,
                delimited_multichar_delimiter,
                delimited_agrees_with_flat_order,
                empty_delimiter_is_flat,
                delimited_token_skips_group,
                prefix_wildcards_are_literal,
                prefix_is_case_sensitive,
                prefix_multibyte_utf8,
                prefix_filter_matches_starts_with,
                start_after_between_and_beyond,
                listing_reports_oldest_copy_and_client_size,
                max_keys_default_and_cap,
                by_backend_key_asc_byte_order,
                by_backend_smallest_first,
                expired_objects_with_wildcard_prefix,
                listing_rejects_bad_prefixes,
            ],
            quota: [
                sync_quota_limits_keeps_counters,
                negative_quota_limit_rejected,
                quota_guard_counts_orphan_bytes,
                unlimited_backend_admits_anything,
                unlimited_backend_refuses_a_charge_past_the_largest_counter,
                backend_with_space_order_and_unknown,
                backend_with_space_counts_orphans_and_multipart,
                least_utilized_backend_choice,
                least_utilized_counts_orphans_and_multipart,
                quota_stats_fields,
                reconcile_usage_consistent_is_empty,
                orphan_counters_clamp_and_ignore_unknown,
                overwrite_at_a_new_path_is_guarded_by_its_full_size,
            ],
            cleanup: [
                pending_cleanups_do_not_claim,
                claim_stamps_and_excludes,
                claim_oldest_first_with_limit,
                grace_reclaim_sets_flag,
                retry_clears_claim,
                retry_with_backoff_defers,
                complete_is_idempotent,
                complete_clamps_at_zero,
                move_to_dlq_happy_path,
                move_to_dlq_preserves_last_error,
                move_to_dlq_already_gone,
                list_dlq_scope_and_order,
                requeue_dlq_moves_rows_back,
                requeue_dlq_by_id_moves_only_those,
                write_off_dlq_releases_orphans,
                sweep_stale_cleanup_rows,
                sweep_zero_bytes_no_decrement,
                exhausted_rows_leave_queue,
                concurrent_claimers_disjoint,
                cleanup_unknown_backend_enqueue,
                cleanup_bytes_by_backend_sums,
                enqueue_fields_round_trip,
            ],
            pending: [
                insert_pending_round_trip,
                insert_pending_plain_nullable_fields,
                insert_pending_unknown_backend,
                insert_pending_duplicate_id,
                delete_pending_and_by_backend,
                stale_pending_cutoff_and_limit,
                promote_committed_carries_stored_form,
                promote_committed_displaces_older_copies,
                promote_already_resolved,
                promote_superseded_by_newer_write,
                promote_equal_timestamp_promotes,
                promote_twice_second_already_resolved,
                promote_over_quota_is_abandoned,
                concurrent_promotions_commit_once,
                promote_races_write_lock_then_claim,
                replica_does_not_supersede_newer_intent,
                promote_uses_stored_intent_not_caller_copy,
                promote_intent_of_another_key_refused,
                abandon_queues_bytes_and_never_promotes,
                touch_keeps_running_writes_and_gone_intents_refuse_commits,
                backend_upload_id_rides_with_the_intent,
            ],
            metadata: [
                attributes_and_tags_round_trip,
                overwrite_replaces_attributes_and_tags,
                set_tags_on_every_copy_then_delete_removes,
                invalid_tags_and_attributes_refused_without_change,
                intent_carries_attributes_and_tags,
                multipart_upload_and_part_checksums_round_trip,
            ],
            multipart: [
                create_get_round_trip,
                create_plain_upload,
                unknown_upload_not_found,
                create_unknown_backend,
                part_number_bounds,
                record_part_unknown_upload,
                parts_ordered_and_upserted,
                part_storage_key_round_trips_and_upserts,
                part_encryption_fields,
                list_and_count_by_prefix,
                stale_uploads,
                uploads_by_backend,
                delete_upload_cascades_parts,
                concurrent_part_upserts,
                parts_are_charged_swapped_and_released,
                complete_turns_parts_into_the_object,
                concurrent_parts_admitted_exactly,
            ],
            replication: [
                replica_copies_stored_form,
                replica_no_op_paths,
                replica_of_an_overwritten_version_is_refused,
                replica_over_quota_rolls_back,
                under_replicated_objects,
                under_replicated_excluding,
                over_replicated_objects_and_count,
                remove_excess_copy_paths,
                remove_excess_refuses_last_dek_holder,
            ],
            encryption: [
                encryption_admin_lifecycle,
                mark_encrypted_ignores_limit,
                mark_keeps_hash_and_managed,
                mark_missing_copy_false,
                unencrypted_keyset_visits_each_once,
                encrypted_offset_and_keyset_paging,
                rewrap_only_the_key_read,
                convert_version_swaps_every_copy_or_nothing,
                rewrap_reaches_every_holder,
                rewrap_loses_to_client_writes,
                rewrap_racing_part_uploads,
                convert_noncurrent_version_swaps_or_nothing,
            ],
            integrity: [
                objects_without_hash,
                least_recently_scrubbed_order,
                scrub_backend_filter_and_limit,
                dashboard_counts,
                remove_bad_copy_checks_the_version,
            ],
            notification: [
                outbox_lifecycle,
                outbox_rejects_invalid_json,
                outbox_order_and_limit,
                outbox_drops_after_ten_attempts,
                outbox_payload_stored_verbatim,
            ],
            lifecycle: [
                lifecycle_round_trip_and_survives_sync,
                lifecycle_bad_rules_change_nothing,
                delete_object_version_spares_newer_writes,
            ],
            usage: [
                usage_flush_accumulates,
                usage_unknown_backend,
                concurrent_usage_flushes_converge,
            ],
            admin: [
                verify_after_migrate,
                migrate_twice_is_noop,
                backend_object_stats_counts,
                delete_backend_data_removes_everything,
                delete_backend_data_unknown,
                close_then_calls_fail,
            ],
            locks: [
                lock_runs_critical_section,
                lock_exclusive_per_id,
                locks_independent_across_ids,
                lock_released_after_error,
                lock_released_after_panic,
            ],
            breaker: [
                calls_succeed_while_closed,
                answers_do_not_open_breaker,
            ],
            model: [
                random_ops_tight_limits,
                random_ops_roomy_limits,
                random_ops_tight_limits_seed_3,
                random_keys_listing_matches_model,
            ],
            validation: [
                empty_key_rejected,
                long_key_rejected,
                nul_key_rejected,
                negative_sizes_rejected,
                part_numbers_rejected,
                oversized_batch_rejected,
                bad_backend_names_rejected,
                nul_text_rejected,
                out_of_range_values_rejected,
                extreme_timestamps_round_trip,
            ],
            versioning: [
                versioning_state_round_trip,
                unversioned_bucket_keeps_original_contract,
                enabled_overwrite_keeps_previous_version,
                delete_marker_and_undelete,
                delete_version_queues_bytes_and_promotes,
                suspended_replaces_the_null_version,
                list_versions_paginates_in_s3_order,
                versioned_commit_over_quota_changes_nothing,
                random_versioned_ops_match_model,
            ],
        }
    };
}

macro_rules! registry {
    ($($module:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        vec![$($(
            Case {
                name: concat!(stringify!($module), "::", stringify!($name)),
                run: |store: Db| -> BoxFuture<'static, ()> { Box::pin($module::$name(store)) },
            },
        )*)*]
    };
}

/// Every case, in a stable order.
pub fn cases() -> Vec<Case> {
    for_each_case!(registry)
}
