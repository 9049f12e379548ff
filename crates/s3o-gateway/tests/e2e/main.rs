//! End-to-end tests of s3o-gateway: the gateway started from a TOML configuration in front of
//! in-process s3s-fs servers (real S3 over HTTP on loopback ports) and a local directory,
//! driven by object_store's S3 client with SigV4, plus signed raw requests where an exact
//! status or a malformed request is the point. Every case runs once per ledger engine
//! (`sqlite::…`, `postgres::…`); the PostgreSQL ones use a fresh schema in the database of
//! `S3O_PG_URL` and are skipped, visibly, when it is unset (they fail instead when
//! `S3O_REQUIRE_PG=1`).

mod acl;
mod admin;
mod buckets;
mod compat;
mod console;
mod cors;
mod drills;
mod encryption;
mod failures;
mod faulty;
mod fs_backend;
mod lifecycle;
mod listing;
mod metadata;
mod multipart;
mod proxy;
mod raw;
mod reads;
mod requests;
mod rig;
mod version_workers;
mod versioning;
mod writes;

/// Instantiates every listed case once per ledger engine.
macro_rules! on_both_ledgers {
    ($($module:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        mod sqlite {
            $(mod $module {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::$module::$case(crate::rig::Ledger::Sqlite).await;
                })*
            })*
        }
        mod postgres {
            $(mod $module {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::$module::$case(crate::rig::Ledger::Postgres).await;
                })*
            })*
        }
    };
}

on_both_ledgers! {
    acl: [
        public_bucket_acls_open_only_what_they_grant,
        acl_refusals_change_nothing,
        bucket_tagging_round_trip,
    ],
    versioning: [
        overwrite_delete_undelete,
        list_versions_in_pages,
        copy_version_and_suspend,
        multipart_complete_answers_its_version,
        version_tags_acls_and_attributes,
    ],
    version_workers: [
        drain_moves_every_version,
        rebalance_moves_noncurrent_versions,
        replicator_keeps_noncurrent_versions_at_factor,
    ],
    admin: [
        refuses_non_admins,
        reads_and_buckets,
        dlq_requeue_and_write_off,
        drain_and_remove,
        cli_and_curl,
        drain_cancel_resumes,
        operator_listener_serves_admin,
        object_browser,
        encryption_jobs,
        backend_copies_stream,
        console_sessions,
        console_throttle_and_expiry,
        console_upload,
        delete_prefix,
        cleanup_queue_stream,
    ],
    buckets: [
        create_delete_cycle,
        bucket_name_rules,
        list_buckets_has_creation_dates,
        put_racing_bucket_delete,
        workers_follow_bucket_settings_without_restart,
    ],
    cors: [
        cors_rules_answer_preflights,
        cors_gone_with_its_bucket,
        single_owner_acls_and_listings,
        edge_answers,
    ],
    compat: [
        continuation_token_wins_over_start_after,
        empty_object_ranges,
        list_v1_prefix_not_encoded,
        bucket_versioning_is_unset,
        delete_objects_reports_per_key,
        object_versions_are_the_current_objects,
    ],
    writes: [
        pack_spills_to_next_backend_then_507,
        spread_uses_least_utilised,
        unsigned_backend_payloads_store_the_same_bytes,
        long_bodies_go_as_one_streamed_put,
        overwrite_leaves_only_the_new_bytes,
        delete_and_delete_objects,
        copy_object,
    ],
    reads: [
        get_head_range_after_put_and_overwrite,
        small_reads_come_from_the_cache,
    ],
    requests: [
        upload_part_copy_and_part_reads,
        not_modified_carries_validators,
        post_object_form_uploads,
        chunked_put_without_length,
        overlapping_part_uploads,
        list_uploads_upload_id_marker,
    ],
    lifecycle: [
        lifecycle_configuration_round_trip,
        lifecycle_tag_filters_expire_tagged_keys,
        lifecycle_version_actions_round_trip,
    ],
    metadata: [
        tagging_round_trip,
        stored_headers_round_trip,
        checksums_kept_and_returned,
    ],
    listing: [
        list_v2_prefix_delimiter_and_pages,
        list_v1_markers_and_url_encoding,
    ],
    multipart: [
        multipart_round_trip_etag_n,
        multipart_on_local_directory,
        multipart_list_and_abort,
    ],
    encryption: [
        sealed_objects_round_trip,
        sealed_multipart_round_trip,
        tampered_copies_fail_and_replicas_serve,
        drained_sealed_copy_reads,
        rotation_keeps_objects_readable,
        rotation_covers_versions_and_uploads,
        convert_existing_both_ways,
        convert_covers_noncurrent_versions,
    ],
    failures: [
        bad_signature_stores_nothing,
        body_not_matching_its_signature_stores_nothing,
    ],
    drills: [
        bad_digest_put_never_goes_live,
        delete_after_uncommitted_put_stays_deleted,
        conditional_puts_have_one_winner,
        drain_spares_put_in_flight,
        complete_goes_where_it_fits,
        parts_respect_the_quota,
        parts_quota_holds_across_gateways,
        drain_keeps_open_upload_parts,
        killed_mid_stream_leaves_no_backend_upload,
        reads_racing_overwrites_never_503,
        complete_survives_hangup_and_retry,
        failed_part_retry_keeps_accepted_part,
        fault_backend_self_test,
    ],
}

/// The ledger outage needs a database the test can cut off: PostgreSQL behind a proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ledger_outage_503_on_put_broadcast_on_get() {
    failures::ledger_outage().await;
}

/// The web console in headless Chromium (one ledger: the console only reads the admin API).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium() {
    console::console_in_chromium(rig::Ledger::Sqlite).await;
}

/// The console's object browser in headless Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_object_browser_in_chromium() {
    console::object_browser_in_chromium(rig::Ledger::Sqlite).await;
}

/// Draining a backend from the console in headless Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_drain_in_chromium() {
    console::drain_in_chromium(rig::Ledger::Sqlite).await;
}

/// Requeueing one dead letter from the console in headless Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_requeue_row_in_chromium() {
    console::requeue_row_in_chromium(rig::Ledger::Sqlite).await;
}

/// Removing a retired backend from the console (two steps, a token) in headless Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_remove_in_chromium() {
    console::remove_in_chromium(rig::Ledger::Sqlite).await;
}

/// Uploading, downloading and deleting a file from the console in headless Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_upload_in_chromium() {
    console::upload_in_chromium(rig::Ledger::Sqlite).await;
}

/// Deleting a folder (a prefix, two steps) from the console in headless Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_delete_prefix_in_chromium() {
    console::delete_prefix_in_chromium(rig::Ledger::Sqlite).await;
}

/// Key rotation and decrypt-existing from the console in headless Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_encryption_in_chromium() {
    console::encryption_in_chromium(rig::Ledger::Sqlite).await;
}

/// Encrypted objects cannot be broadcast-read (their key is in the ledger): 503, while
/// plaintext objects still are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ledger_outage_refuses_encrypted_reads() {
    encryption::ledger_outage_refuses_sealed_reads().await;
}
