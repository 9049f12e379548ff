//! `s3o-gateway`: serve the S3 gateway from a config file, or run the self-contained demo.

use std::path::PathBuf;
use std::process::ExitCode;

use s3o_gateway::{Config, Gateway, LogConfig, LogFormat, demo_config};

const USAGE: &str = "usage:
  s3o-gateway serve --config FILE [--log-json]
  s3o-gateway demo [--data DIR] [--port PORT] [--log-json]
  s3o-gateway drain --config FILE --backend NAME [--log-json]

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
    for a in rest.iter().filter(|a| a.starts_with("--")) {
        if !["--config", "--data", "--port", "--backend", "--log-json"].contains(&a.as_str()) {
            return Err(format!("unknown option {a}\n{USAGE}"));
        }
    }
    let json = rest.iter().any(|a| a == "--log-json");
    match cmd.as_str() {
        "serve" => {
            let path = flag(rest, "--config")?
                .ok_or_else(|| format!("serve needs --config FILE\n{USAGE}"))?;
            let config = Config::load(&PathBuf::from(path)).map_err(|e| e.to_string())?;
            init_logging(&config.log, json)?;
            let gw = Gateway::start(config).await.map_err(|e| e.to_string())?;
            println!("s3o-gateway serving on {}", gw.endpoint());
            if let Some(a) = gw.operator_addr() {
                println!("s3o-gateway operator endpoints on http://{a}");
            }
            wait_for_ctrl_c().await;
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
            init_logging(&setup.config.log, json)?;
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
            init_logging(&config.log, json)?;
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
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

/// Installs the process's log subscriber: `RUST_LOG` when set, else `log.level`; JSON lines
/// with `--log-json` or `format = "json"`. Every line of a request carries its
/// `request{id=…}` span, the id its `x-amz-request-id` header shows.
fn init_logging(log: &LogConfig, json_flag: bool) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let directives = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => log.level.clone(),
    };
    let filter = EnvFilter::try_new(&directives)
        .map_err(|e| format!("invalid log level {directives:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let installed = if json_flag || log.format == LogFormat::Json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|e| format!("cannot install the log subscriber: {e}"))
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
