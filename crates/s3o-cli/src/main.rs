//! `s3o`: see and repair the s3o ledger from a shell.
//!
//! ```text
//! s3o [--db URL] [--json] [--bytes] <command>
//!   migrate                         apply pending migrations
//!   schema                          current vs expected schema version
//!   status                          per-backend quotas, queue rows by state (due, claimed,
//!                                   waiting), DLQ depth, intents, uploads
//!   backends set NAME --limit SIZE  create or change a backend's quota (0 = unlimited)
//!   backends remove NAME --yes      delete everything a backend holds in the ledger
//!   dlq list [--backend B]          dead-lettered cleanups
//!   dlq requeue [--backend B]       move dead-lettered cleanups back to the queue
//!   dlq write-off ID...             drop DLQ rows and release their orphan bytes
//!   pending list [--older-than D]   in-flight PUT intents (D like 30s, 15m, 2h, 7d)
//!   verify [--repair]               check bytes_used (copies + open parts) and orphan_bytes against the rows
//!   usage [--month YYYY-MM]         per-backend API requests, egress and ingress of a month
//!                                   (default: the current one, UTC)
//! ```
//!
//! The database comes from `--db`, else `S3O_DATABASE_URL`, else `sqlite://s3o.db`.
//! Exit codes: 0 ok, 1 a check failed (verify found drift), 2 usage or connection error.
//! A password in the URL is never printed.

mod units;

use std::collections::BTreeMap;
use std::process::ExitCode;

use s3o_store::{DbErrorKind, MetadataStore, StoreError, Timestamp};
use serde_json::{Value, json};
use units::{fmt_size, parse_duration, parse_size, period_of, redact_url};

const USAGE: &str = "usage: s3o [--db URL] [--json] [--bytes] <migrate | schema | status | \
backends set NAME --limit SIZE | backends remove NAME --yes | dlq list [--backend B] | \
dlq requeue [--backend B] | dlq write-off ID... | pending list [--older-than DURATION] | \
verify [--repair] | usage [--month YYYY-MM]>";

/// Why the command failed, and its exit code.
enum Failure {
    /// Exit 1: the command ran and a check failed.
    Check(String),
    /// Exit 2: bad usage, unreachable database, wrong schema.
    Usage(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Usage(explain(&e))
    }
}

/// An error in words that name the fix.
fn explain(e: &StoreError) -> String {
    match e {
        StoreError::Database {
            kind: DbErrorKind::Schema,
            ..
        } => {
            format!("{e}\nhint: run `s3o migrate` (or upgrade s3o if the database is newer)")
        }
        StoreError::Database {
            kind: DbErrorKind::Connection,
            ..
        }
        | StoreError::DbUnavailable => {
            format!(
                "{e}\nhint: check that the database is running and that --db / S3O_DATABASE_URL is right"
            )
        }
        StoreError::UnknownBackend { backend } => {
            format!("{e}\nhint: create it with `s3o backends set {backend} --limit SIZE`")
        }
        _ => e.to_string(),
    }
}

struct Opts {
    db: String,
    json: bool,
    raw: bool,
    args: Vec<String>,
}

fn parse_args(argv: Vec<String>) -> Result<Opts, Failure> {
    let mut db = std::env::var("S3O_DATABASE_URL").unwrap_or_else(|_| "sqlite://s3o.db".into());
    let (mut json, mut raw) = (false, false);
    let mut args = Vec::new();
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--db" => {
                db = it
                    .next()
                    .ok_or_else(|| Failure::Usage("--db needs a URL".into()))?
            }
            s if s.starts_with("--db=") => db = s["--db=".len()..].to_owned(),
            "--json" => json = true,
            "--bytes" => raw = true,
            "-h" | "--help" => return Err(Failure::Usage(USAGE.into())),
            _ => args.push(a),
        }
    }
    Ok(Opts {
        db,
        json,
        raw,
        args,
    })
}

fn flag_value(args: &[&str], flag: &str) -> Result<Option<String>, Failure> {
    match args.iter().position(|a| *a == flag) {
        Some(i) => args
            .get(i + 1)
            .map(|v| Some((*v).to_owned()))
            .ok_or_else(|| Failure::Usage(format!("{flag} needs a value"))),
        None => Ok(None),
    }
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("s3o: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        let opts = parse_args(std::env::args().skip(1).collect())?;
        run(&opts).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Check(msg)) => {
            eprintln!("s3o: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("s3o: {msg}");
            ExitCode::from(2)
        }
    }
}

