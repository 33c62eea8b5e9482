//! The state store and guarded DDL against the real PostgreSQL.

mod migrate_support;

use std::time::Duration;

use duet_shadow::migrate::guard::{GuardConfig, GuardedConnection, PhaseStep};
use duet_shadow::migrate::{state, MigrateError, Phase};
use migrate_support::TestDb;

/// A guarded step's frame: the state schema, table `table` with a key, a planned migration of
/// it, a guarded connection with `config`, and the step from planned to expanding it records.
async fn guarded_setup(
    db: &TestDb,
    table: &str,
    config: GuardConfig,
) -> (tokio_postgres::Client, i64, GuardedConnection, PhaseStep) {
    let mut c = db.connect().await;
    state::ensure_schema(&mut c).await.expect("schema");
    c.batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY)"))
        .await
        .expect("table");
    let id = state::create_migration(&c, table, "in_place", &serde_json::json!({}))
        .await
        .expect("create");
    let guard = GuardedConnection::connect(&db.url(), config)
        .await
        .expect("guard");
    let step = PhaseStep {
        migration_id: id,
        from: Phase::Planned,
        to: Phase::Expanding,
    };
    (c, id, guard, step)
}

#[tokio::test]
async fn phase_transitions_are_validated_and_one_migration_per_table() {
    let Some(db) = TestDb::create("state").await else {
        return;
    };
    let mut c = db.connect().await;
    state::ensure_schema(&mut c).await.expect("schema");
    state::ensure_schema(&mut c)
        .await
        .expect("schema is idempotent");
    let plan = serde_json::json!({"note": "test"});
    let id = state::create_migration(&c, "\"public\".\"t\"", "shadow_table", &plan)
        .await
        .expect("create");
    assert_eq!(
        state::get_migration(&c, id).await.expect("get").phase,
        Phase::Planned
    );

    // Illegal jump: refused, nothing changed.
    let err = state::transition(&c, id, Phase::Planned, Phase::Flipped, None, &plan)
        .await
        .expect_err("planned -> flipped must be refused");
    assert!(
        matches!(err, MigrateError::IllegalTransition { .. }),
        "{err}"
    );
    assert_eq!(
        state::get_migration(&c, id).await.expect("get").phase,
        Phase::Planned
    );

    // Wrong expected phase: conflict, nothing changed.
    let err = state::transition(&c, id, Phase::Copying, Phase::Verifying, None, &plan)
        .await
        .expect_err("stale from-phase");
    assert!(
        matches!(
            err,
            MigrateError::PhaseConflict {
                actual: Phase::Planned,
                ..
            }
        ),
        "{err}"
    );

    // A transition in a rolled-back transaction leaves no trace (same-transaction recording).
    {
        let tx = c.transaction().await.expect("tx");
        state::transition(&tx, id, Phase::Planned, Phase::Expanding, None, &plan)
            .await
            .expect("legal");
        tx.rollback().await.expect("rollback");
    }
    assert_eq!(
        state::get_migration(&c, id).await.expect("get").phase,
        Phase::Planned
    );
    state::transition(&c, id, Phase::Planned, Phase::Expanding, None, &plan)
        .await
        .expect("planned -> expanding");

    // The database refuses a second active migration of the same table ...
    let err = state::create_migration(&c, "\"public\".\"t\"", "shadow_table", &plan)
        .await
        .expect_err("second active migration");
    assert!(matches!(err, MigrateError::AlreadyActive { .. }), "{err}");
    // ... even when written with plain SQL behind duet's back.
    let raw = c
        .execute(
            "INSERT INTO duet.migrations (table_name, strategy, phase, plan)
             VALUES ('\"public\".\"t\"', 'x', 'copying', '{}')",
            &[],
        )
        .await
        .expect_err("unique index");
    assert_eq!(
        raw.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    // Another table is fine; after abort the table is free again.
    state::create_migration(&c, "\"public\".\"u\"", "shadow_table", &plan)
        .await
        .expect("other table");
    state::transition(&c, id, Phase::Expanding, Phase::Aborting, None, &plan)
        .await
        .expect("abort");
    state::transition(&c, id, Phase::Aborting, Phase::Aborted, None, &plan)
        .await
        .expect("aborted");
    state::create_migration(&c, "\"public\".\"t\"", "shadow_table", &plan)
        .await
        .expect("new migration after abort");
    let active = state::active_migration(&c, "\"public\".\"t\"")
        .await
        .expect("active")
        .expect("one active");
    assert_ne!(active.id, id);
    let kinds: Vec<String> = state::events(&c, id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "phase", "phase", "phase"]);
    drop(c);
    db.drop_db().await;
}

