//! The copier against the real PostgreSQL: exact copy, resume, pause, key refusal, throttling
//! (database signals and the clients' latency, the verifier's too), waiting for old
//! transactions, tombstone sweep.

mod migrate_support;

use std::sync::Arc;
use std::time::Duration;

use duet_shadow::ident::QualifiedName;
use duet_shadow::migrate::copier::{Copier, CopierConfig, CopierState, CopyOutcome};
use duet_shadow::migrate::latency::{
    ClientLatency, LatencyGate, LatencyHandle, LatencyLimit, LatencySample, LatencyState,
    LatencyThrottle,
};
use duet_shadow::migrate::old_transactions::{mark_dual_writes_enabled, wait_for_old_transactions};
use duet_shadow::migrate::progress::load_checkpoint;
use duet_shadow::migrate::sweep::sweep_tombstones;
use duet_shadow::migrate::throttle::{Signal, Threshold, ThrottleConfig};
use duet_shadow::migrate::verify::{verify, VerifyConfig};
use duet_shadow::migrate::{ColumnMapping, CopyTarget, MigrateError};
use migrate_support::{difference_count, populate, shadow_migration, shadow_migration_of, TestDb};

fn fixed_chunks(rows: u32) -> CopierConfig {
    CopierConfig {
        initial_chunk_rows: rows,
        min_chunk_rows: rows,
        max_chunk_rows: rows,
        throttle: ThrottleConfig {
            thresholds: vec![],
            recheck_interval: Duration::from_millis(50),
            ..ThrottleConfig::default()
        },
        ..CopierConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_a_populated_table_exactly_with_int_to_bigint_key() {
    let Some(db) = TestDb::create("copy").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, 50_000).await;
    let (id, target) = shadow_migration(&mut c).await;
    let ty: String = c
        .query_one("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 't__duet'::regclass AND attname = 'id'", &[])
        .await
        .expect("type")
        .get(0);
    assert_eq!(ty, "bigint");
    let (copier, control) = Copier::new(
        db.connect().await,
        target.clone(),
        id,
        CopierConfig::default(),
    );
    assert_eq!(copier.run().await.expect("copy"), CopyOutcome::Done);
    let p = control.progress();
    assert_eq!(p.state, CopierState::Done);
    assert_eq!((p.rows_done, p.rows_copied), (50_000, 50_000));
    assert_eq!(p.rows_total, Some(50_000));
    assert_eq!(
        p.last_key.as_ref().map(|k| k.0.clone()),
        Some(vec!["50000".to_string()])
    );
    assert_eq!(difference_count(&c).await, 0);
    let report = verify(&mut c, &target, &VerifyConfig::with_chunk_rows(7_000))
        .await
        .expect("verify");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        (report.ranges, report.source_rows, report.shadow_rows),
        (8, 50_000, 50_000)
    );
    // A finished copy stays finished.
    let (again, _) = Copier::new(db.connect().await, target, id, CopierConfig::default());
    assert_eq!(again.run().await.expect("rerun"), CopyOutcome::Done);
    drop(c);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_copier_resumes_from_the_checkpoint_without_redoing_work() {
    let Some(db) = TestDb::create("resume").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, 50_000).await;
    let (id, target) = shadow_migration(&mut c).await;
    let (copier, control) = Copier::new(db.connect().await, target.clone(), id, fixed_chunks(1000));
    let mut rx = control.subscribe();
    let task = tokio::spawn(copier.run());
    rx.wait_for(|p| p.rows_done >= 20_000)
        .await
        .expect("progress");
    // Kill it mid-flight: whatever chunk was open rolls back with its checkpoint.
    task.abort();
    let _ = task.await;
    let cp = load_checkpoint(&c, id, false)
        .await
        .expect("cp")
        .expect("checkpoint");
    assert!(cp.rows_done >= 20_000 && cp.rows_done < 50_000, "{cp:?}");
    let shadow_rows: i64 = c
        .query_one("SELECT count(*) FROM t__duet", &[])
        .await
        .expect("n")
        .get(0);
    assert_eq!(
        shadow_rows, cp.rows_done,
        "checkpoint and shadow commit together"
    );

    let (second, control2) =
        Copier::new(db.connect().await, target.clone(), id, fixed_chunks(1000));
    assert_eq!(second.run().await.expect("resume"), CopyOutcome::Done);
    let p = control2.progress();
    assert_eq!(
        (p.rows_done, p.rows_copied),
        (50_000, 50_000),
        "no row scanned twice"
    );
    let expected_chunks = u64::try_from((50_000 - cp.rows_done + 999) / 1000).expect("chunks");
    assert_eq!(
        p.chunks, expected_chunks,
        "the second copier only did the remaining chunks"
    );
    assert_eq!(difference_count(&c).await, 0);
    drop(c);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_and_live_settings() {
    let Some(db) = TestDb::create("pause").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, 20_000).await;
    let (id, target) = shadow_migration(&mut c).await;
    let (copier, control) = Copier::new(db.connect().await, target, id, fixed_chunks(500));
    let mut rx = control.subscribe();
    let task = tokio::spawn(copier.run());
    rx.wait_for(|p| p.rows_done >= 2_000)
        .await
        .expect("progress");
    control.pause();
    rx.wait_for(|p| p.state == CopierState::Paused)
        .await
        .expect("paused");
    let before = load_checkpoint(&c, id, false)
        .await
        .expect("cp")
        .expect("cp");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = load_checkpoint(&c, id, false)
        .await
        .expect("cp")
        .expect("cp");
    assert_eq!(before, after, "nothing copied while paused");
    assert!(before.rows_done < 20_000);
    control.set_chunk_rows_limits(2_000, 2_000);
    control.set_chunk_time(Duration::from_millis(50));
    control.resume();
    assert_eq!(task.await.expect("join").expect("copy"), CopyOutcome::Done);
    let done = load_checkpoint(&c, id, false)
        .await
        .expect("cp")
        .expect("cp");
    assert_eq!(done.chunk_rows, Some(2_000), "new limits applied live");
    assert_eq!(difference_count(&c).await, 0);
    drop(c);
    db.drop_db().await;
}

