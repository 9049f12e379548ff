//! The gateway as an exposed server: the real binary on a loopback port, driven by plain
//! sockets. Slow and silent clients, stalled uploads, descriptor exhaustion, admission caps,
//! the memory bound, request ids, operator endpoints, S3 edge answers and secrets in the
//! output. Counts and durations are bounded; timings are only ever upper limits with wide
//! margins, never speed claims.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A gateway process and its files.
struct Gw {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// The body of a configuration: SQLite ledger and one local backend in `dir`, bucket
/// `photos`, anonymous unless `extra` brings credentials; `extra` is appended at the top
/// level (before any table) and `tables` after.
fn config_text(dir: &Path, top: &str, tables: &str) -> String {
    let anonymous = if top.contains("[[credentials]]") || tables.contains("[[credentials]]") {
        ""
    } else {
        "anonymous = true\n"
    };
    format!(
        "listen = \"127.0.0.1:0\"\nstore = \"sqlite://{}/ledger.db\"\n{anonymous}{top}\n\
         [[buckets]]\nname = \"photos\"\n\n\
         [[backends]]\nname = \"a\"\nkind = \"local\"\npath = \"{}/a\"\n\n{tables}",
        dir.display(),
        dir.display()
    )
}

impl Gw {
    /// Starts `s3o-gateway serve` on a config built by [`config_text`].
    fn start(top: &str, tables: &str) -> Gw {
        Gw::start_with(top, tables, None, &[], &[])
    }

    /// Same, optionally under `prlimit --nofile=N`, with extra flags and environment.
    fn start_with(
        top: &str,
        tables: &str,
        nofile: Option<u32>,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Gw {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("gw.toml");
        std::fs::write(&config, config_text(dir.path(), top, tables)).expect("config");
        let child = spawn(dir.path(), &config, nofile, flags, env);
        let addr = wait_for_addr(dir.path())
            .unwrap_or_else(|| panic!("gateway did not start:\n{}", output_of(dir.path())));
        Gw { child, addr, dir }
    }

    /// stdout and stderr so far.
    fn output(&self) -> String {
        output_of(self.dir.path())
    }

    /// A line of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
    fn mem_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("field")
    }