async fn connect(opts: &Opts) -> Result<MetadataStore, Failure> {
    s3o_store::open(&opts.db).await.map_err(|e| {
        Failure::Usage(format!(
            "cannot open {}: {}",
            redact_url(&opts.db),
            explain(&e)
        ))
    })
}

async fn run(opts: &Opts) -> Result<(), Failure> {
    let words: Vec<&str> = opts.args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["migrate"] => {
            let store = connect(opts).await?;
            let v = store.run_migrations().await?;
            out(
                opts,
                json!({"current": v.current, "expected": v.expected}),
                || format!("schema at version {} (expected {})", v.current, v.expected),
            );
            Ok(())
        }
        ["schema"] => {
            let store = connect(opts).await?;
            let v = store.schema_version().await?;
            let state = match v.current.cmp(&v.expected) {
                std::cmp::Ordering::Less => "behind: run `s3o migrate`",
                std::cmp::Ordering::Equal => "up to date",
                std::cmp::Ordering::Greater => "ahead of this binary: upgrade s3o",
            };
            out(
                opts,
                json!({"current": v.current, "expected": v.expected, "state": state}),
                || format!("current {}\nexpected {}\n{state}", v.current, v.expected),
            );
            if v.current != v.expected {
                return Err(Failure::Check(format!("schema {state}")));
            }
            Ok(())
        }
        ["status"] => status(opts).await,
        ["usage", rest @ ..] => usage(opts, rest).await,
        ["backends", "set", name, rest @ ..] => {
            let limit = flag_value(rest, "--limit")?.ok_or_else(|| {
                Failure::Usage("backends set needs --limit SIZE (0 = unlimited)".into())
            })?;
            let bytes = parse_size(&limit).map_err(Failure::Usage)?;
            let store = connect(opts).await?;
            store.verify_schema_version().await?;
            store
                .sync_quota_limits(&[((*name).to_owned(), bytes)])
                .await?;
            out(opts, json!({"backend": name, "bytes_limit": bytes}), || {
                let shown = if bytes == 0 {
                    "unlimited".into()
                } else {
                    fmt_size(bytes, opts.raw)
                };
                format!("backend {name}: limit {shown}")
            });
            Ok(())
        }
        ["backends", "remove", name, rest @ ..] => {
            if !rest.contains(&"--yes") {
                return Err(Failure::Usage(format!(
                    "removing {name} deletes its ledger rows (copies, queue, DLQ, intents, uploads); add --yes to confirm"
                )));
            }
            let store = connect(opts).await?;
            store.verify_schema_version().await?;
            let (objects, bytes) = store.backend_object_stats(name).await?;
            store.delete_backend_data(name).await?;
            out(
                opts,
                json!({"backend": name, "removed_objects": objects, "removed_bytes": bytes}),
                || {
                    format!(
                        "backend {name} removed ({objects} copies, {})",
                        fmt_size(bytes, opts.raw)
                    )
                },
            );
            Ok(())
        }
        ["dlq", "list", rest @ ..] => {
            let backend = flag_value(rest, "--backend")?;
            let store = connect(opts).await?;
            store.verify_schema_version().await?;
            let rows = store.list_cleanup_dlq(backend.as_deref(), 10_000).await?;
            let v: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({"id": r.id, "backend": r.backend_name, "key": r.object_key, "size_bytes": r.size_bytes,
                           "attempts": r.attempts, "reason": r.reason, "last_error": r.last_error,
                           "moved_at_us": r.moved_at.as_micros()})
                })
                .collect();
            out(opts, Value::Array(v), || {
                let mut t = vec![vec![
                    "ID".into(),
                    "BACKEND".into(),
                    "KEY".into(),
                    "SIZE".into(),
                    "ATTEMPTS".into(),
                    "LAST ERROR".into(),
                ]];
                for r in &rows {
                    t.push(vec![
                        r.id.to_string(),
                        r.backend_name.clone(),
                        r.object_key.clone(),
                        fmt_size(r.size_bytes, opts.raw),
                        r.attempts.to_string(),
                        r.last_error.clone(),
                    ]);
                }
                format!("{}{} row(s)", table(&t), rows.len())
            });
            Ok(())
        }
        ["dlq", "requeue", rest @ ..] => {
            let backend = flag_value(rest, "--backend")?;
            let store = connect(opts).await?;
            store.verify_schema_version().await?;
            let n = store.requeue_cleanup_dlq(backend.as_deref()).await?;
            out(opts, json!({"requeued": n}), || {
                format!("{n} row(s) moved back to the cleanup queue")
            });
            Ok(())
        }
        ["dlq", "write-off", ids @ ..] => {
            if ids.is_empty() {
                return Err(Failure::Usage(
                    "dlq write-off needs one or more DLQ ids (see `s3o dlq list`)".into(),
                ));
            }
            let ids: Vec<i64> = ids
                .iter()
                .map(|s| {
                    s.parse()
                        .map_err(|_| Failure::Usage(format!("not a DLQ id: {s:?}")))
                })
                .collect::<Result<_, _>>()?;
            let store = connect(opts).await?;
            store.verify_schema_version().await?;
            let n = store.write_off_cleanup_dlq(&ids).await?;
            out(
                opts,
                json!({"written_off": n, "requested": ids.len()}),
                || {
                    format!(
                        "{n} of {} row(s) written off; their bytes left orphan_bytes",
                        ids.len()
                    )
                },
            );
            if n as usize != ids.len() {
                return Err(Failure::Check(format!(
                    "{} id(s) were not in the DLQ",
                    ids.len() - n as usize
                )));
            }
            Ok(())
        }
        ["pending", "list", rest @ ..] => {
            let age = match flag_value(rest, "--older-than")? {
                Some(d) => parse_duration(&d).map_err(Failure::Usage)?,
                None => std::time::Duration::ZERO,
            };
            let store = connect(opts).await?;
            store.verify_schema_version().await?;
            let rows = store.get_stale_pending(age, 10_000).await?;
            let now = Timestamp::now().as_micros();
            let v: Vec<Value> = rows
                .iter()
                .map(|p| json!({"intent_id": p.intent_id, "key": p.object_key, "backend": p.backend_name,
                               "size_bytes": p.size_bytes, "age_seconds": (now - p.created_at.as_micros()) / 1_000_000}))
                .collect();
            out(opts, Value::Array(v), || {
                let mut t = vec![vec![
                    "INTENT".into(),
                    "BACKEND".into(),
                    "KEY".into(),
                    "SIZE".into(),
                    "AGE".into(),
                ]];
                for p in &rows {
                    t.push(vec![
                        p.intent_id.clone(),
                        p.backend_name.clone(),
                        p.object_key.clone(),
                        fmt_size(p.size_bytes, opts.raw),
                        format!("{}s", (now - p.created_at.as_micros()) / 1_000_000),
                    ]);
                }
                format!("{}{} intent(s)", table(&t), rows.len())
            });
            Ok(())
        }
        ["verify", rest @ ..] => verify(opts, rest.contains(&"--repair")).await,
        [] => Err(Failure::Usage(USAGE.into())),
        other => Err(Failure::Usage(format!(
            "unknown command {:?}\n{USAGE}",
            other.join(" ")
        ))),
    }
}

