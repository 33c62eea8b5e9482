//! The version matrix: duet against every PostgreSQL major from 13 to 18 that this machine has
//! (binaries from Debian or `tests/versions/fetch`; which ones run is `DUET_PG_VERSIONS`, see
//! support::cluster::versioned_cluster).
//!
//! Each major gets a throwaway cluster of its own and, on one populated table and its control
//! twin: a proxy smoke test (both protocols, psql and tokio-postgres, the server's own version seen
//! through duet), then one online migration per strategy — in place (an index built CONCURRENTLY,
//! an added column), shadow table (int -> bigint key, every write class sent through duet while the
//! copy waits, cut over, completed) and rename (old names translated, then forced complete) —
//! after which the migrated table must hold exactly the control table's rows. The whole suite runs
//! on the machine's main server (tests/README.md); this is the focused part every major runs.

use serde_json::json;

use std::time::Duration;

use crate::support::cluster::{server_bin_dir, versioned_cluster};
use crate::support::migration::{
    assert_clean, column_type, migrate_sql, request, try_column_type, wait_phase,
};
use crate::support::pg_client::connect;
use crate::support::scenario::Scenario;
use crate::support::tools::{command, psql, run, Target};
use crate::support::wait_for_async;

macro_rules! matrix {
    ($($name:ident => $major:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            run_matrix($major).await;
        }
    )*};
}

matrix! {
    postgresql_13_runs_proxy_and_every_strategy => 13,
    postgresql_14_runs_proxy_and_every_strategy => 14,
    postgresql_15_runs_proxy_and_every_strategy => 15,
    postgresql_16_runs_proxy_and_every_strategy => 16,
    postgresql_17_runs_proxy_and_every_strategy => 17,
    postgresql_18_runs_proxy_and_every_strategy => 18,
}

async fn run_matrix(major: u32) {
    let test = format!("versions_pg{major}");
    let Some((cluster, backend)) = versioned_cluster(&test, major) else {
        return;
    };
    let schema = "ver";
    let mut s = Scenario::start(backend, &test, schema, "int", "int", 2000).await;
    smoke(&s, major).await;
    protocol_3_2(&s, major).await;
    in_place(&mut s).await;
    shadow_table(&mut s, major).await;
    rename(&mut s).await;
    s.assert_same_rows().await;
    drop(s);
    cluster.stop();
}

/// The server through duet is the major under test, in both protocols and from psql.
async fn smoke(s: &Scenario, major: u32) {
    let rows = s
        .through()
        .simple_query("SHOW server_version_num")
        .await
        .expect("simple query through duet");
    let version = rows
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a row");
    assert_eq!(
        version.parse::<u32>().map(|num| num / 10_000),
        Ok(major),
        "server_version_num {version}"
    );
    let row = s
        .through()
        .query_one(
            "SELECT $1::int + 1, current_setting('server_version_num')",
            &[&41_i32],
        )
        .await
        .expect("extended query through duet");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(row.get::<_, String>(1), version);
    let target = s.psql_through();
    let out = tokio::task::spawn_blocking(move || {
        psql(&target, &["-tAc", "SELECT count(*) FROM ver.t"], None)
    })
    .await
    .expect("psql");
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), s.rows.to_string());
}

/// A protocol 3.2 client (libpq 18's psql, `max_protocol_version=3.2`) through duet: PostgreSQL 18
/// accepts 3.2, older servers answer NegotiateProtocolVersion and the session runs 3.0; either way
/// a query runs and a cancel request (a 32-byte key under 3.2) cancels it.
async fn protocol_3_2(s: &Scenario, major: u32) {
    let Some(psql18) = server_bin_dir(18)
        .map(|dir| dir.join("psql"))
        .filter(|p| p.is_file())
    else {
        eprintln!("SKIPPED the protocol 3.2 part on PostgreSQL {major}: no psql 18 installed");
        return;
    };
    let target = s.psql_through().with("max_protocol_version=3.2");
    let psql_at = |target: &Target, args: &[&str]| {
        let mut cmd = command(&psql18.to_string_lossy());
        cmd.arg("-X").arg("-d").arg(&target.conninfo).args(args);
        cmd
    };
    let conninfo = run(
        psql_at(&target, &["-c", "\\conninfo"]),
        None,
        Duration::from_secs(60),
    );
    conninfo.assert_success();
    let want = if major >= 18 { "3.2" } else { "3.0" };
    let text = conninfo.stdout_text();
    assert!(
        text.lines()
            .any(|line| line.contains("Protocol Version") && line.trim_end().ends_with(want)),
        "protocol {want} expected through duet on PostgreSQL {major}:\n{text}"
    );
    let mut sleeper = psql_at(
        &target,
        &["-c", "SELECT pg_sleep(60) AS version_matrix_sleep"],
    );
    sleeper
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = sleeper.spawn().expect("starting psql 18");
    wait_for_async("the sleep to run on the server", Duration::from_secs(30), || async {
        let row = s
            .direct()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%AS version_matrix_sleep'",
                &[],
            )
            .await
            .ok()?;
        (row.get::<_, i64>(0) > 0).then_some(())
    })
    .await;
    let pid = i32::try_from(child.id()).expect("pid fits i32");
    // SAFETY: kill(2) on our own child; SIGINT makes psql send a CancelRequest.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let output = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait_with_output()
    })
    .await
    .expect("waiting for psql")
    .expect("psql's output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "the cancel request reached the server through duet (protocol {want}): {stderr}"
    );
}