    /// User plus system CPU time of the process, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("proc stat");
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(
    dir: &Path,
    config: &Path,
    nofile: Option<u32>,
    flags: &[&str],
    env: &[(&str, &str)],
) -> Child {
    let exe = env!("CARGO_BIN_EXE_s3o-gateway");
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.arg("serve").arg("--config").arg(config).args(flags);
    cmd.env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout")).expect("stdout file"))
        .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr file"))
        .spawn()
        .expect("spawn gateway")
}

fn output_of(dir: &Path) -> String {
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
    format!("{}{}", read("stdout"), read("stderr"))
}

fn wait_for_addr(dir: &Path) -> Option<SocketAddr> {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let out = std::fs::read_to_string(dir.join("stdout")).unwrap_or_default();
        let rest = out
            .split("serving on http://")
            .nth(1)
            .or_else(|| out.split("serving on https://").nth(1));
        if let Some(rest) = rest {
            return rest.lines().next()?.trim().parse().ok();
        }
        let err = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
        if err.contains("s3o-gateway: ") && !err.contains("warning") {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// One parsed HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Sends `method target` with `headers` and `body` on a fresh connection (closed after the
/// answer) and reads the whole answer.
fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" && method != "HEAD" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse(&raw)
}

fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Reply {
    send(addr, "GET", target, headers, b"")
}

/// True once the peer has closed `s` (EOF or reset), reading and discarding any answer.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + limit;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
        if Instant::now() > until {
            return false;
        }
    }
}

/// Opens an upload of `declared` bytes and sends `sent` of them, then stalls.
fn stalled_put(addr: SocketAddr, key: &str, declared: u64, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let head =
        format!("PUT /photos/{key} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {declared}\r\n\r\n");
    s.write_all(head.as_bytes()).expect("head");
    // The server may not read (a request waiting for admission): write what fits.
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = sent;
    while left > 0 {
        let n = left.min(chunk.len());
        match s.write(&chunk[..n]) {
            Ok(w) => left -= w,
            Err(_) => break,
        }
    }
    s
}

#[test]
fn operator_endpoints_request_ids_and_edge_answers() {
    let gw = Gw::start("", "[log]\nlevel = \"s3o_gateway=debug\"\n");
    let a = gw.addr;
    let vhost = format!("photos.localhost:{}", a.port());
    let mut ids = Vec::new();
    let mut id_of = |r: &Reply| {
        let id = r.header("x-amz-request-id").expect("request id").to_owned();
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        ids.push(id);
    };

    // Path-style /health is the operator endpoint.
    let h = get(a, "/health", &[]);
    assert_eq!(h.status, 200, "{}", h.text());
    assert!(h.text().contains("\"status\":\"ok\""), "{}", h.text());
    id_of(&h);

    // In virtual-host style, /health and /metrics are objects of the host's bucket.
    let put = send(a, "PUT", "/health", &[("Host", &vhost)], b"vhost-object");
    assert_eq!(put.status, 200, "{}", put.text());
    id_of(&put);
    let obj = get(a, "/health", &[("Host", &vhost)]);
    assert_eq!(obj.status, 200);
    assert_eq!(obj.text(), "vhost-object");
    // Stored without a Content-Type: S3's default is served.
    assert_eq!(obj.header("content-type"), Some("binary/octet-stream"));
    id_of(&obj);
    let missing = get(a, "/metrics", &[("Host", &vhost)]);
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert!(missing.text().contains("NoSuchKey"), "{}", missing.text());
    id_of(&missing);
    let head = send(a, "HEAD", "/photos/health", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("binary/octet-stream"));
    id_of(&head);
    assert_eq!(get(a, "/metrics", &[]).status, 200);

    // Range: invalid ones are ignored (200, whole object) as S3 does; valid ones honoured.
    for bad in ["bytes=3-2", "bytes=0-1,3-4", "items=0-1", "bytes=x-"] {
        let r = get(a, "/photos/health", &[("Range", bad)]);
        assert_eq!(r.status, 200, "{bad}: {}", r.text());
        assert_eq!(r.text(), "vhost-object", "{bad}");
        id_of(&r);
    }
    let r = get(a, "/photos/health", &[("Range", "bytes=0-1")]);
    assert_eq!((r.status, r.text().as_str()), (206, "vh"));
    let r = get(a, "/photos/health", &[("Range", "bytes=100-200")]);
    assert_eq!(r.status, 416, "{}", r.text());
    id_of(&r);

    // Presigned lifetimes past 7 days are refused (403) before anything else.
    let r = get(
        a,
        "/photos/health?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604801&X-Amz-Signature=00",
        &[],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("AccessDenied") && r.text().contains("less than a week"));
    id_of(&r);

    // Anonymous mode cannot check signatures: a signed request is told so.
    let r = get(
        a,
        "/photos/health",
        &[(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
        )],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("anonymous"), "{}", r.text());
    id_of(&r);

    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "request ids repeat: {ids:?}");
    // Every request's log lines carry its id (debug level here).
    std::thread::sleep(Duration::from_millis(200));
    let log = gw.output();
    for id in &ids {
        assert!(
            log.contains(&format!("request{{id={id}}}")),
            "{id} not in\n{log}"
        );
    }
}

#[test]
fn json_logs_carry_the_request_id() {
    let gw = Gw::start_with(
        "",
        "",
        None,
        &["--log-json"],
        &[("RUST_LOG", "s3o_gateway=debug")],
    );
    let r = get(gw.addr, "/photos/nothing", &[]);
    assert_eq!(r.status, 404);
    let id = r.header("x-amz-request-id").unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(200));
    let log = gw.output();
    let line = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .find(|v| v["span"]["id"] == id.as_str())
        .unwrap_or_else(|| panic!("no JSON line with span id {id}:\n{log}"));
    assert_eq!(line["span"]["name"], "request");
}

