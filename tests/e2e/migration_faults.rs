//! Migrations under faults: an expand cut short and run again after a restart or on `retry`, duet
//! killed with SIGKILL during the copy and right after a cutover was requested, backend
//! connections terminated under it, writers bypassing duet (mirrored by the safety net), a long
//! transaction holding the table's lock at the flip, and writes duet cannot dual-write forwarded
//! unchanged (mirrored by the safety net).

use std::time::Duration;

use serde_json::json;

use crate::support::duet_process::through;
use crate::support::load::Load;
use crate::support::migration::{
    assert_clean, column_type, migrate_sql, migration, request, wait_phase, wait_status,
};
use crate::support::pg_client::connect;
use crate::support::scenario::Scenario;
use crate::support::{backend_or_skip, Backend};

async fn hold_old_transaction(s: &Scenario) -> crate::support::pg_client::Session {
    let old = connect(&s.db.direct_config()).await;
    old.client
        .batch_execute("SET application_name = 'old-transaction'; BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");
    old
}

/// Reconnects the scenario's client through duet (after duet restarted or its backend died).
async fn reconnect(s: &mut Scenario) {
    s.through_session = connect(&through(&s.backend, &s.duet, &s.db, "migration-test")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_survives_kill_9_during_copy() {
    let Some(backend) = backend_or_skip("migration_survives_kill_9_during_copy") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_kill_copy", "mkc", "int", "int", 5000).await;
    let old = hold_old_transaction(&s).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mkc.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "copying").await;
    s.round().await;
    s.duet.restart(); // SIGKILL, then the same command line
    reconnect(&mut s).await;
    let m = migration(&s.duet, id).await;
    assert!(!m.is_null(), "the restarted duet knows the migration");
    s.round().await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    wait_phase(&s.duet, id, "ready").await;
    s.round().await;
    request(&s.duet, json!({"command": "cutover"}))
        .await
        .expect_ok("cutover");
    assert_eq!(column_type(s.direct(), "mkc", "t", "id").await, "bigint");
    s.round().await;
    request(&s.duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mkc", id, "completed").await;
}

/// A migration whose expand was cut short part-way: a writer's open transaction holds the
/// table, so the safety net's `CREATE TRIGGER` gives up after its retries — after the shadow
/// table was made. The migration stops in `expanding` with the error in status; the writer is
/// gone when this returns.
async fn expand_cut_short(backend: Backend, label: &str, schema: &str) -> (Scenario, i64) {
    let s = Scenario::start(backend, label, schema, "int", "int", 2000).await;
    let writer = s.hold_table().await;
    let id = migrate_sql(
        &s.duet,
        &format!("ALTER TABLE {schema}.t ALTER COLUMN id TYPE bigint"),
    )
    .await;
    let failed = wait_status(&s.duet, id, "the expand to give up on the lock", |m| {
        m["error"].as_str().is_some_and(|e| !e.is_empty())
    })
    .await;
    assert_eq!(failed["phase"], "expanding", "{failed}");
    let shadow_made: bool = s
        .direct()
        .query_one(
            &format!("SELECT to_regclass('{schema}.t__duet') IS NOT NULL"),
            &[],
        )
        .await
        .expect("shadow lookup")
        .get(0);
    assert!(
        shadow_made,
        "the expand stopped after making the shadow table: {failed}"
    );
    writer
        .client
        .batch_execute("ROLLBACK")
        .await
        .expect("ROLLBACK");
    (s, id)
}

/// The rest of a migration that went on from `ready`: writes, cutover, complete, compared with
/// the control table, nothing of duet's left.
async fn cut_over_and_complete(s: &mut Scenario, id: i64, schema: &str) {
    s.round().await;
    request(&s.duet, json!({"command": "cutover"}))
        .await
        .expect_ok("cutover");
    assert_eq!(column_type(s.direct(), schema, "t", "id").await, "bigint");
    s.round().await;
    request(&s.duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), schema, id, "completed").await;
}

/// An expand cut short runs again when duet restarts: it keeps the shadow it made, and the
/// migration goes on to the cutover and completes with every write in place. The error stays
/// in status while the step is tried again, and goes once it has been done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_expand_cut_short_runs_again_after_restart() {
    let Some(backend) = backend_or_skip("migration_expand_cut_short_runs_again_after_restart")
    else {
        return;
    };
    let (mut s, id) = expand_cut_short(backend, "mig_expand_again", "mea").await;
    s.duet.restart();
    reconnect(&mut s).await;
    let ready = wait_status(&s.duet, id, "ready", |m| m["phase"] == "ready").await;
    assert!(ready["error"].is_null(), "the old error is gone: {ready}");
    cut_over_and_complete(&mut s, id, "mea").await;
}

