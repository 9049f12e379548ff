//! Refusals and outages: bad signatures and bodies that do not match their signature or
//! Content-MD5 store nothing and leave the previous version intact; a ledger outage turns
//! writes into 503 while reads broadcast to the backends and still find the object.

use std::time::Duration;

use base64::Engine as _;

use crate::proxy::{Proxy, host_port, via};
use crate::raw::{Auth, encode_key};
use crate::rig::{self, AK, BUCKET, Ledger, Options, Rig, SK, body, with_param};

/// Wrong secret, unknown access key and no signature at all: 403, nothing stored.
pub(crate) async fn bad_signature_stores_nothing(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    rig.put("existing", body(3_000, 1)).await;
    let target = format!("/{BUCKET}/{}", encode_key("secret plan.txt"));
    for (auth, what) in [
        (Auth::As(AK, "not-the-secret"), "wrong secret"),
        (Auth::As("nobody", SK), "unknown access key"),
        (Auth::Anonymous, "unsigned"),
    ] {
        let reply = rig
            .raw
            .send_auth(auth, "PUT", &target, &[], body(2_000, 2))
            .await;
        assert_eq!(reply.status, 403, "{what}: {}", reply.text());
        if what == "wrong secret" {
            assert_eq!(reply.code(), "SignatureDoesNotMatch");
        }
        let reply = rig
            .raw
            .send_auth(
                auth,
                "PUT",
                &format!("/{BUCKET}/existing"),
                &[],
                body(10, 3),
            )
            .await;
        assert_eq!(reply.status, 403, "{what} overwrite");
        let reply = rig
            .raw
            .send_auth(auth, "GET", &format!("/{BUCKET}/existing"), &[], "")
            .await;
        assert_eq!(reply.status, 403, "{what} read");
        let reply = rig
            .raw
            .send_auth(auth, "DELETE", &format!("/{BUCKET}/existing"), &[], "")
            .await;
        assert_eq!(reply.status, 403, "{what} delete");
    }
    assert!(rig.placement("secret plan.txt").await.is_empty());
    assert_eq!(rig.get("existing").await, body(3_000, 1), "untouched");
    let reply = rig.raw.send("GET", &target, &[], "").await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        rig.physical_bytes().await,
        3_000,
        "no byte of a refused PUT stored"
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// A body that does not match its signed SHA-256, or its Content-MD5, is refused after it
/// has streamed; nothing is committed, no byte stays on a backend and the version it
/// would have replaced is still served.
pub(crate) async fn body_not_matching_its_signature_stores_nothing(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let v1 = body(40_000, 1);
    rig.put("keep", v1.clone()).await;
    for key in ["keep", "fresh"] {
        let target = format!("/{BUCKET}/{key}");
        let reply = rig
            .raw
            .send_tampered(&target, body(50_000, 2), body(50_000, 3))
            .await;
        assert_eq!(reply.status, 400, "{key}: {}", reply.text());
        // S3 names this XAmzContentSHA256Mismatch; BadDigest says the same to a client.
        assert!(
            ["XAmzContentSHA256Mismatch", "BadDigest"].contains(&reply.code().as_str()),
            "{key}: {}",
            reply.text()
        );

        let md5_of_other = {
            use md5::Digest;
            base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body(50_000, 4)))
        };
        let reply = rig
            .raw
            .send(
                "PUT",
                &target,
                &[("content-md5", md5_of_other.as_str())],
                body(50_000, 5),
            )
            .await;
        assert_eq!(reply.status, 400, "{key}: {}", reply.text());
        assert_eq!(reply.code(), "BadDigest", "{key}");
    }
    assert_eq!(rig.get("keep").await, v1, "the previous version is intact");
    assert!(rig.placement("fresh").await.is_empty());
    assert_eq!(
        rig.physical_bytes().await,
        40_000,
        "refused bodies left no bytes"
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// A PostgreSQL ledger reached through a proxy that the test cuts: while it is down, PUT and
/// DELETE answer 503 ServiceUnavailable and GET/HEAD broadcast to the backends and still serve
/// the object; once it is back, writes succeed again and the refused writes left nothing.
pub(crate) async fn ledger_outage() {
    let Some(base) = rig::pg_url() else {
        return;
    };
    let proxy = Proxy::start(&host_port(&base)).await;
    let through = with_param(
        &via(&base, proxy.addr),
        "connect_timeout=2&pool_wait_timeout_ms=2000&pool_create_timeout_ms=2000",
    );
    let Some(rig) = Rig::start(
        Ledger::Postgres,
        Options {
            backends: &rig::THREE,
            routing: "pack",
            store_url: Some(through),
        },
    )
    .await
    else {
        return;
    };
    let kept = body(30_000, 1);
    rig.put("kept/photo 1.jpg", kept.clone()).await;
    let kept_target = format!("/{BUCKET}/{}", encode_key("kept/photo 1.jpg"));

    proxy.cut();
    for i in 0..3 {
        let reply = rig
            .raw
            .send(
                "PUT",
                &format!("/{BUCKET}/new/during-{i}"),
                &[],
                body(1_000, 2),
            )
            .await;
        assert_eq!(
            reply.status,
            503,
            "PUT {i} during the outage: {}",
            reply.text()
        );
        assert_eq!(reply.code(), "ServiceUnavailable");
    }
    let reply = rig.raw.send("GET", &kept_target, &[], "").await;
    assert_eq!(reply.status, 200, "GET broadcasts: {}", reply.text());
    assert!(
        reply.body == kept,
        "broadcast GET serves the object's bytes"
    );
    let reply = rig.raw.send("HEAD", &kept_target, &[], "").await;
    assert_eq!(reply.status, 200, "HEAD broadcasts");
    assert_eq!(reply.header("content-length").as_deref(), Some("30000"));
    let reply = rig.raw.send("DELETE", &kept_target, &[], "").await;
    assert_eq!(reply.status, 503, "DELETE during the outage");

    proxy.restore().await;
    // The breaker probes again after its open timeout; poll until a write is accepted.
    let mut recovered = false;
    for _ in 0..240 {
        let reply = rig
            .raw
            .send("PUT", &format!("/{BUCKET}/new/after"), &[], body(2_000, 3))
            .await;
        if reply.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(recovered, "writes succeed again once the ledger is back");
    assert_eq!(
        rig.get("kept/photo 1.jpg").await,
        kept,
        "DELETE during outage changed nothing"
    );
    for i in 0..3 {
        assert!(rig.placement(&format!("new/during-{i}")).await.is_empty());
    }
    assert_eq!(rig.get("new/after").await, body(2_000, 3));
    assert_eq!(
        rig.physical_bytes().await,
        32_000,
        "writes refused during the outage left no bytes"
    );
    rig.assert_clean().await;
    rig.finish().await;
    drop(proxy);
}