#[tokio::test]
async fn a_table_without_a_usable_key_is_refused_with_the_reason() {
    let Some(db) = TestDb::create("nokey").await else {
        return;
    };
    let c = db.connect().await;
    c.batch_execute(
        "CREATE TABLE heap (a int, b text);
         CREATE TABLE nullable_unique (a int, b text); CREATE UNIQUE INDEX ON nullable_unique (a);
         CREATE TABLE uk (a int NOT NULL, b text); CREATE UNIQUE INDEX uk_a ON uk (a);
         INSERT INTO uk SELECT g, 'x' FROM generate_series(1, 300) g;",
    )
    .await
    .expect("tables");
    let mapping = vec![
        ColumnMapping::new("a", "\"a\"::bigint"),
        ColumnMapping::new("b", "\"b\""),
    ];
    for (table, needle) in [
        ("heap", "no primary key"),
        ("nullable_unique", "nullable columns"),
    ] {
        let err = CopyTarget::plan(&c, QualifiedName::new("public", table), mapping.clone())
            .await
            .expect_err("refused");
        match &err {
            MigrateError::NoUsableKey { reason, .. } => {
                assert!(reason.contains(needle), "{reason}")
            }
            other => panic!("expected NoUsableKey, got {other}"),
        }
    }
    let target = CopyTarget::plan(&c, QualifiedName::new("public", "uk"), mapping)
        .await
        .expect("unique NOT NULL key is usable");
    assert_eq!(target.key.index_name, "uk_a");
    assert!(!target.key.is_primary);
    drop(c);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_fails_closed_when_a_signal_cannot_be_read() {
    let Some(db) = TestDb::create("throttle").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, 3_000).await;
    let (id, target) = shadow_migration(&mut c).await;
    let mut config = fixed_chunks(500);
    config.throttle.thresholds = vec![
        Threshold {
            signal: Signal::ReplicationReplayLagSeconds,
            max: 5.0,
        },
        Threshold {
            signal: Signal::ActiveBackends,
            max: 1000.0,
        },
        Threshold {
            signal: Signal::Sql {
                name: "probe".into(),
                sql: "SELECT v FROM throttle_probe".into(),
            },
            max: 10.0,
        },
    ];
    let (copier, control) = Copier::new(db.connect().await, target, id, config);
    let mut rx = control.subscribe();
    let task = tokio::spawn(copier.run());
    let p = rx
        .wait_for(
            |p| matches!(&p.state, CopierState::Throttled(r) if r.contains("probe cannot be read")),
        )
        .await
        .expect("throttled")
        .clone();
    assert_eq!(
        p.rows_done, 0,
        "nothing copied while a signal is unreadable"
    );
    c.batch_execute(
        "CREATE TABLE throttle_probe (v float8); INSERT INTO throttle_probe VALUES (100)",
    )
    .await
    .expect("probe");
    rx.wait_for(|p| matches!(&p.state, CopierState::Throttled(r) if r.contains("probe is 100")))
        .await
        .expect("throttled on value");
    let n: i64 = c
        .query_one("SELECT count(*) FROM t__duet", &[])
        .await
        .expect("n")
        .get(0);
    assert_eq!(n, 0);
    c.batch_execute("UPDATE throttle_probe SET v = 0")
        .await
        .expect("calm");
    assert_eq!(task.await.expect("join").expect("copy"), CopyOutcome::Done);
    assert_eq!(difference_count(&c).await, 0);
    drop(c);
    db.drop_db().await;
}

