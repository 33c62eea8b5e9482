//! The operators' status page on the metrics listener: `GET /` and `/status` serve one
//! self-contained HTML page, `GET /status.json` the status report it polls, `/metrics` is
//! unchanged and anything else is 404 — checked over raw HTTP, then in a real headless chromium
//! while a real migration copies, where the page's JavaScript must have fetched the report and
//! rendered the migration, the proxy and the throughput.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::browser::{text_of_id, visible_text, Chromium};
use crate::support::duet_process::through;
use crate::support::http;
use crate::support::migration::{migrate_sql, request, wait_status};
use crate::support::pg_client::connect;
use crate::support::{
    backend_or_skip, free_port, skip_or_fail, wait_for, wait_for_async, DuetProcess,
};
use crate::support::{TempDir, TestDatabase};

fn metrics_address() -> SocketAddr {
    format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("a socket address")
}

/// Asserts that `html` references nothing outside the page itself.
fn assert_self_contained(html: &str) {
    for external in [
        "http://",
        "https://",
        "<script src",
        "<link rel=\"stylesheet\"",
        "@import",
    ] {
        assert!(
            !html.contains(external),
            "the status page references {external:?}: it must not load anything from elsewhere"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_and_status_json_are_served_next_to_metrics() {
    let Some(backend) = backend_or_skip("status_page_and_status_json_are_served_next_to_metrics")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "status_page_http");
    let metrics = metrics_address();
    let duet = DuetProcess::start(
        &backend.url(db.name()),
        &["--metrics-listen", &metrics.to_string()],
    );
    // Some traffic, so that the counters the page shows are not all zero.
    let session = connect(&duet.config_as(&backend, db.name())).await;
    session
        .client
        .simple_query("SELECT 1")
        .await
        .expect("a query through duet");

    let page = http::get(metrics, "/");
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("Cache-Control"), Some("no-store"));
    let policy = page.header("Content-Security-Policy").unwrap_or_default();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
        "the page's CSP refuses every other origin: {policy:?}"
    );
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"), "{html:.200}");
    assert!(html.contains("status.json"), "the page polls status.json");
    assert_self_contained(&html);
    let status_page = http::get(metrics, "/status");
    assert_eq!(status_page.status, 200);
    assert_eq!(status_page.text(), html, "/status is the same page as /");

    for target in ["/status.json", "/status.json?t=12345"] {
        let response = http::get(metrics, target);
        assert_eq!(response.status, 200, "{target}: {}", response.text());
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(response.header("Cache-Control"), Some("no-store"));
        let report: Value = serde_json::from_slice(&response.body)
            .unwrap_or_else(|err| panic!("{target} is not JSON ({err}): {}", response.text()));
        assert!(report["migrations"].is_array(), "{report}");
        assert!(
            report["statements"].as_u64().unwrap_or(0) >= 1,
            "the query sent is counted: {report}"
        );
        assert_eq!(report["listen"], duet.listen().to_string(), "{report}");
        assert_eq!(report["backend"], backend.address(), "{report}");
        assert!(report["latency_us"]["p50"].is_u64(), "{report}");
        assert!(report["uptime_secs"].is_f64(), "{report}");
    }
    // The same report as the admin socket's status (which adds the session list).
    let admin = duet.status();
    let json: Value = serde_json::from_slice(&http::get(metrics, "/status.json").body)
        .expect("status.json is JSON");
    let admin_keys: Vec<&String> = admin
        .as_object()
        .expect("status is an object")
        .keys()
        .collect();
    let json_keys: Vec<&String> = json
        .as_object()
        .expect("status.json is an object")
        .keys()
        .collect();
    assert_eq!(
        json_keys, admin_keys,
        "status.json has the fields of status"
    );
    assert_eq!(
        json["sessions"],
        json!([]),
        "status.json leaves sessions out"
    );

    let scrape = http::get(metrics, "/metrics");
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        scrape.text().contains("\nduet_statements_total "),
        "{}",
        scrape.text()
    );

    for target in ["/nope", "/status.json/more", "/metrics/", "/index.html"] {
        let response = http::get(metrics, target);
        assert_eq!(response.status, 404, "{target}: {}", response.text());
    }
    // Not a request duet understands: 404 (or a closed connection), never a crash.
    for raw in [
        &b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"[..],
        b"\r\n\r\n",
        b"GET \xff\xfe HTTP/1.1\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ] {
        let answer = http::exchange(metrics, raw);
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 404 "),
            "{raw:?} got {}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(
        http::get(metrics, "/status.json").status,
        200,
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_a_live_migration_in_headless_chromium() {
    const TEST: &str = "status_page_renders_a_live_migration_in_headless_chromium";
    let Some(chromium) = Chromium::find() else {
        skip_or_fail::<()>(
            TEST,
            "chromium is not installed (Debian: apt-get install chromium)",
        );
        return;
    };
    let chromium = Arc::new(chromium);
    let Some(backend) = backend_or_skip(TEST) else {
        return;
    };
    let db = TestDatabase::create(&backend, "status_page_browser");
    db.execute(
        "CREATE SCHEMA sp;
         CREATE TABLE sp.orders (id int PRIMARY KEY, label text NOT NULL, amount int);
         INSERT INTO sp.orders SELECT g, 'order ' || g, g FROM generate_series(1, 100000) g;
         ANALYZE sp.orders;",
    );
    let metrics = metrics_address();
    let duet = DuetProcess::start(
        &backend.url(db.name()),
        &["--metrics-listen", &metrics.to_string()],
    );
    let direct = connect(&db.direct_config()).await;

    // A migration that stays in its copy for the whole test: an old transaction holds the copy
    // back until the copier's settings are slowed down (chunks of ~10 ms, resting 100 times as
    // long while the application is busy), then a busy application keeps it resting.
    let old = connect(&db.direct_config()).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");
    let id = migrate_sql(&duet, "ALTER TABLE sp.orders ALTER COLUMN id TYPE bigint").await;
    wait_status(&duet, id, "the copy waiting for the old transaction", |m| {
        m["phase"] == "copying"
            && m["copy_state"]
                .as_str()
                .is_some_and(|state| state.starts_with("waiting for"))
    })
    .await;
    request(
        &duet,
        json!({"command": "set", "id": id, "settings": {"chunk_time_ms": 10, "nice_ratio": 100}}),
    )
    .await
    .expect_ok("set");
    // The busy application: one statement that keeps running (it began after dual-writes did,
    // so the copy does not wait for it; the test database's drop ends it).
    let sleeper = connect(&db.direct_config()).await;
    let wake_sleeper = sleeper.client.cancel_token();
    let sleeping = tokio::spawn(async move {
        let _ = sleeper.client.simple_query("SELECT pg_sleep(300)").await;
    });
    wait_for_async(
        "the busy statement to run",
        Duration::from_secs(30),
        || async {
            let running: i64 = direct
                .client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND state = 'active'
                    AND query = 'SELECT pg_sleep(300)'",
                    &[],
                )
                .await
                .expect("reading pg_stat_activity")
                .get(0);
            (running > 0).then_some(())
        },
    )
    .await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    let m = wait_status(&duet, id, "the first copied rows", |m| {
        m["rows_done"].as_i64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(m["phase"], "copying", "{m}");

    // Writes through duet while the page is open: dual-written, and counted as throughput.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let writer = connect(&through(&backend, &duet, &db, "status-page-writer")).await;
        tokio::spawn(async move {
            let update = writer
                .client
                .prepare("UPDATE sp.orders SET amount = amount + 1 WHERE id = $1")
                .await
                .expect("prepare the writer's update");
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) && sent < 6000 {
                let key = 1 + (sent % 50_000) as i32;
                writer
                    .client
                    .execute(&update, &[&key])
                    .await
                    .expect("an update through duet");
                sent += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sent
        })
    };
    wait_for(
        "the writer's statements to be counted",
        Duration::from_secs(30),
        || {
            let report: Value =
                serde_json::from_slice(&http::get(metrics, "/status.json").body).ok()?;
            (report["statements"].as_u64()? > 20).then_some(())
        },
    );

    let url = format!("http://{metrics}/");
    let dom = {
        let (chromium, url) = (chromium.clone(), url.clone());
        tokio::task::spawn_blocking(move || chromium.dump_dom(&url, Duration::from_secs(5)))
            .await
            .expect("chromium --dump-dom")
    };
    let report: Value = serde_json::from_slice(&http::get(metrics, "/status.json").body)
        .expect("status.json is JSON");
    let text = visible_text(&dom);
    let listen = duet.listen().to_string();
    assert_eq!(
        text_of_id(&dom, "listen").as_deref(),
        Some(listen.as_str()),
        "the header shows the proxy's listen address (the page's script ran)\n{text}"
    );
    assert_eq!(
        text_of_id(&dom, "backend").as_deref(),
        Some(backend.address().as_str()),
        "{text}"
    );
    assert_eq!(
        text_of_id(&dom, "paused").as_deref(),
        Some("open"),
        "{text}"
    );
    assert!(!text.contains("cannot reach duet"), "{text}");
    assert!(text.contains("sp.orders"), "the migration's table: {text}");
    assert!(
        dom.contains(">copying</span>"),
        "the migration's phase badge: {text}"
    );
    assert!(text.contains("shadow table"), "the strategy: {text}");
    assert!(text.contains("rows copied"), "the copy's progress: {text}");
    assert!(text.contains("rows/s"), "the copy rate: {text}");
    // The proxy itself, or every fleet member when the report lists them.
    match report["members"].as_array() {
        Some(members) => {
            for member in members {
                if let Some(member_id) = member["id"].as_str() {
                    assert!(text.contains(member_id), "member {member_id}: {text}");
                }
            }
        }
        None => {
            assert_eq!(
                text_of_id(&dom, "fleet-title").as_deref(),
                Some("This proxy"),
                "{text}"
            );
            assert!(text.contains("this proxy"), "{text}");
        }
    }
    // Throughput is computed by the page from two polls: a number, not the placeholder.
    let rate = text_of_id(&dom, "rate").unwrap_or_default();
    assert!(
        rate.replace(',', "").parse::<f64>().is_ok(),
        "statements per second rendered by the page: {rate:?}\n{text}"
    );
    assert!(text.contains("p99"), "latency percentiles: {text}");

    // What the operator sees; kept for the README when DUET_UPDATE_SCREENSHOT=1.
    let shots = TempDir::new("status-page-shot");
    let shot = shots.join("status-page.png");
    {
        let (chromium, url, shot) = (chromium.clone(), url.clone(), shot.clone());
        tokio::task::spawn_blocking(move || {
            chromium.screenshot(&url, Duration::from_secs(20), &shot, 1280, 900)
        })
        .await
        .expect("chromium --screenshot");
    }
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "a screenshot of a rendered page, not a blank one ({size} bytes)"
    );
    if std::env::var("DUET_UPDATE_SCREENSHOT").is_ok_and(|value| value == "1") {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        std::fs::create_dir_all(&docs).expect("creating docs/");
        std::fs::copy(&shot, docs.join("status-page.png")).expect("copying the screenshot");
    }

    // The same page without its server: the failure banner, not a blank page.
    let offline = shots.join("offline.html");
    std::fs::write(&offline, http::get(metrics, "/").body).expect("saving the page");
    let offline_dom = {
        let (chromium, url) = (chromium.clone(), format!("file://{}", offline.display()));
        tokio::task::spawn_blocking(move || chromium.dump_dom(&url, Duration::from_secs(3)))
            .await
            .expect("chromium --dump-dom of the saved page")
    };
    let banner = text_of_id(&offline_dom, "banner").unwrap_or_default();
    assert!(
        banner.starts_with("cannot reach duet: "),
        "a page that cannot fetch status.json says so: {banner:?}\n{}",
        visible_text(&offline_dom)
    );

    stop.store(true, Ordering::Relaxed);
    let sent = writer.await.expect("the writer");
    assert!(sent > 0);
    let m = crate::support::migration::migration(&duet, id).await;
    assert_eq!(
        m["phase"], "copying",
        "still copying when the page was read: {m}"
    );
    assert!(m["dual_writes"].as_u64().unwrap_or(0) > 0, "{m}");
    // End the busy statement now rather than at the database's drop: it slows every copier on
    // the server while it runs.
    let _ = wake_sleeper.cancel_query(tokio_postgres::NoTls).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), sleeping).await;
}
