//! The copier yields to the application's latency: clients through duet whose statements turn
//! slow (`pg_sleep`) hold the copy, with the reason in `status`; the progress guarantee lets it
//! through piece by piece while they stay slow; when they are fast again it goes on by itself.
//!
//! No timing is asserted: every step waits for a state duet reports (the clients' p99 in its
//! window, the throttle's state, rows copied), and the bound on each wait only keeps a broken
//! duet from hanging the suite.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_postgres::Config;

use crate::support::duet_process::{through, DuetProcess};
use crate::support::migration::{
    assert_clean, migrate_sql, request, wait_phase, wait_status, PHASE_LIMIT,
};
use crate::support::pg_client::connect;
use crate::support::scenario::Scenario;
use crate::support::{backend_or_skip, wait_for_async, TempDir};

/// How slow the clients' statements turn: far above the floor below, so the copy must wait
/// whatever the fast statements' baseline was on a busy machine.
const SLOW: Duration = Duration::from_millis(100);

/// Clients through duet running one statement after another: `SELECT 1`, or `pg_sleep` while a
/// delay is set.
struct PacedClients {
    delay_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<String>>>,
}

impl PacedClients {
    fn start(config: Config, clients: usize) -> PacedClients {
        let delay_us = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let (config, delay_us, stop) = (config.clone(), delay_us.clone(), stop.clone());
                tokio::spawn(async move {
                    let session = connect(&config).await;
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let delay = delay_us.load(Ordering::SeqCst);
                        let sql = if delay == 0 {
                            "SELECT 1".to_owned()
                        } else {
                            format!("SELECT pg_sleep({})", delay as f64 / 1e6)
                        };
                        if let Err(err) = session.client.simple_query(&sql).await {
                            failures.push(crate::support::database::describe(&err));
                        }
                    }
                    failures
                })
            })
            .collect();
        PacedClients {
            delay_us,
            stop,
            tasks,
        }
    }

    fn set_delay(&self, delay: Duration) {
        self.delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let mut failures = Vec::new();
        for task in self.tasks {
            failures.extend(task.await.expect("a paced client panicked"));
        }
        failures
    }
}

/// Waits until duet's window of the last second satisfies `condition` (its `latency_recent_us`).
async fn wait_recent_latency(duet: &DuetProcess, what: &str, condition: impl Fn(&Value) -> bool) {
    wait_for_async(what, PHASE_LIMIT, || async {
        let status = request(duet, json!({"command": "status"}))
            .await
            .expect_ok("status");
        condition(&status["latency_recent_us"]).then_some(())
    })
    .await;
}