/// A client-latency source the test switches between slow and fast.
struct SwitchedLatency(std::sync::atomic::AtomicBool);

impl ClientLatency for SwitchedLatency {
    fn recent(&self) -> LatencySample {
        let slow = self.0.load(std::sync::atomic::Ordering::SeqCst);
        LatencySample {
            p99: Duration::from_millis(if slow { 50 } else { 2 }),
            statements: 500,
            window: Duration::from_secs(1),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copier_and_the_verifier_wait_while_the_clients_are_slow() {
    let Some(db) = TestDb::create("latency").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, 3_000).await;
    let (id, target) = shadow_migration(&mut c).await;
    let source = Arc::new(SwitchedLatency(std::sync::atomic::AtomicBool::new(true)));
    // Baseline 2 ms, limit 3 ms; no forced pieces within the test.
    let limit = LatencyLimit {
        max_factor: 1.5,
        floor: Duration::from_millis(1),
        max_pause: Duration::from_secs(3600),
    };
    let throttle = LatencyThrottle::new(
        source.clone(),
        LatencyGate::new(limit, Some(Duration::from_millis(2))),
    );
    let config = CopierConfig {
        latency: Some(LatencyHandle(throttle.clone())),
        ..fixed_chunks(500)
    };
    let (copier, control) = Copier::new(db.connect().await, target.clone(), id, config);
    let mut rx = control.subscribe();
    let task = tokio::spawn(copier.run());
    let p = rx
        .wait_for(|p| {
            matches!(&p.state, CopierState::Throttled(r)
                if r.starts_with("client p99 50.0 ms > 1.5 × baseline 2.0 ms"))
        })
        .await
        .expect("throttled")
        .clone();
    assert_eq!(p.rows_done, 0, "nothing copied while the clients are slow");
    assert_eq!(throttle.view().state, LatencyState::Holding);
    source.0.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(task.await.expect("join").expect("copy"), CopyOutcome::Done);
    assert_eq!(throttle.view().holds, 1);
    assert_eq!(difference_count(&c).await, 0);

    // The verifier waits before each range the same way (its snapshot stays open meanwhile).
    source.0.store(true, std::sync::atomic::Ordering::SeqCst);
    let verify_config = VerifyConfig {
        latency: Some(LatencyHandle(throttle.clone())),
        ..VerifyConfig::with_chunk_rows(1_000)
    };
    let mut verifier = db.connect().await;
    let target_for_budget = target.clone();
    let verifying = tokio::spawn(async move {
        verify(&mut verifier, &target, &verify_config)
            .await
            .expect("verify")
    });
    while throttle.view().holds < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(throttle.view().state, LatencyState::Holding);
    assert!(
        !verifying.is_finished(),
        "the verification waits while the clients are slow"
    );
    source.0.store(false, std::sync::atomic::Ordering::SeqCst);
    let report = verifying.await.expect("join");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.source_rows, 3_000);

    // The verification's waits are bounded (its snapshot is open meanwhile): with the clients
    // slow throughout and a short maximum pause, it still finishes.
    source.0.store(true, std::sync::atomic::Ordering::SeqCst);
    throttle.set_limit(LatencyLimit {
        max_pause: Duration::from_millis(50),
        ..limit
    });
    let forced_before = throttle.view().forced;
    let report = verify(
        &mut c,
        &target_for_budget,
        &VerifyConfig {
            latency: Some(LatencyHandle(throttle.clone())),
            ..VerifyConfig::with_chunk_rows(500)
        },
    )
    .await
    .expect("verify while the clients stay slow");
    assert!(report.is_clean(), "{report:?}");
    assert!(
        throttle.view().forced > forced_before,
        "{:?}",
        throttle.view()
    );
    drop(c);
    db.drop_db().await;
}

#[tokio::test]
async fn waits_for_transactions_older_than_dual_writes_and_names_them() {
    let Some(db) = TestDb::create("oldtx").await else {
        return;
    };
    let c = db.connect().await;
    let mut old = db.connect().await;
    let old_pid: i32 = old
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let tx = old.transaction().await.expect("tx");
    tx.batch_execute("SELECT 1").await.expect("snapshot");
    let mark = mark_dual_writes_enabled(&c).await.expect("mark");
    let young = db.connect().await;
    young
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("young tx");
    let err = wait_for_old_transactions(
        &c,
        &mark,
        Duration::from_millis(200),
        Duration::from_millis(20),
    )
    .await
    .expect_err("old transaction still open");
    match &err {
        MigrateError::OldTransactions { blockers, .. } => {
            let pids: Vec<Option<i32>> = blockers.iter().map(|b| b.pid).collect();
            assert_eq!(pids, [Some(old_pid)], "only the older transaction blocks");
            assert_eq!(blockers[0].state.as_deref(), Some("idle in transaction"));
        }
        other => panic!("expected OldTransactions, got {other}"),
    }
    tx.commit().await.expect("end old");
    wait_for_old_transactions(&c, &mark, Duration::from_secs(5), Duration::from_millis(20))
        .await
        .expect("no old transaction left");
    drop((c, old, young));
    db.drop_db().await;
}

/// As the tables' owner without superuser or `pg_read_all_stats` (a managed server), duet's role
/// sees another role's session without its transaction start: the wait still finds a read-only
/// snapshot that role opened before the mark (through its virtual transaction id), and only that
/// transaction — not the next one the same session starts.
#[tokio::test]
async fn a_role_without_stats_privileges_still_waits_for_other_roles_old_transactions() {
    let Some(db) = TestDb::create("oldtx_roles").await else {
        return;
    };
    // Roles belong to the cluster: names of this run's own.
    let owner = format!("oldtx_owner_{}", std::process::id());
    let app = format!("oldtx_app_{}", std::process::id());
    let (owner, app) = (owner.as_str(), app.as_str());
    let admin = db.connect().await;
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {owner}; DROP ROLE IF EXISTS {app};
             CREATE ROLE {owner} LOGIN; CREATE ROLE {app} LOGIN;
             GRANT CONNECT ON DATABASE {} TO {owner}, {app};",
            db.name
        ))
        .await
        .expect("roles");
    let as_role = |role: &str| {
        let url = format!("{} user={role}", db.url());
        async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect as a role");
            tokio::spawn(conn);
            c
        }
    };
    let duet = as_role(owner).await;
    let mut other = as_role(app).await;
    let other_pid: i32 = other
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let hidden: Option<String> = duet
        .query_one(
            "SELECT xact_start::text FROM pg_stat_activity WHERE pid = $1",
            &[&other_pid],
        )
        .await
        .expect("activity")
        .get(0);
    assert_eq!(
        hidden, None,
        "the premise: another role's details are hidden"
    );
    let tx = other
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .expect("tx");
    tx.batch_execute("SELECT 1")
        .await
        .expect("a snapshot, no xid");
    let mark = mark_dual_writes_enabled(&duet).await.expect("mark");
    let err = wait_for_old_transactions(
        &duet,
        &mark,
        Duration::from_millis(200),
        Duration::from_millis(20),
    )
    .await
    .expect_err("the other role's old snapshot is still open");
    match &err {
        MigrateError::OldTransactions { blockers, .. } => {
            let pids: Vec<Option<i32>> = blockers.iter().map(|b| b.pid).collect();
            assert_eq!(pids, [Some(other_pid)]);
            assert!(
                err.to_string().contains("pg_read_all_stats"),
                "says how to see more: {err}"
            );
        }
        other => panic!("expected OldTransactions, got {other}"),
    }
    tx.commit().await.expect("end the old transaction");
    // A new transaction of the same session began after the mark: it does not count.
    other
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("a younger transaction");
    wait_for_old_transactions(
        &duet,
        &mark,
        Duration::from_secs(5),
        Duration::from_millis(20),
    )
    .await
    .expect("no old transaction left");
    drop((duet, other));
    db.drop_db().await;
    let (cluster, conn) = tokio_postgres::connect(
        &format!("{} dbname=postgres", migrate_support::base_url()),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(conn);
    drop(admin);
    cluster
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {owner}; DROP ROLE IF EXISTS {app}"
        ))
        .await
        .expect("drop the roles");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_removes_tombstones_only_below_the_committed_watermark() {
    let Some(db) = TestDb::create("sweep").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, 10_000).await;
    let (id, target) = shadow_migration(&mut c).await;
    // Tombstones written by dual-written deletes: below and above where the copy will stop.
    c.batch_execute(
        "INSERT INTO t__duet (id, __duet_deleted) SELECT g, true FROM generate_series(1, 10000, 1000) g",
    )
    .await
    .expect("tombstones");
    let (copier, control) = Copier::new(db.connect().await, target.clone(), id, fixed_chunks(1000));
    let mut rx = control.subscribe();
    let task = tokio::spawn(copier.run());
    rx.wait_for(|p| p.rows_done >= 4_000)
        .await
        .expect("progress");
    control.stop();
    assert_eq!(
        task.await.expect("join").expect("run"),
        CopyOutcome::Stopped
    );
    let cp = load_checkpoint(&c, id, false)
        .await
        .expect("cp")
        .expect("cp");
    let watermark: i64 = cp.last_key.as_ref().expect("watermark").0[0]
        .parse()
        .expect("int");
    let removed = sweep_tombstones(&c, &target, id, 2).await.expect("sweep");
    let below = (0..10)
        .map(|i| i * 1000 + 1)
        .filter(|k| *k <= watermark)
        .count();
    assert_eq!(removed, u64::try_from(below).expect("n"));
    let left: i64 = c
        .query_one("SELECT count(*) FROM t__duet WHERE __duet_deleted", &[])
        .await
        .expect("n")
        .get(0);
    assert_eq!(
        left,
        10 - i64::try_from(below).expect("n"),
        "tombstones above the watermark stay"
    );
    drop(c);
    db.drop_db().await;
}

