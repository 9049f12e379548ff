//! `s3o-gateway`: serve the S3 gateway from a config file, or run the self-contained demo.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use s3o_gateway::{Config, Gateway, LogConfig, LogFormat, demo_config};

const USAGE: &str = "usage:
  s3o-gateway serve --config FILE [--log-json]
  s3o-gateway demo [--data DIR] [--port PORT] [--log-json]
  s3o-gateway drain --config FILE --backend NAME [--log-json]
  s3o-gateway import --config FILE --backend NAME --bucket BUCKET [--prefix P] [--dry-run] [--log-json]
  s3o-gateway admin [--endpoint URL] [--access-key AK] [--secret-key SK] [--json] COMMAND (admin --help)
  s3o-gateway encryption rotate|encrypt-existing|decrypt-existing --config FILE [--batch N] [--pause-ms MS] [--log-json]
  s3o-gateway usage --config FILE [--month YYYY-MM] [--json]

Logs go to stderr; the level is `[log] level` of the file (default info) unless RUST_LOG is set.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("s3o-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3o-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn flag(args: &[String], name: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .cloned()
            .map(Some)
            .ok_or_else(|| format!("{name} needs a value\n{USAGE}")),
    }
}

async fn run(args: Vec<String>) -> Result<(), String> {
    let Some(cmd) = args.first() else {
        return Err(USAGE.to_owned());
    };
    let rest = &args[1..];
    if cmd == "admin" {
        return s3o_gateway::admin_cli(rest.to_vec()).await;
    }
    for a in rest.iter().filter(|a| a.starts_with("--")) {
        if ![
            "--config",
            "--data",
            "--port",
            "--backend",
            "--log-json",
            "--batch",
            "--pause-ms",
            "--month",
            "--json",
            "--bucket",
            "--prefix",
            "--dry-run",
        ]
        .contains(&a.as_str())
        {
            return Err(format!("unknown option {a}\n{USAGE}"));
        }
    }
    let json = rest.iter().any(|a| a == "--log-json");
    match cmd.as_str() {
        "serve" => {
            let path = flag(rest, "--config")?
                .ok_or_else(|| format!("serve needs --config FILE\n{USAGE}"))?;
            let path = PathBuf::from(path);
            let config = Config::load(&path).map_err(|e| e.to_string())?;
            let set_level = init_logging(&config.log, json)?;
            let gw = Gateway::start(config).await.map_err(|e| e.to_string())?;
            println!("s3o-gateway serving on {}", gw.endpoint());
            if let Some(a) = gw.operator_addr() {
                println!("s3o-gateway operator endpoints on http://{a}");
            }
            serve_until_stopped(&gw, &path, &set_level).await;
            gw.shutdown().await;
            Ok(())
        }
        "demo" => {
            let data = flag(rest, "--data")?
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("s3o-demo-data"));
            let port: u16 = match flag(rest, "--port")? {
                Some(p) => p.parse().map_err(|_| format!("bad --port {p}"))?,
                None => 9000,
            };
            let setup = demo_config(&data, port).map_err(|e| e.to_string())?;
            let _ = init_logging(&setup.config.log, json)?;
            let gw = Gateway::start(setup.config.clone())
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", setup.banner(&gw.endpoint()));
            wait_for_ctrl_c().await;
            gw.shutdown().await;
            Ok(())
        }
        "drain" => {
            let path = flag(rest, "--config")?
                .ok_or_else(|| format!("drain needs --config FILE\n{USAGE}"))?;
            let backend = flag(rest, "--backend")?
                .ok_or_else(|| format!("drain needs --backend NAME\n{USAGE}"))?;
            let config = Config::load(&PathBuf::from(path)).map_err(|e| e.to_string())?;
            let _ = init_logging(&config.log, json)?;
            let mut show = |p: &s3o_gateway::DrainProgress| {
                eprintln!(
                    "drain {}: moved {} ({} bytes), dropped {}, failed {}, remaining {} ({} bytes)",
                    p.backend,
                    p.moved,
                    p.moved_bytes,
                    p.dropped,
                    p.failed,
                    p.remaining,
                    p.remaining_bytes
                );
            };
            let report = s3o_gateway::drain(&config, &backend, &mut show)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "drained {backend}: {} copies moved, {} dropped, {} leftovers deleted; it can be removed from the configuration",
                report.progress.moved, report.progress.dropped, report.leftovers_deleted
            );
            Ok(())
        }
        "import" => import(rest, json).await,
        "encryption" => encryption(rest, json).await,
        "usage" => {
            let path = flag(rest, "--config")?
                .ok_or_else(|| format!("usage needs --config FILE\n{USAGE}"))?;
            let config = Config::load(&PathBuf::from(path)).map_err(|e| e.to_string())?;
            let month = flag(rest, "--month")?;
            let u = s3o_gateway::month_usage(&config, month.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            if rest.iter().any(|a| a == "--json") {
                println!("{}", usage_json(&u));
            } else {
                print!("{}", usage_table(&u));
            }
            Ok(())
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

/// `encryption rotate | encrypt-existing | decrypt-existing`: re-wraps every data key under
/// the current master key, or converts stored objects, printing progress after every page.
async fn encryption(rest: &[String], json: bool) -> Result<(), String> {
    let direction = match rest.first().map(String::as_str) {
        Some("rotate") => None,
        Some("encrypt-existing") => Some(s3o_gateway::ConvertDirection::Encrypt),
        Some("decrypt-existing") => Some(s3o_gateway::ConvertDirection::Decrypt),
        _ => {
            return Err(format!(
                "encryption needs a subcommand: rotate, encrypt-existing or decrypt-existing\n{USAGE}"
            ));
        }
    };
    let path = flag(rest, "--config")?
        .ok_or_else(|| format!("encryption needs --config FILE\n{USAGE}"))?;
    let config = Config::load(&PathBuf::from(path)).map_err(|e| e.to_string())?;
    let _ = init_logging(&config.log, json)?;
    let mut opts = s3o_gateway::RotateOptions::default();
    if let Some(b) = flag(rest, "--batch")? {
        opts.batch = b.parse().map_err(|_| format!("bad --batch {b}"))?;
    }
    if let Some(ms) = flag(rest, "--pause-ms")? {
        let ms: u64 = ms.parse().map_err(|_| format!("bad --pause-ms {ms}"))?;
        opts.pause = std::time::Duration::from_millis(ms);
    }
    if let Some(direction) = direction {
        let mut show = |p: &s3o_gateway::ConvertProgress| {
            eprintln!(
                "convert: examined {}, converted {}, skipped {}, raced {}, failed {}",
                p.examined, p.converted, p.skipped, p.raced, p.failed
            );
        };
        let done = s3o_gateway::convert_objects(&config, direction, opts, &mut show)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "converted {} objects, {} skipped, {} changed meanwhile (the client's write won)",
            done.converted, done.skipped, done.raced
        );
        return Ok(());
    }
    let mut show = |p: &s3o_gateway::RotateProgress| {
        eprintln!(
            "rotate (pass {}): examined {}, re-wrapped {}, already current {}, raced {}, failed {}",
            p.passes, p.examined, p.rewrapped, p.current, p.raced, p.failed
        );
    };
    let done = s3o_gateway::rotate_encryption_keys(&config, opts, &mut show)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "rotated: {} keys re-wrapped, {} already current, {} changed meanwhile (kept their own key)",
        done.rewrapped, done.current, done.raced
    );
    for (table, c) in &done.holders {
        println!(
            "  {table}: {} re-wrapped, {} already current, {} changed meanwhile",
            c.rewrapped, c.current, c.raced
        );
    }
    if done.remaining.is_empty() {
        println!("no data key is wrapped under another master key: previous_keys can be emptied");
    }
    for (key_id, rows) in &done.remaining {
        println!(
            "{rows} data keys are still wrapped under {key_id:?} (written under it during the run: \
             run again once every gateway uses the new key); keep it in previous_keys"
        );
    }
    Ok(())
}

