//! `s3o-gateway admin …`: the admin API over HTTP, signed with SigV4 (object_store's
//! signer), so an operator needs the gateway's address and an admin key, not the ledger URL.

use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use serde_json::{Value, json};

/// The usage text of `s3o-gateway admin`.
pub const USAGE: &str =
    "usage: s3o-gateway admin [--endpoint URL] [--access-key AK] [--secret-key SK] [--json] COMMAND
  endpoint and key also from S3O_ADMIN_ENDPOINT, S3O_ADMIN_ACCESS_KEY, S3O_ADMIN_SECRET_KEY
commands:
  status | backends | buckets | workers | cleanup | jobs | openapi
  bucket create NAME [--replication-factor N] | bucket delete NAME | bucket get NAME
  bucket set NAME --replication-factor N
  locations BUCKET KEY
  ls BUCKET [--prefix P] [--delimiter D] [--max-keys N] [--token T] | object BUCKET KEY | rm BUCKET KEY
  copies BACKEND (NDJSON, every copy on it)
  encryption | encryption rotate|encrypt-existing [--batch N] [--pause-ms MS] [--wait]
  encryption decrypt-existing [--batch N] [--pause-ms MS] [--yes] [--wait]
  run WORKER|all [--wait]
  dlq [--backend B] | dlq requeue [--backend B | ID...] | dlq write-off ID... [--yes]
  drain BACKEND [--wait] | job ID | job cancel ID
  remove BACKEND [--yes] [--force]";

struct Client {
    http: reqwest::Client,
    endpoint: String,
    credential: AwsCredential,
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let url = format!("{}{path}", self.endpoint);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .body(HttpRequestBody::from(payload.clone().into_bytes()))
            .map_err(|e| format!("bad request {url}: {e}"))?;
        AwsAuthorizer::new(&self.credential, "s3", "us-east-1")
            .try_authorize(&mut request, None)
            .map_err(|e| format!("signing: {e}"))?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut out = self.http.request(method, &url).body(payload);
        for (k, v) in request.headers() {
            out = out.header(k.as_str(), v.as_bytes());
        }
        let resp = out
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.endpoint))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(v)
        } else {
            let msg = v
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            let code = v
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("");
            Err(format!("{} {code}: {msg}", status.as_u16()))
        }
    }

    /// Polls job `id` until it ends; prints progress to stderr.
    async fn wait(&self, id: &str) -> Result<Value, String> {
        loop {
            let j = self
                .call("GET", &format!("/admin/api/jobs/{id}"), None)
                .await?;
            if j["state"] != "running" {
                return Ok(j);
            }
            if !j["progress"].is_null() {
                eprintln!("{}", j["progress"]);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

fn take_flag(args: &mut Vec<String>, name: &str) -> bool {
    let before = args.len();
    args.retain(|a| a != name);
    args.len() != before
}

fn take_value(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) if i + 1 < args.len() => {
            let v = args.remove(i + 1);
            args.remove(i);
            Ok(Some(v))
        }
        Some(_) => Err(format!("{name} needs a value")),
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Human rendering: objects as `key: value` lines, arrays of objects one line each.
fn human(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::Array(a) if a.iter().all(Value::is_object) && !a.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        for item in a {
                            let line: Vec<String> = item
                                .as_object()
                                .into_iter()
                                .flatten()
                                .map(|(k, v)| match v {
                                    Value::String(s) => format!("{k}={s}"),
                                    other => format!("{k}={other}"),
                                })
                                .collect();
                            out.push_str(&format!("{pad}  - {}\n", line.join("  ")));
                        }
                    }
                    Value::Object(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        human(x, indent + 2, out);
                    }
                    Value::String(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                    other => out.push_str(&format!("{pad}{k}: {other}\n")),
                }
            }
        }
        other => out.push_str(&format!("{pad}{other}\n")),
    }
}