#[test]
fn operator_listener_and_bearer_token() {
    let gw = Gw::start(
        "",
        "[server]\nmetrics_listen = \"127.0.0.1:0\"\nmetrics_token = \"tok-123\"\n",
    );
    // The S3 listener no longer answers /health: it is the bucket `health`, unknown here.
    let r = get(gw.addr, "/health", &[]);
    assert_eq!(r.status, 404, "{}", r.text());
    // The operator listener's address is logged at start.
    let out = gw.output();
    let ops: SocketAddr = out
        .split("operator endpoints on http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no operator address in\n{out}"));
    assert_eq!(get(ops, "/health", &[]).status, 401);
    assert_eq!(
        get(ops, "/metrics", &[("Authorization", "Bearer wrong")]).status,
        401
    );
    let m = get(ops, "/metrics", &[("Authorization", "Bearer tok-123")]);
    assert_eq!(m.status, 200);
    assert!(m.text().contains("s3o_gateway_requests_total"));
    assert_eq!(get(ops, "/photos/x", &[]).status, 404);
}

#[test]
fn presigned_urls_live_at_most_seven_days() {
    use object_store::signer::Signer as _;
    // object_store's reqwest is built without a TLS provider, as in the gateway.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let creds =
        "[[credentials]]\naccess_key = \"edge-ak\"\nsecret_key = \"edge-secret-key-0123\"\n";
    let gw = Gw::start(creds, "");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://{}", gw.addr))
        .with_bucket_name("photos")
        .with_region("us-east-1")
        .with_access_key_id("edge-ak")
        .with_secret_access_key("edge-secret-key-0123")
        .with_allow_http(true)
        .build()
        .unwrap();
    let path = object_store::path::Path::from("signed");
    let url = |method, secs| {
        let u =
            futures::executor::block_on(store.signed_url(method, &path, Duration::from_secs(secs)))
                .unwrap();
        format!("{}?{}", u.path(), u.query().unwrap_or(""))
    };
    let put = send(
        gw.addr,
        "PUT",
        &url(reqwest::Method::PUT, 604_800),
        &[],
        b"seven days",
    );
    assert_eq!(put.status, 200, "{}", put.text());
    let ok = get(gw.addr, &url(reqwest::Method::GET, 604_800), &[]);
    assert_eq!((ok.status, ok.text().as_str()), (200, "seven days"));
    let late = get(gw.addr, &url(reqwest::Method::GET, 604_801), &[]);
    assert_eq!(late.status, 403, "{}", late.text());
    assert!(late.text().contains("AccessDenied") && late.text().contains("less than a week"));
}

