//! `cargo xtask bench --gateway`: what the gateway costs on top of the S3 server behind it.
//!
//! In one run: an s3s-fs server on loopback (the baseline, reached directly) and a second one
//! behind the release `s3o-gateway` binary (SQLite ledger, one S3 backend, no quota). The same
//! object_store S3 client code sends PUT and GET of 4 KiB, 1 MiB and 64 MiB objects with 1 and
//! 16 concurrent clients to both, in interleaved trials (3 by default, `--trials N`; 1 with
//! `--quick`); the table gives the median gateway ÷ direct ratio with its min–max against the
//! targets (GET ≥ 0.9, PUT ≥ 0.8) and the added latency at 4 KiB. A third side reaches the
//! direct server through a TCP relay that copies bytes and does nothing else: its ratio is
//! the ceiling of any proxy on this machine (one more hop, no work), and gateway ÷ relay is
//! what the gateway's own work costs. Then 64 clients PUT 64 MiB each at once through the gateway while its peak
//! resident memory (`VmHWM` of the gateway process) is read from `/proc`. Results go to
//! `bench/results/gateway-latest.md` and the README's generated block; ratios are the claim,
//! absolute numbers vary by machine.
//!
//! ```text
//! cargo xtask bench --gateway [--quick] [--trials N]
//! ```

#[path = "../tests/e2e/fs_backend.rs"]
#[allow(dead_code)]
mod fs_backend;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as Key;

use fs_backend::{BACKEND_AK, BACKEND_BUCKET, BACKEND_SK, REGION, crypto, fs_server, s3_builder};

const AK: &str = "bench-client";
const SK: &str = "bench-client-secret-0123456789";
const BUCKET: &str = "bench";
const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// Keys each PUT client cycles through (later PUTs overwrite: the gateway's full write path,
/// displaced bytes deleted included).
const PUT_KEYS_PER_CLIENT: usize = 16;
/// Objects GETs pick from.
const GET_KEYS: usize = 32;
/// Object sizes measured.
const SIZES: [usize; 3] = [4 * KIB, MIB, 64 * MIB];
/// From this size on, fewer keys (disk) and a longer window (few operations per second).
const BIG: usize = 64 * MIB;
/// The memory run: this many clients PUT this many bytes each, all at once.
const MEM_CLIENTS: usize = 64;
const MEM_SIZE: usize = 64 * MIB;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let trials = args
        .iter()
        .position(|a| a == "--trials")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(if quick { 1 } else { 3 })
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(run(quick, trials)) {
        eprintln!("gateway bench: {e}");
        std::process::exit(1);
    }
}

/// One measured cell.
struct Cell {
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    ops: usize,
    /// `503 SlowDown` answers retried (admission or body-buffer budget full).
    refused: usize,
}

