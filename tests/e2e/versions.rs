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

use crate::support::cluster::versioned_cluster;
use crate::support::migration::{
    assert_clean, column_type, migrate_sql, request, try_column_type, wait_phase,
};
use crate::support::pg_client::connect;
use crate::support::scenario::Scenario;
use crate::support::tools::psql;

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
        .query_one("SELECT $1::int + 1, current_setting('server_version_num')", &[&41_i32])
        .await
        .expect("extended query through duet");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(row.get::<_, String>(1), version);
    let target = s.psql_through();
    let out = tokio::task::spawn_blocking(move || {
        psql(
            &target,
            &["-tAc", "SELECT count(*) FROM ver.t"],
            None,
        )
    })
    .await
    .expect("psql");
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), s.rows.to_string());
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