/// Runs `s3o-gateway admin ARGS`; the error is what to print.
pub async fn run(mut args: Vec<String>) -> Result<(), String> {
    let as_json = take_flag(&mut args, "--json");
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let endpoint = take_value(&mut args, "--endpoint")?
        .or_else(|| env("S3O_ADMIN_ENDPOINT"))
        .ok_or("the gateway address is needed: --endpoint URL or S3O_ADMIN_ENDPOINT")?;
    let ak = take_value(&mut args, "--access-key")?
        .or_else(|| env("S3O_ADMIN_ACCESS_KEY"))
        .ok_or("an admin key is needed: --access-key or S3O_ADMIN_ACCESS_KEY")?;
    let sk = take_value(&mut args, "--secret-key")?
        .or_else(|| env("S3O_ADMIN_SECRET_KEY"))
        .ok_or("its secret is needed: --secret-key or S3O_ADMIN_SECRET_KEY")?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = Client {
        http: reqwest::Client::builder()
            .build()
            .map_err(|e| e.to_string())?,
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        credential: AwsCredential {
            key_id: ak,
            secret_key: sk,
            token: None,
        },
    };
    let wait = take_flag(&mut args, "--wait");
    let yes = take_flag(&mut args, "--yes");
    let force = take_flag(&mut args, "--force");
    let backend = take_value(&mut args, "--backend")?;
    let factor = take_value(&mut args, "--replication-factor")?
        .map(|f| {
            f.parse::<i64>()
                .map_err(|_| "--replication-factor takes a number".to_owned())
        })
        .transpose()?;
    let prefix = take_value(&mut args, "--prefix")?;
    let delimiter = take_value(&mut args, "--delimiter")?;
    let max_keys = take_value(&mut args, "--max-keys")?;
    let token = take_value(&mut args, "--token")?;
    let number = |name: &str, v: Option<String>| {
        v.map(|x| {
            x.parse::<i64>()
                .map_err(|_| format!("{name} takes a number"))
        })
        .transpose()
    };
    let batch = number("--batch", take_value(&mut args, "--batch")?)?;
    let pause_ms = number("--pause-ms", take_value(&mut args, "--pause-ms")?)?;
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = match a.as_slice() {
        ["status"] => c.call("GET", "/admin/api/status", None).await?,
        ["backends"] => c.call("GET", "/admin/api/backends", None).await?,
        ["buckets"] => c.call("GET", "/admin/api/buckets", None).await?,
        ["workers"] => c.call("GET", "/admin/api/workers", None).await?,
        ["cleanup"] => c.call("GET", "/admin/api/cleanup", None).await?,
        ["jobs"] => c.call("GET", "/admin/api/jobs", None).await?,
        ["openapi"] => c.call("GET", "/admin/api/openapi.json", None).await?,
        ["bucket", "create", name] => {
            let body = json!({"name": name, "replication_factor": factor});
            c.call("POST", "/admin/api/buckets", Some(body)).await?
        }
        ["bucket", "get", name] => {
            c.call("GET", &format!("/admin/api/buckets/{}", enc(name)), None)
                .await?
        }
        ["bucket", "set", name] => {
            let body = json!({"replication_factor": factor});
            c.call(
                "PUT",
                &format!("/admin/api/buckets/{}", enc(name)),
                Some(body),
            )
            .await?
        }
        ["bucket", "delete", name] => {
            c.call("DELETE", &format!("/admin/api/buckets/{}", enc(name)), None)
                .await?
        }
        ["locations", bucket, key] => {
            let path = format!(
                "/admin/api/locations?bucket={}&key={}",
                enc(bucket),
                enc(key)
            );
            c.call("GET", &path, None).await?
        }
        ["ls", bucket] => {
            let mut q = Vec::new();
            for (k, v) in [
                ("prefix", &prefix),
                ("delimiter", &delimiter),
                ("max_keys", &max_keys),
                ("continuation_token", &token),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", enc(v)));
                }
            }
            let path = format!("/admin/api/buckets/{}/objects?{}", enc(bucket), q.join("&"));
            c.call("GET", path.trim_end_matches('?'), None).await?
        }
        ["object", bucket, key] => {
            let path = format!("/admin/api/buckets/{}/object?key={}", enc(bucket), enc(key));
            c.call("GET", &path, None).await?
        }
        ["rm", bucket, key] => {
            let path = format!("/admin/api/buckets/{}/object?key={}", enc(bucket), enc(key));
            c.call("DELETE", &path, None).await?
        }
        ["copies", backend] => {
            // NDJSON: printed as it came, one copy per line.
            let path = format!("/admin/api/backends/{}/copies", enc(backend));
            match c.call("GET", &path, None).await? {
                Value::String(lines) => {
                    print!("{lines}");
                    return Ok(());
                }
                one => one,
            }
        }
        ["encryption"] => c.call("GET", "/admin/api/encryption", None).await?,
        [
            "encryption",
            action @ ("rotate" | "encrypt-existing" | "decrypt-existing"),
        ] => {
            let path = format!("/admin/api/encryption/{action}");
            let mut body = json!({"batch": batch, "pause_ms": pause_ms});
            if *action == "decrypt-existing" {
                let plan = c.call("POST", &path, Some(body.clone())).await?;
                if !yes {
                    eprintln!("not done: add --yes to decrypt these buckets' objects");
                    plan
                } else {
                    body["token"] = plan["token"].clone();
                    let j = c.call("POST", &path, Some(body)).await?;
                    match (wait, j["id"].as_str()) {
                        (true, Some(id)) => c.wait(id).await?,
                        _ => j,
                    }
                }
            } else {
                let j = c.call("POST", &path, Some(body)).await?;
                match (wait, j["id"].as_str()) {
                    (true, Some(id)) => c.wait(id).await?,
                    _ => j,
                }
            }
        }
        ["run", worker] => {
            let j = c
                .call(
                    "POST",
                    &format!("/admin/api/workers/{}/run", enc(worker)),
                    None,
                )
                .await?;
            match (wait, j["id"].as_str()) {
                (true, Some(id)) => c.wait(id).await?,
                _ => j,
            }
        }
        ["dlq"] => {
            let path = match &backend {
                Some(b) => format!("/admin/api/dlq?backend={}", enc(b)),
                None => "/admin/api/dlq".to_owned(),
            };
            c.call("GET", &path, None).await?
        }
        ["dlq", "requeue", ids @ ..] if !ids.is_empty() => {
            let ids: Vec<i64> = ids
                .iter()
                .map(|i| i.parse().map_err(|_| format!("{i} is not a DLQ row id")))
                .collect::<Result<_, _>>()?;
            c.call("POST", "/admin/api/dlq/requeue", Some(json!({"ids": ids})))
                .await?
        }
        ["dlq", "requeue"] => {
            c.call(
                "POST",
                "/admin/api/dlq/requeue",
                Some(json!({"backend": backend})),
            )
            .await?
        }
        ["dlq", "write-off", ids @ ..] if !ids.is_empty() => {
            let ids: Vec<i64> = ids
                .iter()
                .map(|i| i.parse().map_err(|_| format!("{i} is not a DLQ row id")))
                .collect::<Result<_, _>>()?;
            let plan = c
                .call(
                    "POST",
                    "/admin/api/dlq/write-off",
                    Some(json!({"ids": ids})),
                )
                .await?;
            if yes {
                let token = plan["token"].as_str().unwrap_or_default();
                c.call(
                    "POST",
                    "/admin/api/dlq/write-off",
                    Some(json!({"ids": ids, "token": token})),
                )
                .await?
            } else {
                eprintln!("not done: add --yes to write these rows off");
                plan
            }
        }
        ["drain", name] => {
            let j = c
                .call(
                    "POST",
                    &format!("/admin/api/backends/{}/drain", enc(name)),
                    None,
                )
                .await?;
            match (wait, j["id"].as_str()) {
                (true, Some(id)) => c.wait(id).await?,
                _ => j,
            }
        }
        ["job", "cancel", id] => {
            c.call("DELETE", &format!("/admin/api/jobs/{}", enc(id)), None)
                .await?
        }
        ["job", id] => {
            c.call("GET", &format!("/admin/api/jobs/{}", enc(id)), None)
                .await?
        }
        ["remove", name] => {
            let path = format!("/admin/api/backends/{}/remove", enc(name));
            let plan = c.call("POST", &path, Some(json!({"force": force}))).await?;
            if yes {
                let token = plan["token"].as_str().unwrap_or_default();
                c.call("POST", &path, Some(json!({"force": force, "token": token})))
                    .await?
            } else {
                eprintln!("not done: add --yes to remove it");
                plan
            }
        }
        _ => return Err(USAGE.to_owned()),
    };
    if as_json {
        println!("{v}");
    } else {
        let mut out = String::new();
        human(&v, 0, &mut out);
        print!("{out}");
    }
    Ok(())
}