fn out(opts: &Opts, v: Value, human: impl FnOnce() -> String) {
    if opts.json {
        println!("{v}");
    } else {
        println!("{}", human());
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}

async fn status(opts: &Opts) -> Result<(), Failure> {
    let store = connect(opts).await?;
    store.verify_schema_version().await?;
    let quotas = store.get_quota_stats().await?;
    let objects = store.get_object_counts().await?;
    // Versioning's share: noncurrent copies and bytes per backend (already inside OBJECTS
    // and USED), and the delete markers, which hold no bytes.
    let versions = store.get_version_stats().await?;
    let noncurrent = |b: &str| versions.noncurrent.get(b).copied().unwrap_or_default();
    let uploads = store.get_active_multipart_counts().await?;
    let queue = store.cleanup_queue_depth().await?;
    // Every queue row in exactly one state, so none is invisible.
    let states = store.cleanup_queue_states().await?;
    let dlq = store.cleanup_dlq_depth().await?;
    let pending = store.count_pending().await?;
    let active_uploads: i64 = uploads.values().sum();
    let backends: Vec<Value> = quotas
        .values()
        .map(|q| {
            let available = (q.bytes_limit != 0).then(|| q.bytes_limit - q.bytes_used - q.orphan_bytes);
            json!({"backend": q.backend_name, "bytes_limit": q.bytes_limit, "bytes_used": q.bytes_used,
                   "orphan_bytes": q.orphan_bytes, "available_bytes": available,
                   "objects": objects.get(&q.backend_name).copied().unwrap_or(0),
                   "noncurrent_versions": noncurrent(&q.backend_name).copies,
                   "noncurrent_bytes": noncurrent(&q.backend_name).bytes})
        })
        .collect();
    let v = json!({"database": redact_url(&opts.db), "backends": backends, "cleanup_queue_depth": queue,
                   "cleanup_queue": {"due": states.due, "claimed": states.claimed, "waiting": states.waiting},
                   "cleanup_dlq_depth": dlq, "pending_intents": pending, "active_multipart_uploads": active_uploads,
                   "delete_markers": versions.delete_markers});
    out(opts, v, || {
        let mut t = vec![vec![
            "BACKEND".into(),
            "LIMIT".into(),
            "USED".into(),
            "ORPHAN".into(),
            "AVAILABLE".into(),
            "OBJECTS".into(),
            "NONCURRENT".into(),
            "NONCURRENT BYTES".into(),
        ]];
        for q in quotas.values() {
            let (limit, avail) = if q.bytes_limit == 0 {
                ("unlimited".to_string(), "unlimited".to_string())
            } else {
                (
                    fmt_size(q.bytes_limit, opts.raw),
                    fmt_size(q.bytes_limit - q.bytes_used - q.orphan_bytes, opts.raw),
                )
            };
            t.push(vec![
                q.backend_name.clone(),
                limit,
                fmt_size(q.bytes_used, opts.raw),
                fmt_size(q.orphan_bytes, opts.raw),
                avail,
                objects
                    .get(&q.backend_name)
                    .copied()
                    .unwrap_or(0)
                    .to_string(),
                noncurrent(&q.backend_name).copies.to_string(),
                fmt_size(noncurrent(&q.backend_name).bytes, opts.raw),
            ]);
        }
        format!(
            "database {}\n{}cleanup queue {queue} (due {}, claimed {}, waiting {})\ndead letters  {dlq}\npending       {pending}\nmultipart     {active_uploads}\ndelete markers {}",
            redact_url(&opts.db),
            table(&t),
            states.due,
            states.claimed,
            states.waiting,
            versions.delete_markers
        )
    });
    Ok(())
}

/// `usage`: the month's counts the gateways flushed to `backend_usage`, per backend (every
/// backend of the ledger, zero when it made no call). The budgets live in the gateway's
/// configuration: `s3o-gateway usage --config FILE` shows them beside these counts.
async fn usage(opts: &Opts, rest: &[&str]) -> Result<(), Failure> {
    let month = match flag_value(rest, "--month")? {
        Some(m) => m,
        None => period_of(Timestamp::now().as_micros()),
    };
    s3o_store::limits::usage_period(&month).map_err(|e| Failure::Usage(e.to_string()))?;
    let store = connect(opts).await?;
    store.verify_schema_version().await?;
    let counts = store.get_usage_for_period(&month).await?;
    let mut names: Vec<String> = store.get_quota_stats().await?.into_keys().collect();
    names.extend(counts.keys().cloned());
    names.sort();
    names.dedup();
    let rows: Vec<(String, s3o_store::UsageStat)> = names
        .into_iter()
        .map(|n| {
            let u = counts.get(&n).copied().unwrap_or_default();
            (n, u)
        })
        .collect();
    let v: Vec<Value> = rows
        .iter()
        .map(|(n, u)| {
            json!({"backend": n, "api_requests": u.api_requests, "egress_bytes": u.egress_bytes,
                   "ingress_bytes": u.ingress_bytes})
        })
        .collect();
    out(opts, json!({"month": month, "backends": v}), || {
        let mut t = vec![vec![
            "BACKEND".into(),
            "REQUESTS".into(),
            "EGRESS".into(),
            "INGRESS".into(),
        ]];
        for (n, u) in &rows {
            t.push(vec![
                n.clone(),
                u.api_requests.to_string(),
                fmt_size(u.egress_bytes, opts.raw),
                fmt_size(u.ingress_bytes, opts.raw),
            ]);
        }
        format!("month {month} (UTC)\n{}", table(&t))
    });
    Ok(())
}

async fn verify(opts: &Opts, repair: bool) -> Result<(), Failure> {
    let store = connect(opts).await?;
    store.verify_schema_version().await?;
    let quotas = store.get_quota_stats().await?;
    let cleanup = store.cleanup_bytes_by_backend().await?;
    // Recorded parts of open uploads are charged to `bytes_used` like copies.
    let names: Vec<String> = quotas.keys().cloned().collect();
    let parts: BTreeMap<String, i64> = if names.is_empty() {
        BTreeMap::new()
    } else {
        store
            .backend_capacities(&names)
            .await?
            .into_iter()
            .map(|c| (c.backend_name, c.inflight_bytes))
            .collect()
    };
    let mut drift: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut report = Vec::new();
    for q in quotas.values() {
        let (_, copies) = store.backend_object_stats(&q.backend_name).await?;
        let part_bytes = parts.get(&q.backend_name).copied().unwrap_or(0);
        let truth = copies + part_bytes;
        let (queued, dead) = cleanup.get(&q.backend_name).copied().unwrap_or((0, 0));
        let used_drift = q.bytes_used - truth;
        let orphan_drift = q.orphan_bytes - (queued + dead);
        if used_drift != 0 || orphan_drift != 0 {
            drift.insert(q.backend_name.clone(), (used_drift, orphan_drift));
        }
        report.push(json!({"backend": q.backend_name, "bytes_used": q.bytes_used, "size_bytes_total": truth,
                           "part_bytes": part_bytes,
                           "used_drift": used_drift, "orphan_bytes": q.orphan_bytes,
                           "queued_bytes": queued, "dlq_bytes": dead, "orphan_drift": orphan_drift}));
    }
    let mut repaired = BTreeMap::new();
    if repair && drift.values().any(|(u, _)| *u != 0) {
        repaired = store.reconcile_usage().await?;
    }
    let v = json!({"backends": report, "drifted": drift.len(), "repaired": repaired});
    out(opts, v, || {
        let mut t = vec![vec![
            "BACKEND".into(),
            "USED".into(),
            "Σ SIZES".into(),
            "USED DRIFT".into(),
            "ORPHAN".into(),
            "QUEUE+DLQ".into(),
            "ORPHAN DRIFT".into(),
        ]];
        for q in quotas.values() {
            let (u, o) = drift.get(&q.backend_name).copied().unwrap_or((0, 0));
            let (queued, dead) = cleanup.get(&q.backend_name).copied().unwrap_or((0, 0));
            t.push(vec![
                q.backend_name.clone(),
                fmt_size(q.bytes_used, opts.raw),
                fmt_size(q.bytes_used - u, opts.raw),
                u.to_string(),
                fmt_size(q.orphan_bytes, opts.raw),
                fmt_size(queued + dead, opts.raw),
                o.to_string(),
            ]);
        }
        let mut s = table(&t);
        for (b, d) in &repaired {
            s.push_str(&format!("repaired {b}: bytes_used changed by {d}\n"));
        }
        s.push_str(if drift.is_empty() {
            "ledger consistent"
        } else {
            "drift found"
        });
        s
    });
    let used_left = drift
        .iter()
        .any(|(b, (u, _))| *u != 0 && !repaired.contains_key(b));
    let orphan_left = drift.values().any(|(_, o)| *o != 0);
    if used_left || orphan_left {
        return Err(Failure::Check(format!(
            "drift on {} backend(s){}",
            drift.len(),
            if repair {
                "; orphan_bytes drift is not repaired automatically: write off or requeue DLQ rows deliberately"
            } else {
                "; run `s3o verify --repair` to fix bytes_used"
            }
        )));
    }
    Ok(())
}