async fn run(quick: bool, trials: usize) -> Result<(), String> {
    crypto();
    let window = if quick {
        Duration::from_millis(1_500)
    } else {
        Duration::from_secs(5)
    };
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let direct_root = tmp.path().join("direct");
    let backend_root = tmp.path().join("backend");
    for root in [&direct_root, &backend_root] {
        std::fs::create_dir_all(root.join(BACKEND_BUCKET)).map_err(|e| e.to_string())?;
    }
    let direct_server = fs_server(&direct_root).await;
    let backend_server = fs_server(&backend_root).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let config = tmp.path().join("gateway.toml");
    // Encryption cells: bucket `sealed` is encrypted, `bench` is not (same gateway, same run).
    let key_file = tmp.path().join("master.key");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&key_file, [0x42_u8; 32]).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
    }
    let sealed_toml = format!(
        "\n[[buckets]]\nname = {SEALED:?}\nencrypt = true\n\n[encryption]\nencrypt = false\n\
         key_id = \"bench\"\nmaster_key_file = {:?}\n",
        key_file.display().to_string()
    );
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nstore = {:?}\nregion = {REGION:?}\nrouting = \"pack\"\n\n\
             [[credentials]]\naccess_key = {AK:?}\nsecret_key = {SK:?}\n\n[[buckets]]\nname = {BUCKET:?}\n\n\
             [[backends]]\nname = \"fs\"\nkind = \"s3\"\nendpoint = \"http://{}\"\nbucket = {BACKEND_BUCKET:?}\n\
             region = {REGION:?}\naccess_key = {BACKEND_AK:?}\nsecret_key = {BACKEND_SK:?}\nquota_bytes = 0\n",
            format!("sqlite://{}", tmp.path().join("ledger.db").display()),
            backend_server.addr
        ) + &sealed_toml,
    )
    .map_err(|e| e.to_string())?;
    let exe = env!("CARGO_BIN_EXE_s3o-gateway");
    let child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {exe}: {e}"))?;
    let gateway = KillOnDrop(child);
    let gateway_endpoint = format!("http://127.0.0.1:{port}");
    wait_healthy(&gateway_endpoint).await?;
    let pid = gateway.0.id();

    let through = Arc::new(client(&gateway_endpoint, BUCKET, AK, SK, false));
    let direct_endpoint = format!("http://{}", direct_server.addr);
    let (relay_addr, relay_task) = relay(direct_server.addr).await?;
    let relayed = Arc::new(client(
        &format!("http://{relay_addr}"),
        BACKEND_BUCKET,
        BACKEND_AK,
        BACKEND_SK,
        false,
    ));
    let direct = Arc::new(client(
        &direct_endpoint,
        BACKEND_BUCKET,
        BACKEND_AK,
        BACKEND_SK,
        false,
    ));

    // Memory first, on a fresh gateway process, so its peak is this run's.
    let idle_rss = proc_status_kib(pid, "VmRSS:")?;
    let mem_client = Arc::new(client(&gateway_endpoint, BUCKET, AK, SK, true));
    let payload = Bytes::from(vec![0x5a_u8; MEM_SIZE]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..MEM_CLIENTS {
        let c = Arc::clone(&mem_client);
        let p = payload.clone();
        tasks.push(tokio::spawn(async move {
            put_retrying(&c, &Key::from(format!("mem/{i}")), p).await
        }));
    }
    let mut mem_refused = 0;
    for t in tasks {
        mem_refused += t
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("64 MiB PUT: {e}"))?;
    }
    let mem_secs = started.elapsed().as_secs_f64();
    let peak_rss = proc_status_kib(pid, "VmHWM:")?;
    for i in 0..MEM_CLIENTS {
        mem_client
            .delete(&Key::from(format!("mem/{i}")))
            .await
            .map_err(|e| format!("delete mem/{i}: {e}"))?;
    }
    println!(
        "memory: {MEM_CLIENTS} concurrent {} MiB PUTs in {mem_secs:.1} s; gateway peak RSS {:.0} MiB (idle {:.0} MiB)",
        MEM_SIZE / MIB,
        peak_rss as f64 / 1024.0,
        idle_rss as f64 / 1024.0
    );

    let mut rows: Vec<Row> = Vec::new();
    for size in SIZES {
        let body = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        for c in [&through, &direct] {
            for i in 0..get_keys(size) {
                c.put(&get_key(size, i), body.clone().into())
                    .await
                    .map_err(|e| format!("populate: {e}"))?;
            }
        }
        let window = if size >= BIG { window * 2 } else { window };
        for clients in [1, 16] {
            for op in [Op::Put, Op::Get] {
                let mut row = Row {
                    op,
                    size,
                    clients,
                    gateway: Vec::new(),
                    direct: Vec::new(),
                    relay: Vec::new(),
                };
                // The sides rotate which goes first, trial by trial, so a drift in the
                // machine's load touches all alike.
                for trial in 0..trials {
                    let mut sides = [
                        (&through, Side::Gateway),
                        (&direct, Side::Direct),
                        (&relayed, Side::Relay),
                    ];
                    sides.rotate_left(trial % 3);
                    for (store, side) in sides {
                        let cell = measure(store, op, size, clients, &body, window).await?;
                        match side {
                            Side::Gateway => row.gateway.push(cell),
                            Side::Direct => row.direct.push(cell),
                            Side::Relay => row.relay.push(cell),
                        }
                    }
                }
                let (median, lo, hi) = row.ratio();
                println!(
                    "{:<4} {:>6} x{clients:<2}: gateway {:>8.1} ops/s, direct {:>8.1} ops/s, ratio {median:.2} ({lo:.2}-{hi:.2}); relay {:>8.1} ops/s, ratio {:.2}",
                    op.name(),
                    human(size),
                    row.median_of(Side::Gateway, |c| c.ops_per_s),
                    row.median_of(Side::Direct, |c| c.ops_per_s),
                    row.median_of(Side::Relay, |c| c.ops_per_s),
                    row.ratio_of(Side::Relay, Side::Direct).0,
                );
                rows.push(row);
            }
        }
        // Bytes of this size are no longer needed: keep the disk footprint of a run bounded.
        for c in [&through, &direct] {
            for i in 0..get_keys(size) {
                let _ = c.delete(&get_key(size, i)).await;
            }
        }
    }
    let sealed = Arc::new(client(&gateway_endpoint, SEALED, AK, SK, false));
    let enc_rows = encryption_cells(&through, &sealed, quick).await?;
    drop(gateway);
    relay_task.abort();

    let small = rows
        .iter()
        .find(|r| matches!(r.op, Op::Put) && r.size == 4 * KIB && r.clients == 1);
    let small_get = rows
        .iter()
        .find(|r| matches!(r.op, Op::Get) && r.size == 4 * KIB && r.clients == 1);
    let added = |r: Option<&Row>, f: fn(&Cell) -> f64| {
        r.map_or(0.0, |r| {
            r.median_of(Side::Gateway, f) - r.median_of(Side::Direct, f)
        })
    };

    let command = format!(
        "cargo xtask bench --gateway{}",
        if quick { " --quick" } else { "" }
    );
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| op | size | clients | gateway ops/s | direct ops/s | ratio, median (min–max) | target | | relay ÷ direct (any proxy's ceiling) | gateway ÷ relay |"
    );
    let _ = writeln!(table, "|---|---|---:|---:|---:|---:|---|---|---:|---:|");
    for r in &rows {
        let (median, lo, hi) = r.ratio();
        let target = r.op.target();
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.1} | {:.1} | {median:.2} ({lo:.2}–{hi:.2}) | ≥ {target} | {} | {:.2} | {:.2} |",
            r.op.name(),
            human(r.size),
            r.clients,
            r.median_of(Side::Gateway, |c| c.ops_per_s),
            r.median_of(Side::Direct, |c| c.ops_per_s),
            if median >= target { "MET" } else { "MISSED" },
            r.ratio_of(Side::Relay, Side::Direct).0,
            r.ratio_of(Side::Gateway, Side::Relay).0,
        );
    }
    let latency = format!(
        "Added latency at 4 KiB, 1 client (gateway − direct, medians over trials): PUT p50 \
         {:+.2} ms, p99 {:+.2} ms; GET p50 {:+.2} ms, p99 {:+.2} ms (target: p50 ≤ 1 ms).",
        added(small, |c| c.p50_ms),
        added(small, |c| c.p99_ms),
        added(small_get, |c| c.p50_ms),
        added(small_get, |c| c.p99_ms),
    );
    let memory = format!(
        "Peak RSS of the gateway while {MEM_CLIENTS} clients PUT {} MiB each at once ({} GiB \
         in {mem_secs:.1} s, {mem_refused} `503 SlowDown` answers retried by the clients): \
         **{:.0} MiB** (idle {:.0} MiB; bound: idle + `body_buffer_bytes` (256 MiB) + \
         per-connection state).",
        MEM_SIZE / MIB,
        MEM_CLIENTS * MEM_SIZE / (1 << 30),
        peak_rss as f64 / 1024.0,
        idle_rss as f64 / 1024.0,
    );

    let mut md = String::new();
    let _ = writeln!(md, "# Gateway benchmark (`{command}`)\n");
    let _ = writeln!(
        md,
        "s3o-gateway (release binary, SQLite ledger, one s3s-fs backend over loopback HTTP) vs \
         the same s3s-fs server reached directly, same run, same object_store S3 client code. \
         A third side reaches that server through a TCP relay in the bench process that \
         copies bytes and does nothing else: relay ÷ direct is the most any proxy in front of \
         the server can reach on this machine (one more hop, no work), gateway ÷ relay what \
         the gateway's own work costs. {trials} interleaved trial(s) per cell (the sides rotate \
         which goes first), {} s per side and trial ({} s at 64 MiB); PUT clients cycle over a \
         few keys each (overwrites after the first round: the full write path, displaced bytes \
         deleted included), GETs read whole objects (4 KiB ones from the gateway's read cache \
         after each key's first read: it is on by default; 1 MiB and 64 MiB ones are over its \
         256 KiB bound and always go to the backend). Machine: {} CPU(s), shared by the client, \
         the servers and the gateway. Ratio = gateway ÷ direct throughput per trial (1.00 = no \
         overhead); ops/s are medians over trials; where the gateway's CPU goes: \
         [`gateway-profile.md`](gateway-profile.md).\n",
        window.as_secs_f64(),
        window.as_secs_f64() * 2.0,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    md.push_str(&table);
    let _ = writeln!(md, "\n{latency}\n");
    let _ = writeln!(
        md,
        "Per trial (ops/s gateway / direct, p50 ms gateway / direct):\n"
    );
    for r in &rows {
        let trials: Vec<String> = r
            .gateway
            .iter()
            .zip(&r.direct)
            .map(|(g, d)| {
                format!(
                    "{:.1}/{:.1} ({:.2}/{:.2} ms, {}/{} ops, {} SlowDown retried)",
                    g.ops_per_s, d.ops_per_s, g.p50_ms, d.p50_ms, g.ops, d.ops, g.refused
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "- {} {} x{}: {}",
            r.op.name(),
            human(r.size),
            r.clients,
            trials.join("; ")
        );
    }
    let _ = writeln!(md, "\n## Memory\n\n{memory}");
    let _ = writeln!(
        md,
        "\n## Encryption at rest\n\nThe same gateway, bucket `{SEALED}` encrypted (AES-256-GCM, \
         64 KiB chunks) and bucket `{BUCKET}` plaintext, one client, back to back. Ratio = \
         encrypted ÷ plaintext throughput. A 1-byte range of a 64 MiB encrypted object reads \
         one chunk and its tag from the backend (65 552 bytes; see the crypto unit tests).\n\n\
         | op | size | plaintext MB/s | encrypted MB/s | ratio |\n|---|---|---|---|---|"
    );
    for (name, size, plain, enc) in &enc_rows {
        let _ = writeln!(
            md,
            "| {name} | {} | {plain:.1} | {enc:.1} | {:.2} |",
            human(*size),
            enc / plain
        );
    }
    let out = results_dir().join("gateway-latest.md");
    std::fs::create_dir_all(results_dir()).map_err(|e| e.to_string())?;
    std::fs::write(&out, &md).map_err(|e| format!("write {}: {e}", out.display()))?;
    println!("results written to {}", out.display());
    let block = format!(
        "Generated by `{command}` ({trials} interleaved trial(s) per cell; full table in \
         [`bench/results/gateway-latest.md`](bench/results/gateway-latest.md)):\n\n{table}\n\
         {latency}\n\n{memory}\n"
    );
    readme_block(&block)?;
    Ok(())
}

/// Replaces the generated block between the gateway-bench markers of the README.
fn readme_block(block: &str) -> Result<(), String> {
    const BEGIN: &str = "<!-- gateway-bench:begin (generated by cargo xtask bench --gateway) -->\n";
    const END: &str = "<!-- gateway-bench:end -->";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("read README: {e}"))?;
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        return Err("README.md has no gateway-bench markers".into());
    };
    let out = format!("{}{BEGIN}{block}{}", &text[..b], &text[e..]);
    std::fs::write(&path, out).map_err(|e| format!("write README: {e}"))
}