#[test]
fn reads_and_writes_are_capped_apart_with_slow_down() {
    let gw = Gw::start(
        "",
        "[server]\nmax_concurrent_writes = 1\nmax_concurrent_reads = 4\nretry_after_secs = 2\n",
    );
    let hold = stalled_put(gw.addr, "held", 1000, 10);
    std::thread::sleep(Duration::from_millis(300));
    let r = send(gw.addr, "PUT", "/photos/other", &[], b"abc");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("<Code>SlowDown</Code>"), "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("2"));
    assert!(r.header("x-amz-request-id").is_some());
    // Reads have their own slots.
    assert_eq!(get(gw.addr, "/photos/other", &[]).status, 404);
    drop(hold);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = send(gw.addr, "PUT", "/photos/other", &[], b"abc");
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < until,
            "write slot never freed: {}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn slow_clients_are_closed_and_others_still_served() {
    let gw = Gw::start(
        "",
        "[server]\nheader_read_timeout_secs = 2\nbody_idle_timeout_secs = 2\n",
    );
    let a = gw.addr;
    let mut half: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut s = TcpStream::connect(a).expect("connect");
            let part = format!("GET /photos/k{i} HTTP/1.1\r\nHost: {a}\r\nX-Slow: ");
            s.write_all(part.as_bytes()).unwrap();
            s
        })
        .collect();
    let mut silent: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(a).unwrap()).collect();
    let mut stalled: Vec<TcpStream> = (0..20)
        .map(|i| stalled_put(a, &format!("s{i}"), 10 << 20, 256 << 10))
        .collect();
    // A keep-alive connection that has had its answer and then idles.
    let mut idle = TcpStream::connect(a).unwrap();
    idle.write_all(format!("GET /health HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes())
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let mut idle = vec![idle];
    // A legitimate request is answered promptly while all of them hang.
    let t = Instant::now();
    let h = get(a, "/health", &[]);
    let took = t.elapsed();
    assert_eq!(h.status, 200);
    assert!(took < Duration::from_secs(1), "health took {took:?}");
    // Each slow connection is closed once its timeout (2 s) has passed; 15 s is the margin.
    let limit = Duration::from_secs(15);
    let start = Instant::now();
    let mut open = [0; 4];
    for (group, conns) in [&mut half, &mut silent, &mut stalled, &mut idle]
        .into_iter()
        .enumerate()
    {
        for s in conns.iter_mut() {
            let left = limit
                .saturating_sub(start.elapsed())
                .max(Duration::from_millis(10));
            if !closed_within(s, left) {
                open[group] += 1;
            }
        }
    }
    eprintln!(
        "slowloris: 200 half-sent, 50 silent, 20 stalled uploads, 1 idle keep-alive; still open after {:?}: {open:?}",
        start.elapsed()
    );
    assert_eq!(open, [0, 0, 0, 0]);
    assert_eq!(get(a, "/health", &[]).status, 200);
}

#[test]
fn descriptor_exhaustion_backs_off_and_recovers() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit(1) is not installed");
        return;
    }
    let gw = Gw::start_with(
        "",
        "[server]\nmax_connections = 100000\nheader_read_timeout_secs = 60\n",
        Some(96),
        &[],
        &[],
    );
    let a = gw.addr;
    // More connections than descriptors: the kernel completes them, accept() gets EMFILE.
    let conns: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(a).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let ticks_per_sec: u64 = String::from_utf8(
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap_or(100);
    let before = gw.cpu_ticks();
    std::thread::sleep(Duration::from_secs(3));
    let used = gw.cpu_ticks() - before;
    let cpu = used as f64 / ticks_per_sec as f64;
    eprintln!(
        "EMFILE: {} connections held, {cpu:.2} s CPU in 3 s",
        conns.len()
    );
    // A spinning accept loop burns about a core (3 s); backing off costs next to nothing.
    assert!(cpu < 0.5, "accept loop spins: {cpu} s CPU in 3 s");
    drop(conns);
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(mut s) = TcpStream::connect(a) {
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let req = format!("GET /health HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                let mut raw = Vec::new();
                let _ = s.read_to_end(&mut raw);
                if raw.starts_with(b"HTTP/1.1 200") {
                    break;
                }
            }
        }
        assert!(
            Instant::now() < until,
            "no recovery after descriptors were freed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let warnings = gw.output().matches("accept failed").count();
    assert!((1..20).contains(&warnings), "{warnings} accept warnings");
}

const SECRETS: [&str; 6] = [
    "PWsecretA1",
    "PWsecretA2",
    "SKsecretA3",
    "PWsecretA4",
    "SKsecretA5",
    "TKsecretA6",
];

fn secret_tables() -> String {
    format!(
        "[[backends]]\nname = \"remote\"\nkind = \"s3\"\n\
         endpoint = \"http://user:{}@127.0.0.1:9\"\nbucket = \"b\"\n\
         access_key = \"ak\"\nsecret_key = \"{}\"\n\n\
         [server]\nmetrics_token = \"{}\"\n",
        SECRETS[3], SECRETS[4], SECRETS[5]
    )
}

fn assert_no_secret(out: &str) {
    for s in SECRETS {
        assert!(!out.contains(s), "secret {s} printed:\n{out}");
    }
}

#[test]
fn secrets_never_reach_the_output() {
    let creds = format!(
        "[[credentials]]\naccess_key = \"ak\"\nsecret_key = \"{}\"\n",
        SECRETS[2]
    );
    // 1. A ledger URL with a password that cannot be reached: the start-up error names it
    // redacted.
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &creds, &secret_tables()).replace(
        &format!("sqlite://{}/ledger.db", dir.path().display()),
        &format!(
            "postgres://s3o:{}@127.0.0.1:9/none?password={}&connect_timeout=2",
            SECRETS[0], SECRETS[1]
        ),
    );
    let config = dir.path().join("gw.toml");
    std::fs::write(&config, &text).unwrap();
    let mut child = spawn(dir.path(), &config, None, &[], &[("RUST_LOG", "trace")]);
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < until,
            "gateway did not give up on the ledger"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let out = output_of(dir.path());
    assert!(out.contains("s3o:***@127.0.0.1:9"), "{out}");
    assert_no_secret(&out);

    // 2. A config file with a syntax error on a secret's line.
    let broken = text.replace(
        "secret_key = \"SKsecretA3\"",
        "secret_key = \"SKsecretA3\" oops",
    );
    std::fs::write(&config, broken).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_s3o-gateway"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("line "), "{out}");
    assert_no_secret(&out);

    // 3. A serving gateway at trace level, asked a few things, then stopped.
    let mut gw = Gw::start_with(
        &creds,
        &secret_tables(),
        None,
        &[],
        &[("RUST_LOG", "trace")],
    );
    let _ = get(
        gw.addr,
        "/health",
        &[("Authorization", &format!("Bearer {}", SECRETS[5]))],
    );
    let _ = send(gw.addr, "PUT", "/photos/x", &[], b"unsigned");
    let _ = get(gw.addr, "/photos/x", &[]);
    {
        use object_store::signer::Signer as _;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("http://{}", gw.addr))
            .with_bucket_name("photos")
            .with_region("us-east-1")
            .with_access_key_id("ak")
            .with_secret_access_key(SECRETS[2])
            .with_allow_http(true)
            .build()
            .unwrap();
        let path = object_store::path::Path::from("x");
        let u = futures::executor::block_on(store.signed_url(
            reqwest::Method::GET,
            &path,
            Duration::from_secs(60),
        ))
        .unwrap();
        let signed = get(
            gw.addr,
            &format!("{}?{}", u.path(), u.query().unwrap()),
            &[],
        );
        assert_eq!(signed.status, 404, "{}", signed.text());
    }
    gw.stop();
    let out = gw.output();
    assert!(out.contains("serving on"), "{out}");
    assert_no_secret(&out);
}

