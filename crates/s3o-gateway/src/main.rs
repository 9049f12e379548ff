//! `s3o-gateway`: serve the S3 gateway from a config file, or run the self-contained demo.

use std::path::PathBuf;
use std::process::ExitCode;

use s3o_gateway::{Config, Gateway, demo_config};

const USAGE: &str = "usage:
  s3o-gateway serve --config FILE
  s3o-gateway demo [--data DIR] [--port PORT]";

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
        if !["--config", "--data", "--port"].contains(&a.as_str()) {
            return Err(format!("unknown option {a}\n{USAGE}"));
        }
    }
    match cmd.as_str() {
        "serve" => {
            let path = flag(rest, "--config")?
                .ok_or_else(|| format!("serve needs --config FILE\n{USAGE}"))?;
            let config = Config::load(&PathBuf::from(path)).map_err(|e| e.to_string())?;
            let gw = Gateway::start(config).await.map_err(|e| e.to_string())?;
            println!("s3o-gateway serving on {}", gw.endpoint());
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
            let gw = Gateway::start(setup.config.clone())
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", setup.banner(&gw.endpoint()));
            wait_for_ctrl_c().await;
            gw.shutdown().await;
            Ok(())
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

async fn wait_for_ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handler available: serve until killed.
        std::future::pending::<()>().await;
    }
    eprintln!("s3o-gateway: shutting down");
}