/// `duet admin retry` runs the stopped expand again without a restart (no client dropped): the
/// error is cleared at once and the migration goes on. A retry with nothing failed, or while
/// the migration is past its background work, is refused saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_expand_cut_short_runs_again_on_retry() {
    let Some(backend) = backend_or_skip("migration_expand_cut_short_runs_again_on_retry") else {
        return;
    };
    let (mut s, id) = expand_cut_short(backend, "mig_expand_retry", "mer").await;
    s.round().await; // the clients' session through duet was never dropped
    let retried = request(&s.duet, json!({"command": "retry"}))
        .await
        .expect_ok("retry");
    assert_eq!(retried["phase"], "expanding", "{retried}");
    wait_phase(&s.duet, id, "ready").await;
    let again = request(&s.duet, json!({"command": "retry"})).await;
    assert!(
        !again.ok && again.error.contains("no failed step to run again"),
        "a retry with nothing failed is refused: {}",
        again.raw
    );
    cut_over_and_complete(&mut s, id, "mer").await;
}

/// After a restart the stopped step runs again by itself, with the old error still shown until
/// it is done: a `retry` meanwhile is refused (the step is being tried), and the migration goes
/// on once what blocked it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_retry_while_the_step_runs_again_is_refused() {
    let Some(backend) = backend_or_skip("migration_retry_while_the_step_runs_again_is_refused")
    else {
        return;
    };
    let (mut s, id) = expand_cut_short(backend, "mig_retry_running", "mrr").await;
    // The table is held again, so the expand resumed by the restart waits on it.
    let writer = s.hold_table().await;
    s.duet.restart();
    reconnect(&mut s).await;
    let m = migration(&s.duet, id).await;
    assert_eq!(m["phase"], "expanding", "{m}");
    assert!(
        m["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the last attempt's error is shown while the step runs again: {m}"
    );
    let refused = request(&s.duet, json!({"command": "retry"})).await;
    assert!(
        !refused.ok && refused.error.contains("is still at its step"),
        "a retry while the step runs again is refused: {}",
        refused.raw
    );
    writer
        .client
        .batch_execute("ROLLBACK")
        .await
        .expect("ROLLBACK");
    let ready = wait_status(&s.duet, id, "ready", |m| m["phase"] == "ready").await;
    assert!(ready["error"].is_null(), "the old error is gone: {ready}");
    cut_over_and_complete(&mut s, id, "mrr").await;
}

