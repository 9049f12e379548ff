//! The admin API over HTTP: who may call it, every route's answer and a bad input's typed
//! error, and that each action changes exactly what it says (the ledger checks after).

use std::time::Duration;

use serde_json::{Value, json};

use crate::raw::{Auth, Reply};
use crate::rig::{AK, BUCKET, Ledger, Options, Rig, SK, THREE};

/// The admin key the rig's configuration adds.
pub(crate) const ADMIN_AK: &str = "e2e-admin";
/// Its secret.
pub(crate) const ADMIN_SK: &str = "e2e-admin-secret-0123456789";

/// The extra configuration giving the rig an admin key (workers off: passes run on demand).
pub(crate) fn admin_extra() -> String {
    format!(
        "[[credentials]]\naccess_key = {ADMIN_AK:?}\nsecret_key = {ADMIN_SK:?}\nadmin = true\n\n\
         [workers]\nenabled = false\n"
    )
}

/// The default rig with an admin key.
pub(crate) async fn admin_rig(ledger: Ledger) -> Option<Rig> {
    Rig::start_with(
        ledger,
        Options {
            backends: &THREE,
            routing: "pack",
            store_url: None,
        },
        &admin_extra(),
    )
    .await
}

/// An admin rig with extra `[console]` settings.
pub(crate) async fn admin_rig_with_console(ledger: Ledger, console: &str) -> Option<Rig> {
    Rig::start_with(
        ledger,
        Options {
            backends: &THREE,
            routing: "pack",
            store_url: None,
        },
        &format!("{}\n[console]\n{console}\n", admin_extra()),
    )
    .await
}

fn body_json(r: &Reply) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", r.status, r.text()))
}

/// Calls the admin API as the admin; returns status and JSON body.
pub(crate) async fn api(
    rig: &Rig,
    method: &str,
    target: &str,
    body: Option<Value>,
) -> (u16, Value) {
    api_on(&rig.raw, method, target, body).await
}

/// [`api`] on any gateway's endpoint.
pub(crate) async fn api_on(
    raw: &crate::raw::Raw,
    method: &str,
    target: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let r = raw
        .send_auth(
            Auth::As(ADMIN_AK, ADMIN_SK),
            method,
            target,
            &[("content-type", "application/json")],
            payload,
        )
        .await;
    (r.status, body_json(&r))
}

fn code(v: &Value) -> &str {
    v.pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Polls a job until it ends.
pub(crate) async fn wait_job(rig: &Rig, id: &str) -> Value {
    wait_job_on(&rig.raw, id).await
}

/// [`wait_job`] on any gateway's endpoint.
pub(crate) async fn wait_job_on(raw: &crate::raw::Raw, id: &str) -> Value {
    for _ in 0..300 {
        let (s, j) = api_on(raw, "GET", &format!("/admin/api/jobs/{id}"), None).await;
        assert_eq!(s, 200, "{j}");
        if j["state"] != "running" {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not end in 30 s");
}

/// Plants one DLQ row of `size` bytes on `backend` whose bytes do not exist (so requeueing and
/// a cleanup pass, or a write-off, leave the ledger clean). Returns the DLQ row id.
pub(crate) async fn plant_dlq(rig: &Rig, backend: &str, name: &str, size: i64) -> i64 {
    let store = rig.store();
    let entry = s3o_store::CleanupEntry {
        backend_name: backend.to_owned(),
        object_key: format!("{BUCKET}/{name}"),
        storage_key: format!("{BUCKET}/{name}.gone"),
        reason: "planted by the admin test".to_owned(),
        size_bytes: size,
    };
    let d = store.enqueue_orphaned_bytes(&entry).await.expect("enqueue");
    assert!(
        store
            .move_cleanup_to_dlq(d.cleanup.id, "planted: backend refused the delete")
            .await
            .expect("to dlq")
    );
    let rows = store
        .list_cleanup_dlq(Some(backend), 100)
        .await
        .expect("dlq");
    rows.iter()
        .find(|r| r.object_key == entry.object_key)
        .map(|r| r.id)
        .expect("planted row listed")
}

/// Unsigned callers, non-admin keys and wrong secrets are refused; the admin key is served.
pub(crate) async fn refuses_non_admins(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let unsigned = rig
        .raw
        .send_auth(Auth::Anonymous, "GET", "/admin/api/status", &[], "")
        .await;
    assert_eq!(unsigned.status, 403, "{}", unsigned.text());
    assert_eq!(code(&body_json(&unsigned)), "AccessDenied");
    let client = rig
        .raw
        .send_auth(Auth::As(AK, SK), "GET", "/admin/api/status", &[], "")
        .await;
    assert_eq!(client.status, 403, "{}", client.text());
    assert_eq!(code(&body_json(&client)), "AccessDenied");
    let wrong = rig
        .raw
        .send_auth(
            Auth::As(ADMIN_AK, "not-the-secret"),
            "GET",
            "/admin/api/status",
            &[],
            "",
        )
        .await;
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    assert_eq!(code(&body_json(&wrong)), "SignatureDoesNotMatch");
    // A non-admin's action is refused and changes nothing.
    let create = rig
        .raw
        .send_auth(
            Auth::As(AK, SK),
            "POST",
            "/admin/api/buckets",
            &[],
            json!({"name": "sneaky"}).to_string(),
        )
        .await;
    assert_eq!(create.status, 403);
    assert!(rig.store().get_bucket("sneaky").await.is_err());
    let (s, v) = api(&rig, "GET", "/admin/api/status", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["ledger"]["reachable"], true);
    assert_eq!(v["ledger"]["breaker"], "closed");
    assert_eq!(v["instance_id"], rig.store().instance_id());
    // The console's page is public, with a strict policy; the API is not under it.
    let page = rig
        .raw
        .send_auth(Auth::Anonymous, "GET", "/admin/", &[], "")
        .await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("s3o console"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    // Unknown routes and methods are typed errors.
    let (s, v) = api(&rig, "GET", "/admin/api/nothing", None).await;
    assert_eq!((s, code(&v)), (404, "NoSuchRoute"));
    let (s, v) = api(&rig, "PATCH", "/admin/api/status", None).await;
    assert_eq!((s, code(&v)), (405, "MethodNotAllowed"));
    rig.assert_clean().await;
    rig.finish().await;
}

/// Backends, buckets, locations, workers, cleanup and the OpenAPI description.
pub(crate) async fn reads_and_buckets(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    rig.put("a/one.bin", crate::rig::body(1000, 1)).await;
    rig.put("two.bin", crate::rig::body(2500, 2)).await;
    let (s, v) = api(&rig, "GET", "/admin/api/backends", None).await;
    assert_eq!(s, 200, "{v}");
    let list = v["backends"].as_array().expect("backends");
    assert_eq!(list.len(), 3);
    let stats = rig.store().get_quota_stats().await.expect("stats");
    for b in list {
        let name = b["name"].as_str().expect("name");
        assert_eq!(b["bytes_used"], stats[name].bytes_used, "{name}");
        assert_eq!(b["bytes_limit"], 1i64 << 30);
        assert_eq!(b["reachable"], true, "{name}");
        assert_eq!(b["configured"], true);
    }
    // pack: both on the first backend.
    assert_eq!(list[0]["bytes_used"], 3500);
    assert_eq!(list[0]["copies"], 2);
    assert_eq!(list[0]["free_bytes"], (1i64 << 30) - 3500);

    let (s, v) = api(
        &rig,
        "GET",
        "/admin/api/locations?bucket=photos&key=a%2Fone.bin",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let copies = v["copies"].as_array().expect("copies");
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["backend"], "fs-a");
    assert_eq!(copies[0]["size_bytes"], 1000);
    assert_eq!(
        copies[0]["etag"]
            .as_str()
            .map(|e| e.trim_matches('"').to_owned()),
        Some(crate::rig::md5_hex(&crate::rig::body(1000, 1)))
    );
    assert_eq!(copies[0]["encrypted"], false);
    let (s, v) = api(
        &rig,
        "GET",
        "/admin/api/locations?bucket=photos&key=missing",
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (404, "NoSuchKey"));
    let (s, v) = api(&rig, "GET", "/admin/api/locations?bucket=photos", None).await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));

    // Buckets: list, create, settings, duplicates and bad names refused, delete.
    let (s, v) = api(&rig, "GET", "/admin/api/buckets", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["buckets"][0]["name"], BUCKET);
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/buckets",
        Some(json!({"name": "made-by-admin", "replication_factor": 2})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["replication_factor"], 2);
    assert_eq!(
        rig.store()
            .get_bucket("made-by-admin")
            .await
            .expect("created")
            .settings
            .replication_factor,
        2
    );
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/buckets",
        Some(json!({"name": "made-by-admin"})),
    )
    .await;
    assert_eq!((s, code(&v)), (409, "BucketAlreadyOwnedByYou"));
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/buckets",
        Some(json!({"name": "Bad_Name"})),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"), "{v}");
    assert!(rig.store().get_bucket("Bad_Name").await.is_err());
    let (s, v) = api(&rig, "POST", "/admin/api/buckets", Some(json!({"name": 7}))).await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));
    let r = rig
        .raw
        .send_auth(
            Auth::As(ADMIN_AK, ADMIN_SK),
            "POST",
            "/admin/api/buckets",
            &[],
            "{not json",
        )
        .await;
    assert_eq!(
        (r.status, code(&body_json(&r)).to_owned()),
        (400, "InvalidArgument".to_owned())
    );
    let (s, v) = api(
        &rig,
        "PUT",
        "/admin/api/buckets/made-by-admin",
        Some(json!({"replication_factor": 1})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        rig.store()
            .get_bucket("made-by-admin")
            .await
            .expect("b")
            .settings
            .replication_factor,
        1
    );
    let (s, v) = api(
        &rig,
        "PUT",
        "/admin/api/buckets/made-by-admin",
        Some(json!({"replication_factor": 0})),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));
    let (s, v) = api(&rig, "GET", "/admin/api/buckets/made-by-admin", None).await;
    assert_eq!((s, v["name"].as_str()), (200, Some("made-by-admin")));
    let (s, v) = api(&rig, "DELETE", "/admin/api/buckets/photos", None).await;
    assert_eq!((s, code(&v)), (409, "BucketNotEmpty"), "{v}");
    let (s, _) = api(&rig, "DELETE", "/admin/api/buckets/made-by-admin", None).await;
    assert_eq!(s, 200);
    let (s, v) = api(&rig, "GET", "/admin/api/buckets/made-by-admin", None).await;
    assert_eq!((s, code(&v)), (404, "NoSuchBucket"));

    // Workers: none ran yet; a pass on demand is a job whose result is recorded.
    let (s, v) = api(&rig, "GET", "/admin/api/workers", None).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["workers"]
        .as_array()
        .expect("w")
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert!(
        names.contains(&"cleanup") && names.contains(&"replicator"),
        "{names:?}"
    );
    assert!(v["workers"][0]["last_pass"].is_null());
    let (s, job) = api(&rig, "POST", "/admin/api/workers/replicator/run", None).await;
    assert_eq!(s, 202, "{job}");
    let done = wait_job(&rig, job["id"].as_str().expect("id")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["result"]["passes"][0]["worker"], "replicator");
    let (_, v) = api(&rig, "GET", "/admin/api/workers", None).await;
    let rep = v["workers"]
        .as_array()
        .expect("w")
        .iter()
        .find(|w| w["name"] == "replicator")
        .expect("replicator");
    assert_eq!(rep["last_pass"]["passes"], 1);
    assert_eq!(
        rep["last_pass"]["outcome"],
        done["result"]["passes"][0]["outcome"]
    );
    let (s, v) = api(&rig, "POST", "/admin/api/workers/nope/run", None).await;
    assert_eq!((s, code(&v)), (404, "NoSuchWorker"));
    let (s, v) = api(&rig, "GET", "/admin/api/jobs/nope", None).await;
    assert_eq!((s, code(&v)), (404, "NoSuchJob"));
    let (s, v) = api(&rig, "GET", "/admin/api/jobs", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["jobs"].as_array().map(Vec::len), Some(1));

    let (s, v) = api(&rig, "GET", "/admin/api/cleanup", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["queue"], json!({"due": 0, "claimed": 0, "waiting": 0}));
    assert_eq!(v["dlq"], 0);

    // The OpenAPI description lists every route the table serves.
    let (s, v) = api(&rig, "GET", "/admin/api/openapi.json", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["openapi"], "3.0.3");
    for (path, method) in [
        ("/admin/api/status", "get"),
        ("/admin/api/buckets", "post"),
        ("/admin/api/buckets/{bucket}", "delete"),
        ("/admin/api/backends/{name}/remove", "post"),
        ("/admin/api/dlq/write-off", "post"),
        ("/admin/api/jobs/{id}", "delete"),
    ] {
        assert!(v["paths"][path][method].is_object(), "{path} {method}");
    }
    assert_eq!(rig.get("two.bin").await, crate::rig::body(2500, 2));
    rig.assert_clean().await;
    rig.finish().await;
}

