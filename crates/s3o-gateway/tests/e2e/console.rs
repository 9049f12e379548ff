//! The web console in a real browser: headless Chromium driven by chromedriver over the
//! WebDriver protocol (a few JSON calls with reqwest). Signs in (a wrong secret first), sees
//! the backends with the ledger's numbers, requeues a planted dead letter from the page, and
//! saves a screenshot of the dashboard to `docs/console.png` (and
//! `target/console-screenshots/`). Skipped, loudly, when chromium or chromedriver is missing
//! (`.ci/run` installs both, and sets S3O_REQUIRE_BROWSER=1 so CI cannot skip it).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::admin::{ADMIN_AK, ADMIN_SK, admin_rig, plant_dlq};
use crate::rig::{BUCKET, Ledger};

struct Driver {
    child: Child,
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        Command::new("which")
            .arg(n)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|p| !p.is_empty())
    })
}

impl Driver {
    async fn start() -> Option<Driver> {
        let (Some(browser), Some(driver)) = (
            find(&["chromium", "chromium-browser", "google-chrome"]),
            find(&["chromedriver"]),
        ) else {
            assert!(
                std::env::var("S3O_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "S3O_REQUIRE_BROWSER=1 but chromium or chromedriver is missing"
            );
            eprintln!(
                "\n*** SKIPPED console browser test: chromium and chromedriver are not installed \
                 (apt-get install -y chromium chromium-driver) ***\n"
            );
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr").port()
        };
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut up = false;
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "chromedriver did not answer");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400"],
            },
        }}});
        let resp = http
            .post(format!("{base}/session"))
            .header("content-type", "application/json")
            .body(caps.to_string())
            .send()
            .await
            .expect("new session")
            .bytes()
            .await
            .expect("session body");
        let resp: Value = serde_json::from_slice(&resp).expect("session json");
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {resp}"))
            .to_owned();
        Some(Driver {
            child,
            http,
            base,
            session,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if !body.is_null() {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let bytes = req
            .send()
            .await
            .expect("webdriver")
            .bytes()
            .await
            .expect("webdriver body");
        let v: Value = serde_json::from_slice(&bytes).expect("webdriver json");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    /// Runs `script` in the page; returns its value.
    async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Runs `script` in the page asynchronously: it calls `done(value)` (its last argument).
    async fn js_async(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": format!("const done = arguments[arguments.length - 1]; {script}"), "args": []}),
        )
        .await
    }

    /// Resizes the browser window (CSS pixels).
    async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Waits until `script` (an expression) is truthy in the page.
    async fn wait_for(&self, script: &str, what: &str) {
        for _ in 0..200 {
            if self.js(&format!("return !!({script});")).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let body = self.js("return document.body.innerText;").await;
        panic!("timed out waiting for {what}; page:\n{body}");
    }

    async fn screenshot(&self) -> Vec<u8> {
        let v = self
            .cmd(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("png base64"))
            .expect("png")
    }

    async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

/// Opens the console and signs in as the admin; returns once the dashboard shows.
async fn sign_in(driver: &Driver, endpoint: &str) {
    driver.go(&format!("{endpoint}/admin/")).await;
    driver
        .wait_for("document.getElementById('login')", "the sign-in form")
        .await;
    driver.type_into("#ak", ADMIN_AK).await;
    driver.type_into("#sk", ADMIN_SK).await;
    driver.click("#login-btn").await;
    driver
        .wait_for(
            "!document.getElementById('dash').hidden && document.querySelectorAll('#backends tbody tr').length >= 3",
            "the dashboard with the backends",
        )
        .await;
}

/// The directory of the screenshots (a CI artefact).
fn shots_dir() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let shots = format!("{root}/target/console-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    shots
}

/// The object browser: open a bucket, a folder, see an uploaded object and its copies,
/// download it, delete it (confirming on the page), see it gone from the page and the ledger.
pub(crate) async fn object_browser_in_chromium(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let Some(driver) = Driver::start().await else {
        rig.finish().await;
        return;
    };
    rig.put("holiday/beach.jpg", crate::rig::body(3000, 7))
        .await;
    rig.put("holiday/sea.jpg", crate::rig::body(500, 8)).await;
    rig.put("readme.txt", crate::rig::body(10, 9)).await;
    sign_in(&driver, &rig.gateway().endpoint()).await;
    driver
        .click(&format!("#buckets tr[data-bucket=\"{BUCKET}\"] button"))
        .await;
    driver
        .wait_for(
            "!document.getElementById('browser').hidden && document.querySelector('#objects tr[data-folder=\"holiday/\"]')",
            "the bucket's root with the holiday/ folder",
        )
        .await;
    assert_eq!(
        driver
            .js("return Array.from(document.querySelectorAll('#objects tr[data-key]')).map(r => r.dataset.key);")
            .await,
        json!(["readme.txt"]),
        "the root shows the folder and the top-level object only"
    );
    driver
        .click("#objects tr[data-folder=\"holiday/\"] button")
        .await;
    let beach = "#objects tr[data-key=\"holiday/beach.jpg\"]";
    driver
        .wait_for(
            &format!("document.querySelector('{beach}')"),
            "the uploaded object in its folder",
        )
        .await;
    assert_eq!(
        driver
            .js(&format!(
                "return document.querySelector('{beach} .size').textContent;"
            ))
            .await,
        json!("2.9 KiB")
    );
    assert_eq!(
        driver
            .js("return document.getElementById('browser-title').textContent;")
            .await,
        json!(format!("Objects in {BUCKET} / holiday/"))
    );
    // Its copies, as the ledger holds them.
    driver
        .click("button[aria-label=\"Show the copies of holiday/beach.jpg\"]")
        .await;
    driver
        .wait_for(
            "!document.getElementById('copies-view').hidden && document.querySelectorAll('#copies tbody tr').length > 0",
            "the copies",
        )
        .await;
    let shown = driver
        .js("return Array.from(document.querySelectorAll('#copies tbody tr')).map(r => r.dataset.backend);")
        .await;
    let placement: Vec<String> = rig
        .placement("holiday/beach.jpg")
        .await
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    assert_eq!(
        shown,
        json!(placement),
        "the page shows the ledger's copies"
    );
    driver
        .js("document.getElementById('browser').scrollIntoView(); return 0;")
        .await;
    let png = driver.screenshot().await;
    std::fs::write(format!("{}/object-browser.png", shots_dir()), &png).expect("screenshot");
    // Download: the page fetched every byte.
    driver
        .click("button[aria-label=\"Download holiday/beach.jpg\"]")
        .await;
    driver
        .wait_for(
            "document.getElementById('message').textContent === 'downloaded holiday/beach.jpg (3000 bytes)'",
            "the download",
        )
        .await;
    // Delete asks first; Cancel keeps the object.
    driver
        .click("button[aria-label=\"Delete holiday/beach.jpg\"]")
        .await;
    driver
        .wait_for(
            &format!("document.querySelector('{beach} .confirm')"),
            "the confirmation question",
        )
        .await;
    driver
        .click(&format!("{beach} button[data-confirm=\"no\"]"))
        .await;
    driver
        .wait_for(
            &format!(
                "!document.querySelector('{beach} .confirm') && document.querySelector('{beach}')"
            ),
            "the row back without the question",
        )
        .await;
    assert_eq!(
        rig.placement("holiday/beach.jpg").await.len(),
        1,
        "cancel deletes nothing"
    );
    driver
        .click("button[aria-label=\"Delete holiday/beach.jpg\"]")
        .await;
    driver
        .wait_for(
            &format!("document.querySelector('{beach} button[data-confirm=\"yes\"]')"),
            "the confirmation",
        )
        .await;
    driver
        .click(&format!("{beach} button[data-confirm=\"yes\"]"))
        .await;
    driver
        .wait_for(
            &format!("document.getElementById('message').textContent === 'holiday/beach.jpg deleted' && !document.querySelector('{beach}')"),
            "the object gone from the page",
        )
        .await;
    assert_eq!(
        driver
            .js("return Array.from(document.querySelectorAll('#objects tr[data-key]')).map(r => r.dataset.key);")
            .await,
        json!(["holiday/sea.jpg"])
    );
    assert!(
        rig.placement("holiday/beach.jpg").await.is_empty(),
        "gone from the ledger"
    );
    assert_eq!(rig.get("holiday/sea.jpg").await, crate::rig::body(500, 8));

    // Pages of 50: a folder of 55 objects shows 50, then 5 after "Next page", then the first
    // 50 again after "Previous page".
    let many: Vec<String> = (0..55).map(|i| format!("many/{i:02}")).collect();
    for chunk in many.chunks(16) {
        futures::future::join_all(chunk.iter().map(|k| rig.put(k, crate::rig::body(5, 1)))).await;
    }
    driver.click("#up").await;
    driver
        .wait_for(
            "document.querySelector('#objects tr[data-folder=\"many/\"]')",
            "the root again, with many/",
        )
        .await;
    driver
        .click("#objects tr[data-folder=\"many/\"] button")
        .await;
    let shown =
        "Array.from(document.querySelectorAll('#objects tr[data-key]')).map(r => r.dataset.key)";
    driver
        .wait_for(
            &format!("{shown}.length === 50 && !document.getElementById('next-page').hidden && document.getElementById('prev-page').hidden"),
            "the first page of many/",
        )
        .await;
    assert_eq!(
        driver.js(&format!("return {shown};")).await,
        json!(many[..50])
    );
    driver.click("#next-page").await;
    driver
        .wait_for(
            &format!("{shown}.length === 5 && document.getElementById('next-page').hidden && !document.getElementById('prev-page').hidden"),
            "the second page",
        )
        .await;
    assert_eq!(
        driver.js(&format!("return {shown};")).await,
        json!(many[50..])
    );
    driver.click("#prev-page").await;
    driver
        .wait_for(
            &format!("{shown}.length === 50 && {shown}[0] === 'many/00'"),
            "the first page again",
        )
        .await;
    driver.quit().await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// Draining from the page: the question first (Cancel starts nothing), then the job followed
/// to its end with a progress bar; the page and the ledger agree the backend is empty.
pub(crate) async fn drain_in_chromium(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let Some(driver) = Driver::start().await else {
        rig.finish().await;
        return;
    };
    for i in 0..6u8 {
        rig.put(
            &format!("drain/{i}"),
            crate::rig::body(2000 + usize::from(i), i),
        )
        .await;
    }
    assert_eq!(
        rig.store().backend_object_stats("fs-a").await.expect("s").0,
        6
    );
    sign_in(&driver, &rig.gateway().endpoint()).await;
    let copies_of = |b: &str| {
        format!(
            "return document.querySelector('#backends tr[data-backend=\"{b}\"] .copies').textContent;"
        )
    };
    assert_eq!(driver.js(&copies_of("fs-a")).await, json!("6"));
    driver.click("button[aria-label=\"Drain fs-a\"]").await;
    driver
        .wait_for(
            "!document.getElementById('drain-panel').hidden && document.getElementById('drain-question').textContent.includes('6 copies')",
            "the drain question naming the copies",
        )
        .await;
    driver.click("#drain-no").await;
    driver
        .wait_for(
            "document.getElementById('drain-panel').hidden && document.getElementById('message').textContent === 'drain of fs-a not started'",
            "the cancelled question",
        )
        .await;
    assert_eq!(
        rig.store().backend_object_stats("fs-a").await.expect("s").0,
        6,
        "Cancel moves nothing"
    );
    let (_, jobs) = crate::admin::api(&rig, "GET", "/admin/api/jobs", None).await;
    assert_eq!(jobs["jobs"], json!([]), "Cancel starts no job");
    driver.click("button[aria-label=\"Drain fs-a\"]").await;
    driver
        .wait_for(
            "!document.getElementById('drain-panel').hidden",
            "the question again",
        )
        .await;
    driver.click("#drain-yes").await;
    driver
        .wait_for(
            "document.getElementById('drain-status').textContent === 'drain of fs-a done: 6 moved, 0 dropped, 0 failed'",
            "the drain's end on the page",
        )
        .await;
    assert_eq!(
        driver
            .js("return document.getElementById('drain-progress').value;")
            .await,
        json!(1)
    );
    driver
        .wait_for(
            "document.querySelector('#backends tr[data-backend=\"fs-a\"] .copies').textContent === '0'",
            "fs-a empty in the backends table",
        )
        .await;
    let mut moved = 0;
    for b in ["fs-b", "disk-c"] {
        let v = driver.js(&copies_of(b)).await;
        moved += v
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .expect("copies");
    }
    assert_eq!(moved, 6, "the page shows the copies on the other backends");
    let png = driver.screenshot().await;
    std::fs::write(format!("{}/drain.png", shots_dir()), &png).expect("screenshot");
    // The ledger: nothing left on fs-a, every object readable.
    assert_eq!(
        rig.store().backend_object_stats("fs-a").await.expect("s"),
        (0, 0)
    );
    for i in 0..6u8 {
        assert_eq!(
            rig.get(&format!("drain/{i}")).await,
            crate::rig::body(2000 + usize::from(i), i)
        );
    }
    driver.quit().await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// Removing a backend the ledger knows and the configuration does not, in the API's two
/// steps: the page shows the plan (Cancel keeps the backend, and its token is never used),
/// then "Yes, remove" sends the token; the row and the ledger's rows are gone.
pub(crate) async fn remove_in_chromium(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let Some(driver) = Driver::start().await else {
        rig.finish().await;
        return;
    };
    rig.store()
        .register_backends(&[("retired".to_owned(), 5000)])
        .await
        .expect("register");
    rig.put("stays.bin", crate::rig::body(900, 3)).await;
    sign_in(&driver, &rig.gateway().endpoint()).await;
    let row = "#backends tr[data-backend=\"retired\"]";
    driver
        .wait_for(
            &format!("document.querySelector('{row}')"),
            "the retired backend",
        )
        .await;
    assert_eq!(
        driver
            .js(&format!(
                "return document.querySelector('{row}').textContent.includes('not configured');"
            ))
            .await,
        json!(true)
    );
    assert_eq!(
        driver
            .js("return !!document.querySelector('button[aria-label=\"Drain retired\"]');")
            .await,
        json!(false),
        "an unconfigured backend cannot be drained from here"
    );
    let remove = "button[aria-label=\"Remove retired from the ledger\"]";
    driver.click(remove).await;
    driver
        .wait_for(
            "!document.getElementById('remove-panel').hidden && document.getElementById('remove-question').textContent.includes('records 0 copies')",
            "the removal plan",
        )
        .await;
    driver.click("#remove-no").await;
    driver
        .wait_for(
            "document.getElementById('message').textContent === 'retired kept'",
            "the kept backend",
        )
        .await;
    assert!(
        rig.store()
            .get_quota_stats()
            .await
            .expect("q")
            .contains_key("retired"),
        "Cancel removes nothing"
    );
    driver.click(remove).await;
    driver
        .wait_for(
            "!document.getElementById('remove-panel').hidden",
            "the plan again",
        )
        .await;
    let png = driver.screenshot().await;
    std::fs::write(format!("{}/remove.png", shots_dir()), &png).expect("screenshot");
    driver.click("#remove-yes").await;
    driver
        .wait_for(
            &format!("document.getElementById('message').textContent === 'backend retired removed' && !document.querySelector('{row}')"),
            "the backend gone from the page",
        )
        .await;
    let stats = rig.store().get_quota_stats().await.expect("q");
    assert!(!stats.contains_key("retired"), "gone from the ledger");
    assert_eq!(stats.len(), 3, "the configured backends stay");
    assert_eq!(rig.get("stays.bin").await, crate::rig::body(900, 3));
    driver.quit().await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// Encryption from the page, on a gateway restarted with key k2 (k1 kept to unwrap) and the
/// bucket `twice` set to plaintext: Rotate keys runs to its end (every copy under k2 in the
/// ledger); Decrypt existing shows the API's plan, Cancel changes nothing, "Yes, decrypt"
/// opens twice's objects only.
pub(crate) async fn encryption_in_chromium(ledger: Ledger) {
    let keys = tempfile::tempdir().expect("tempdir");
    let Some(rig) = crate::admin::encrypted_admin_rig(ledger, keys.path(), true).await else {
        return;
    };
    let Some(driver) = Driver::start().await else {
        rig.finish().await;
        return;
    };
    for i in 0..3u8 {
        rig.put(&format!("sealed/{i}"), crate::rig::body(3000, i))
            .await;
    }
    for i in 0..2u8 {
        let r = rig
            .raw
            .send(
                "PUT",
                &format!("/twice/doc/{i}"),
                &[],
                crate::rig::body(6000, 20 + i),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let key_ids = |key: String| {
        let store = rig.store().clone();
        async move {
            store
                .get_all_object_locations(&key)
                .await
                .expect("copies")
                .into_iter()
                .map(|c| (c.form.encrypted, c.form.key_id))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        key_ids("twice/doc/0".into()).await,
        [(true, "k1".to_owned())]
    );
    let mut config =
        crate::encryption::with_keys(&rig.config, keys.path(), ("k2", 0x22), &[("k1", 0x11)]);
    config
        .buckets
        .iter_mut()
        .filter(|b| b.name == "twice")
        .for_each(|b| b.encrypt = Some(false));
    let gw = s3o_gateway::Gateway::start(config)
        .await
        .expect("gateway with k2");
    sign_in(&driver, &gw.endpoint()).await;
    driver
        .wait_for(
            "document.getElementById('enc-status').textContent === 'Current key k2 · encrypting: photos · plaintext: twice'",
            "the encryption status",
        )
        .await;
    driver.click("#enc-rotate").await;
    driver
        .wait_for(
            "document.getElementById('enc-job').textContent === 'rotate done: examined 5, re-wrapped 5, already current 0, raced 0, failed 0'",
            "the rotation's end",
        )
        .await;
    for k in ["photos/sealed/0", "photos/sealed/2", "twice/doc/1"] {
        assert_eq!(key_ids(k.into()).await, [(true, "k2".to_owned())], "{k}");
    }
    driver.click("#enc-decrypt").await;
    driver
        .wait_for(
            "!document.getElementById('enc-ask').hidden && document.getElementById('enc-question').textContent.startsWith('Decrypt the encrypted objects of twice?')",
            "the decryption plan",
        )
        .await;
    driver.click("#enc-no").await;
    driver
        .wait_for(
            "document.getElementById('message').textContent === 'decrypt-existing not started'",
            "the cancelled plan",
        )
        .await;
    assert_eq!(
        key_ids("twice/doc/0".into()).await,
        [(true, "k2".to_owned())],
        "Cancel changes nothing"
    );
    driver.click("#enc-decrypt").await;
    driver
        .wait_for(
            "!document.getElementById('enc-ask').hidden",
            "the plan again",
        )
        .await;
    driver.click("#enc-yes").await;
    driver
        .wait_for(
            "document.getElementById('enc-job').textContent === 'decrypt-existing done: examined 5, converted 2, skipped 3, raced 0, failed 0'",
            "the decryption's end",
        )
        .await;
    let png = driver.screenshot().await;
    std::fs::write(format!("{}/encryption.png", shots_dir()), &png).expect("screenshot");
    for i in 0..2u8 {
        assert_eq!(
            key_ids(format!("twice/doc/{i}")).await,
            [(false, String::new())]
        );
        let r = crate::raw::Raw::new(&gw.endpoint())
            .send("GET", &format!("/twice/doc/{i}"), &[], "")
            .await;
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &crate::rig::body(6000, 20 + i)[..])
        );
    }
    assert_eq!(
        key_ids("photos/sealed/1".into()).await,
        [(true, "k2".to_owned())],
        "photos stays sealed"
    );
    driver.quit().await;
    gw.shutdown().await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// Requeueing one dead letter from its row: that row leaves the page and the DLQ, the other
/// stays; the cleanup queue holds it until a pass clears its bytes.
pub(crate) async fn requeue_row_in_chromium(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let Some(driver) = Driver::start().await else {
        rig.finish().await;
        return;
    };
    let first = plant_dlq(&rig, "fs-b", "stuck-1", 1500).await;
    let second = plant_dlq(&rig, "fs-b", "stuck-2", 700).await;
    sign_in(&driver, &rig.gateway().endpoint()).await;
    driver
        .wait_for(
            &format!("document.querySelector('#dlq tr[data-dlq=\"{first}\"]') && document.querySelector('#dlq tr[data-dlq=\"{second}\"]')"),
            "both dead letters",
        )
        .await;
    assert!(
        driver
            .js("return document.getElementById('queue').textContent;")
            .await
            .as_str()
            .is_some_and(|t| t.ends_with("dead letters: 2")),
    );
    driver
        .click(&format!("#dlq tr[data-dlq=\"{first}\"] button"))
        .await;
    driver
        .wait_for(
            &format!("document.getElementById('message').textContent === '1 dead letter requeued (row {first})' && !document.querySelector('#dlq tr[data-dlq=\"{first}\"]')"),
            "the row gone from the page",
        )
        .await;
    assert_eq!(
        driver
            .js("return Array.from(document.querySelectorAll('#dlq tbody tr')).map(r => Number(r.dataset.dlq));")
            .await,
        json!([second]),
        "only the other row is left on the page"
    );
    assert!(
        driver
            .js("return document.getElementById('queue').textContent;")
            .await
            .as_str()
            .is_some_and(|t| t.ends_with("dead letters: 1")),
    );
    // The ledger: only `second` is still dead; `first` is queued again with its bytes.
    let left = rig.store().list_cleanup_dlq(None, 10).await.expect("dlq");
    assert_eq!(left.iter().map(|r| r.id).collect::<Vec<_>>(), [second]);
    assert_eq!(rig.store().cleanup_queue_depth().await.expect("queue"), 1);
    assert_eq!(
        rig.store().cleanup_bytes_by_backend().await.expect("bytes")["fs-b"],
        (1500, 700)
    );
    driver.quit().await;
    rig.gateway()
        .run_worker_once(s3o_gateway::Worker::Cleanup)
        .await;
    assert_eq!(
        rig.store().get_quota_stats().await.expect("q")["fs-b"].orphan_bytes,
        700,
        "the requeued row's bytes are released; the dead one's stay"
    );
    let written = rig
        .store()
        .write_off_cleanup_dlq(&[second])
        .await
        .expect("write off");
    assert_eq!(written, 1);
    rig.assert_clean().await;
    rig.finish().await;
}

/// Sign in, see the backends, requeue a dead letter, screenshot the dashboard.
pub(crate) async fn console_in_chromium(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let Some(driver) = Driver::start().await else {
        rig.finish().await;
        return;
    };
    rig.put("holiday/beach.jpg", crate::rig::body(3000, 7))
        .await;
    let row = plant_dlq(&rig, "fs-b", "stuck", 1234).await;
    let endpoint = rig.gateway().endpoint();
    driver.go(&format!("{endpoint}/admin/")).await;
    driver
        .wait_for("document.getElementById('login')", "the sign-in form")
        .await;

    // A wrong secret is refused on the page.
    driver.type_into("#ak", ADMIN_AK).await;
    driver.type_into("#sk", "wrong-secret").await;
    driver.click("#login-btn").await;
    driver
        .wait_for(
            "document.getElementById('login-error').textContent.includes('refused')",
            "the refusal",
        )
        .await;
    assert_eq!(
        driver
            .js("return document.getElementById('dash').hidden;")
            .await,
        json!(true)
    );
    let png = driver.screenshot().await;
    std::fs::write(format!("{}/login-refused.png", shots_dir()), &png).expect("screenshot");

    driver.type_into("#ak", ADMIN_AK).await;
    driver.type_into("#sk", ADMIN_SK).await;
    driver.click("#login-btn").await;
    driver
        .wait_for(
            "!document.getElementById('dash').hidden && document.querySelectorAll('#backends tbody tr').length === 3",
            "the dashboard with three backends",
        )
        .await;
    // The numbers on the page are the ledger's.
    let used = driver
        .js("return document.querySelector('#backends tr[data-backend=\"fs-a\"] .used').textContent;")
        .await;
    assert_eq!(used, json!("2.9 KiB"), "fs-a holds 3000 bytes");
    assert_eq!(
        driver
            .js("return sessionStorage.length + localStorage.length + document.cookie.length;")
            .await,
        json!(0),
        "nothing of the session is stored"
    );
    driver
        .wait_for(
            &format!("document.querySelector('#dlq tr[data-dlq=\"{row}\"]')"),
            "the planted dead letter",
        )
        .await;
    let png = driver.screenshot().await;
    assert_eq!(&png[1..4], b"PNG");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let shots = format!("{root}/target/console-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    std::fs::write(format!("{shots}/dashboard.png"), &png).expect("screenshot");
    std::fs::create_dir_all(format!("{root}/docs")).expect("docs dir");
    std::fs::write(format!("{root}/docs/console.png"), &png).expect("docs/console.png");
    // The same dashboard at a phone's width: the tables keep their first columns, nothing
    // overflows the viewport.
    driver.resize(390, 844).await;
    driver
        .wait_for("window.innerWidth <= 400", "the phone-sized window")
        .await;
    assert_eq!(
        driver
            .js("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
            .await,
        json!(true),
        "no horizontal scrolling at 390 px"
    );
    let png = driver.screenshot().await;
    std::fs::write(format!("{shots}/dashboard-phone.png"), &png).expect("screenshot");
    driver.resize(1280, 1400).await;

    // A POST from the page without the CSRF token (what a forged request would be, cookie
    // and all) is refused and creates nothing; the same call with it works.
    let probe = "fetch('/admin/api/buckets', {method: 'POST', credentials: 'same-origin', \
                 headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'csrf-probe'})})\
                 .then(r => r.json().then(j => done([r.status, (j.error || {}).code]))).catch(e => done(String(e)));";
    assert_eq!(
        driver.js_async(probe).await,
        json!([403, "CsrfTokenMissing"])
    );
    assert!(rig.store().get_bucket("csrf-probe").await.is_err());
    // A reload keeps the session: the page asks the API who it is (and gets the token again).
    driver.go(&format!("{endpoint}/admin/")).await;
    driver
        .wait_for(
            "!document.getElementById('dash').hidden && document.querySelectorAll('#backends tbody tr').length === 3",
            "the dashboard again after a reload",
        )
        .await;
    driver
        .wait_for(
            &format!("document.querySelector('#dlq tr[data-dlq=\"{row}\"]')"),
            "the dead letter again",
        )
        .await;

    // Requeue from the page: the row leaves the DLQ; a cleanup pass then clears its bytes.
    driver
        .click(&format!("#dlq tr[data-dlq=\"{row}\"] button"))
        .await;
    driver
        .wait_for(
            "document.getElementById('message').textContent.includes('requeued')",
            "the requeue message",
        )
        .await;
    assert_eq!(rig.store().cleanup_dlq_depth().await.expect("dlq"), 0);
    let png = driver.screenshot().await;
    std::fs::write(format!("{shots}/after-requeue.png"), &png).expect("screenshot");
    // Sign out: the sign-in form again, and the page's cookie no longer opens the API.
    driver.click("#logout").await;
    driver
        .wait_for(
            "!document.getElementById('login-view').hidden && document.getElementById('dash').hidden",
            "the sign-in form after signing out",
        )
        .await;
    assert_eq!(
        driver
            .js_async("fetch('/admin/api/status', {credentials: 'same-origin'}).then(r => done(r.status));")
            .await,
        json!(403),
        "signed out: the cookie is gone"
    );
    driver.quit().await;
    rig.gateway()
        .run_worker_once(s3o_gateway::Worker::Cleanup)
        .await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// SHA-256 of `bytes`, in hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Uploading through the page, with `max_upload_bytes = 300000`: a 150 kB file picked in the
/// file input goes up with a progress bar, appears in the listing and in the ledger (same
/// bytes over S3), downloads from the page byte for byte, and is deleted from the page; a
/// 400 kB file is refused on the page with the limit named, and nothing is stored.
pub(crate) async fn upload_in_chromium(ledger: Ledger) {
    let Some(rig) = crate::admin::admin_rig_with_console(ledger, "max_upload_bytes = 300000").await
    else {
        return;
    };
    let Some(driver) = Driver::start().await else {
        rig.finish().await;
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let small = crate::rig::body(150_000, 42);
    let small_path = dir.path().join("report.bin");
    std::fs::write(&small_path, &small).expect("file");
    let big_path = dir.path().join("huge.bin");
    std::fs::write(&big_path, crate::rig::body(400_000, 43)).expect("file");
    rig.put("docs/existing.txt", crate::rig::body(10, 1)).await;
    sign_in(&driver, &rig.gateway().endpoint()).await;
    driver
        .click(&format!("#buckets tr[data-bucket=\"{BUCKET}\"] button"))
        .await;
    driver
        .wait_for(
            "document.querySelector('#objects tr[data-folder=\"docs/\"]')",
            "the bucket's root",
        )
        .await;
    driver
        .click("#objects tr[data-folder=\"docs/\"] button")
        .await;
    driver
        .wait_for(
            "document.querySelector('#objects tr[data-key=\"docs/existing.txt\"]')",
            "the docs/ folder",
        )
        .await;
    driver
        .type_into("#upload-file", small_path.to_str().expect("path"))
        .await;
    driver.click("#upload-btn").await;
    let row = "#objects tr[data-key=\"docs/report.bin\"]";
    driver
        .wait_for(
            &format!("document.getElementById('message').textContent === 'uploaded docs/report.bin (150000 bytes)' && document.querySelector('{row}')"),
            "the uploaded file in the listing",
        )
        .await;
    assert_eq!(
        driver
            .js("return document.getElementById('upload-progress').value;")
            .await,
        json!(1),
        "the progress bar ends full"
    );
    assert_eq!(
        driver
            .js(&format!(
                "return document.querySelector('{row} .size').textContent;"
            ))
            .await,
        json!("146.5 KiB")
    );
    let png = driver.screenshot().await;
    std::fs::write(format!("{}/upload.png", shots_dir()), &png).expect("screenshot");
    assert_eq!(
        rig.get("docs/report.bin").await,
        small,
        "same bytes over S3"
    );
    assert_eq!(rig.placement("docs/report.bin").await.len(), 1);
    // Download from the page: every byte, the same digest.
    driver
        .click("button[aria-label=\"Download docs/report.bin\"]")
        .await;
    driver
        .wait_for(
            "document.getElementById('message').textContent === 'downloaded docs/report.bin (150000 bytes)'",
            "the download",
        )
        .await;
    let digest = driver
        .js_async(
            "fetch('/admin/api/buckets/photos/object/content?key=docs%2Freport.bin', {credentials: 'same-origin'})\
             .then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-256', b))\
             .then(d => done(Array.from(new Uint8Array(d)).map(x => x.toString(16).padStart(2, '0')).join('')))\
             .catch(e => done(String(e)));",
        )
        .await;
    assert_eq!(
        digest,
        json!(sha256_hex(&small)),
        "the page got the same bytes"
    );
    // Too large: refused on the page, naming the limit; nothing stored.
    driver
        .type_into("#upload-file", big_path.to_str().expect("path"))
        .await;
    driver.click("#upload-btn").await;
    driver
        .wait_for(
            "document.getElementById('message').textContent.includes('the console uploads at most 293.0 KiB')",
            "the refusal of the large file",
        )
        .await;
    assert!(rig.placement("docs/huge.bin").await.is_empty());
    // Delete it from the page.
    driver
        .click("button[aria-label=\"Delete docs/report.bin\"]")
        .await;
    driver
        .wait_for(
            &format!("document.querySelector('{row} button[data-confirm=\"yes\"]')"),
            "the confirmation",
        )
        .await;
    driver
        .click(&format!("{row} button[data-confirm=\"yes\"]"))
        .await;
    driver
        .wait_for(
            &format!("document.getElementById('message').textContent === 'docs/report.bin deleted' && !document.querySelector('{row}')"),
            "the file gone from the page",
        )
        .await;
    assert!(rig.placement("docs/report.bin").await.is_empty());
    driver.quit().await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// Deleting a folder from the object browser: the row shows the API's plan (how many
/// objects, how many bytes); Cancel keeps everything; "Yes, delete all" runs the job to its
/// end, the folder leaves the page and its objects the ledger, the neighbour stays.
pub(crate) async fn delete_prefix_in_chromium(ledger: Ledger) {
    let Some(rig) = admin_rig(ledger).await else {
        return;
    };
    let Some(driver) = Driver::start().await else {
        rig.finish().await;
        return;
    };
    for i in 0..4u8 {
        rig.put(&format!("old/{i}"), crate::rig::body(1000, i))
            .await;
    }
    rig.put("new/keep", crate::rig::body(10, 9)).await;
    sign_in(&driver, &rig.gateway().endpoint()).await;
    driver
        .click(&format!("#buckets tr[data-bucket=\"{BUCKET}\"] button"))
        .await;
    let folder = "#objects tr[data-folder=\"old/\"]";
    driver
        .wait_for(
            &format!("document.querySelector('{folder}')"),
            "the old/ folder",
        )
        .await;
    let ask = "button[aria-label=\"Delete everything under old/\"]";
    driver.click(ask).await;
    driver
        .wait_for(
            &format!("document.querySelector('{folder} .confirm') && document.querySelector('{folder} .confirm').textContent.startsWith('Delete 4 objects (3.9 KiB) under old/?')"),
            "the plan in the row",
        )
        .await;
    let png = driver.screenshot().await;
    std::fs::write(format!("{}/delete-prefix.png", shots_dir()), &png).expect("screenshot");
    driver
        .click(&format!("{folder} button[data-confirm=\"no\"]"))
        .await;
    driver
        .wait_for(
            &format!("document.getElementById('message').textContent === 'old/ kept' && document.querySelector('{folder}') && !document.querySelector('{folder} .confirm')"),
            "the folder kept",
        )
        .await;
    for i in 0..4u8 {
        assert_eq!(
            rig.placement(&format!("old/{i}")).await.len(),
            1,
            "Cancel deletes nothing"
        );
    }
    driver.click(ask).await;
    driver
        .wait_for(
            &format!("document.querySelector('{folder} button[data-confirm=\"yes\"]')"),
            "the plan again",
        )
        .await;
    driver
        .click(&format!("{folder} button[data-confirm=\"yes\"]"))
        .await;
    driver
        .wait_for(
            &format!("document.getElementById('message').textContent === 'deleted 4 objects under old/' && !document.querySelector('{folder}')"),
            "the folder gone from the page",
        )
        .await;
    assert!(
        driver
            .js("return !!document.querySelector('#objects tr[data-folder=\"new/\"]');")
            .await
            == json!(true),
        "the neighbour folder stays"
    );
    for i in 0..4u8 {
        assert!(rig.placement(&format!("old/{i}")).await.is_empty());
    }
    assert_eq!(rig.get("new/keep").await, crate::rig::body(10, 9));
    driver.quit().await;
    rig.assert_clean().await;
    rig.finish().await;
}