/// An automatic cutover that a view made outside duet refuses leaves the migration `ready` with
/// the refusal in status. `retry` runs background work (expand, copy, verification) again, not an
/// operator's command: it is refused, saying which command to run, and nothing changes; the
/// automatic cutover goes through once the view is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_retry_of_a_refused_automatic_cutover_names_the_command_instead() {
    let Some(backend) = backend_or_skip("migration_retry_of_a_refused_automatic_cutover") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_retry_flip", "mrf", "int", "int", 500).await;
    // A writer holds the table so the migration cannot get past its expand before the view
    // below exists (made after the plan, so it is not one the flip carries over).
    let writer = s.hold_table().await;
    let started = request(
        &s.duet,
        json!({"command": "migrate", "auto_cutover": true,
               "input": {"kind": "sql", "sql": "ALTER TABLE mrf.t ALTER COLUMN id TYPE bigint"}}),
    )
    .await
    .expect_ok("migrate --auto-cutover");
    let id = started["id"].as_i64().expect("an id");
    s.direct()
        .batch_execute("BEGIN; SET LOCAL statement_timeout = '5s'; CREATE VIEW mrf.v AS SELECT id FROM mrf.t; COMMIT")
        .await
        .expect("a view made straight on the server");
    writer
        .client
        .batch_execute("ROLLBACK")
        .await
        .expect("ROLLBACK");
    let refused = wait_status(&s.duet, id, "the automatic cutover to refuse", |m| {
        m["error"]
            .as_str()
            .is_some_and(|e| e.contains("automatic cutover refused"))
    })
    .await;
    assert_eq!(refused["phase"], "ready", "{refused}");
    let retry = request(&s.duet, json!({"command": "retry", "id": id})).await;
    assert!(
        !retry.ok
            && retry.error.contains("is ready")
            && retry.error.contains("run the command that failed again"),
        "retry names the command to run instead: {}",
        retry.raw
    );
    let m = migration(&s.duet, id).await;
    assert_eq!(m["phase"], "ready", "{m}");
    assert_eq!(
        m["error"], refused["error"],
        "the refused retry changed nothing: {m}"
    );
    assert_eq!(column_type(s.direct(), "mrf", "t", "id").await, "integer");
    s.round().await;
    // Once the view is gone the automatic cutover, tried again while the driver follows the
    // migration, goes through by itself.
    s.direct()
        .batch_execute("DROP VIEW mrf.v")
        .await
        .expect("drop the view");
    let flipped = wait_status(&s.duet, id, "the automatic cutover", |m| {
        m["phase"] == "flipped"
    })
    .await;
    assert!(flipped["error"].is_null(), "the refusal is gone: {flipped}");
    assert_eq!(column_type(s.direct(), "mrf", "t", "id").await, "bigint");
    s.round().await;
    request(&s.duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mrf", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_kill_9_right_after_cutover_request_is_consistent_after_restart() {
    let Some(backend) = backend_or_skip("migration_kill_9_after_cutover") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_kill_flip", "mkf", "int", "int", 3000).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mkf.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "ready").await;
    s.round().await;
    let socket = s.duet.socket().to_path_buf();
    let cutover = tokio::spawn(async move {
        crate::support::migration::request_at(&socket, &json!({"command": "cutover"})).await
    });
    // The request is on its way (or being carried out) when duet dies.
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.duet.restart();
    cutover.abort();
    reconnect(&mut s).await;
    let m = migration(&s.duet, id).await;
    let phase = m["phase"].as_str().unwrap_or_default().to_string();
    let id_type = column_type(s.direct(), "mkf", "t", "id").await;
    match phase.as_str() {
        "ready" => assert_eq!(id_type, "integer", "ready means the old shape: {m}"),
        "flipped" => assert_eq!(id_type, "bigint", "flipped means the new shape: {m}"),
        other => {
            panic!("after the restart the migration is {other:?}, neither ready nor flipped: {m}")
        }
    }
    s.round().await; // routes restored: clients work and stay in step with the control table
    if phase == "ready" {
        request(&s.duet, json!({"command": "cutover"}))
            .await
            .expect_ok("cutover after restart");
        s.round().await;
    }
    request(&s.duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mkf", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_backend_connections_terminated_during_copy() {
    let Some(backend) = backend_or_skip("migration_backend_connections_terminated") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_terminate", "mtm", "int", "int", 5000).await;
    let old = hold_old_transaction(&s).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mtm.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "copying").await;
    s.round().await;
    // Every backend of this database but the test's own direct sessions: duet's client sessions
    // and the controller's connections.
    let killed: i64 = s
        .direct()
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND application_name NOT IN ('old-transaction')) k",
            &[],
        )
        .await
        .expect("terminating duet's backends")
        .get(0);
    assert!(killed >= 1, "duet had backend connections");
    let lost = s.through().simple_query("SELECT 1").await;
    assert!(lost.is_err(), "the client's backend was terminated");
    reconnect(&mut s).await;
    s.through()
        .simple_query("SELECT 1")
        .await
        .expect("a new session works");
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    // The controller either carries on to ready or reports a clear error in status.
    let m = wait_status(&s.duet, id, "ready or an error", |m| {
        m["phase"] == "ready" || m["error"].as_str().is_some_and(|e| !e.is_empty())
    })
    .await;
    if m["phase"] != "ready" {
        let error = m["error"].as_str().unwrap_or_default();
        assert!(error.len() > 10, "a clear error: {m}");
        eprintln!("the controller reported after the terminations: {error}");
        request(&s.duet, json!({"command": "abort"}))
            .await
            .expect_ok("abort after the error");
        s.round().await;
        s.assert_same_rows().await;
        assert_clean(&s.duet, s.direct(), "mtm", id, "aborted").await;
        return;
    }
    s.round().await;
    request(&s.duet, json!({"command": "cutover"}))
        .await
        .expect_ok("cutover");
    request(&s.duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    s.round().await;
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mtm", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_bypassing_writers_are_mirrored_by_the_net_through_flip_and_revert() {
    let Some(backend) = backend_or_skip("migration_bypassing_writers_are_mirrored") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_bypass", "mbp", "int", "int", 2000).await;
    // Keeps the migration in its copy phase (waiting for older transactions) for the first round.
    let old = hold_old_transaction(&s).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mbp.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "copying").await;
    // Short transactions straight to PostgreSQL, far shorter than the sampler's period: the net
    // mirrors each in its own transaction (before, 20 of 20 were lost at the cutover).
    let direct_round = |k: i64| {
        let sql = |t: &str| {
            format!(
                "INSERT INTO mbp.{t} VALUES ({0}, 'direct', 1);
                 UPDATE mbp.{t} SET amount = amount + 1 WHERE id = {1};
                 DELETE FROM mbp.{t} WHERE id = {2};
                 UPDATE mbp.{t} SET id = {3} WHERE id = {4}",
                800_000 + k,
                k % 1900 + 1,
                1950 - k % 40,
                900_000 + k,
                1900 - k % 40,
            )
        };
        (sql("t"), sql("t_control"))
    };
    for k in 0..20 {
        let (t, control) = direct_round(k);
        s.direct().batch_execute(&t).await.expect("a direct write");
        s.direct().batch_execute(&control).await.expect("control");
    }
    // A writer inside a transaction is reported (an early warning, not a gate).
    let bypass = connect(&s.db.direct_config()).await;
    bypass
        .client
        .batch_execute(
            "SET application_name = 'bypass-job'; BEGIN;
             INSERT INTO mbp.t VALUES (777777, 'direct', 7)",
        )
        .await
        .expect("a direct writer");
    let m = wait_status(&s.duet, id, "a bypassing writer listed", |m| {
        m["bypassing_writers"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["application_name"] == "bypass-job"))
    })
    .await;
    let writer = &m["bypassing_writers"][0];
    for field in [
        "pid",
        "user",
        "application_name",
        "client_addr",
        "seen_s_ago",
    ] {
        assert!(
            writer.get(field).is_some(),
            "bypassing writer lacks {field}: {m}"
        );
    }
    bypass.client.batch_execute("COMMIT").await.expect("COMMIT");
    s.direct()
        .batch_execute("INSERT INTO mbp.t_control VALUES (777777, 'direct', 7)")
        .await
        .expect("control");
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    wait_phase(&s.duet, id, "ready").await;
    // After the verification: nothing verifies again before the flip; the net alone keeps these.
    for k in 20..40 {
        let (t, control) = direct_round(k);
        s.direct().batch_execute(&t).await.expect("a direct write");
        s.direct().batch_execute(&control).await.expect("control");
    }
    request(&s.duet, json!({"command": "cutover", "budget_ms": 5000}))
        .await
        .expect_ok("cutover");
    assert_eq!(column_type(s.direct(), "mbp", "t", "id").await, "bigint");
    s.assert_same_rows().await;
    // After the flip, direct writes reach the new table and are mirrored back: a revert keeps
    // them without --force.
    for k in 40..60 {
        let (t, control) = direct_round(k);
        s.direct().batch_execute(&t).await.expect("a direct write");
        s.direct().batch_execute(&control).await.expect("control");
    }
    s.round().await;
    request(&s.duet, json!({"command": "revert"}))
        .await
        .expect_ok("revert");
    assert_eq!(column_type(s.direct(), "mbp", "t", "id").await, "integer");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mbp", id, "reverted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_lock_held_at_the_flip_refuses_cutover_without_failing_clients() {
    let Some(backend) = backend_or_skip("migration_lock_held_at_the_flip") else {
        return;
    };
    let s = Scenario::start(backend.clone(), "mig_lock", "mlk", "int", "int", 2000).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mlk.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "ready").await;
    let load = Load::start(
        through(&backend, &s.duet, &s.db, "load"),
        "mlk.t",
        "mlk.t_control",
        4,
        2000,
        10_000_000,
    );
    let blocker = connect(&s.db.direct_config()).await;
    blocker
        .client
        .batch_execute("SET application_name = 'reporting'; BEGIN; SELECT count(*) FROM mlk.t")
        .await
        .expect("a long reader");
    let refused = request(&s.duet, json!({"command": "cutover", "budget_ms": 5000})).await;
    assert!(
        !refused.ok,
        "the flip cannot take its lock: {}",
        refused.raw
    );
    assert_eq!(
        refused.raw["retryable"], true,
        "a lock someone holds: the same command may pass later: {}",
        refused.raw
    );
    // `duet admin` says so with its exit code (75, EX_TEMPFAIL), so a script can retry.
    let cli = s.duet.admin(&["cutover", "--budget", "2s"]);
    assert_eq!(cli.code, Some(75), "{}\n{}", cli.stdout, cli.stderr);
    assert!(
        cli.stderr.contains("run the command again"),
        "{}",
        cli.stderr
    );
    let m = migration(&s.duet, id).await;
    assert_eq!(m["phase"], "ready", "{m}");
    assert_eq!(column_type(s.direct(), "mlk", "t", "id").await, "integer");
    blocker
        .client
        .batch_execute("COMMIT")
        .await
        .expect("COMMIT");
    request(&s.duet, json!({"command": "cutover", "budget_ms": 5000}))
        .await
        .expect_ok("cutover once the lock is free");
    request(&s.duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    let stats = load.stop().await;
    assert!(
        stats.failures.is_empty(),
        "failed client statements: {:?}",
        stats.failures.iter().take(5).collect::<Vec<_>>()
    );
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mlk", id, "completed").await;
}

