//! Online migrations through the real `duet` binary, one test per strategy, driven over the admin
//! socket (JSON lines) and the `duet admin` CLI as an operator would.
//!
//! While each migration runs, every write class is sent in both protocols (support::scenario) and
//! compared with the same writes on a plain control table; at the end the migrated table must
//! equal the control table, the new shape must be live, and nothing of duet's may be left.

use serde_json::json;

use crate::support::backend_or_skip;
use crate::support::migration::{
    assert_clean, column_type, migrate_sql, migrate_sql_shadow_column, request, rows_as_text,
    try_column_type, wait_phase,
};
use crate::support::pg_client::connect;
use crate::support::scenario::Scenario;
use crate::support::tools::psql;

/// An old transaction (opened directly, before the migration) keeps the copy from finishing, so
/// the test can write while the migration is in its copy phase, then lets it go.
async fn hold_old_transaction(s: &Scenario) -> crate::support::pg_client::Session {
    let old = connect(&s.db.direct_config()).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");
    old
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_shadow_table_int_to_bigint_key_completes_under_writes() {
    let Some(backend) = backend_or_skip("migration_shadow_table_int_to_bigint_key") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_shadow_table", "mst", "int", "int", 5000).await;
    s.round().await;

    let old = hold_old_transaction(&s).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mst.t ALTER COLUMN id TYPE bigint").await;
    let m = wait_phase(&s.duet, id, "copying").await;
    assert_eq!(m["strategy"], "shadow_table", "{m}");
    assert_eq!(m["table"], "mst.t", "{m}");
    s.round().await;
    s.unrewritable().await;
    let paused = request(&s.duet, json!({"command": "pause_copy", "id": id})).await;
    assert!(paused.ok, "pause_copy: {}", paused.raw);
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    s.round().await;
    let resumed = request(&s.duet, json!({"command": "resume_copy", "id": id})).await;
    assert!(resumed.ok, "resume_copy: {}", resumed.raw);
    let m = wait_phase(&s.duet, id, "ready").await;
    assert!(
        m["dual_writes"].as_u64().unwrap_or(0) > 0,
        "dual_writes counted: {m}"
    );
    s.round().await;

    // A statement prepared before the flip (int parameter) is reused after it.
    let prepared = s
        .through()
        .prepare("INSERT INTO mst.t (id, label, amount) VALUES ($1, $2, $3) RETURNING id::text")
        .await
        .expect("prepare before the flip");
    let row = s
        .through()
        .query_one(&prepared, &[&900_001_i32, &"prep", &1_i32])
        .await
        .expect("prepared insert before the flip");
    assert_eq!(row.get::<_, String>(0), "900001");

    // The flip, through the CLI.
    let out = s
        .duet
        .admin_async(&[
            "cutover", "--table", "mst.t", "--budget", "5s", "--format", "json",
        ])
        .await;
    assert_eq!(out.code, Some(0), "cutover: {} {}", out.stdout, out.stderr);
    assert_eq!(out.json()["phase"], "flipped", "{}", out.stdout);
    assert_eq!(column_type(s.direct(), "mst", "t", "id").await, "bigint");
    let row = s
        .through()
        .query_one(&prepared, &[&900_002_i32, &"prep", &2_i32])
        .await
        .expect("a statement prepared before the flip works after it");
    assert_eq!(row.get::<_, String>(0), "900002");
    s.direct()
        .batch_execute("INSERT INTO mst.t_control VALUES (900001, 'prep', 1), (900002, 'prep', 2)")
        .await
        .expect("control");
    s.round().await;
    // Old shape mirrored: the old table (t__duet_old) receives the writes made after the flip.
    let mirrored: i64 = s
        .direct()
        .query_one(
            "SELECT count(*) FROM mst.t__duet_old WHERE id = 900002",
            &[],
        )
        .await
        .expect("the old table exists until complete")
        .get(0);
    assert_eq!(
        mirrored, 1,
        "writes after the flip are mirrored into the old table"
    );

    // New shape details: NOT NULL kept, the secondary index rebuilt, the sequence-free key bigint.
    let not_null: bool = s
        .direct()
        .query_one(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'mst.t'::regclass AND attname = 'label'",
            &[],
        )
        .await
        .expect("label")
        .get(0);
    assert!(not_null, "label stays NOT NULL");
    let indexes: i64 = s
        .direct()
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'mst.t'::regclass AND indisvalid",
            &[],
        )
        .await
        .expect("indexes")
        .get(0);
    assert_eq!(
        indexes, 2,
        "primary key and the label index on the new table"
    );

    let done = request(&s.duet, json!({"command": "complete", "table": "mst.t"})).await;
    assert!(done.ok, "complete: {}", done.raw);
    s.round().await;
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mst", id, "completed").await;
    assert_eq!(column_type(s.direct(), "mst", "t", "id").await, "bigint");
}