#[tokio::test]
async fn guarded_ddl_retries_lock_timeouts_and_records_the_step() {
    let Some(db) = TestDb::create("guard").await else {
        return;
    };
    let config = GuardConfig {
        lock_timeout: Duration::from_millis(50),
        max_attempts: 3,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ..GuardConfig::default()
    };
    let (c, id, mut guard, step) = guarded_setup(&db, "g", config).await;

    // The app holds a conflicting lock for the whole time: bounded retries, then a clear error,
    // and the phase is not advanced.
    let mut app = db.connect().await;
    let app_tx = app.transaction().await.expect("app tx");
    app_tx
        .batch_execute("LOCK TABLE g IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let err = guard
        .run_step(
            "adding a column",
            "ALTER TABLE g ADD COLUMN x int",
            Some(&step),
        )
        .await
        .expect_err("lock held throughout");
    match &err {
        MigrateError::RetriesExhausted { attempts, .. } => assert_eq!(*attempts, 3),
        other => panic!("expected RetriesExhausted, got {other}"),
    }
    assert_eq!(err.sqlstate(), Some("55P03"));
    assert_eq!(
        state::get_migration(&c, id).await.expect("get").phase,
        Phase::Planned
    );
    app_tx.rollback().await.expect("release");

    // A non-retryable error fails at once.
    let err = guard
        .run_step("bad ddl", "ALTER TABLE g ADD COLUMN", None)
        .await
        .expect_err("syntax error");
    assert!(matches!(err, MigrateError::Db { .. }), "{err}");
    assert_eq!(err.sqlstate(), Some("42601"));

    // Free lock: succeeds, and the DDL and the phase change commit together.
    let attempts = guard
        .run_step(
            "adding a column",
            "ALTER TABLE g ADD COLUMN x int",
            Some(&step),
        )
        .await
        .expect("step");
    assert_eq!(attempts, 1);
    assert_eq!(
        state::get_migration(&c, id).await.expect("get").phase,
        Phase::Expanding
    );
    c.execute("SELECT x FROM g", &[])
        .await
        .expect("column exists");
    drop((c, app, guard));
    db.drop_db().await;
}

/// Recording the step waits on the migration's row, which other members update too (their
/// settings, their errors): a lock on it held past the lock timeout is retried with the step, not
/// a failure that stops the migration (found in CI: a fleet member's expand stopped on
/// "moving migration 1 to expanding: lock timeout").
#[tokio::test]
async fn guarded_step_retries_when_its_migration_row_is_briefly_locked() {
    let Some(db) = TestDb::create("guard_row").await else {
        return;
    };
    let config = GuardConfig {
        lock_timeout: Duration::from_millis(50),
        max_attempts: 20,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        ..GuardConfig::default()
    };
    let (c, id, mut guard, step) = guarded_setup(&db, "r", config).await;
    // Another member's settings update, in a transaction that takes a while to commit.
    let other = db.connect().await;
    other
        .batch_execute(&format!(
            "BEGIN; UPDATE duet.migrations SET settings = '{{}}'::jsonb WHERE id = {id}"
        ))
        .await
        .expect("the row locked");
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        other.batch_execute("COMMIT").await.expect("commit");
        other
    });
    let attempts = guard
        .run_step(
            "adding a column",
            "ALTER TABLE r ADD COLUMN x int",
            Some(&step),
        )
        .await
        .expect("the step goes through once the row is free");
    assert!(attempts > 1, "the first attempts met the lock: {attempts}");
    assert_eq!(
        state::get_migration(&c, id).await.expect("get").phase,
        Phase::Expanding
    );
    c.execute("SELECT x FROM r", &[])
        .await
        .expect("the step's DDL committed with the phase, once");
    let other = release.await.expect("release");
    drop((c, other, guard));
    db.drop_db().await;
}

/// A guarded connection never waits for a lock as long as the server's `deadlock_timeout`: a
/// writer in a lock cycle with duet's DDL would otherwise run the deadlock check first and be the
/// one aborted.
#[tokio::test]
async fn guarded_lock_timeout_stays_under_half_the_deadlock_timeout() {
    let Some(db) = TestDb::create("guard_deadlock").await else {
        return;
    };
    let deadlock: String = db
        .connect()
        .await
        .query_one("SHOW deadlock_timeout", &[])
        .await
        .expect("deadlock_timeout")
        .get(0);
    assert_eq!(
        deadlock, "1s",
        "the server's default, which this test assumes"
    );
    for (configured, effective) in [(5_000, "500ms"), (1_000, "500ms"), (200, "200ms")] {
        let guard = GuardedConnection::connect(
            &db.url(),
            GuardConfig {
                lock_timeout: Duration::from_millis(configured),
                ..GuardConfig::default()
            },
        )
        .await
        .expect("guard");
        let shown: String = guard
            .client()
            .query_one("SHOW lock_timeout", &[])
            .await
            .expect("lock_timeout")
            .get(0);
        assert_eq!(shown, effective, "configured {configured} ms");
    }
    db.drop_db().await;
}