/// `MERGE INTO {table}` (which duet cannot dual-write on PostgreSQL 15) of one row: `label` set
/// when the id exists, the row inserted when it does not.
fn merge_sql(table: &str, id: &str, label: &str) -> String {
    format!(
        "MERGE INTO {table} AS t USING (SELECT {id}::int AS id, {label}::text AS label) AS v ON t.id = v.id
         WHEN MATCHED THEN UPDATE SET label = v.label
         WHEN NOT MATCHED THEN INSERT (id, label, amount) VALUES (v.id, v.label, 0)"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_unrewritable_writes_pass_and_survive_flip_and_revert() {
    let Some(backend) = backend_or_skip("migration_unrewritable_writes_pass") else {
        return;
    };
    let s = Scenario::start(backend, "mig_pass", "mps", "int", "int", 3000).await;
    let old = hold_old_transaction(&s).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mps.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "copying").await;

    // MERGE is forwarded (not refused), counted, and mirrored by the net.
    for table in ["mps.t", "mps.t_control"] {
        s.through()
            .batch_execute(&merge_sql(table, "1", "'merged'"))
            .await
            .unwrap_or_else(|err| panic!("MERGE into {table} through duet: {err}"));
    }
    // A MERGE prepared now and executed after the verification (below).
    let prepared = s
        .through()
        .prepare(&merge_sql("mps.t", "$1", "$2"))
        .await
        .expect("preparing a MERGE through duet");
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    let m = wait_phase(&s.duet, id, "ready").await;
    assert_eq!(m["refusals"], 0, "{m}");
    let before = m["unrewritten_writes"].as_u64().expect("a count");
    assert!(before >= 1, "the simple-protocol MERGE was counted: {m}");

    // After the verification: a new row and a changed row, mirrored in their own transactions.
    for (key, label) in [(900_001, "late insert"), (2, "late update")] {
        s.through()
            .execute(&prepared, &[&key, &label])
            .await
            .expect("executing the prepared MERGE");
        s.direct()
            .batch_execute(&merge_sql(
                "mps.t_control",
                &key.to_string(),
                &format!("'{label}'"),
            ))
            .await
            .expect("the same MERGE on the control table");
    }
    let m = migration(&s.duet, id).await;
    assert_eq!(
        m["unrewritten_writes"].as_u64(),
        Some(before + 2),
        "each execution's transaction is counted: {m}"
    );
    request(&s.duet, json!({"command": "cutover", "budget_ms": 5000}))
        .await
        .expect_ok("cutover");
    assert_eq!(column_type(s.direct(), "mps", "t", "id").await, "bigint");
    s.assert_same_rows().await;

    // After the flip, a passed write is mirrored back into the old shape: revert keeps it.
    for table in ["mps.t", "mps.t_control"] {
        s.through()
            .batch_execute(&merge_sql(table, "3", "'after the flip'"))
            .await
            .unwrap_or_else(|err| panic!("MERGE into {table} after the flip: {err}"));
    }
    request(&s.duet, json!({"command": "revert"}))
        .await
        .expect_ok("revert");
    assert_eq!(column_type(s.direct(), "mps", "t", "id").await, "integer");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mps", id, "reverted").await;
}