/// Starts a gateway with `budget` body bytes, stalls `n` uploads of 64 MiB after 4 MiB each
/// and returns (RSS before, peak RSS, uploads refused with 503), RSS in KiB.
fn stalled_uploads_rss(n: usize, budget: u64) -> (u64, u64, usize) {
    let gw = Gw::start(
        "",
        &format!(
            "[server]\nbody_buffer_bytes = {budget}\nbody_buffer_wait_ms = 500\n\
             body_idle_timeout_secs = 60\nmax_concurrent_writes = 1000\n"
        ),
    );
    // Warm up every path once, so the baseline includes it.
    assert_eq!(
        send(gw.addr, "PUT", "/photos/warm", &[], &[7u8; 300_000]).status,
        200
    );
    let base = gw.mem_kib("VmRSS");
    let conns: Vec<TcpStream> = (0..n)
        .map(|i| stalled_put(gw.addr, &format!("big{i}"), 64 << 20, 4 << 20))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let peak = gw.mem_kib("VmHWM");
    // Uploads refused for memory have been answered 503 by now.
    let mut refused = 0;
    for mut s in conns {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 64];
        if let Ok(n) = s.read(&mut buf)
            && buf[..n].starts_with(b"HTTP/1.1 503")
        {
            refused += 1;
        }
    }
    eprintln!(
        "stalled uploads: {n} x 4 MiB sent of 64 MiB, body budget {} MiB: RSS {} MiB -> peak {} MiB, {refused} refused with 503",
        budget >> 20,
        base / 1024,
        peak / 1024
    );
    (base, peak, refused)
}