/// Replaces the log level of the installed subscriber.
type SetLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// True when `RUST_LOG` decides the level (and a reload must not override it).
fn rust_log_set() -> bool {
    std::env::var("RUST_LOG").is_ok_and(|v| !v.trim().is_empty())
}

fn env_filter(directives: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    tracing_subscriber::EnvFilter::try_new(directives)
        .map_err(|e| format!("invalid log level {directives:?}: {e}"))
}

/// Installs the process's log subscriber: `RUST_LOG` when set, else `log.level`; JSON lines
/// with `--log-json` or `format = "json"`. Every line of a request carries its
/// `request{id=…}` span, the id its `x-amz-request-id` header shows. Returns how to change
/// the level later (SIGHUP).
fn init_logging(log: &LogConfig, json_flag: bool) -> Result<SetLevel, String> {
    let directives = match std::env::var("RUST_LOG") {
        Ok(v) if rust_log_set() => v,
        _ => log.level.clone(),
    };
    let filter = env_filter(&directives)?;
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
        format!("cannot install the log subscriber: {e}")
    };
    if json_flag || log.format == LogFormat::Json {
        let builder = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_filter_reloading();
        let handle = builder.reload_handle();
        builder.try_init().map_err(failed)?;
        Ok(Box::new(move |level| {
            handle.reload(env_filter(level)?).map_err(|e| e.to_string())
        }))
    } else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_filter_reloading();
        let handle = builder.reload_handle();
        builder.try_init().map_err(failed)?;
        Ok(Box::new(move |level| {
            handle.reload(env_filter(level)?).map_err(|e| e.to_string())
        }))
    }
}

/// Serves until Ctrl-C or SIGTERM; on SIGHUP re-reads `path` and applies what can change
/// while serving. A file that does not load or validate changes nothing.
async fn serve_until_stopped(gw: &s3o_gateway::RunningGateway, path: &Path, set_level: &SetLevel) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let stop = wait_for_ctrl_c();
    tokio::pin!(stop);
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        tokio::select! {
            () = &mut stop => return,
            () = hangup => reload(gw, path, set_level).await,
        }
    }
}