/// `psql \copy` of `rows` (`label,amount` CSV lines, the key left to its default) into `table`
/// through duet; asserts psql reports `COPY <rows>`.
async fn psql_copy(s: &Scenario, table: &str, rows: &[(&str, i32)]) {
    let target = s.psql_through();
    let data: String = rows.iter().map(|(l, a)| format!("{l},{a}\n")).collect();
    let command = format!("\\copy {table} (label, amount) from stdin with (format csv)");
    let out = tokio::task::spawn_blocking(move || {
        psql(
            &target,
            &["-v", "ON_ERROR_STOP=1", "-c", &command],
            Some(data.as_bytes()),
        )
    })
    .await
    .expect("psql runs");
    let stdout = out.stdout_text();
    assert!(
        out.code() == Some(0) && stdout.contains(&format!("COPY {}", rows.len())),
        "psql \\copy through duet: {stdout} {}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_copy_from_through_duet_lands_in_the_new_shape() {
    let Some(backend) = backend_or_skip("migration_copy_from") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_copy_from", "mcf", "int", "int", 3000).await;
    // The key defaults to a sequence: a COPY that omits it gets generated keys, which the shadow
    // (and after the flip the old table) must receive unchanged.
    s.direct()
        .batch_execute(
            "CREATE SEQUENCE mcf.t_ids START 700001;
             ALTER TABLE mcf.t ALTER COLUMN id SET DEFAULT nextval('mcf.t_ids')",
        )
        .await
        .expect("a key default");
    let old = hold_old_transaction(&s).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mcf.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "copying").await;
    psql_copy(
        &s,
        "mcf.t",
        &[("copied-a", 1), ("copied-b", 2), ("copied-c", 3)],
    )
    .await;
    s.round().await;
    s.unrewritable().await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    wait_phase(&s.duet, id, "ready").await;
    psql_copy(&s, "mcf.t", &[("copied-d", 4)]).await;
    let shadow = rows_as_text(
        s.direct(),
        "SELECT id, label, amount FROM mcf.t__duet WHERE label LIKE 'copied-%' ORDER BY id",
    )
    .await;
    let table = rows_as_text(
        s.direct(),
        "SELECT id, label, amount FROM mcf.t WHERE label LIKE 'copied-%' ORDER BY id",
    )
    .await;
    assert_eq!(
        shadow, table,
        "the shadow holds the copied rows, keys included"
    );

    let out = s
        .duet
        .admin_async(&["cutover", "--table", "mcf.t", "--budget", "5s"])
        .await;
    assert_eq!(out.code, Some(0), "cutover: {} {}", out.stdout, out.stderr);
    assert_eq!(column_type(s.direct(), "mcf", "t", "id").await, "bigint");
    // After the flip the old table is the mirror: a COPY reaches it too.
    psql_copy(&s, "mcf.t", &[("copied-e", 5)]).await;
    let mirrored = rows_as_text(
        s.direct(),
        "SELECT id, label FROM mcf.t__duet_old WHERE label = 'copied-e'",
    )
    .await;
    assert_eq!(
        mirrored,
        [["700005", "copied-e"]],
        "mirrored after the flip"
    );
    s.round().await;
    request(&s.duet, json!({"command": "complete", "table": "mcf.t"}))
        .await
        .expect_ok("complete");

    let copied = rows_as_text(
        s.direct(),
        "SELECT id, label, amount FROM mcf.t WHERE label LIKE 'copied-%' ORDER BY id",
    )
    .await;
    let expected: Vec<Vec<String>> = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, l)| {
            vec![
                (700_001 + i).to_string(),
                format!("copied-{l}"),
                (i + 1).to_string(),
            ]
        })
        .collect();
    assert_eq!(
        copied, expected,
        "the copied rows, with their generated keys"
    );
    // The control table gets the same rows (its writes never used the key default), so the rest
    // of the rounds — psycopg's COPY FROM among them — compare row for row.
    s.direct()
        .batch_execute(
            "INSERT INTO mcf.t_control SELECT id, label, amount FROM mcf.t WHERE label LIKE 'copied-%'",
        )
        .await
        .expect("control");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mcf", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_shadow_table_revert_restores_the_old_shape() {
    let Some(backend) = backend_or_skip("migration_shadow_table_revert") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_shadow_revert", "msr", "int", "int", 2000).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE msr.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "ready").await;
    s.round().await;
    request(&s.duet, json!({"command": "cutover"}))
        .await
        .expect_ok("cutover");
    s.round().await;
    request(&s.duet, json!({"command": "revert"}))
        .await
        .expect_ok("revert");
    assert_eq!(column_type(s.direct(), "msr", "t", "id").await, "integer");
    s.round().await;
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "msr", id, "reverted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_shadow_column_type_change_flips_then_reverts() {
    let Some(backend) = backend_or_skip("migration_shadow_column") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_shadow_column", "msc", "int", "int", 5000).await;
    let old = hold_old_transaction(&s).await;
    // A shadow column only when the operator asks for it (the default is a shadow table).
    let id =
        migrate_sql_shadow_column(&s.duet, "ALTER TABLE msc.t ALTER COLUMN amount TYPE bigint")
            .await;
    let m = wait_phase(&s.duet, id, "copying").await;
    assert_eq!(m["strategy"], "shadow_column", "{m}");
    s.round().await;
    s.unrewritable().await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    wait_phase(&s.duet, id, "ready").await;
    s.round().await;
    request(&s.duet, json!({"command": "cutover", "budget_ms": 5000}))
        .await
        .expect_ok("cutover");
    assert_eq!(
        column_type(s.direct(), "msc", "t", "amount").await,
        "bigint"
    );
    s.round().await;
    s.assert_same_rows().await;
    request(&s.duet, json!({"command": "revert", "id": id}))
        .await
        .expect_ok("revert");
    assert_eq!(
        column_type(s.direct(), "msc", "t", "amount").await,
        "integer"
    );
    s.round().await;
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "msc", id, "reverted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_shadow_column_numeric_to_text_using_completes() {
    let Some(backend) = backend_or_skip("migration_shadow_column_using") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_shadow_using", "msu", "int", "numeric", 3000).await;
    let id = migrate_sql_shadow_column(
        &s.duet,
        "ALTER TABLE msu.t ALTER COLUMN amount TYPE text USING amount::text",
    )
    .await;
    wait_phase(&s.duet, id, "ready").await;
    // amount is still numeric for clients until the flip; + 100 works.
    s.round().await;
    request(&s.duet, json!({"command": "cutover"}))
        .await
        .expect_ok("cutover");
    assert_eq!(column_type(s.direct(), "msu", "t", "amount").await, "text");
    // The control table follows the new shape so both take the same statements from now on.
    s.direct()
        .batch_execute("ALTER TABLE msu.t_control ALTER COLUMN amount TYPE text USING amount::text")
        .await
        .expect("control follows");
    s.assert_same_rows().await;
    request(&s.duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "msu", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_rename_column_translates_old_names_until_complete() {
    let Some(backend) = backend_or_skip("migration_rename") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_rename", "mrn", "int", "int", 1000).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mrn.t RENAME COLUMN label TO title").await;
    let m = wait_phase(&s.duet, id, "ready").await;
    assert_eq!(m["strategy"], "rename", "{m}");
    s.round().await;
    let prepared = s
        .through()
        .prepare("UPDATE mrn.t SET label = $2 WHERE id = $1")
        .await
        .expect("prepare with the old name");
    request(&s.duet, json!({"command": "cutover"}))
        .await
        .expect_ok("cutover");
    assert_eq!(try_column_type(s.direct(), "mrn", "t", "label").await, None);
    assert_eq!(column_type(s.direct(), "mrn", "t", "title").await, "text");
    // Old-shape statements (label) are translated; the control table keeps `label`.
    s.round().await;
    let n = s
        .through()
        .execute(&prepared, &[&5_i32, &"prepared-before"])
        .await
        .expect("a statement prepared with the old name works after the flip");
    assert_eq!(n, 1);
    s.direct()
        .batch_execute("UPDATE mrn.t_control SET label = 'prepared-before' WHERE id = 5")
        .await
        .expect("control");
    let m = crate::support::migration::migration(&s.duet, id).await;
    assert!(
        m["old_shape_statements"].as_u64().unwrap_or(0) > 0,
        "old-shape statements are counted: {m}"
    );
    // New-shape statements: the control's column follows under the same name.
    s.pair.control_renames = vec![("title".into(), "label".into())];
    s.v = "title".into();
    s.round().await;
    // Old names were just used: complete refuses without force (CLI exits 2), then is forced.
    let refused = s.duet.admin_async(&["complete", "--table", "mrn.t"]).await;
    assert_eq!(
        refused.code,
        Some(2),
        "complete while old names are in use: {} {}",
        refused.stdout,
        refused.stderr
    );
    let forced = s
        .duet
        .admin_async(&["complete", "--force", "--table", "mrn.t"])
        .await;
    assert_eq!(
        forced.code,
        Some(0),
        "complete --force: {} {}",
        forced.stdout,
        forced.stderr
    );
    s.round().await;
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mrn", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_in_place_index_concurrently_and_add_column() {
    let Some(backend) = backend_or_skip("migration_in_place") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_in_place", "mip", "int", "int", 3000).await;
    let plan = request(
        &s.duet,
        json!({"command": "plan", "input": {"kind": "sql", "sql": "CREATE INDEX t_amount ON mip.t (amount)"}}),
    )
    .await
    .expect_ok("plan");
    assert_eq!(plan["kind"], "in_place", "{plan}");
    let text = plan.to_string();
    assert!(
        text.contains("CONCURRENTLY"),
        "the index is built CONCURRENTLY: {plan}"
    );

    let id = migrate_sql(&s.duet, "CREATE INDEX t_amount ON mip.t (amount)").await;
    s.round().await;
    wait_phase(&s.duet, id, "completed").await;
    let valid: bool = s
        .direct()
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'mip.t_amount'::regclass",
            &[],
        )
        .await
        .expect("the index exists")
        .get(0);
    assert!(valid, "the index is valid");

    let id2 = migrate_sql(&s.duet, "ALTER TABLE mip.t ADD COLUMN note text").await;
    let m = wait_phase(&s.duet, id2, "completed").await;
    assert_eq!(m["strategy"], "in_place", "{m}");
    assert_eq!(column_type(s.direct(), "mip", "t", "note").await, "text");
    s.round().await;
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mip", id2, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_pgroll_files_alter_column_then_rename_column() {
    let Some(backend) = backend_or_skip("migration_pgroll") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_pgroll", "public", "int", "int", 2000).await;
    let dir = s.duet.dir().path().to_path_buf();
    let alter = dir.join("01_amount_bigint.yaml");
    std::fs::write(
        &alter,
        "name: 01_amount_bigint\noperations:\n  - alter_column:\n      table: t\n      column: amount\n      type: bigint\n      up: amount::bigint\n      down: amount::integer\n",
    )
    .expect("writing the pgroll file");
    let alter_path = alter.display().to_string();
    let out = s
        .duet
        .admin_async(&["plan", &alter_path, "--format", "json"])
        .await;
    assert_eq!(
        out.code,
        Some(0),
        "plan FILE: {} {}",
        out.stdout,
        out.stderr
    );
    // A shadow table by default (it keeps the column order); a shadow column when asked for.
    assert_eq!(out.json()["kind"], "shadow_table", "{}", out.stdout);
    let out = s
        .duet
        .admin_async(&["plan", &alter_path, "--shadow-column", "--format", "json"])
        .await;
    assert_eq!(
        out.code,
        Some(0),
        "plan FILE --shadow-column: {} {}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.json()["kind"], "shadow_column", "{}", out.stdout);
    let out = s
        .duet
        .admin_async(&["migrate", &alter_path, "--wait"])
        .await;
    assert_eq!(
        out.code,
        Some(0),
        "migrate FILE --wait: {} {}",
        out.stdout,
        out.stderr
    );
    let id = crate::support::migration::migrations(&s.duet)
        .await
        .iter()
        .find(|m| m["phase"] == "ready")
        .and_then(|m| m["id"].as_i64())
        .expect("the pgroll migration is ready");
    s.round().await;
    request(&s.duet, json!({"command": "cutover"}))
        .await
        .expect_ok("cutover");
    assert_eq!(
        column_type(s.direct(), "public", "t", "amount").await,
        "bigint"
    );
    s.round().await;
    request(&s.duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    assert_clean(&s.duet, s.direct(), "public", id, "completed").await;

    let rename = dir.join("02_rename.json");
    std::fs::write(
        &rename,
        r#"{"name": "02_rename", "operations": [{"rename_column": {"table": "t", "from": "label", "to": "title"}}]}"#,
    )
    .expect("writing the pgroll file");
    let text = std::fs::read_to_string(&rename).expect("reading it back");
    let reply = request(
        &s.duet,
        json!({"command": "migrate", "input": {"kind": "pgroll", "text": text, "file_name": "02_rename.json"}}),
    )
    .await;
    let id = reply.expect_ok("migrate pgroll rename")["id"]
        .as_i64()
        .expect("id");
    wait_phase(&s.duet, id, "ready").await;
    request(&s.duet, json!({"command": "cutover"}))
        .await
        .expect_ok("cutover");
    assert_eq!(
        column_type(s.direct(), "public", "t", "title").await,
        "text"
    );
    s.round().await; // old name `label`, translated
    request(&s.duet, json!({"command": "complete", "force": true}))
        .await
        .expect_ok("complete");
    s.pair.control_renames = vec![("title".into(), "label".into())];
    s.v = "title".into();
    s.round().await;
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "public", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_abort_during_copy_leaves_nothing() {
    let Some(backend) = backend_or_skip("migration_abort_during_copy") else {
        return;
    };
    let mut s = Scenario::start(backend, "mig_abort", "mab", "int", "int", 3000).await;
    let old = hold_old_transaction(&s).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE mab.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "copying").await;
    s.round().await;
    let out = s
        .duet
        .admin_async(&["abort", "--id", &id.to_string()])
        .await;
    assert_eq!(out.code, Some(0), "abort: {} {}", out.stdout, out.stderr);
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    assert_eq!(column_type(s.direct(), "mab", "t", "id").await, "integer");
    s.round().await;
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mab", id, "aborted").await;
    let again = request(&s.duet, json!({"command": "abort", "id": id})).await;
    assert!(
        !again.ok,
        "an aborted migration cannot be aborted again: {}",
        again.raw
    );
}

/// One round of writes on a composite-key table and its control table, in one transaction per
/// protocol: inserts, an upsert on an existing key, updates and deletes selected by both key
/// columns. The extended-protocol parameters are cast to int: a statement prepared after the flip
/// is typed by the new shape (bigint), as it would be without duet, and tokio-postgres refuses to
/// bind an i32 to an int8 parameter.
async fn composite_key_round(app: &tokio_postgres::Client, round: i32) {
    let mut script = String::from("BEGIN;");
    for table in ["t", "t_control"] {
        script.push_str(&format!(
            "INSERT INTO mck.{table} VALUES (1, {a}, 'new'), (2, {a}, 'new');
             INSERT INTO mck.{table} VALUES (3, 3, 'upsert {round}')
                 ON CONFLICT (tenant, id) DO UPDATE SET v = excluded.v;
             UPDATE mck.{table} SET v = v || '+' WHERE tenant = 3 AND id < 500;
             DELETE FROM mck.{table} WHERE tenant = 4 AND id BETWEEN {d} AND {d} + 200;",
            a = 10_000 + round,
            d = round * 300,
        ));
    }
    script.push_str("COMMIT;");
    app.batch_execute(&script)
        .await
        .expect("simple-protocol writes");
    for table in ["t", "t_control"] {
        let updated = app
            .execute(
                &format!("UPDATE mck.{table} SET v = $1 WHERE tenant = $2::int AND id = $3::int"),
                &[&format!("extended {round}"), &5i32, &5i32],
            )
            .await
            .expect("extended-protocol update");
        assert_eq!(updated, 1, "{table}");
        app.execute(
            &format!("DELETE FROM mck.{table} WHERE tenant = $1::int AND id = $2::int"),
            &[&6i32, &(20 + round * 7)],
        )
        .await
        .expect("extended-protocol delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_shadow_table_with_a_composite_key_completes_under_writes() {
    use crate::support::database::TestDatabase;
    use crate::support::duet_process::{through, DuetProcess};
    use crate::support::migration::rows_as_text;

    let Some(backend) = backend_or_skip("migration_composite_key") else {
        return;
    };
    let db = TestDatabase::create(&backend, "mig_composite");
    db.execute(
        "CREATE SCHEMA mck;
         CREATE TABLE mck.t (tenant int NOT NULL, id int NOT NULL, v text, PRIMARY KEY (tenant, id));
         INSERT INTO mck.t SELECT g % 7, g, 'r' || g FROM generate_series(1, 3000) g;
         CREATE TABLE mck.t_control (LIKE mck.t INCLUDING ALL);
         INSERT INTO mck.t_control SELECT * FROM mck.t;
         ANALYZE mck.t;",
    );
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let direct = connect(&db.direct_config()).await;
    let app = connect(&through(&backend, &duet, &db, "composite-key")).await;
    let old = connect(&db.direct_config()).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");

    // Widening the second key column needs a shadow table keyed on (tenant, id).
    let id = migrate_sql(&duet, "ALTER TABLE mck.t ALTER COLUMN id TYPE bigint").await;
    let m = wait_phase(&duet, id, "copying").await;
    assert_eq!(m["strategy"], "shadow_table", "{m}");
    composite_key_round(&app.client, 1).await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    wait_phase(&duet, id, "ready").await;
    composite_key_round(&app.client, 2).await;
    request(&duet, json!({"command": "cutover", "budget_ms": 5000}))
        .await
        .expect_ok("cutover");
    assert_eq!(
        column_type(&direct.client, "mck", "t", "id").await,
        "bigint"
    );
    composite_key_round(&app.client, 3).await;
    request(&duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    composite_key_round(&app.client, 4).await;

    let rows = |table: &str| format!("SELECT tenant, id, v FROM mck.{table} ORDER BY tenant, id");
    let migrated = rows_as_text(&direct.client, &rows("t")).await;
    // Four rounds: 8 inserted; 4 deleted by key; tenant 4's ids in [300r, 300r + 200] deleted.
    let tenant_4_deleted = (1..=3000)
        .filter(|g| g % 7 == 4 && (1..=4).any(|r| (300 * r..=300 * r + 200).contains(g)))
        .count();
    assert_eq!(
        migrated.len(),
        3000 + 8 - 4 - tenant_4_deleted,
        "rows after four rounds"
    );
    assert_eq!(
        migrated,
        rows_as_text(&direct.client, &rows("t_control")).await
    );
    assert_clean(&duet, &direct.client, "mck", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_statements_prepared_before_the_flip_keep_their_result_types() {
    use tokio_postgres::types::Type;

    let Some(backend) = backend_or_skip("migration_prepared_result_types") else {
        return;
    };
    let s = Scenario::start(backend, "mig_result_types", "mrt", "int", "int", 500).await;
    // tokio-postgres reads results in binary and decodes them by the types it was told at prepare.
    let app = s.through();
    let by_id = app
        .prepare("SELECT * FROM mrt.t WHERE id = $1")
        .await
        .expect("prepare by id");
    let first = app
        .prepare("SELECT id, label FROM mrt.t ORDER BY id LIMIT 3 -- the first three")
        .await
        .expect("prepare the first rows");
    assert_eq!(by_id.columns()[0].type_(), &Type::INT4);
    let reads = || async {
        let row = app
            .query_one(&by_id, &[&7i32])
            .await
            .expect("the statement prepared before the migration");
        assert_eq!(row.get::<_, i32>("id"), 7);
        assert_eq!(row.get::<_, String>("label"), "r7");
        assert_eq!(row.get::<_, Option<i32>>("amount"), Some(7));
        let ids: Vec<i32> = app
            .query(&first, &[])
            .await
            .expect("the ordered statement")
            .iter()
            .map(|r| r.get("id"))
            .collect();
        assert_eq!(ids, [1, 2, 3]);
    };

    let id = migrate_sql(&s.duet, "ALTER TABLE mrt.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "ready").await;
    reads().await;
    request(&s.duet, json!({"command": "cutover", "budget_ms": 5000}))
        .await
        .expect_ok("cutover");
    assert_eq!(column_type(s.direct(), "mrt", "t", "id").await, "bigint");
    reads().await;
    // A statement prepared now is typed by the new shape, as it would be without duet.
    let fresh = app
        .prepare("SELECT id FROM mrt.t WHERE id = 7")
        .await
        .expect("prepare after the flip");
    assert_eq!(fresh.columns()[0].type_(), &Type::INT8);
    assert_eq!(
        app.query_one(&fresh, &[])
            .await
            .expect("fresh")
            .get::<_, i64>(0),
        7
    );
    request(&s.duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    reads().await;
    assert_clean(&s.duet, s.direct(), "mrt", id, "completed").await;
}

/// duet migrates a table of the database its backend URL names; a table of the same schema and
/// name in another database on the same server is another table: its statements through duet
/// are forwarded as written in every phase, never rewritten for the migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_a_same_named_table_in_another_database_is_left_alone() {
    let Some(backend) = backend_or_skip("migration_other_database") else {
        return;
    };
    let s = Scenario::start(backend.clone(), "mig_otherdb", "modb", "int", "int", 200).await;
    let other = crate::support::TestDatabase::create(&backend, "mig_otherdb_b");
    other.execute(
        "CREATE SCHEMA modb;
         CREATE TABLE modb.t (id int PRIMARY KEY, label text NOT NULL, amount int);
         INSERT INTO modb.t SELECT g, 'b' || g, g FROM generate_series(1, 10) g;",
    );
    let id = migrate_sql(&s.duet, "ALTER TABLE modb.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "ready").await;
    let through_other = connect(&s.duet.config_as(&backend, other.name())).await;
    let write = |n: i32| {
        format!(
            "UPDATE modb.t SET amount = amount + 1 WHERE id = 1;
             INSERT INTO modb.t VALUES ({n}, 'new', 0);
             DELETE FROM modb.t WHERE id = 2 + {n} % 5"
        )
    };
    through_other
        .client
        .batch_execute(&write(100))
        .await
        .expect("writes to the other database's table while the migration dual-writes");
    request(&s.duet, json!({"command": "cutover", "id": id}))
        .await
        .expect_ok("cutover");
    through_other
        .client
        .batch_execute(&write(101))
        .await
        .expect("writes to the other database's table after the flip");
    request(
        &s.duet,
        json!({"command": "complete", "id": id, "force": true}),
    )
    .await
    .expect_ok("complete");
    let direct_other = connect(&other.direct_config()).await;
    let rows = rows_as_text(
        &direct_other.client,
        "SELECT id, amount FROM modb.t ORDER BY id",
    )
    .await;
    assert_eq!(rows.len(), 10, "{rows:?}");
    assert_eq!(rows[0], vec!["1".to_owned(), "3".to_owned()]);
    assert_eq!(
        column_type(&direct_other.client, "modb", "t", "id").await,
        "integer",
        "the other database's table keeps its type"
    );
    assert_eq!(column_type(s.direct(), "modb", "t", "id").await, "bigint");
    s.assert_same_rows().await;
}

/// A role whose own `search_path` (`ALTER ROLE … SET`, which no startup packet carries) finds a
/// same-named table of another shape first: its unqualified statements mean that table, as
/// PostgreSQL resolves them, and run as written (before, duet took them for the migrating
/// `public.t` and its rewrite failed with 42703); its qualified writes to the migrating table are
/// dual-written as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_a_roles_own_search_path_is_followed() {
    let Some(backend) = backend_or_skip("migration_role_search_path") else {
        return;
    };
    let s = Scenario::start(backend.clone(), "mig_rolepath", "public", "int", "int", 100).await;
    let role = "duet_e2e_rolepath";
    s.direct()
        .batch_execute(&format!(
            "CREATE SCHEMA other;
             CREATE TABLE other.t (id int PRIMARY KEY, note text);
             INSERT INTO other.t VALUES (1, 'a');
             DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;
             ALTER ROLE {role} SET search_path = other, public;
             GRANT USAGE ON SCHEMA other, public TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON other.t, public.t, public.t_control TO {role};"
        ))
        .await
        .expect("a role with a search_path of its own");
    let id = migrate_sql(&s.duet, "ALTER TABLE public.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "ready").await;
    // duet reads the roles' settings each second; a session takes the value when it starts.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut config = s.duet.config(role, s.db.name());
    config.application_name("role-path");
    let app = connect(&config).await;
    for round in 0..2 {
        app.client
            .batch_execute(&format!(
                "UPDATE t SET note = 'round {round}' WHERE id = 1;
                 INSERT INTO public.t (id, label, amount) VALUES ({0}, 'role', 1);
                 INSERT INTO public.t_control (id, label, amount) VALUES ({0}, 'role', 1);",
                1000 + round
            ))
            .await
            .unwrap_or_else(|e| panic!("round {round} as {role}: {e:?}"));
        if round == 0 {
            request(&s.duet, json!({"command": "cutover", "id": id}))
                .await
                .expect_ok("cutover");
        }
    }
    let note = rows_as_text(s.direct(), "SELECT note FROM other.t WHERE id = 1").await;
    assert_eq!(note, vec![vec!["round 1".to_owned()]]);
    request(
        &s.duet,
        json!({"command": "complete", "id": id, "force": true}),
    )
    .await
    .expect_ok("complete");
    s.assert_same_rows().await;
    drop(app);
    s.direct()
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .expect("dropping the role");
}