/// Peak RSS of the real binary while uploads stall mid-body under a tight budget. Local
/// backends stream in 1 MiB chunks, so an admitted upload buffers about 2 MiB; the budget
/// caps how many buffer at once and the rest are refused.
#[test]
fn stalled_uploads_stay_within_the_body_budget() {
    let budget = 16u64 << 20;
    let (base, peak, refused) = stalled_uploads_rss(60, budget);
    assert!(refused > 0, "no upload was refused for memory");
    // The bound: the budget plus a fixed allowance for connections and allocator slack.
    let grown = peak.saturating_sub(base) * 1024;
    assert!(
        grown < budget + (32 << 20),
        "RSS grew {} MiB with a 16 MiB budget",
        grown >> 20
    );
}

/// The README's figures: 300 stalled uploads with the default budget and with none
/// (`cargo test -p s3o-gateway --test edge -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement for the README, not a check"]
fn stalled_uploads_rss_figures() {
    stalled_uploads_rss(300, 256 << 20);
    stalled_uploads_rss(300, 1 << 40);
}

#[test]
fn shutdown_drains_in_flight_requests_within_its_grace() {
    let mut gw = Gw::start(
        "",
        "[server]\nshutdown_grace_secs = 3\nbody_idle_timeout_secs = 60\n",
    );
    let a = gw.addr;
    // An upload still sending when the stop signal arrives is allowed to finish.
    let mut slow = stalled_put(a, "slow", 8, 4);
    // One that never finishes is cut off once the grace has passed.
    let _stuck = stalled_put(a, "stuck", 1000, 10);
    std::thread::sleep(Duration::from_millis(300));
    let pid = gw.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    std::thread::sleep(Duration::from_millis(500));
    slow.write_all(b"1234").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = slow.read_to_end(&mut raw);
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // The listener is closed as soon as the signal arrives.
    assert!(
        TcpStream::connect(a).is_err(),
        "still accepting after SIGTERM"
    );
    let t = Instant::now();
    let exited = loop {
        if let Ok(Some(s)) = gw.child.try_wait() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM with a 3 s grace"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exited.success(), "{}", gw.output());
    assert!(gw.output().contains("closing the remaining connections"));
    gw.stop();
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as `cert.pem` and
/// `key.pem` under `dir`; `None` without openssl(1).
fn make_cert(dir: &Path, name: &str) -> Option<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // webpki refuses a CA certificate as the server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some((cert, key))
}

/// A GET over TLS trusting only the certificate in `root`.
fn tls_get(addr: SocketAddr, root: &Path, target: &str) -> Result<Reply, String> {
    use rustls::pki_types::pem::PemObject as _;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A server closing without close_notify after a complete answer is fine here.
        Err(_) if !raw.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(parse(&raw))
}

#[test]
fn tls_certificate_credentials_and_level_reload_on_sighup() {
    let certs = tempfile::tempdir().unwrap();
    let (Some((cert_a, key_a)), Some((cert_b, key_b))) =
        (make_cert(certs.path(), "a"), make_cert(certs.path(), "b"))
    else {
        eprintln!("SKIPPED: openssl(1) is not available to make test certificates");
        return;
    };
    let cert = certs.path().join("cert.pem");
    let key = certs.path().join("key.pem");
    std::fs::copy(&cert_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();
    let creds = |ak: &str| {
        format!("[[credentials]]\naccess_key = \"{ak}\"\nsecret_key = \"secret-of-{ak}\"\n")
    };
    let tables = |extra: &str, level: &str| {
        format!(
            "[server]\n{extra}\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n[log]\nlevel = \"{level}\"\n",
            cert.display(),
            key.display()
        )
    };
    let gw = Gw::start(&creds("ak1"), &tables("", "info"));
    assert!(
        gw.output().contains("serving on https://"),
        "{}",
        gw.output()
    );
    let a = gw.addr;
    assert_eq!(tls_get(a, &cert_a, "/health").unwrap().status, 200);
    assert!(tls_get(a, &cert_b, "/health").is_err());

    let presigned = |ak: &str| {
        use object_store::signer::Signer as _;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("https://{a}"))
            .with_bucket_name("photos")
            .with_region("us-east-1")
            .with_access_key_id(ak)
            .with_secret_access_key(format!("secret-of-{ak}"))
            .build()
            .unwrap();
        let path = object_store::path::Path::from("nothing");
        let u = futures::executor::block_on(store.signed_url(
            reqwest::Method::GET,
            &path,
            Duration::from_secs(60),
        ))
        .unwrap();
        format!("{}?{}", u.path(), u.query().unwrap_or(""))
    };
    // Signed with the configured key: authenticated, the key is simply absent.
    assert_eq!(tls_get(a, &cert_a, &presigned("ak1")).unwrap().status, 404);
    assert_eq!(tls_get(a, &cert_a, &presigned("ak2")).unwrap().status, 403);

    // Renew the certificate, rotate the key pair, change a limit and the level; SIGHUP.
    std::fs::copy(&cert_b, &cert).unwrap();
    std::fs::copy(&key_b, &key).unwrap();
    let config = gw.dir.path().join("gw.toml");
    std::fs::write(
        &config,
        config_text(
            gw.dir.path(),
            &creds("ak2"),
            &tables("max_connections = 7", "debug"),
        ),
    )
    .unwrap();
    let hup = |gw: &Gw| {
        let _ = Command::new("kill")
            .args(["-HUP", &gw.child.id().to_string()])
            .status();
    };
    hup(&gw);
    let until = Instant::now() + Duration::from_secs(10);
    while tls_get(a, &cert_b, "/health").is_err() {
        assert!(
            Instant::now() < until,
            "new certificate never served:\n{}",
            gw.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(tls_get(a, &cert_a, "/health").is_err());
    assert_eq!(tls_get(a, &cert_b, &presigned("ak2")).unwrap().status, 404);
    assert_eq!(tls_get(a, &cert_b, &presigned("ak1")).unwrap().status, 403);
    let log = gw.output();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        log.contains("credentials") && log.contains("server.tls"),
        "{log}"
    );
    assert!(
        log.contains("only after a restart") && log.contains("server (limits"),
        "{log}"
    );
    // The new level is in effect: per-request lines appear at debug.
    let _ = tls_get(a, &cert_b, "/health");
    std::thread::sleep(Duration::from_millis(200));
    assert!(gw.output().contains("request done"), "{}", gw.output());

    // An invalid file changes nothing.
    std::fs::write(&config, "listen = [").unwrap();
    hup(&gw);
    let until = Instant::now() + Duration::from_secs(10);
    while !gw.output().contains("reload refused") {
        assert!(
            Instant::now() < until,
            "no refusal logged:\n{}",
            gw.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(tls_get(a, &cert_b, &presigned("ak2")).unwrap().status, 404);
}

#[test]
fn header_floods_are_refused() {
    let gw = Gw::start("", "");
    let a = gw.addr;
    // Too many headers, then one header far larger than the read buffer: each answered
    // 431 (or the connection closed) without harming anyone else.
    let many: String = (0..300).map(|i| format!("X-Flood-{i}: y\r\n")).collect();
    let huge = format!("X-Huge: {}\r\n", "z".repeat(2 << 20));
    for extra in [many, huge] {
        let mut s = TcpStream::connect(a).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = format!("GET /photos/x HTTP/1.1\r\nHost: {a}\r\n{extra}\r\n");
        let _ = s.write_all(req.as_bytes());
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        assert!(
            raw.is_empty() || raw.starts_with(b"HTTP/1.1 431"),
            "{}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        );
    }
    assert_eq!(get(a, "/health", &[]).status, 200);
}