/// One cell's trials on both sides.
struct Row {
    op: Op,
    size: usize,
    clients: usize,
    gateway: Vec<Cell>,
    direct: Vec<Cell>,
    /// The direct server through the do-nothing TCP relay.
    relay: Vec<Cell>,
}

/// Which side of a trial a measurement is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Gateway,
    Direct,
    Relay,
}

impl Row {
    fn side(&self, side: Side) -> &[Cell] {
        match side {
            Side::Gateway => &self.gateway,
            Side::Direct => &self.direct,
            Side::Relay => &self.relay,
        }
    }

    /// Median, min and max of the per-trial gateway ÷ direct throughput ratios.
    fn ratio(&self) -> (f64, f64, f64) {
        self.ratio_of(Side::Gateway, Side::Direct)
    }

    /// Median, min and max of the per-trial `num` ÷ `den` throughput ratios.
    fn ratio_of(&self, num: Side, den: Side) -> (f64, f64, f64) {
        let mut r: Vec<f64> = self
            .side(num)
            .iter()
            .zip(self.side(den))
            .map(|(g, d)| g.ops_per_s / d.ops_per_s)
            .collect();
        r.sort_by(f64::total_cmp);
        (median(&r), r[0], r[r.len() - 1])
    }

    /// The median over trials of one side's figure.
    fn median_of(&self, side: Side, f: fn(&Cell) -> f64) -> f64 {
        let mut v: Vec<f64> = self.side(side).iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        median(&v)
    }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Put,
    Get,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "PUT",
            Op::Get => "GET",
        }
    }

    /// The issue's bar for gateway ÷ direct: the PUT pays the ledger commit, a GET only a read.
    fn target(self) -> f64 {
        match self {
            Op::Put => 0.8,
            Op::Get => 0.9,
        }
    }
}