/// One SIGHUP: load, validate, apply; log what was applied and what needs a restart.
async fn reload(gw: &s3o_gateway::RunningGateway, path: &Path, set_level: &SetLevel) {
    let loaded = Config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|c| env_filter(&c.log.level).map(|_| c));
    let new = match loaded {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reload refused; the running configuration is kept");
            return;
        }
    };
    match gw.reload(&new).await {
        Err(e) => {
            tracing::error!(error = %e, "reload refused; the running configuration is kept");
        }
        Ok(report) => {
            if !rust_log_set()
                && let Err(e) = set_level(&new.log.level)
            {
                tracing::error!(error = %e, "could not change the log level");
            }
            tracing::info!(applied = ?report.applied, "configuration reloaded");
            if !report.needs_restart.is_empty() {
                tracing::warn!(
                    settings = ?report.needs_restart,
                    "changed settings take effect only after a restart"
                );
            }
        }
    }
}

/// Waits for Ctrl-C or SIGTERM (what service managers send), whichever comes first.
async fn wait_for_ctrl_c() {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if r.is_err() {
                // No signal handler available: serve until killed.
                std::future::pending::<()>().await;
            }
        }
        () = term => {}
    }
    tracing::info!("shutting down");
    eprintln!("s3o-gateway: shutting down");
}

/// `import`: brings a bucket's objects already on a backend under management; progress and
/// refusals on stderr, the summary on stdout.
async fn import(rest: &[String], json: bool) -> Result<(), String> {
    let need = |what: &str| format!("import needs {what}\n{USAGE}");
    let path = flag(rest, "--config")?.ok_or_else(|| need("--config FILE"))?;
    let opts = s3o_gateway::ImportOptions {
        backend: flag(rest, "--backend")?.ok_or_else(|| need("--backend NAME"))?,
        bucket: flag(rest, "--bucket")?.ok_or_else(|| need("--bucket BUCKET"))?,
        prefix: flag(rest, "--prefix")?.unwrap_or_default(),
        dry_run: rest.iter().any(|a| a == "--dry-run"),
    };
    let config = Config::load(&PathBuf::from(path)).map_err(|e| e.to_string())?;
    let _ = init_logging(&config.log, json)?;
    let verb = if opts.dry_run {
        "would import"
    } else {
        "imported"
    };
    let mut show = |e: s3o_gateway::ImportEvent<'_>| match e {
        s3o_gateway::ImportEvent::Progress(p) => eprintln!(
            "import {}/{}: listed {}, {verb} {} ({} bytes), already imported {}, refused {}",
            opts.backend,
            opts.bucket,
            p.listed,
            p.imported,
            p.imported_bytes,
            p.already_imported,
            p.refused
        ),
        s3o_gateway::ImportEvent::Refused(r) => {
            eprintln!("not imported: {:?}: {}", r.key, r.reason)
        }
    };
    let p = s3o_gateway::import(&config, &opts, &mut show)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{}{verb} {} objects ({} bytes) into bucket {} from backend {}; skipped {} already imported and {} s3o versions; refused {}",
        if opts.dry_run { "dry run: " } else { "" },
        p.imported,
        p.imported_bytes,
        opts.bucket,
        opts.backend,
        p.already_imported,
        p.s3o_versions,
        p.refused
    );
    Ok(())
}

/// `usage --json`: the month and, per backend, its counts, limits (0 = unlimited) and whether
/// one is reached.
fn usage_json(u: &s3o_gateway::MonthUsage) -> String {
    let rows: Vec<serde_json::Value> = u
        .backends
        .iter()
        .map(|b| {
            serde_json::json!({
                "backend": b.backend,
                "api_requests": b.used.api_requests,
                "egress_bytes": b.used.egress_bytes,
                "ingress_bytes": b.used.ingress_bytes,
                "api_request_limit": b.limits.api_request_limit,
                "egress_byte_limit": b.limits.egress_byte_limit,
                "ingress_byte_limit": b.limits.ingress_byte_limit,
                "over_budget": b.over_budget,
            })
        })
        .collect();
    serde_json::json!({"month": u.month, "backends": rows}).to_string()
}

/// `usage`: one line per backend, each count beside its limit (`-` = unlimited).
fn usage_table(u: &s3o_gateway::MonthUsage) -> String {
    let of = |used: i64, limit: i64| {
        if limit == 0 {
            format!("{used} / -")
        } else {
            format!("{used} / {limit} ({}%)", used.saturating_mul(100) / limit)
        }
    };
    let mut out = format!(
        "month {} (UTC)\n{:<16} {:<28} {:<28} {:<28} OVER\n",
        u.month, "BACKEND", "REQUESTS", "EGRESS BYTES", "INGRESS BYTES"
    );
    for b in &u.backends {
        out.push_str(&format!(
            "{:<16} {:<28} {:<28} {:<28} {}\n",
            b.backend,
            of(b.used.api_requests, b.limits.api_request_limit),
            of(b.used.egress_bytes, b.limits.egress_byte_limit),
            of(b.used.ingress_bytes, b.limits.ingress_byte_limit),
            if b.over_budget { "yes" } else { "no" }
        ));
    }
    out
}
