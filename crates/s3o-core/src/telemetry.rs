//! Metric names and the one place that records them (the `metrics` feature).

use std::time::Duration;

use crate::breaker::BreakerState;
use crate::engine::Engine;
use crate::error::{DbErrorKind, StoreError};

/// Histogram of call latency in seconds; labels `operation`, `engine`.
pub const OPERATION_DURATION: &str = "s3o_operation_duration_seconds";
/// Counter of failed calls; labels `operation`, `engine`, `kind`.
pub const OPERATION_ERRORS: &str = "s3o_operation_errors_total";
/// Gauge of the breaker's state (0 closed, 1 half-open, 2 open); label `engine`.
pub const BREAKER_STATE: &str = "s3o_breaker_state";
/// Counter of breaker transitions; labels `engine`, `to` (`open` or `closed`).
pub const BREAKER_TRANSITIONS: &str = "s3o_breaker_transitions_total";
/// Gauge of live cleanup-queue rows, set whenever the depth is read; label `engine`.
pub const CLEANUP_QUEUE_DEPTH: &str = "s3o_cleanup_queue_depth";
/// Gauge of dead-letter rows, set whenever the depth is read; label `engine`.
pub const CLEANUP_DLQ_DEPTH: &str = "s3o_cleanup_dlq_depth";
/// Counter of cleanup rows claimed again after their earlier claim went stale; label `engine`.
pub const STALE_CLAIMS_RECOVERED: &str = "s3o_cleanup_stale_claims_recovered_total";

/// The `kind` label of an error: the variant, or the database error's kind.
pub fn error_kind(err: &StoreError) -> &'static str {
    match err {
        StoreError::ObjectNotFound { .. } => "object_not_found",
        StoreError::VersionNotFound { .. } => "version_not_found",
        StoreError::MultipartUploadNotFound { .. } => "multipart_upload_not_found",
        StoreError::BucketNotFound { .. } => "bucket_not_found",
        StoreError::BucketNotEmpty { .. } => "bucket_not_empty",
        StoreError::NoSpaceAvailable => "no_space_available",
        StoreError::PreconditionFailed { .. } => "precondition_failed",
        StoreError::PendingIntentGone { .. } => "pending_intent_gone",
        StoreError::VersioningChanged { .. } => "versioning_changed",
        StoreError::DbUnavailable => "db_unavailable",
        StoreError::CleanupItemNotFound { .. } => "cleanup_item_not_found",
        StoreError::LeadershipLost { .. } => "leadership_lost",
        StoreError::UnknownBackend { .. } => "unknown_backend",
        StoreError::CopyHoldsOnlyDek { .. } => "copy_holds_only_dek",
        StoreError::InvalidInput { .. } => "invalid_input",
        StoreError::Database { kind, .. } => match kind {
            DbErrorKind::UniqueViolation => "db_unique_violation",
            DbErrorKind::ForeignKeyViolation => "db_foreign_key_violation",
            DbErrorKind::NotNullViolation => "db_not_null_violation",
            DbErrorKind::CheckViolation => "db_check_violation",
            DbErrorKind::Serialization => "db_serialization",
            DbErrorKind::Deadlock => "db_deadlock",
            DbErrorKind::Busy => "db_busy",
            DbErrorKind::Connection => "db_connection",
            DbErrorKind::Overload => "db_overload",
            DbErrorKind::Schema => "db_schema",
            DbErrorKind::Other => "db_other",
        },
    }
}

/// The value of [`BREAKER_STATE`] for a state.
pub fn breaker_state_value(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    }
}

pub(crate) fn record_call(
    engine: &dyn Engine,
    op: &'static str,
    elapsed: Duration,
    err: Option<&StoreError>,
) {
    let name = engine.engine();
    metrics::histogram!(OPERATION_DURATION, "operation" => op, "engine" => name).record(elapsed);
    if let Some(e) = err {
        metrics::counter!(OPERATION_ERRORS, "operation" => op, "engine" => name, "kind" => error_kind(e))
            .increment(1);
    }
    let breaker = engine.breaker();
    metrics::gauge!(BREAKER_STATE, "engine" => name).set(breaker_state_value(breaker.state()));
    let stats = breaker.stats();
    metrics::counter!(BREAKER_TRANSITIONS, "engine" => name, "to" => "open").absolute(stats.opened);
    metrics::counter!(BREAKER_TRANSITIONS, "engine" => name, "to" => "closed")
        .absolute(stats.closed);
}

pub(crate) fn record_depths(engine: &'static str, queue: Option<i64>, dlq: Option<i64>) {
    if let Some(q) = queue {
        metrics::gauge!(CLEANUP_QUEUE_DEPTH, "engine" => engine).set(q as f64);
    }
    if let Some(d) = dlq {
        metrics::gauge!(CLEANUP_DLQ_DEPTH, "engine" => engine).set(d as f64);
    }
}

pub(crate) fn record_reclaimed(engine: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(STALE_CLAIMS_RECOVERED, "engine" => engine).increment(n);
    }
}