/// The shadow's row for `id`: (v, note, tombstone).
async fn shadow_row(c: &tokio_postgres::Client, id: i64) -> (Option<i32>, Option<String>, bool) {
    let row = c
        .query_one(
            "SELECT v, note, __duet_deleted FROM t__duet WHERE id = $1",
            &[&id],
        )
        .await
        .expect("shadow row");
    (row.get(0), row.get(1), row.get(2))
}

/// Live shadow rows equal to their source row.
async fn copied_equal_rows(c: &tokio_postgres::Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM t JOIN t__duet s ON s.id = t.id::bigint
         WHERE NOT s.__duet_deleted AND s.v IS NOT DISTINCT FROM t.v
           AND s.note IS NOT DISTINCT FROM t.note",
        &[],
    )
    .await
    .expect("equal rows")
    .get(0)
}

/// Chunks whose range already holds dual-written rows or tombstones go through `ON CONFLICT DO
/// NOTHING`, the others through the plain insert; either way the dual-written values and the
/// tombstone stay, and every other row is copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_dual_writes_in_a_chunk_are_kept_and_tombstones_not_resurrected() {
    let Some(db) = TestDb::create("copypaths").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, 3_000).await;
    let (id, target) = shadow_migration(&mut c).await;
    // Chunks of 1000: the first and third hold shadow keys, the second none.
    c.batch_execute(
        "INSERT INTO t__duet (id, v, note, __duet_deleted) VALUES
           (10, -10, 'dual', false), (700, NULL, NULL, true), (2500, -2500, 'dual', false)",
    )
    .await
    .expect("dual-written rows");
    let (copier, control) = Copier::new(db.connect().await, target, id, fixed_chunks(1000));
    assert_eq!(copier.run().await.expect("copy"), CopyOutcome::Done);
    let p = control.progress();
    assert_eq!((p.rows_done, p.rows_copied), (3_000, 2_997));
    assert_eq!((p.chunks, p.conflict_fallbacks), (3, 0));
    assert_eq!(
        shadow_row(&c, 10).await,
        (Some(-10), Some("dual".into()), false)
    );
    assert_eq!(shadow_row(&c, 700).await, (None, None, true));
    assert_eq!(
        shadow_row(&c, 2500).await,
        (Some(-2500), Some("dual".into()), false)
    );
    assert_eq!(copied_equal_rows(&c).await, 2_997);
    drop(c);
    db.drop_db().await;
}