/// DLQ: list, requeue by backend (a cleanup pass then clears it), write-off in two steps.
pub(crate) async fn dlq_requeue_and_write_off(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let id_a = plant_dlq(&rig, "fs-a", "lost-a", 700).await;
    let id_b = plant_dlq(&rig, "fs-b", "lost-b", 300).await;
    let (s, v) = api(&rig, "GET", "/admin/api/dlq", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["dlq"].as_array().map(Vec::len), Some(2));
    let (s, v) = api(&rig, "GET", "/admin/api/dlq?backend=fs-a", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["dlq"][0]["id"], id_a);
    assert_eq!(v["dlq"][0]["size_bytes"], 700);
    let (s, v) = api(&rig, "GET", "/admin/api/dlq?limit=0", None).await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));
    let (s, v) = api(&rig, "GET", "/admin/api/dlq?backend=nowhere", None).await;
    assert_eq!((s, code(&v)), (404, "NoSuchBackend"));
    let (_, v) = api(&rig, "GET", "/admin/api/cleanup", None).await;
    assert_eq!(v["dlq"], 2);
    assert_eq!(v["by_backend"]["fs-a"]["dlq_bytes"], 700);

    // Requeue fs-a's rows only.
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/dlq/requeue",
        Some(json!({"backend": "fs-a"})),
    )
    .await;
    assert_eq!((s, v["requeued"].as_i64()), (200, Some(1)), "{v}");
    assert_eq!(rig.store().cleanup_dlq_depth().await.expect("dlq"), 1);
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/dlq/requeue",
        Some(json!({"backend": "nowhere"})),
    )
    .await;
    assert_eq!((s, code(&v)), (404, "NoSuchBackend"));
    // Requeue by id: only the named row moves.
    let id_c = plant_dlq(&rig, "disk-c", "lost-c", 50).await;
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/dlq/requeue",
        Some(json!({"ids": ["x"]})),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/dlq/requeue",
        Some(json!({"ids": [id_c], "backend": "disk-c"})),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/dlq/requeue",
        Some(json!({"ids": [id_c]})),
    )
    .await;
    assert_eq!((s, v["requeued"].as_i64()), (200, Some(1)), "{v}");
    assert_eq!(
        rig.store().cleanup_dlq_depth().await.expect("dlq"),
        1,
        "fs-b's row stays"
    );
    let (s, job) = api(&rig, "POST", "/admin/api/workers/cleanup/run", None).await;
    assert_eq!(s, 202);
    let done = wait_job(&rig, job["id"].as_str().expect("id")).await;
    assert_eq!(done["state"], "done", "{done}");
    let quotas = rig.store().get_quota_stats().await.expect("q");
    assert_eq!(
        (quotas["fs-a"].orphan_bytes, quotas["disk-c"].orphan_bytes),
        (0, 0)
    );

    // Write-off: the first call describes and issues a token; the second writes off.
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/dlq/write-off",
        Some(json!({"ids": []})),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/dlq/write-off",
        Some(json!({"ids": [id_b + 1000]})),
    )
    .await;
    assert_eq!((s, code(&v)), (404, "NoSuchDlqRow"));
    let (s, plan) = api(
        &rig,
        "POST",
        "/admin/api/dlq/write-off",
        Some(json!({"ids": [id_b]})),
    )
    .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(
        (plan["rows"].as_i64(), plan["bytes"].as_i64()),
        (Some(1), Some(300))
    );
    assert_eq!(
        rig.store().cleanup_dlq_depth().await.expect("dlq"),
        1,
        "the plan changes nothing"
    );
    let token = plan["token"].as_str().expect("token");
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/dlq/write-off",
        Some(json!({"ids": [id_b, id_a], "token": token})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (409, "TokenMismatch"),
        "a token confirms exactly what it described"
    );
    let (s, plan) = api(
        &rig,
        "POST",
        "/admin/api/dlq/write-off",
        Some(json!({"ids": [id_b]})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/dlq/write-off",
        Some(json!({"ids": [id_b], "token": plan["token"]})),
    )
    .await;
    assert_eq!((s, v["written_off"].as_i64()), (200, Some(1)), "{v}");
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/dlq/write-off",
        Some(json!({"ids": [id_b], "token": plan["token"]})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (400, "InvalidArgument"),
        "a token is used once: {v}"
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// Drain as a job; removal in two steps with a token that expires.
pub(crate) async fn drain_and_remove(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    for i in 0..5u8 {
        rig.put(&format!("d/{i}"), crate::rig::body(400 + usize::from(i), i))
            .await;
    }
    assert_eq!(
        rig.store().backend_object_stats("fs-a").await.expect("s").0,
        5
    );
    let (s, v) = api(&rig, "POST", "/admin/api/backends/nowhere/drain", None).await;
    assert_eq!((s, code(&v)), (404, "NoSuchBackend"));
    let (s, job) = api(&rig, "POST", "/admin/api/backends/fs-a/drain", None).await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["kind"], "drain");
    let done = wait_job(&rig, job["id"].as_str().expect("id")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["result"]["moved"], 5);
    assert_eq!(done["result"]["remaining"], 0);
    assert_eq!(
        rig.store().backend_object_stats("fs-a").await.expect("s").0,
        0
    );
    let (s, v) = api(
        &rig,
        "DELETE",
        &format!("/admin/api/jobs/{}", job["id"].as_str().expect("id")),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (409, "JobNotRunning"));
    for i in 0..5u8 {
        assert_eq!(
            rig.get(&format!("d/{i}")).await,
            crate::rig::body(400 + usize::from(i), i)
        );
    }

    // A configured backend cannot be removed; an unknown one is 404.
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/backends/fs-a/remove",
        Some(json!({})),
    )
    .await;
    assert_eq!((s, code(&v)), (409, "BackendInUse"), "{v}");
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/backends/nowhere/remove",
        Some(json!({})),
    )
    .await;
    assert_eq!((s, code(&v)), (404, "NoSuchBackend"));
    // A backend the ledger knows and the configuration does not (taken out after its drain).
    rig.store()
        .register_backends(&[("retired".to_owned(), 1000)])
        .await
        .expect("register");
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/backends/retired/remove",
        Some(json!({"ttl_secs": 0})),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));
    let (s, plan) = api(
        &rig,
        "POST",
        "/admin/api/backends/retired/remove",
        Some(json!({"ttl_secs": 1})),
    )
    .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["copies"], 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/backends/retired/remove",
        Some(json!({"token": plan["token"]})),
    )
    .await;
    assert_eq!((s, code(&v)), (410, "TokenExpired"), "{v}");
    assert!(
        rig.store()
            .get_quota_stats()
            .await
            .expect("q")
            .contains_key("retired"),
        "an expired token removes nothing"
    );
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/backends/retired/remove",
        Some(json!({"token": "forged"})),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));
    let (s, plan) = api(
        &rig,
        "POST",
        "/admin/api/backends/retired/remove",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = api(
        &rig,
        "POST",
        "/admin/api/backends/retired/remove",
        Some(json!({"token": plan["token"]})),
    )
    .await;
    assert_eq!((s, v["removed"].as_bool()), (200, Some(true)), "{v}");
    assert!(
        !rig.store()
            .get_quota_stats()
            .await
            .expect("q")
            .contains_key("retired")
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// The CLI and curl: `s3o-gateway admin` and `curl --aws-sigv4` are served like any client.
pub(crate) async fn cli_and_curl(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let endpoint = rig.gateway().endpoint();
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = vec![
            "--endpoint".into(),
            endpoint.clone(),
            "--access-key".into(),
            ADMIN_AK.into(),
            "--secret-key".into(),
            ADMIN_SK.into(),
        ];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        all
    };
    s3o_gateway::admin_cli(cli(&["--json", "status"]))
        .await
        .expect("admin status");
    s3o_gateway::admin_cli(cli(&["bucket", "create", "via-cli"]))
        .await
        .expect("create");
    assert!(rig.store().get_bucket("via-cli").await.is_ok());
    let err = s3o_gateway::admin_cli(cli(&["bucket", "create", "via-cli"]))
        .await
        .expect_err("dup");
    assert!(
        err.contains("409") && err.contains("BucketAlreadyOwnedByYou"),
        "{err}"
    );
    // The object browser and encryption commands.
    rig.put("cli/one.bin", crate::rig::body(321, 4)).await;
    s3o_gateway::admin_cli(cli(&["ls", BUCKET, "--prefix", "cli/", "--max-keys", "5"]))
        .await
        .expect("ls");
    s3o_gateway::admin_cli(cli(&["object", BUCKET, "cli/one.bin"]))
        .await
        .expect("object");
    s3o_gateway::admin_cli(cli(&["copies", "fs-a"]))
        .await
        .expect("copies");
    let err = s3o_gateway::admin_cli(cli(&["ls", BUCKET, "--max-keys", "0"]))
        .await
        .expect_err("max-keys 0");
    assert!(
        err.contains("400") && err.contains("InvalidArgument"),
        "{err}"
    );
    s3o_gateway::admin_cli(cli(&["rm", BUCKET, "cli/one.bin"]))
        .await
        .expect("rm");
    assert!(
        rig.placement("cli/one.bin").await.is_empty(),
        "rm deleted it"
    );
    let err = s3o_gateway::admin_cli(cli(&["rm", BUCKET, "cli/one.bin"]))
        .await
        .expect_err("rm again");
    assert!(err.contains("404") && err.contains("NoSuchKey"), "{err}");
    s3o_gateway::admin_cli(cli(&["encryption"]))
        .await
        .expect("encryption status");
    let err = s3o_gateway::admin_cli(cli(&["encryption", "rotate"]))
        .await
        .expect_err("no keys");
    assert!(
        err.contains("409") && err.contains("EncryptionNotConfigured"),
        "{err}"
    );
    let mut bad = cli(&["status"]);
    bad[3] = AK.into();
    bad[5] = SK.into();
    let err = s3o_gateway::admin_cli(bad).await.expect_err("non-admin");
    assert!(err.contains("403"), "{err}");
    // curl's own SigV4 signer, when curl is installed.
    let curl = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &format!("{ADMIN_AK}:{ADMIN_SK}"),
            "-H",
            "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &format!("{endpoint}/admin/api/status"),
        ])
        .output();
    match curl {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.trim_end().ends_with("200"), "curl --aws-sigv4: {text}");
            assert!(text.contains("\"instance_id\""), "{text}");
        }
        Err(e) => eprintln!("SKIPPED curl --aws-sigv4 check: curl not runnable ({e})"),
    }
    rig.assert_clean().await;
    rig.finish().await;
}