/// A view made straight on PostgreSQL during the migration is bound to the table itself: the
/// swap would leave it reading the old table. The cutover refuses, naming it, changes nothing, and
/// goes through once it is dropped; a view made on the new table after the flip blocks a revert
/// the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_objects_made_outside_duet_on_the_table_block_the_swap() {
    let Some(backend) = backend_or_skip("migration_objects_made_outside_duet") else {
        return;
    };
    let s = Scenario::start(backend, "mig_dependents", "mdep", "int", "int", 500).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mdep.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "ready").await;
    s.direct()
        .batch_execute("CREATE VIEW mdep.v AS SELECT id, label FROM mdep.t")
        .await
        .expect("a view made straight on the server");
    let refused = request(&s.duet, json!({"command": "cutover", "id": id})).await;
    assert!(
        refused.raw.get("retryable").is_none(),
        "objects made outside duet: running it again changes nothing until they are dropped: {}",
        refused.raw
    );
    assert!(
        !refused.ok,
        "the cutover must refuse while mdep.v depends on the table"
    );
    assert!(
        refused.error.contains("view mdep.v") && refused.error.contains("drop them"),
        "{}",
        refused.error
    );
    assert_eq!(migration(&s.duet, id).await["phase"], "ready");
    assert_eq!(column_type(s.direct(), "mdep", "t", "id").await, "integer");
    s.direct()
        .batch_execute("DROP VIEW mdep.v")
        .await
        .expect("drop the view");
    request(&s.duet, json!({"command": "cutover", "id": id}))
        .await
        .expect_ok("cutover once the view is gone");
    s.direct()
        .batch_execute("CREATE VIEW mdep.w AS SELECT id FROM mdep.t")
        .await
        .expect("a view on the new table");
    let refused = request(&s.duet, json!({"command": "revert", "id": id})).await;
    assert!(
        !refused.ok,
        "the revert must refuse while mdep.w depends on the table"
    );
    assert!(refused.error.contains("view mdep.w"), "{}", refused.error);
    assert_eq!(migration(&s.duet, id).await["phase"], "flipped");
    // complete keeps the new table, which the view reads: allowed.
    request(
        &s.duet,
        json!({"command": "complete", "id": id, "force": true}),
    )
    .await
    .expect_ok("complete");
    assert_eq!(column_type(s.direct(), "mdep", "t", "id").await, "bigint");
    let rows: i64 = s
        .direct()
        .query_one("SELECT count(*) FROM mdep.w", &[])
        .await
        .expect("the view reads the migrated table")
        .get(0);
    assert_eq!(rows, 500);
    s.assert_same_rows().await;
}