fn client(endpoint: &str, bucket: &str, ak: &str, sk: &str, unsigned: bool) -> AmazonS3 {
    s3_builder(endpoint, bucket, ak, sk)
        .with_unsigned_payload(unsigned)
        .with_client_options(
            // Replaces the builder's options: allow plain HTTP again, no overall timeout.
            object_store::ClientOptions::new()
                .with_allow_http(true)
                .with_timeout_disabled(),
        )
        .build()
        .expect("S3 client")
}

/// A TCP relay on loopback to `to` that copies bytes both ways and does nothing else: the
/// least any proxy in front of the server can cost (one more hop, two more socket copies per
/// byte). The client's signature still holds: the server sees the request as sent.
async fn relay(
    to: std::net::SocketAddr,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                // Out of descriptors: wait instead of spinning on the error.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    Ok((addr, task))
}

/// How many objects of `size` GETs pick from.
fn get_keys(size: usize) -> usize {
    if size >= BIG { 4 } else { GET_KEYS }
}

/// How many keys each PUT client of `size` cycles over.
fn put_keys(size: usize) -> usize {
    if size >= BIG { 2 } else { PUT_KEYS_PER_CLIENT }
}

/// The encrypted bucket of the encryption cells.
const SEALED: &str = "sealed";

/// PUT and GET of 1 MiB and 64 MiB objects into the plaintext and the encrypted bucket, one
/// client, alternating so both see the same machine state; plus the latency of a 1-byte range
/// of a 64 MiB object. Rows: (op, size, plaintext MB/s, encrypted MB/s); ranges report ops/s.
async fn encryption_cells(
    plain: &Arc<AmazonS3>,
    sealed: &Arc<AmazonS3>,
    quick: bool,
) -> Result<Vec<(&'static str, usize, f64, f64)>, String> {
    let mut rows = Vec::new();
    for (size, rounds) in [
        (MIB, if quick { 8 } else { 40 }),
        (64 * MIB, if quick { 1 } else { 4 }),
    ] {
        let body = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let key = Key::from(format!("enc-{size}"));
        let mut t = [[Duration::ZERO; 2]; 2];
        for _ in 0..rounds {
            for (j, c) in [plain, sealed].into_iter().enumerate() {
                let began = Instant::now();
                c.put(&key, body.clone().into())
                    .await
                    .map_err(|e| format!("PUT: {e}"))?;
                t[0][j] += began.elapsed();
                let began = Instant::now();
                let got = c
                    .get(&key)
                    .await
                    .map_err(|e| format!("GET: {e}"))?
                    .bytes()
                    .await
                    .map_err(|e| format!("GET body: {e}"))?;
                t[1][j] += began.elapsed();
                if got != body {
                    return Err("GET returned other bytes".into());
                }
            }
        }
        let mbps = |d: Duration| (size * rounds) as f64 / 1e6 / d.as_secs_f64();
        for (i, name) in ["PUT", "GET"].into_iter().enumerate() {
            let (p, e) = (mbps(t[i][0]), mbps(t[i][1]));
            println!(
                "encryption {name} {:>6}: plaintext {p:>7.1} MB/s, encrypted {e:>7.1} MB/s, ratio {:.2}",
                human(size),
                e / p
            );
            rows.push((name, size, p, e));
        }
        if size == 64 * MIB {
            let n = if quick { 20 } else { 100 };
            let mut t = [Duration::ZERO; 2];
            for _ in 0..n {
                for (j, c) in [plain, sealed].into_iter().enumerate() {
                    let began = Instant::now();
                    let got = c
                        .get_range(&key, 40_000_000..40_000_001)
                        .await
                        .map_err(|e| format!("range GET: {e}"))?;
                    t[j] += began.elapsed();
                    if got[..] != body[40_000_000..40_000_001] {
                        return Err("range GET returned another byte".into());
                    }
                }
            }
            let per_s = |d: Duration| n as f64 / d.as_secs_f64();
            println!(
                "encryption 1-byte range of 64 MiB: plaintext {:.1} ops/s, encrypted {:.1} ops/s",
                per_s(t[0]),
                per_s(t[1])
            );
            rows.push(("GET 1-byte range (ops/s)", size, per_s(t[0]), per_s(t[1])));
        }
    }
    Ok(rows)
}