fn throttle_state(m: &Value) -> &str {
    m["latency_throttle"]["state"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_waits_while_clients_are_slow_and_goes_on_when_they_recover() {
    let Some(backend) = backend_or_skip("the_copy_waits_while_clients_are_slow") else {
        return;
    };
    // Small chunks so the copy has many pieces; a floor well above a fast `SELECT 1` and well
    // below SLOW; a maximum pause long enough that only the clients' latency lets the copy go
    // (until the test shortens it); no rests, so the latency is the only thing pacing the copy.
    let dir = TempDir::new("throttle-config");
    let config_path = dir.join("duet.toml");
    std::fs::write(
        &config_path,
        "[migration]\nchunk_time = \"5ms\"\nnice_ratio = 0\nlatency_floor = \"30ms\"\nlatency_max_pause = \"10m\"\n",
    )
    .expect("writing the config file");
    let config_arg = config_path.display().to_string();
    let mut s = Scenario::start_with(
        backend,
        "mig_throttle",
        "mth",
        "int",
        "int",
        20_000,
        &["--config", &config_arg],
    )
    .await;
    let clients = PacedClients::start(through(&s.backend, &s.duet, &s.db, "paced"), 8);
    // The baseline is taken from the clients' last seconds when the migration starts.
    wait_recent_latency(&s.duet, "fast statements in duet's window", |w| {
        w["count"].as_u64().unwrap_or(0) >= 200
    })
    .await;
    // An open transaction older than the dual-writes holds the copier at its start, so nothing is
    // copied before the clients turn slow.
    let old = connect(&s.db.direct_config()).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");
    let id = migrate_sql(&s.duet, "ALTER TABLE mth.t ALTER COLUMN id TYPE bigint").await;
    let m = wait_phase(&s.duet, id, "copying").await;
    assert!(
        m["settings"]["latency_baseline_us"].as_u64().is_some(),
        "the baseline is measured when the migration starts: {m}"
    );
    s.round().await;

    // The clients turn slow; once duet's window shows it, the copier is let start.
    clients.set_delay(SLOW);
    let slow_us = SLOW.as_micros() as u64;
    wait_recent_latency(&s.duet, "only slow statements in duet's window", |w| {
        w["p50"].as_u64().unwrap_or(0) >= slow_us && w["count"].as_u64().unwrap_or(0) >= 20
    })
    .await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    let held = wait_status(&s.duet, id, "the copy held by the clients' latency", |m| {
        throttle_state(m) == "holding"
    })
    .await;
    let reason = held["latency_throttle"]["reason"]
        .as_str()
        .unwrap_or_default();
    // Normally `> the floor 30.0 ms (1.5 × baseline … is lower)`; on a very busy machine the
    // fast statements' baseline may itself be the higher bound.
    assert!(
        reason.starts_with("client p99 ") && reason.contains(" > "),
        "{held}"
    );
    // Before its first chunk the copier rested one window to measure the clients with the
    // dual-writes on and nothing copied: here the slow statements, far above the limit.
    assert!(
        held["latency_throttle"]["dual_writes_us"]
            .as_u64()
            .is_some_and(|us| us >= slow_us / 2),
        "the clients' p99 before any copying: {held}"
    );
    assert!(
        reason.contains("before any copying, with the dual-writes on: p99 ")
            && reason.contains("a max latency factor above"),
        "{held}"
    );
    assert!(
        held["copy_state"]
            .as_str()
            .is_some_and(|state| state.starts_with("throttled: client p99 ")),
        "the copy state says why: {held}"
    );
    assert_eq!(
        held["rows_done"].as_i64(),
        Some(0),
        "no chunk ran while the clients were slow: {held}"
    );
    let text = s.duet.admin_async(&["status"]).await;
    assert!(
        text.stdout.contains("client latency: holding: client p99 "),
        "the text status shows the throttle: {}",
        text.stdout
    );

    // The progress guarantee: with a short maximum pause the copy goes on, piece by piece,
    // while the clients stay slow.
    request(
        &s.duet,
        json!({"command": "set", "id": id, "settings": {"latency_max_pause_ms": 200}}),
    )
    .await
    .expect_ok("set latency-max-pause");
    let forced = wait_status(&s.duet, id, "pieces let through by the guarantee", |m| {
        m["rows_done"].as_i64().unwrap_or(0) > 0
            && m["latency_throttle"]["forced"].as_u64().unwrap_or(0) > 0
    })
    .await;
    request(
        &s.duet,
        json!({"command": "set", "id": id, "settings": {"latency_max_pause_ms": 600_000}}),
    )
    .await
    .expect_ok("set latency-max-pause back");
    assert!(forced["latency_throttle"]["reason"].is_string(), "{forced}");
    // Once it holds again no piece can run until the clients recover: the rows copied so far.
    let rows_forced = wait_status(&s.duet, id, "the copy held again", |m| {
        throttle_state(m) == "holding"
    })
    .await["rows_done"]
        .as_i64()
        .unwrap_or(0);

    // The clients recover: the signal clears and the copy goes on by itself (the maximum pause
    // is ten minutes again, so only the clients' latency can let it through).
    clients.set_delay(Duration::ZERO);
    let resumed = wait_status(
        &s.duet,
        id,
        "the copy going on after the clients recovered",
        |m| m["phase"] != "copying" || m["rows_done"].as_i64().unwrap_or(0) > rows_forced,
    )
    .await;
    assert!(
        resumed["latency_throttle"]["holds"].as_u64().unwrap_or(0) >= 1,
        "{resumed}"
    );
    // The rest is not about the throttle: a shorter maximum pause keeps a busy machine's noise
    // from stretching the test.
    request(
        &s.duet,
        json!({"command": "set", "id": id, "settings": {"latency_max_pause_ms": 500}}),
    )
    .await
    .expect_ok("set latency-max-pause");
    wait_phase(&s.duet, id, "ready").await;
    s.round().await;
    request(&s.duet, json!({"command": "cutover", "id": id}))
        .await
        .expect_ok("cutover");
    request(&s.duet, json!({"command": "complete", "id": id}))
        .await
        .expect_ok("complete");
    let failures = clients.stop().await;
    assert!(
        failures.is_empty(),
        "client statements failed: {failures:?}"
    );
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mth", id, "completed").await;
}