/// The plain insert of a chunk meets keys a dual-write holds uncommitted (invisible to the probe):
/// it waits, the dual-write commits, the plain insert fails with a unique violation and the chunk
/// is redone with `ON CONFLICT DO NOTHING` in the same transaction. The dual-written row and the
/// tombstone win; nothing is overwritten or resurrected; the checkpoint counts the chunk once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_chunk_racing_a_dual_write_falls_back_and_the_dual_write_wins() {
    let Some(db) = TestDb::create("copyfallback").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, 3_000).await;
    let (id, target) = shadow_migration(&mut c).await;
    let mut writer = db.connect().await;
    let tx = writer.transaction().await.expect("begin");
    tx.batch_execute(
        "INSERT INTO t__duet (id, v, note, __duet_deleted) VALUES
           (1500, -1500, 'dual', false), (1600, NULL, NULL, true)",
    )
    .await
    .expect("uncommitted dual-writes");
    let mut config = fixed_chunks(10_000);
    // Long enough that the copier waits for the writer instead of timing out.
    config.lock_timeout = Duration::from_secs(600);
    let (copier, control) = Copier::new(db.connect().await, target, id, config);
    let task = tokio::spawn(copier.run());
    // Wait until the plain insert (no ON CONFLICT) is blocked on the writer's keys.
    loop {
        let blocked: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE 'INSERT INTO \"public\".\"t__duet\"%'
                   AND query NOT LIKE '%ON CONFLICT%'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if blocked > 0 {
            break;
        }
        assert!(
            !task.is_finished(),
            "the copier finished without meeting the writer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.commit().await.expect("commit the dual-writes");
    assert_eq!(task.await.expect("join").expect("copy"), CopyOutcome::Done);
    let p = control.progress();
    assert_eq!(p.conflict_fallbacks, 1);
    assert_eq!((p.rows_done, p.rows_copied), (3_000, 2_998));
    assert_eq!(
        shadow_row(&c, 1500).await,
        (Some(-1500), Some("dual".into()), false)
    );
    assert_eq!(shadow_row(&c, 1600).await, (None, None, true));
    assert_eq!(copied_equal_rows(&c).await, 2_998);
    let cp = load_checkpoint(&c, id, false)
        .await
        .expect("cp")
        .expect("checkpoint");
    assert_eq!(
        (cp.rows_done, cp.rows_copied, cp.done),
        (3_000, 2_998, true)
    );
    drop(c);
    drop(writer);
    db.drop_db().await;
}

/// An integer key with large gaps, up to the largest `integer`: each chunk is the interval of
/// `chunk_rows` keys from the first key past the watermark, so a gap costs one probe, and the
/// interval arithmetic cannot overflow the key type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_keys_with_gaps_are_chunked_by_interval_from_the_next_key() {
    let Some(db) = TestDb::create("copygaps").await else {
        return;
    };
    let mut c = db.connect().await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int, note text);
         INSERT INTO t SELECT g, g, 'n' || g FROM generate_series(1, 1000) g;
         INSERT INTO t SELECT g, g % 1000, 'n' || g FROM generate_series(1000000, 1000999) g;
         INSERT INTO t SELECT g, g % 1000, 'n' || g FROM generate_series(2147483000, 2147483647) g;
         ANALYZE t;",
    )
    .await
    .expect("populate");
    let (id, target) = shadow_migration(&mut c).await;
    let (copier, control) = Copier::new(db.connect().await, target, id, fixed_chunks(100));
    assert_eq!(copier.run().await.expect("copy"), CopyOutcome::Done);
    let p = control.progress();
    assert_eq!((p.rows_done, p.rows_copied), (2_648, 2_648));
    // 10 + 10 + 7 chunks: one per 100 keys of each run, none for the gaps.
    assert_eq!(p.chunks, 27);
    assert_eq!(
        p.last_key.as_ref().map(|k| k.0.clone()),
        Some(vec!["2147483647".to_string()])
    );
    assert_eq!(difference_count(&c).await, 0);
    drop(c);
    db.drop_db().await;
}