/// A drain cancelled mid-way leaves nothing a second drain and the reaper do not finish.
pub(crate) async fn drain_cancel_resumes(ledger: Ledger) {
    let extra = format!("{}\n[workers.reaper]\nmin_age = \"1s\"\n", admin_extra());
    let Some(rig) = Rig::start_with(
        ledger,
        Options {
            backends: &THREE,
            routing: "pack",
            store_url: None,
        },
        &extra,
    )
    .await
    else {
        return;
    };
    for i in 0..30u8 {
        rig.put(&format!("c/{i:02}"), crate::rig::body(20_000, i))
            .await;
    }
    let (s, job) = api(&rig, "POST", "/admin/api/backends/fs-a/drain", None).await;
    assert_eq!(s, 202);
    let id = job["id"].as_str().expect("id").to_owned();
    let (s, again) = api(&rig, "POST", "/admin/api/backends/fs-a/drain", None).await;
    if s == 409 {
        assert_eq!(code(&again), "DrainInProgress");
    }
    let (s, v) = api(&rig, "DELETE", &format!("/admin/api/jobs/{id}"), None).await;
    match s {
        200 => assert_eq!(v["state"], "cancelled"),
        409 => assert_eq!(code(&v), "JobNotRunning", "it finished first"),
        other => panic!("cancel answered {other}: {v}"),
    }
    // Whatever the cancel cut, a second drain finishes the job and the reaper the intents.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, job) = api(&rig, "POST", "/admin/api/backends/fs-a/drain", None).await;
    assert_eq!(s, 202, "{job}");
    let done = wait_job(&rig, job["id"].as_str().expect("id")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        rig.store().backend_object_stats("fs-a").await.expect("s").0,
        0
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rig.gateway().run_workers_once().await;
    for i in 0..30u8 {
        assert_eq!(
            rig.get(&format!("c/{i:02}")).await,
            crate::rig::body(20_000, i)
        );
    }
    rig.assert_clean().await;
    rig.finish().await;
}

/// With `metrics_listen`, the operator listener serves the console and the admin API too
/// (same SigV4 rules), and still nothing of S3.
pub(crate) async fn operator_listener_serves_admin(ledger: Ledger) {
    let extra = format!(
        "{}\n[server]\nmetrics_listen = \"127.0.0.1:0\"\n",
        admin_extra()
    );
    let Some(rig) = Rig::start_with(
        ledger,
        Options {
            backends: &THREE,
            routing: "pack",
            store_url: None,
        },
        &extra,
    )
    .await
    else {
        return;
    };
    let addr = rig.gateway().operator_addr().expect("operator listener");
    let op = crate::raw::Raw::new(&format!("http://{addr}"));
    let r = op
        .send_auth(
            Auth::As(ADMIN_AK, ADMIN_SK),
            "GET",
            "/admin/api/status",
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(body_json(&r)["ledger"]["reachable"], true);
    let r = op
        .send_auth(Auth::Anonymous, "GET", "/admin/api/status", &[], "")
        .await;
    assert_eq!(r.status, 403);
    let r = op
        .send_auth(Auth::Anonymous, "GET", "/admin/", &[], "")
        .await;
    assert_eq!(r.status, 200);
    let r = op
        .send_auth(
            Auth::Client,
            "GET",
            &format!("/{BUCKET}?list-type=2"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 404, "no S3 on the operator listener");
    rig.assert_clean().await;
    rig.finish().await;
}

/// The object browser: folders and pages of a bucket, an object's copies, its bytes, and its
/// deletion through the S3 DELETE path (ledger and backends clean after); bad input refused.
pub(crate) async fn object_browser(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let keys = [
        "a/one.bin",
        "a/sub/deep.bin",
        "a/two.bin",
        "b0",
        "b1",
        "b2",
        "b3",
        "top.bin",
    ];
    for (i, k) in keys.iter().enumerate() {
        rig.put(k, crate::rig::body(100 + i, i as u8)).await;
    }
    let list = |q: &str| format!("/admin/api/buckets/{BUCKET}/objects{q}");
    let names = |v: &Value, field: &str| -> Vec<String> {
        v[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field}: {v}"))
            .iter()
            .map(|o| o.get("key").unwrap_or(o).as_str().expect("str").to_owned())
            .collect()
    };
    // The root with "/" as delimiter: one folder, the top-level objects.
    let (s, v) = api(&rig, "GET", &list("?delimiter=%2F"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(names(&v, "folders"), ["a/"]);
    assert_eq!(names(&v, "objects"), ["b0", "b1", "b2", "b3", "top.bin"]);
    assert_eq!(v["is_truncated"], false);
    assert!(v["next_continuation_token"].is_null());
    assert_eq!(v["objects"][4]["size_bytes"], 107);
    assert_eq!(v["objects"][4]["encrypted"], false);
    assert_eq!(
        v["objects"][4]["etag"]
            .as_str()
            .map(|e| e.trim_matches('"')),
        Some(crate::rig::md5_hex(&crate::rig::body(107, 7)).as_str())
    );
    // Into the folder.
    let (s, v) = api(&rig, "GET", &list("?prefix=a%2F&delimiter=%2F"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(names(&v, "folders"), ["a/sub/"]);
    assert_eq!(names(&v, "objects"), ["a/one.bin", "a/two.bin"]);
    // Pages of 3 without a delimiter: every key once, in order, then no token.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for page in 0.. {
        assert!(page < 10, "pagination does not end");
        let q = match &token {
            None => "?max_keys=3".to_owned(),
            Some(t) => format!("?max_keys=3&continuation_token={t}"),
        };
        let (s, v) = api(&rig, "GET", &list(&q), None).await;
        assert_eq!(s, 200, "{v}");
        let got = names(&v, "objects");
        assert!(got.len() <= 3, "{got:?}");
        seen.extend(got);
        match v["next_continuation_token"].as_str() {
            Some(t) => {
                assert_eq!(v["is_truncated"], true);
                token = Some(t.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(seen, keys);
    // Bad input: typed 400s (and 404 for an unknown bucket), nothing changes.
    for (q, what) in [
        ("?max_keys=0", "max_keys 0"),
        ("?max_keys=1001", "max_keys too large"),
        ("?max_keys=ten", "max_keys not a number"),
        ("?continuation_token=%21%21", "a token not issued here"),
        ("?delimiter=ab", "a two-character delimiter"),
    ] {
        let (s, v) = api(&rig, "GET", &list(q), None).await;
        assert_eq!((s, code(&v)), (400, "InvalidArgument"), "{what}: {v}");
    }
    let long = "k".repeat(1025);
    let (s, v) = api(&rig, "GET", &list(&format!("?prefix={long}")), None).await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"), "{v}");
    let (s, v) = api(&rig, "GET", "/admin/api/buckets/nothing-here/objects", None).await;
    assert_eq!((s, code(&v)), (404, "NoSuchBucket"), "{v}");

    // Two copies of every object: the object's view lists both, as the ledger has them.
    let (s, v) = api(
        &rig,
        "PUT",
        &format!("/admin/api/buckets/{BUCKET}"),
        Some(json!({"replication_factor": 2})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    rig.gateway()
        .run_worker_once(s3o_gateway::Worker::Replicator)
        .await;
    let obj = format!("/admin/api/buckets/{BUCKET}/object");
    let (s, v) = api(&rig, "GET", &format!("{obj}?key=a%2Fone.bin"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["key"], "a/one.bin");
    assert_eq!(v["size_bytes"], 100);
    let copies = v["copies"].as_array().expect("copies");
    let mut backends: Vec<(String, i64)> = copies
        .iter()
        .map(|c| {
            (
                c["backend"].as_str().expect("backend").to_owned(),
                c["size_bytes"].as_i64().expect("size"),
            )
        })
        .collect();
    backends.sort();
    assert_eq!(backends, rig.placement("a/one.bin").await);
    assert_eq!(backends.len(), 2, "{v}");
    for c in copies {
        assert_eq!(c["encrypted"], false);
        assert!(c["last_scrubbed_at"].is_null(), "never scrubbed yet: {c}");
        assert!(c["path"].as_str().is_some_and(|p| p.starts_with("photos/")));
    }
    let (s, v) = api(&rig, "GET", &format!("{obj}?key=nope"), None).await;
    assert_eq!((s, code(&v)), (404, "NoSuchKey"));
    let (s, v) = api(&rig, "GET", &obj, None).await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));

    // Download: the bytes, as an attachment.
    let r = rig
        .raw
        .send_auth(
            Auth::As(ADMIN_AK, ADMIN_SK),
            "GET",
            &format!("{obj}/content?key=a%2Ftwo.bin"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(&r.body[..], &crate::rig::body(102, 2)[..]);
    assert_eq!(
        r.header("content-disposition").as_deref(),
        Some("attachment; filename=\"two.bin\"")
    );
    let r = rig
        .raw
        .send_auth(
            Auth::As(ADMIN_AK, ADMIN_SK),
            "GET",
            &format!("{obj}/content?key=gone"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        (r.status, code(&body_json(&r)).to_owned()),
        (404, "NoSuchKey".to_owned())
    );
    // A non-admin can neither read nor delete through the API.
    let r = rig
        .raw
        .send_auth(
            Auth::As(AK, SK),
            "DELETE",
            &format!("{obj}?key=b0"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(rig.placement("b0").await.len(), 2, "nothing deleted");

    // Delete: both copies leave the ledger and the backends; S3 no longer serves the key.
    let (s, v) = api(&rig, "DELETE", &format!("{obj}?key=a%2Ftwo.bin"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["deleted"], true);
    assert_eq!(v["copies_removed"], 2);
    assert!(rig.placement("a/two.bin").await.is_empty());
    let r = rig
        .raw
        .send_auth(
            Auth::Client,
            "GET",
            &format!("/{BUCKET}/a/two.bin"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 404, "the deleted key is gone for S3 clients");
    let (s, v) = api(&rig, "DELETE", &format!("{obj}?key=a%2Ftwo.bin"), None).await;
    assert_eq!((s, code(&v)), (404, "NoSuchKey"), "{v}");
    let (s, v) = api(&rig, "DELETE", &obj, None).await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));
    let (_, v) = api(&rig, "GET", &list("?prefix=a%2F&delimiter=%2F"), None).await;
    assert_eq!(names(&v, "objects"), ["a/one.bin"]);
    // The OpenAPI description has the new routes, the key parameter required.
    let (_, v) = api(&rig, "GET", "/admin/api/openapi.json", None).await;
    let p = &v["paths"]["/admin/api/buckets/{bucket}/object"];
    assert!(p["delete"].is_object() && p["get"].is_object(), "{p}");
    assert_eq!(p["get"]["parameters"][1]["name"], "key");
    assert_eq!(p["get"]["parameters"][1]["required"], true);
    assert!(v["paths"]["/admin/api/buckets/{bucket}/objects"]["get"].is_object());
    assert_eq!(rig.get("a/one.bin").await, crate::rig::body(100, 0));
    rig.assert_clean().await;
    rig.finish().await;
}

/// The admin rig with `[encryption]` under key `k1` (file in `dir`; every bucket encrypts)
/// and a second bucket `twice` (replication factor 2) that encrypts when `twice_encrypts`.
pub(crate) async fn encrypted_admin_rig(
    ledger: Ledger,
    dir: &std::path::Path,
    twice_encrypts: bool,
) -> Option<Rig> {
    let k1 = crate::encryption::key_file(dir, "k1.key", 0x11);
    let extra = format!(
        "{}\n[encryption]\nencrypt = true\nkey_id = \"k1\"\nmaster_key_file = {:?}\n\
         chunk_size = 4096\n\n[[buckets]]\nname = \"twice\"\nreplication_factor = 2\n\
         encrypt = {twice_encrypts}\n",
        admin_extra(),
        k1.display().to_string()
    );
    Rig::start_with(
        ledger,
        Options {
            backends: &THREE,
            routing: "pack",
            store_url: None,
        },
        &extra,
    )
    .await
}

/// Encryption jobs: rotation under a new key, `encrypt-existing` and the two-step
/// `decrypt-existing`, each on a gateway configured for it (as an operator restarts with new
/// settings), their counters in the job; bad pacing and a missing `[encryption]` refused.
pub(crate) async fn encryption_jobs(ledger: Ledger) {
    let keys = tempfile::tempdir().expect("tempdir");
    let Some(rig) = encrypted_admin_rig(ledger, keys.path(), false).await else {
        return;
    };
    for i in 0..3u8 {
        rig.put(
            &format!("sealed/{i}"),
            crate::rig::body(5000 + usize::from(i), i),
        )
        .await;
    }
    for i in 0..2u8 {
        let r = rig
            .raw
            .send(
                "PUT",
                &format!("/twice/plain/{i}"),
                &[],
                crate::rig::body(7000, 10 + i),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    rig.gateway()
        .run_worker_once(s3o_gateway::Worker::Replicator)
        .await;
    let rows = |key: String| {
        let store = rig.store().clone();
        async move {
            store
                .get_all_object_locations(&key)
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"))
        }
    };
    assert_eq!(rows("twice/plain/0".into()).await.len(), 2);
    assert!(!rows("twice/plain/0".into()).await[0].form.encrypted);

    // A restart with k2 current (k1 kept to unwrap), and "twice" now encrypting.
    let mut config =
        crate::encryption::with_keys(&rig.config, keys.path(), ("k2", 0x22), &[("k1", 0x11)]);
    config
        .buckets
        .iter_mut()
        .filter(|b| b.name == "twice")
        .for_each(|b| b.encrypt = Some(true));
    let gw = s3o_gateway::Gateway::start(config.clone())
        .await
        .expect("gateway with k2");
    let raw = crate::raw::Raw::new(&gw.endpoint());
    let (s, v) = api_on(&raw, "GET", "/admin/api/encryption", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["configured"].as_bool(), v["key_id"].as_str()),
        (Some(true), Some("k2"))
    );
    assert!(
        v["buckets"]
            .as_array()
            .expect("buckets")
            .contains(&json!({"name": "twice", "encrypts": true})),
        "{v}"
    );
    for bad in [
        json!({"batch": 0}),
        json!({"batch": "ten"}),
        json!({"pause_ms": -1}),
        json!({"pause_ms": 60001}),
    ] {
        let (s, v) = api_on(
            &raw,
            "POST",
            "/admin/api/encryption/rotate",
            Some(bad.clone()),
        )
        .await;
        assert_eq!((s, code(&v)), (400, "InvalidArgument"), "{bad}: {v}");
    }
    assert!(
        api_on(&raw, "GET", "/admin/api/jobs", None).await.1["jobs"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "a refused call starts nothing"
    );
    let (s, job) = api_on(
        &raw,
        "POST",
        "/admin/api/encryption/rotate",
        Some(json!({"batch": 1})),
    )
    .await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["kind"], "rotate");
    let done = wait_job_on(&raw, job["id"].as_str().expect("id")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["result"]["rewrapped"], 3, "{done}");
    assert_eq!(done["result"]["failed"], 0);
    assert_eq!(
        done["progress"]["examined"], 3,
        "the last page's counters: {done}"
    );
    for i in 0..3 {
        assert_eq!(
            rows(format!("{BUCKET}/sealed/{i}")).await[0].form.key_id,
            "k2"
        );
    }
    let (s, job) = api_on(
        &raw,
        "POST",
        "/admin/api/encryption/encrypt-existing",
        Some(json!({"batch": 1})),
    )
    .await;
    assert_eq!(s, 202, "{job}");
    let done = wait_job_on(&raw, job["id"].as_str().expect("id")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (
            done["result"]["converted"].as_u64(),
            done["result"]["failed"].as_u64()
        ),
        (Some(2), Some(0)),
        "{done}"
    );
    let sealed = rows("twice/plain/1".into()).await;
    assert_eq!(sealed.len(), 2);
    assert!(
        sealed
            .iter()
            .all(|c| c.form.encrypted && c.form.key_id == "k2"),
        "{sealed:?}"
    );
    let r = raw.send("GET", "/twice/plain/1", &[], "").await;
    assert_eq!(
        (r.status, &r.body[..]),
        (200, &crate::rig::body(7000, 11)[..])
    );
    gw.shutdown().await;

    // Another restart with "twice" no longer encrypting: decrypting takes a token first.
    config
        .buckets
        .iter_mut()
        .filter(|b| b.name == "twice")
        .for_each(|b| b.encrypt = Some(false));
    let gw = s3o_gateway::Gateway::start(config.clone())
        .await
        .expect("gateway, twice plaintext");
    let raw = crate::raw::Raw::new(&gw.endpoint());
    let url = "/admin/api/encryption/decrypt-existing";
    let (s, plan) = api_on(&raw, "POST", url, Some(json!({"batch": 5}))).await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["confirm"], true);
    assert_eq!(plan["buckets"], json!(["twice"]));
    assert!(
        rows("twice/plain/0".into()).await[0].form.encrypted,
        "the plan changes nothing"
    );
    let (s, v) = api_on(&raw, "POST", url, Some(json!({"token": "forged"}))).await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"), "{v}");
    let (s, v) = api_on(
        &raw,
        "POST",
        url,
        Some(json!({"batch": 6, "token": plan["token"]})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (409, "TokenMismatch"),
        "the token confirms batch 5: {v}"
    );
    let (_, plan) = api_on(&raw, "POST", url, Some(json!({"batch": 5}))).await;
    let (s, job) = api_on(
        &raw,
        "POST",
        url,
        Some(json!({"batch": 5, "token": plan["token"]})),
    )
    .await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["kind"], "decrypt-existing");
    let done = wait_job_on(&raw, job["id"].as_str().expect("id")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["result"]["converted"], 2, "{done}");
    for i in 0..2u8 {
        let copies = rows(format!("twice/plain/{i}")).await;
        assert!(copies.iter().all(|c| !c.form.encrypted), "{copies:?}");
        let r = raw.send("GET", &format!("/twice/plain/{i}"), &[], "").await;
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &crate::rig::body(7000, 10 + i)[..])
        );
    }
    assert!(
        rows(format!("{BUCKET}/sealed/0")).await[0].form.encrypted,
        "photos still encrypts"
    );
    let (s, v) = api_on(
        &raw,
        "POST",
        url,
        Some(json!({"batch": 5, "token": plan["token"]})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (400, "InvalidArgument"),
        "a token is used once: {v}"
    );
    gw.shutdown().await;

    // Without [encryption] there is nothing to run.
    let mut plain = config;
    plain.encryption = None;
    plain.buckets.iter_mut().for_each(|b| b.encrypt = None);
    let gw = s3o_gateway::Gateway::start(plain)
        .await
        .expect("gateway without keys");
    let raw = crate::raw::Raw::new(&gw.endpoint());
    let (s, v) = api_on(&raw, "GET", "/admin/api/encryption", None).await;
    assert_eq!((s, v["configured"].as_bool()), (200, Some(false)), "{v}");
    for route in ["rotate", "encrypt-existing", "decrypt-existing"] {
        let (s, v) = api_on(
            &raw,
            "POST",
            &format!("/admin/api/encryption/{route}"),
            None,
        )
        .await;
        assert_eq!(
            (s, code(&v)),
            (409, "EncryptionNotConfigured"),
            "{route}: {v}"
        );
    }
    gw.shutdown().await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// The NDJSON listing of a backend's copies: more than two ledger pages, every copy once in
/// key order, sizes summing to the backend's `bytes_used`, the closing count line, `after`
/// resuming; an unknown backend and a non-admin refused.
pub(crate) async fn backend_copies_stream(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let n = 1003usize;
    let keys: Vec<String> = (0..n).map(|i| format!("n/{i:04}")).collect();
    for chunk in keys.chunks(32) {
        futures::future::join_all(
            chunk
                .iter()
                .enumerate()
                .map(|(j, k)| rig.put(k, crate::rig::body(10 + j, j as u8))),
        )
        .await;
    }
    let get = |target: String, auth: Auth<'static>| {
        let raw = &rig.raw;
        async move { raw.send_auth(auth, "GET", &target, &[], "").await }
    };
    let r = get(
        "/admin/api/backends/fs-a/copies".into(),
        Auth::As(ADMIN_AK, ADMIN_SK),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    let lines: Vec<Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), n + 1);
    assert_eq!(lines[n], json!({"done": true, "count": n}));
    let got: Vec<&str> = lines[..n]
        .iter()
        .map(|l| l["key"].as_str().expect("key"))
        .collect();
    let want: Vec<String> = keys.iter().map(|k| format!("{BUCKET}/{k}")).collect();
    assert_eq!(got, want, "every copy once, in key order");
    let total: i64 = lines[..n]
        .iter()
        .map(|l| l["size_bytes"].as_i64().expect("size"))
        .sum();
    assert_eq!(
        total,
        rig.store().get_quota_stats().await.expect("q")["fs-a"].bytes_used,
        "the sizes sum to bytes_used"
    );
    let r = get(
        format!("/admin/api/backends/fs-a/copies?after={BUCKET}%2Fn%2F1001"),
        Auth::As(ADMIN_AK, ADMIN_SK),
    )
    .await;
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("\"photos/n/1002\""), "{lines:?}");
    assert_eq!(
        serde_json::from_str::<Value>(lines[1]).expect("json"),
        json!({"done": true, "count": 1})
    );
    let r = get(
        "/admin/api/backends/fs-b/copies".into(),
        Auth::As(ADMIN_AK, ADMIN_SK),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(r.text().trim()).expect("one line"),
        json!({"done": true, "count": 0}),
        "fs-b holds nothing"
    );
    let r = get(
        "/admin/api/backends/nowhere/copies".into(),
        Auth::As(ADMIN_AK, ADMIN_SK),
    )
    .await;
    assert_eq!(
        (r.status, code(&body_json(&r)).to_owned()),
        (404, "NoSuchBackend".to_owned())
    );
    let r = get("/admin/api/backends/fs-a/copies".into(), Auth::As(AK, SK)).await;
    assert_eq!(r.status, 403);
    let (_, v) = api(&rig, "GET", "/admin/api/openapi.json", None).await;
    assert!(
        v["paths"]["/admin/api/backends/{name}/copies"]["get"]["responses"]["200"]["content"]
            ["application/x-ndjson"]
            .is_object(),
        "the description names the NDJSON answer"
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// Signs in to a console session; returns the cookie (`name=value`) and the CSRF token.
pub(crate) async fn sign_in(raw: &crate::raw::Raw) -> (String, String) {
    let r = raw
        .send_auth(
            Auth::Anonymous,
            "POST",
            "/admin/api/session",
            &[("content-type", "application/json")],
            json!({"access_key": ADMIN_AK, "secret_key": ADMIN_SK}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let set = r.header("set-cookie").expect("a session cookie");
    let cookie = set.split(';').next().expect("name=value").to_owned();
    let csrf = body_json(&r)["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_owned();
    (cookie, csrf)
}

/// Calls the admin API with a session cookie and, when given, a CSRF token.
async fn with_session(
    raw: &crate::raw::Raw,
    method: &str,
    target: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, Reply) {
    let mut headers = vec![("cookie", cookie), ("content-type", "application/json")];
    if let Some(t) = csrf {
        headers.push(("x-csrf-token", t));
    }
    let r = raw
        .send_auth(
            Auth::Anonymous,
            method,
            target,
            &headers,
            body.map(|b| b.to_string()).unwrap_or_default(),
        )
        .await;
    let v = body_json(&r);
    (r.status, v, r)
}

/// Console sessions: sign-in refusals, the cookie's attributes, reads with the cookie alone,
/// actions refused without the CSRF token (403) and changing nothing, forged and tampered
/// cookies (401), sign-out revoking the cookie, SigV4 still served beside sessions.
pub(crate) async fn console_sessions(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let login = |ak: &'static str, sk: &'static str, ctype: &'static str| async move {
        raw.send_auth(
            Auth::Anonymous,
            "POST",
            "/admin/api/session",
            &[("content-type", ctype)],
            json!({"access_key": ak, "secret_key": sk}).to_string(),
        )
        .await
    };
    let wrong = login(ADMIN_AK, "not-the-secret", "application/json").await;
    assert_eq!(
        (wrong.status, code(&body_json(&wrong))),
        (403, "AccessDenied")
    );
    assert!(wrong.header("set-cookie").is_none());
    let client = login(AK, SK, "application/json").await;
    assert_eq!(
        (client.status, code(&body_json(&client))),
        (403, "AccessDenied"),
        "a non-admin key cannot sign in"
    );
    let form = login(ADMIN_AK, ADMIN_SK, "application/x-www-form-urlencoded").await;
    assert_eq!(form.status, 415, "sign-in takes JSON only: {}", form.text());

    let ok = login(ADMIN_AK, ADMIN_SK, "application/json").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let set = ok.header("set-cookie").expect("cookie");
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin/",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attr), "{attr} missing from {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag: {set}");
    let v = body_json(&ok);
    assert_eq!(v["access_key"], ADMIN_AK);
    assert_eq!(v["auth"], "session");
    assert!(!set.contains(ADMIN_SK), "the secret is not in the cookie");
    let cookie = set.split(';').next().expect("cookie").to_owned();
    let csrf = v["csrf_token"].as_str().expect("csrf").to_owned();

    // Reads need the cookie only.
    let (s, v, _) = with_session(raw, "GET", "/admin/api/status", &cookie, None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["instance_id"], rig.store().instance_id());
    let (s, v, _) = with_session(raw, "GET", "/admin/api/session", &cookie, None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["access_key"], &v["auth"], &v["csrf_token"]),
        (&json!(ADMIN_AK), &json!("session"), &json!(csrf))
    );
    let (s, v) = api(&rig, "GET", "/admin/api/session", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"access_key": ADMIN_AK, "auth": "sigv4"}));

    // Actions need the CSRF token; refused ones change nothing.
    let create = json!({"name": "from-session"});
    let (s, v, _) = with_session(
        raw,
        "POST",
        "/admin/api/buckets",
        &cookie,
        None,
        Some(create.clone()),
    )
    .await;
    assert_eq!((s, code(&v)), (403, "CsrfTokenMissing"), "{v}");
    let (s, v, _) = with_session(
        raw,
        "POST",
        "/admin/api/buckets",
        &cookie,
        Some("bm90LXRoZS10b2tlbg"),
        Some(create.clone()),
    )
    .await;
    assert_eq!((s, code(&v)), (403, "CsrfTokenMismatch"), "{v}");
    let (s, v, _) = with_session(
        raw,
        "DELETE",
        &format!("/admin/api/buckets/{BUCKET}"),
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (403, "CsrfTokenMissing"), "{v}");
    assert!(rig.store().get_bucket("from-session").await.is_err());
    let (s, v, _) = with_session(
        raw,
        "POST",
        "/admin/api/buckets",
        &cookie,
        Some(&csrf),
        Some(create),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v, _) = with_session(
        raw,
        "DELETE",
        "/admin/api/buckets/from-session",
        &cookie,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(rig.store().get_bucket("from-session").await.is_err());

    // Forged and tampered cookies.
    let (name, value) = cookie.split_once('=').expect("name=value");
    let parts: Vec<&str> = value.split('.').collect();
    assert_eq!(parts.len(), 5, "{value}");
    let forged = [
        format!("{name}=v1.{}.{}.{}.AAAA", parts[1], parts[2], parts[3]),
        format!(
            "{name}=v1.{}.{}.{}.{}",
            parts[1],
            parts[2].parse::<u64>().expect("expiry") + 3600,
            parts[3],
            parts[4]
        ),
        format!(
            "{name}=v1.{}.{}.{}.{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                AK.as_bytes()
            ),
            parts[2],
            parts[3],
            parts[4]
        ),
        format!("{name}=garbage"),
    ];
    for f in &forged {
        let (s, v, _) = with_session(raw, "GET", "/admin/api/status", f, None, None).await;
        assert_eq!((s, code(&v)), (401, "InvalidSession"), "{f}: {v}");
    }
    let (s, v) = {
        let r = raw
            .send_auth(Auth::Anonymous, "GET", "/admin/api/status", &[], "")
            .await;
        (r.status, body_json(&r))
    };
    assert_eq!(
        (s, code(&v)),
        (403, "AccessDenied"),
        "no cookie, no signature"
    );

    // Sign-out: the cookie is cleared and dead even if replayed.
    let (s, v, r) = with_session(raw, "DELETE", "/admin/api/session", &cookie, None, None).await;
    assert_eq!(
        (s, code(&v)),
        (403, "CsrfTokenMissing"),
        "sign-out needs the token too"
    );
    drop(r);
    let (s, v, r) = with_session(
        raw,
        "DELETE",
        "/admin/api/session",
        &cookie,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["signed_out"], true);
    let cleared = r.header("set-cookie").expect("cleared cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (s, v, _) = with_session(raw, "GET", "/admin/api/status", &cookie, None, None).await;
    assert_eq!((s, code(&v)), (401, "InvalidSession"), "{v}");
    // A new sign-in works; its cookie is a different one.
    let (again, _) = sign_in(raw).await;
    assert_ne!(again, cookie);
    let (s, _, _) = with_session(raw, "GET", "/admin/api/status", &again, None, None).await;
    assert_eq!(s, 200);
    rig.assert_clean().await;
    rig.finish().await;
}

/// Sign-in throttling and session expiry, with a short window and lifetime: after
/// `login_max_failures` wrong secrets even the right one is refused with 429 and
/// `Retry-After`, until the window has room again; a session ends after its lifetime (401).
pub(crate) async fn console_throttle_and_expiry(ledger: Ledger) {
    let extra = format!(
        "{}\n[console]\nlogin_max_failures = 3\nlogin_window_secs = 2\nsession_ttl_secs = 2\n",
        admin_extra()
    );
    let Some(rig) = Rig::start_with(
        ledger,
        Options {
            backends: &THREE,
            routing: "pack",
            store_url: None,
        },
        &extra,
    )
    .await
    else {
        return;
    };
    let raw = &rig.raw;
    let attempt = |sk: &'static str| async move {
        raw.send_auth(
            Auth::Anonymous,
            "POST",
            "/admin/api/session",
            &[("content-type", "application/json")],
            json!({"access_key": ADMIN_AK, "secret_key": sk}).to_string(),
        )
        .await
    };
    for i in 0..3 {
        let r = attempt("guess").await;
        assert_eq!(r.status, 403, "attempt {i}: {}", r.text());
    }
    let throttled = attempt(ADMIN_SK).await;
    assert_eq!(
        (throttled.status, code(&body_json(&throttled))),
        (429, "TooManyAttempts"),
        "even the right secret waits: {}",
        throttled.text()
    );
    let retry: u64 = throttled
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(throttled.header("set-cookie").is_none());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (cookie, _) = sign_in(raw).await;
    let (s, _, _) = with_session(raw, "GET", "/admin/api/status", &cookie, None, None).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (s, v, _) = with_session(raw, "GET", "/admin/api/status", &cookie, None, None).await;
    assert_eq!((s, code(&v)), (401, "SessionExpired"), "{v}");
    rig.assert_clean().await;
    rig.finish().await;
}

/// Uploads through the API: with a session (and its CSRF token) or SigV4, written by the S3
/// PUT handler (same bytes over S3, one ledger copy, the given type); refused without the
/// token, past `max_upload_bytes` (413) and into a missing bucket, each leaving nothing.
pub(crate) async fn console_upload(ledger: Ledger) {
    let Some(rig) = admin_rig_with_console(ledger, "max_upload_bytes = 100000").await else {
        return;
    };
    let raw = &rig.raw;
    let (cookie, csrf) = sign_in(raw).await;
    let put = |target: String, csrf: Option<String>, bytes: bytes::Bytes| {
        let cookie = cookie.clone();
        async move {
            let mut headers = vec![("cookie", cookie.as_str()), ("content-type", "text/plain")];
            if let Some(t) = &csrf {
                headers.push(("x-csrf-token", t.as_str()));
            }
            let r = raw
                .send_auth(Auth::Anonymous, "PUT", &target, &headers, bytes)
                .await;
            (r.status, body_json(&r))
        }
    };
    let target = |bucket: &str, key: &str| {
        format!(
            "/admin/api/buckets/{bucket}/object/content?key={}",
            crate::raw::encode_query(key)
        )
    };
    let data = crate::rig::body(60_000, 5);
    let (s, v) = put(target(BUCKET, "up/notes.txt"), None, data.clone()).await;
    assert_eq!((s, code(&v)), (403, "CsrfTokenMissing"), "{v}");
    assert!(rig.placement("up/notes.txt").await.is_empty());
    let (s, v) = put(
        target(BUCKET, "up/notes.txt"),
        Some(csrf.clone()),
        data.clone(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["key"], "up/notes.txt");
    assert_eq!(v["size_bytes"], 60_000);
    assert_eq!(v["content_type"], "text/plain");
    assert_eq!(
        rig.get("up/notes.txt").await,
        data,
        "the S3 path reads the bytes"
    );
    assert_eq!(rig.placement("up/notes.txt").await.len(), 1);
    let (s, o) = api(
        &rig,
        "GET",
        "/admin/api/buckets/photos/object?key=up%2Fnotes.txt",
        None,
    )
    .await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(
        (&o["content_type"], &o["etag"]),
        (&json!("text/plain"), &v["etag"])
    );
    // Past the limit: refused before a byte is stored.
    let (s, v) = put(
        target(BUCKET, "up/big.bin"),
        Some(csrf.clone()),
        crate::rig::body(100_001, 6),
    )
    .await;
    assert_eq!((s, code(&v)), (413, "EntityTooLarge"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 100000 bytes")),
        "{v}"
    );
    assert!(rig.placement("up/big.bin").await.is_empty());
    let (s, v) = put(target("nowhere", "x"), Some(csrf.clone()), data.clone()).await;
    assert_eq!((s, code(&v)), (404, "NoSuchBucket"), "{v}");
    // SigV4 callers upload the same way.
    let r = raw
        .send_auth(
            Auth::As(ADMIN_AK, ADMIN_SK),
            "PUT",
            &target(BUCKET, "up/signed.bin"),
            &[],
            crate::rig::body(1234, 7),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(rig.get("up/signed.bin").await, crate::rig::body(1234, 7));
    rig.assert_clean().await;
    rig.finish().await;
}

/// Deleting a prefix in two steps: the plan counts exactly the objects under the prefix
/// (not `tmpx`, not `keep/`) and deletes nothing; a token redeemed for another prefix is
/// refused; the job deletes exactly those objects through the S3 DELETE handler. In a
/// versioned bucket the versions stay behind delete markers.
pub(crate) async fn delete_prefix(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    for (k, n) in [
        ("tmp/1", 100),
        ("tmp/2", 200),
        ("tmp/sub/3", 300),
        ("tmpx", 50),
        ("keep/1", 10),
    ] {
        rig.put(k, crate::rig::body(n, 1)).await;
    }
    let url = format!("/admin/api/buckets/{BUCKET}/delete-prefix");
    let (s, plan) = api(&rig, "POST", &url, Some(json!({"prefix": "tmp/"}))).await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(
        (
            &plan["objects"],
            &plan["bytes"],
            &plan["at_least"],
            &plan["confirm"]
        ),
        (&json!(3), &json!(600), &json!(false), &json!(true))
    );
    assert_eq!(
        rig.placement("tmp/1").await.len(),
        1,
        "the plan deletes nothing"
    );
    let token = plan["token"].as_str().expect("token");
    let (s, v) = api(
        &rig,
        "POST",
        &url,
        Some(json!({"prefix": "keep/", "token": token})),
    )
    .await;
    assert_eq!((s, code(&v)), (409, "TokenMismatch"), "{v}");
    assert_eq!(rig.placement("keep/1").await.len(), 1);
    let (_, plan) = api(&rig, "POST", &url, Some(json!({"prefix": "tmp/"}))).await;
    let (s, job) = api(
        &rig,
        "POST",
        &url,
        Some(json!({"prefix": "tmp/", "token": plan["token"]})),
    )
    .await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["kind"], "delete-prefix");
    let j = wait_job(&rig, job["id"].as_str().expect("id")).await;
    assert_eq!(j["state"], "done", "{j}");
    assert_eq!(
        (
            &j["result"]["deleted"],
            &j["result"]["failed"],
            &j["result"]["bytes"]
        ),
        (&json!(3), &json!(0), &json!(600))
    );
    for k in ["tmp/1", "tmp/2", "tmp/sub/3"] {
        assert!(rig.placement(k).await.is_empty(), "{k} deleted");
    }
    for k in ["tmpx", "keep/1"] {
        assert_eq!(rig.placement(k).await.len(), 1, "{k} kept");
    }
    // The token was used: a replay is refused.
    let (s, v) = api(
        &rig,
        "POST",
        &url,
        Some(json!({"prefix": "tmp/", "token": plan["token"]})),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"), "{v}");

    // Versioned: delete markers, the versions kept.
    let r = rig
        .raw
        .send(
            "PUT",
            &format!("/{BUCKET}?versioning"),
            &[],
            "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    rig.put("v/1", crate::rig::body(70, 2)).await;
    rig.put("v/2", crate::rig::body(80, 3)).await;
    let (_, plan) = api(&rig, "POST", &url, Some(json!({"prefix": "v/"}))).await;
    assert_eq!(plan["objects"], 2, "{plan}");
    let (s, job) = api(
        &rig,
        "POST",
        &url,
        Some(json!({"prefix": "v/", "token": plan["token"]})),
    )
    .await;
    assert_eq!(s, 202, "{job}");
    let j = wait_job(&rig, job["id"].as_str().expect("id")).await;
    assert_eq!(
        (&j["state"], &j["result"]["deleted"]),
        (&json!("done"), &json!(2)),
        "{j}"
    );
    let r = rig
        .raw
        .send("GET", &format!("/{BUCKET}/v/1"), &[], "")
        .await;
    assert_eq!(r.status, 404, "current version is a delete marker");
    let r = rig
        .raw
        .send("GET", &format!("/{BUCKET}?versions&prefix=v/"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_eq!(text.matches("<DeleteMarker>").count(), 2, "{text}");
    assert_eq!(text.matches("<Version>").count(), 2, "{text}");
    let (s, plan) = api(&rig, "POST", &url, Some(json!({"prefix": "v/"}))).await;
    assert_eq!(
        (s, &plan["objects"]),
        (200, &json!(0)),
        "nothing current left"
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// The cleanup queue as NDJSON: every row in id order and a closing count, a backend
/// filter, the `after` cursor, typed refusals; served to a session as to SigV4.
pub(crate) async fn cleanup_queue_stream(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let store = rig.store();
    let mut ids = Vec::new();
    for (backend, name, size) in [
        ("fs-b", "q1", 100),
        ("fs-a", "q2", 200),
        ("fs-b", "q3", 300),
        ("fs-b", "q4", 400),
    ] {
        let entry = s3o_store::CleanupEntry {
            backend_name: backend.to_owned(),
            object_key: format!("{BUCKET}/{name}"),
            storage_key: format!("{BUCKET}/{name}.gone"),
            reason: "planted by the admin test".to_owned(),
            size_bytes: size,
        };
        ids.push(
            store
                .enqueue_orphaned_bytes(&entry)
                .await
                .expect("enqueue")
                .cleanup
                .id,
        );
    }
    let lines = |r: &Reply| -> Vec<Value> {
        r.text()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    let raw = &rig.raw;
    let get = |target: &'static str| async move {
        raw.send_auth(Auth::As(ADMIN_AK, ADMIN_SK), "GET", target, &[], "")
            .await
    };
    let all = get("/admin/api/cleanup/queue").await;
    assert_eq!(all.status, 200, "{}", all.text());
    assert_eq!(
        all.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    let v = lines(&all);
    assert_eq!(v.len(), 5, "{v:?}");
    assert_eq!(
        v[..4]
            .iter()
            .map(|l| l["id"].as_i64().expect("id"))
            .collect::<Vec<_>>(),
        ids
    );
    assert_eq!(
        (
            &v[0]["backend"],
            &v[0]["object_key"],
            &v[0]["storage_key"],
            &v[0]["size_bytes"]
        ),
        (
            &json!("fs-b"),
            &json!(format!("{BUCKET}/q1")),
            &json!(format!("{BUCKET}/q1.gone")),
            &json!(100)
        )
    );
    assert_eq!(v[4], json!({"done": true, "count": 4}));
    let r = rig
        .raw
        .send_auth(
            Auth::As(ADMIN_AK, ADMIN_SK),
            "GET",
            "/admin/api/cleanup/queue?backend=fs-b",
            &[],
            "",
        )
        .await;
    let v = lines(&r);
    assert_eq!(
        v.iter()
            .filter_map(|l| l["object_key"].as_str())
            .collect::<Vec<_>>(),
        [
            format!("{BUCKET}/q1"),
            format!("{BUCKET}/q3"),
            format!("{BUCKET}/q4")
        ]
    );
    assert_eq!(v[3], json!({"done": true, "count": 3}));
    let r = rig
        .raw
        .send_auth(
            Auth::As(ADMIN_AK, ADMIN_SK),
            "GET",
            &format!("/admin/api/cleanup/queue?after={}", ids[1]),
            &[],
            "",
        )
        .await;
    let v = lines(&r);
    assert_eq!(
        v.iter()
            .filter_map(|l| l["id"].as_i64())
            .collect::<Vec<_>>(),
        ids[2..]
    );
    let (s, v) = api(&rig, "GET", "/admin/api/cleanup/queue?backend=nope", None).await;
    assert_eq!((s, code(&v)), (404, "NoSuchBackend"));
    let (s, v) = api(&rig, "GET", "/admin/api/cleanup/queue?after=x", None).await;
    assert_eq!((s, code(&v)), (400, "InvalidArgument"));
    let (cookie, _) = sign_in(&rig.raw).await;
    let r = rig
        .raw
        .send_auth(
            Auth::Anonymous,
            "GET",
            "/admin/api/cleanup/queue",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(lines(&r).len(), 5);
    // The planted rows (claimed by the test's store, their bytes absent) are written off.
    for id in &ids {
        assert!(
            store
                .move_cleanup_to_dlq(*id, "planted")
                .await
                .expect("to dlq")
        );
    }
    let dead: Vec<i64> = store
        .list_cleanup_dlq(None, 100)
        .await
        .expect("dlq")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        store.write_off_cleanup_dlq(&dead).await.expect("write off"),
        4
    );
    let r = get("/admin/api/cleanup/queue").await;
    assert_eq!(lines(&r), [json!({"done": true, "count": 0})]);
    rig.assert_clean().await;
    rig.finish().await;
}