fn get_key(size: usize, i: usize) -> Key {
    Key::from(format!("get-{size}/{i}"))
}

/// Runs `clients` tasks doing `op` back to back for `window`; throughput and latencies.
async fn measure(
    store: &Arc<AmazonS3>,
    op: Op,
    size: usize,
    clients: usize,
    body: &Bytes,
    window: Duration,
) -> Result<Cell, String> {
    let deadline = Instant::now() + window;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..clients {
        let store = Arc::clone(store);
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut refused = 0;
            let mut i = 0;
            while Instant::now() < deadline {
                let began = Instant::now();
                match op {
                    Op::Put => {
                        let key = Key::from(format!("put-{size}/{t}/{}", i % put_keys(size)));
                        refused += put_retrying(&store, &key, body.clone())
                            .await
                            .map_err(|e| format!("PUT: {e}"))?;
                    }
                    Op::Get => {
                        let got = store
                            .get(&get_key(size, (t * 7 + i) % get_keys(size)))
                            .await
                            .map_err(|e| format!("GET: {e}"))?
                            .bytes()
                            .await
                            .map_err(|e| format!("GET body: {e}"))?;
                        if got.len() != size {
                            return Err(format!("GET returned {} bytes, not {size}", got.len()));
                        }
                    }
                }
                lat.push(began.elapsed());
                i += 1;
            }
            Ok::<_, String>((lat, refused))
        }));
    }
    let mut all = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (lat, r) = t.await.map_err(|e| e.to_string())??;
        all.extend(lat);
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Ok(Cell {
        ops_per_s: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        ops: all.len(),
        refused,
    })
}

/// One PUT, retried after `503 SlowDown` with a short growing pause, as S3 SDKs do; the
/// number of refusals it met.
async fn put_retrying(store: &AmazonS3, key: &Key, body: Bytes) -> Result<usize, String> {
    let mut refused = 0;
    loop {
        match store.put(key, body.clone().into()).await {
            Ok(_) => return Ok(refused),
            Err(e) if refused < 100 && e.to_string().contains("SlowDown") => {
                refused += 1;
                let pause = 20u64 << refused.min(5);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn human(size: usize) -> String {
    if size >= MIB {
        format!("{} MiB", size / MIB)
    } else {
        format!("{} KiB", size / KIB)
    }
}

/// A field of `/proc/PID/status`, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

async fn wait_healthy(endpoint: &str) -> Result<(), String> {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{endpoint}/health")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the gateway did not answer /health within 30 s".into())
}

fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results")
}

/// The gateway process, killed when the bench ends however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