/// A composite key (integer, text) is chunked by counting keys (`OFFSET`), with a dual-written
/// row and a tombstone in its range that must stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_keys_are_chunked_by_count_and_keep_dual_writes() {
    let Some(db) = TestDb::create("copycomposite").await else {
        return;
    };
    let mut c = db.connect().await;
    c.batch_execute(
        "CREATE TABLE ck (a int, b text, v int, PRIMARY KEY (a, b));
         INSERT INTO ck SELECT g, s, g FROM generate_series(1, 300) g, unnest(ARRAY['x', 'y', 'z']) s;
         ANALYZE ck;",
    )
    .await
    .expect("populate");
    let mapping = vec![
        ColumnMapping::new("a", "\"a\""),
        ColumnMapping::new("b", "\"b\""),
        ColumnMapping::new("v", "\"v\"::bigint"),
    ];
    let (id, target) = shadow_migration_of(&mut c, "ck", mapping).await;
    c.batch_execute(
        "INSERT INTO ck__duet (a, b, v, __duet_deleted) VALUES
           (5, 'y', -5, false), (250, 'z', NULL, true)",
    )
    .await
    .expect("dual-writes");
    let (copier, control) = Copier::new(db.connect().await, target, id, fixed_chunks(100));
    assert_eq!(copier.run().await.expect("copy"), CopyOutcome::Done);
    let p = control.progress();
    assert_eq!((p.rows_done, p.rows_copied, p.chunks), (900, 898, 9));
    assert_eq!(
        p.last_key.as_ref().map(|k| k.0.clone()),
        Some(vec!["300".to_string(), "z".to_string()])
    );
    let differing: i64 = c
        .query_one(
            "SELECT count(*) FROM ck FULL JOIN ck__duet s USING (a, b)
             WHERE s.v IS DISTINCT FROM ck.v::bigint OR s.__duet_deleted",
            &[],
        )
        .await
        .expect("compare")
        .get(0);
    assert_eq!(
        differing, 2,
        "only the dual-written row and the tombstone differ"
    );
    let kept: (i64, bool) = {
        let r = c
            .query_one(
                "SELECT v, __duet_deleted FROM ck__duet WHERE a = 5 AND b = 'y'",
                &[],
            )
            .await
            .expect("dual row");
        (r.get(0), r.get(1))
    };
    assert_eq!(kept, (-5, false));
    let tomb: bool = c
        .query_one(
            "SELECT __duet_deleted FROM ck__duet WHERE a = 250 AND b = 'z'",
            &[],
        )
        .await
        .expect("tombstone")
        .get(0);
    assert!(tomb);
    drop(c);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_follows_the_nice_ratio_while_a_statement_runs_even_inside_a_snapshot() {
    use duet_shadow::migrate::throttle::SignalReadings;
    let Some(db) = TestDb::create("nice").await else {
        return;
    };
    let mut c = db.connect().await;
    let took = Duration::from_millis(40);
    // A fresh reading each time: the rest must follow the server, not a reading kept.
    let rest_after = |client, ratio| async move {
        SignalReadings::default()
            .rest_after(client, ratio, took)
            .await
    };
    assert_eq!(rest_after(&c, 0.0).await, Duration::ZERO, "0: never");
    assert_eq!(rest_after(&c, f64::NAN).await, Duration::ZERO);

    // Inside a REPEATABLE READ transaction (as the verifier reads) that saw the server before
    // the statement started: the rest must still notice it.
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .expect("snapshot");
    tx.query_one("SELECT count(*) FROM pg_stat_activity", &[])
        .await
        .expect("first look at pg_stat_activity");
    let busy = db.connect().await;
    let sleeper = tokio::spawn(async move {
        let _ = busy.batch_execute("SELECT pg_sleep(3)").await;
    });
    let mut rested = Duration::ZERO;
    for _ in 0..50 {
        rested = SignalReadings::default().rest_after(&tx, 2.5, took).await;
        if !rested.is_zero() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rested, Duration::from_millis(100), "2.5 × 40 ms while busy");
    tx.commit().await.expect("commit");
    let _ = sleeper.await;
    drop(c);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_readings_stand_for_a_while_unless_they_throttle_or_the_settings_change() {
    use duet_shadow::migrate::throttle::{SignalReadings, SIGNAL_MAX_AGE};
    let Some(db) = TestDb::create("readings").await else {
        return;
    };
    let c = db.connect().await;
    // Every reading of the probe advances the sequence: its value counts the readings.
    c.batch_execute("CREATE SEQUENCE probe_reads")
        .await
        .expect("sequence");
    let probe = |max: f64| ThrottleConfig {
        thresholds: vec![Threshold {
            signal: Signal::Sql {
                name: "probe".into(),
                sql: "SELECT nextval('probe_reads')::float8".into(),
            },
            max,
        }],
        ..ThrottleConfig::default()
    };
    let reads = || async {
        c.query_one("SELECT last_value FROM probe_reads", &[])
            .await
            .expect("reads")
            .get::<_, i64>(0)
    };
    let mut readings = SignalReadings::default();
    let lenient = probe(1e9);
    assert_eq!(readings.reason(&c, &lenient).await, None);
    assert_eq!(readings.reason(&c, &lenient).await, None);
    assert_eq!(
        reads().await,
        1,
        "a clear reading stands for SIGNAL_MAX_AGE"
    );

    let other = probe(1e8);
    assert_eq!(readings.reason(&c, &other).await, None);
    assert_eq!(reads().await, 2, "new settings are read at once");

    tokio::time::sleep(SIGNAL_MAX_AGE + Duration::from_millis(50)).await;
    assert_eq!(readings.reason(&c, &other).await, None);
    assert_eq!(reads().await, 3, "an old reading is read again");

    let strict = probe(0.0);
    let reason = readings.reason(&c, &strict).await.expect("throttles");
    assert!(reason.contains("probe is 4"), "{reason}");
    let reason = readings.reason(&c, &strict).await.expect("still throttles");
    assert!(
        reason.contains("probe is 5"),
        "a throttling reading is always read again: {reason}"
    );
    drop(c);
    db.drop_db().await;
}