/// In place: CREATE INDEX becomes CONCURRENTLY, ADD COLUMN runs as it is.
async fn in_place(s: &mut Scenario) {
    let id = migrate_sql(&s.duet, "CREATE INDEX t_amount ON ver.t (amount)").await;
    s.round().await;
    let m = wait_phase(&s.duet, id, "completed").await;
    assert_eq!(m["strategy"], "in_place", "{m}");
    let valid: bool = s
        .direct()
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ver.t_amount'::regclass",
            &[],
        )
        .await
        .expect("the index exists")
        .get(0);
    assert!(valid, "the index is valid");
    let id = migrate_sql(&s.duet, "ALTER TABLE ver.t ADD COLUMN note text").await;
    let m = wait_phase(&s.duet, id, "completed").await;
    assert_eq!(m["strategy"], "in_place", "{m}");
    assert_eq!(column_type(s.direct(), "ver", "t", "note").await, "text");
    s.round().await;
    s.assert_same_rows().await;
}

/// Shadow table: int -> bigint key with writes through duet while the copy is held open by an old
/// transaction, then cutover and complete.
async fn shadow_table(s: &mut Scenario, major: u32) {
    let old = connect(&s.db.direct_config()).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");
    let id = migrate_sql(&s.duet, "ALTER TABLE ver.t ALTER COLUMN id TYPE bigint").await;
    let m = wait_phase(&s.duet, id, "copying").await;
    assert_eq!(m["strategy"], "shadow_table", "{m}");
    s.round().await;
    key_change_and_returning(s, major).await;
    if major >= 15 {
        // MERGE (15+) and the other writes duet cannot rewrite: told the same, mirrored.
        s.unrewritable().await;
    }
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    let m = wait_phase(&s.duet, id, "ready").await;
    assert!(
        m["dual_writes"].as_u64().unwrap_or(0) > 0,
        "dual writes counted: {m}"
    );
    s.round().await;
    let flipped = request(&s.duet, json!({"command": "cutover", "table": "ver.t"}))
        .await
        .expect_ok("cutover");
    assert_eq!(flipped["phase"], "flipped", "{flipped}");
    assert_eq!(column_type(s.direct(), "ver", "t", "id").await, "bigint");
    s.round().await;
    request(&s.duet, json!({"command": "complete", "table": "ver.t"}))
        .await
        .expect_ok("complete");
    s.round().await;
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "ver", id, "completed").await;
}

/// During the copy: a key-changing UPDATE (passed unrewritten, mirrored by the safety net) and, on
/// PostgreSQL 18, `RETURNING OLD/NEW` (rewritten as a dual-write) answer what the control table
/// answers, and end in the same rows.
async fn key_change_and_returning(s: &Scenario, major: u32) {
    let returning = if major >= 18 {
        " RETURNING old.id, new.id, old.label, new.label"
    } else {
        " RETURNING id, label"
    };
    for sql in [
        format!("UPDATE {{t}} SET id = id + 5000000 WHERE id = 1500{returning}"),
        format!("UPDATE {{t}} SET label = label || '+r' WHERE id = 1501{returning}"),
        format!(
            "DELETE FROM {{t}} WHERE id = 1502{}",
            returning.replace("new.", "old.")
        ),
    ] {
        let through =
            crate::support::migration::rows_as_text(s.through(), &sql.replace("{t}", "ver.t"))
                .await;
        let control = crate::support::migration::rows_as_text(
            s.direct(),
            &sql.replace("{t}", "ver.t_control"),
        )
        .await;
        assert_eq!(
            through, control,
            "{sql} through duet vs on the control table"
        );
        assert_eq!(through.len(), 1, "{sql}: one row");
    }
}

/// Rename: old names translated after the flip, then forced complete.
async fn rename(s: &mut Scenario) {
    let id = migrate_sql(&s.duet, "ALTER TABLE ver.t RENAME COLUMN label TO title").await;
    let m = wait_phase(&s.duet, id, "ready").await;
    assert_eq!(m["strategy"], "rename", "{m}");
    s.round().await;
    request(&s.duet, json!({"command": "cutover", "table": "ver.t"}))
        .await
        .expect_ok("cutover");
    assert_eq!(try_column_type(s.direct(), "ver", "t", "label").await, None);
    assert_eq!(column_type(s.direct(), "ver", "t", "title").await, "text");
    s.round().await;
    s.pair.control_renames = vec![("title".into(), "label".into())];
    s.v = "title".into();
    s.round().await;
    request(
        &s.duet,
        json!({"command": "complete", "table": "ver.t", "force": true}),
    )
    .await
    .expect_ok("complete --force");
    s.round().await;
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "ver", id, "completed").await;
}
