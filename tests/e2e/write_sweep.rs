//! Write shapes nobody lists, through duet in every phase of a migration (copy, ready, after the
//! flip, after complete or revert), each run by psql through duet on the migrated table and
//! straight to PostgreSQL on its unmigrated twin: psql must print exactly the same, and the two
//! tables must hold the same rows after every phase. Three migrations, each finished both ways:
//! an int → bigint key change (a shadow table), a type change through a visible shadow column,
//! and a column rename whose old name the clients keep writing (translated by duet).
//!
//! The shapes: writable CTEs under a SELECT, `WHERE CURRENT OF` a cursor, savepoints rolled back
//! and released, a row-expression `SET (a, b) = (SELECT …)`, `UPDATE ONLY`, key shifts, upserts,
//! a self-referencing `INSERT … SELECT`, `UPDATE … FROM` and `DELETE … USING`, a procedure that
//! commits and rolls back inside (`CALL`), SERIALIZABLE and rolled-back transactions, several
//! writes of one row in one query string, `MERGE` with its three actions, `DO`, SQL
//! `PREPARE`/`EXECUTE`, `RETURNING *`, a multi-row insert with `ON CONFLICT DO NOTHING`, an
//! `IN (SELECT …)` filter, a positional insert with `DEFAULT`, writes through an auto-updatable
//! view, `= ANY(ARRAY[…])`, a delete and an insert of the table in one statement, an update
//! feeding an insert into another table, a partial-index `ON CONFLICT`, `SET … = DEFAULT`, a
//! self-join update, a delete by a subquery on the table, a conditional upsert (`DO UPDATE …
//! WHERE`), a row-constructor `SET`, `EXPLAIN ANALYZE` of an update (which runs it), a SQL-language
//! function that writes, `generate_series` and `WITH RECURSIVE` inserts, an update of no row, a
//! query string of three statements whose middle one fails (one implicit transaction: nothing
//! stays), a savepoint rolled back after an error, a duplicate key, a transaction that fails and
//! commits (rolled back), a bulk update and a CSV `COPY`.

use serde_json::json;

use crate::support::backend_or_skip;
use crate::support::migration::{
    assert_clean, column_type, migrate_sql, migrate_sql_shadow_column, request, try_column_type,
    wait_phase,
};
use crate::support::pg_client::connect;
use crate::support::scenario::Scenario;
use crate::support::writes;

/// One round of the shapes, rows `base + 1 ..= base + 300` touched (they exist: the table starts
/// with ids 1..=3000), new rows at ids of their own per round. `{T}` is the table.
fn shapes(schema: &str, base: i64) -> String {
    let b = base;
    format!(
        "WITH x AS (UPDATE {{T}} SET label = label || 'cte' WHERE id = {b} + 1 RETURNING *) SELECT count(*) FROM x;
WITH x AS (INSERT INTO {{T}} (id, label, amount) VALUES (5000000 + {b}, 'cteins', 1) RETURNING id) SELECT count(*) FROM x;
BEGIN; DECLARE c CURSOR FOR SELECT * FROM {{T}} WHERE id BETWEEN {b} + 2 AND {b} + 4 ORDER BY id FOR UPDATE; FETCH 1 FROM c; UPDATE {{T}} SET label = 'cursor' WHERE CURRENT OF c; FETCH 1 FROM c; DELETE FROM {{T}} WHERE CURRENT OF c; CLOSE c; COMMIT;
BEGIN; UPDATE {{T}} SET amount = amount + 1 WHERE id = {b} + 5; SAVEPOINT s1; UPDATE {{T}} SET amount = amount + 100 WHERE id = {b} + 5; DELETE FROM {{T}} WHERE id = {b} + 6; ROLLBACK TO SAVEPOINT s1; UPDATE {{T}} SET label = 'after savepoint' WHERE id = {b} + 6; RELEASE s1; COMMIT;
UPDATE {{T}} SET (label, amount) = (SELECT o.label, o.id FROM {schema}.other o WHERE o.id = 7) WHERE id = {b} + 7;
UPDATE ONLY {{T}} SET label = 'only' WHERE id = {b} + 8;
UPDATE {{T}} SET id = id + 4000000 WHERE id IN ({b} + 9, {b} + 10);
INSERT INTO {{T}} AS tgt (id, label) VALUES ({b} + 11, 'upsert') ON CONFLICT (id) DO UPDATE SET label = EXCLUDED.label || '!', amount = tgt.amount + 1;
INSERT INTO {{T}} (id, label, amount) SELECT id + 6000000, label || 'self', amount FROM {{T}} WHERE id BETWEEN {b} + 12 AND {b} + 13;
UPDATE {{T}} SET amount = amount + 1 FROM {schema}.other WHERE {{T}}.id = other.id + {b} AND other.id BETWEEN 14 AND 16;
DELETE FROM {{T}} USING {schema}.other WHERE {{T}}.id = other.id + {b} AND other.id = 17;
CALL {schema}.bump('{{T}}', {b} + 18);
BEGIN ISOLATION LEVEL SERIALIZABLE; UPDATE {{T}} SET label = 'serializable' WHERE id = {b} + 21; COMMIT;
BEGIN; UPDATE {{T}} SET label = 'rolled back' WHERE id = {b} + 22; ROLLBACK;
UPDATE {{T}} SET label = 'a' WHERE id = {b} + 23; UPDATE {{T}} SET label = 'b' WHERE id = {b} + 23; DELETE FROM {{T}} WHERE id = {b} + 24; INSERT INTO {{T}} (id, label) VALUES ({b} + 24, 're-inserted');
MERGE INTO {{T}} AS m USING (VALUES ({b} + 25, 'merged'), (7000000 + {b}, 'merge-inserted'), ({b} + 26, 'merge-deleted')) AS s(id, label) ON m.id = s.id WHEN MATCHED AND s.label = 'merge-deleted' THEN DELETE WHEN MATCHED THEN UPDATE SET label = s.label WHEN NOT MATCHED THEN INSERT (id, label) VALUES (s.id, s.label);
DO $$ BEGIN UPDATE {{T}} SET amount = -1 WHERE id = {b} + 27; END $$;
PREPARE p{b} AS UPDATE {{T}} SET label = 'prepared' WHERE id = $1; EXECUTE p{b}({b} + 28); DEALLOCATE p{b};
DELETE FROM {{T}} WHERE id = {b} + 30 RETURNING *;
INSERT INTO {{T}} (id, label) VALUES (8000000 + {b}, 'returning') RETURNING *;
INSERT INTO {{T}} (id, label) VALUES (9600000 + {b}, 'multi1'), (9600001 + {b}, 'multi2'), ({b} + 29, 'dup') ON CONFLICT DO NOTHING;
UPDATE {{T}} SET label = 'sub' WHERE id IN (SELECT id + {b} FROM {schema}.other WHERE id BETWEEN 40 AND 41);
INSERT INTO {{T}} VALUES (9700000 + {b}, 'positional', DEFAULT);
UPDATE {{T}}_v SET label = 'via view' WHERE id = {b} + 32;
INSERT INTO {{T}}_v (id, label) VALUES (9800000 + {b}, 'view insert');
DELETE FROM {{T}}_v WHERE id = {b} + 33;
UPDATE {{T}} SET amount = amount * 2 WHERE id = ANY(ARRAY[{b} + 34, {b} + 35]);
WITH d AS (DELETE FROM {{T}} WHERE id = {b} + 36 RETURNING id, label) INSERT INTO {{T}} (id, label) SELECT id + 9900000, label || 'moved' FROM d;
WITH u AS (UPDATE {{T}} SET amount = amount + 5 WHERE id = {b} + 37 RETURNING id, label) INSERT INTO {schema}.log SELECT 'cte', id, label FROM u;
INSERT INTO {{T}} (id, label) VALUES ({b} + 39, 'partial') ON CONFLICT (id) WHERE amount > 0 DO NOTHING;
UPDATE {{T}} SET amount = DEFAULT, label = upper(label) WHERE id = {b} + 40;
UPDATE {{T}} AS x SET label = x.label || y.label FROM {{T}} AS y WHERE x.id = {b} + 41 AND y.id = {b} + 42;
DELETE FROM {{T}} WHERE id = (SELECT max(id) FROM {{T}} WHERE id BETWEEN {b} + 43 AND {b} + 44);
INSERT INTO {{T}} AS tgt (id, label, amount) VALUES ({b} + 45, 'cond', 1), ({b} + 46, 'cond', 1) ON CONFLICT (id) DO UPDATE SET label = EXCLUDED.label WHERE tgt.id = {b} + 45;
UPDATE {{T}} SET (label, amount) = ROW('row', {b}) WHERE id = {b} + 47;
\\o /dev/null
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) UPDATE {{T}} SET label = 'explained' WHERE id = {b} + 48;
\\o
SELECT {{T}}_relabel({b} + 52) AS relabelled;
INSERT INTO {{T}} (id, label, amount) SELECT 9200000 + {b} * 10 + g, 'series', g FROM generate_series(1, 5) g ON CONFLICT DO NOTHING RETURNING id, amount;
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) INSERT INTO {{T}} (id, label) SELECT 9300000 + {b} * 10 + n, 'recursive' FROM r;
UPDATE {{T}} SET label = 'never' WHERE false;
\\set ON_ERROR_STOP 0
INSERT INTO {{T}} (id, label) VALUES (9100000 + {b}, 'implicit')\\; SELECT 1/0\\; INSERT INTO {{T}} (id, label) VALUES (9100001 + {b}, 'implicit2');
BEGIN; UPDATE {{T}} SET amount = 7 WHERE id = {b} + 49; SAVEPOINT a; UPDATE {{T}} SET amount = 1/0 WHERE id = {b} + 49; ROLLBACK TO SAVEPOINT a; UPDATE {{T}} SET label = 'after error' WHERE id = {b} + 50; COMMIT;
INSERT INTO {{T}} (id, label) VALUES ({b} + 51, 'duplicate key');
BEGIN; UPDATE {{T}} SET label = 'failed transaction' WHERE id = {b} + 53; SELECT 1/0; COMMIT;
\\set ON_ERROR_STOP 1
UPDATE {{T}} SET label = label || '+' WHERE id BETWEEN {b} + 31 AND {b} + 300;
COPY {{T}} (id, label, amount) FROM STDIN WITH (FORMAT csv);
{copy1},copied,1
{copy2},\"copied, quoted\",
\\.
",
        copy1 = 9_000_000 + b,
        copy2 = 9_000_001 + b,
    )
}

/// What a sweep migrates, and so how its rounds differ from the plain shapes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Change {
    /// `id` int → bigint: a shadow table.
    KeyType,
    /// `amount` int → bigint through a visible shadow column (`--shadow-column`).
    ShadowColumn,
    /// `label` renamed to `title`: clients keep writing `label`, translated by duet after the flip.
    Rename,
}

impl Change {
    fn alter(self, schema: &str) -> String {
        match self {
            Change::KeyType => format!("ALTER TABLE {schema}.t ALTER COLUMN id TYPE bigint"),
            Change::ShadowColumn => {
                format!("ALTER TABLE {schema}.t ALTER COLUMN amount TYPE bigint")
            }
            Change::Rename => format!("ALTER TABLE {schema}.t RENAME COLUMN label TO title"),
        }
    }

    fn strategy(self) -> &'static str {
        match self {
            Change::KeyType => "shadow_table",
            Change::ShadowColumn => "shadow_column",
            Change::Rename => "rename",
        }
    }

    /// The round's script for this change. A shadow column is visible while it runs (documented),
    /// so `RETURNING *` and `SELECT *` name the table's columns. After a rename, code stored in the server (the
    /// SQL function, the procedure) still says `label` and fails as it would without duet, so it
    /// is left out; statements the client sends keep the old name and duet translates them.
    fn script(self, schema: &str, base: i64) -> String {
        let shapes = shapes(schema, base);
        match self {
            Change::KeyType => shapes,
            Change::ShadowColumn => shapes
                .replace("RETURNING *", "RETURNING id, label, amount")
                .replace("SELECT * FROM {T}", "SELECT id, label, amount FROM {T}"),
            Change::Rename => shapes
                .lines()
                .filter(|line| !line.starts_with("CALL ") && !line.contains("_relabel("))
                .map(|line| format!("{line}\n"))
                .collect(),
        }
    }
}

/// Runs one round through duet and on the twin, compares psql's output, then the tables.
async fn round(s: &Scenario, change: Change, schema: &str, base: i64, phase: &str) {
    let (pair, through, direct) = (s.pair.clone(), s.psql_through(), s.psql_direct());
    let script = change.script(schema, base);
    tokio::task::spawn_blocking(move || writes::psql_both(&pair, &through, &direct, &script))
        .await
        .unwrap_or_else(|e| panic!("{phase}: the psql round failed: {e}"));
    assert_same_rows(s, schema).await;
}

/// The two tables hold the same rows, compared straight on the server (by the text column's
/// name there: `title` while a rename is flipped or completed).
async fn assert_same_rows(s: &Scenario, schema: &str) {
    let text = match try_column_type(s.direct(), schema, "t", "label").await {
        Some(_) => "label",
        None => "title",
    };
    writes::assert_same_rows(
        &s.pair,
        s.direct(),
        &format!("id, {text}, amount"),
        "id, label, amount",
    )
    .await;
}

async fn sweep(label: &str, schema: &str, change: Change, finish: &str) {
    let Some(backend) = backend_or_skip(label) else {
        return;
    };
    let s = Scenario::start(backend.clone(), label, schema, "int", "int", 3000).await;
    s.direct()
        .batch_execute(&format!(
            "CREATE TABLE {schema}.other (id int PRIMARY KEY, label text NOT NULL);
             INSERT INTO {schema}.other SELECT g, 'o' || g FROM generate_series(1, 50) g;
             CREATE TABLE {schema}.log (tbl text, id bigint, label text);
             CREATE VIEW {schema}.t_v AS SELECT * FROM {schema}.t;
             CREATE VIEW {schema}.t_control_v AS SELECT * FROM {schema}.t_control;
             CREATE FUNCTION {schema}.t_relabel(k int) RETURNS bigint LANGUAGE sql AS
               $f$ UPDATE {schema}.t SET label = 'sql function' WHERE id = k RETURNING id $f$;
             CREATE FUNCTION {schema}.t_control_relabel(k int) RETURNS bigint LANGUAGE sql AS
               $f$ UPDATE {schema}.t_control SET label = 'sql function' WHERE id = k RETURNING id $f$;
             CREATE PROCEDURE {schema}.bump(tbl regclass, k int) LANGUAGE plpgsql AS $p$
             BEGIN
               EXECUTE format('UPDATE %s SET amount = amount + 1000 WHERE id = $1', tbl) USING k;
               COMMIT;
               EXECUTE format('UPDATE %s SET amount = amount + 1 WHERE id = $1', tbl) USING k + 1;
               ROLLBACK;
               EXECUTE format('UPDATE %s SET label = label || ''p'' WHERE id = $1', tbl) USING k + 2;
             END $p$;"
        ))
        .await
        .expect("setup");
    round(&s, change, schema, 0, "before the migration").await;

    // The copy phase, held open by an older transaction (a rename has none: it is ready at once).
    let old = connect(&s.db.direct_config()).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");
    let alter = change.alter(schema);
    let id = match change {
        Change::ShadowColumn => migrate_sql_shadow_column(&s.duet, &alter).await,
        _ => migrate_sql(&s.duet, &alter).await,
    };
    if change != Change::Rename {
        let m = wait_phase(&s.duet, id, "copying").await;
        assert_eq!(m["strategy"], change.strategy(), "{m}");
        round(&s, change, schema, 400, "copying").await;
    }
    old.client.batch_execute("COMMIT").await.expect("COMMIT");

    let m = wait_phase(&s.duet, id, "ready").await;
    assert_eq!(m["strategy"], change.strategy(), "{m}");
    round(&s, change, schema, 800, "ready").await;

    request(&s.duet, json!({"command": "cutover", "budget_ms": 5000}))
        .await
        .expect_ok("cutover");
    match change {
        Change::KeyType => assert_eq!(column_type(s.direct(), schema, "t", "id").await, "bigint"),
        Change::ShadowColumn => {
            assert_eq!(
                column_type(s.direct(), schema, "t", "amount").await,
                "bigint"
            )
        }
        Change::Rename => {
            assert_eq!(
                try_column_type(s.direct(), schema, "t", "label").await,
                None
            );
            assert_eq!(column_type(s.direct(), schema, "t", "title").await, "text");
        }
    }
    round(&s, change, schema, 1200, "after the flip").await;

    // Old names were just used: a rename's complete needs the operator's word.
    let force = change == Change::Rename && finish == "complete";
    request(&s.duet, json!({"command": finish, "force": force}))
        .await
        .expect_ok(finish);
    let phase = match finish {
        "complete" => "completed",
        _ => "reverted",
    };
    wait_phase(&s.duet, id, phase).await;
    let (column, want) = match (change, finish) {
        (Change::KeyType, "complete") => ("id", "bigint"),
        (Change::KeyType, _) => ("id", "integer"),
        (Change::ShadowColumn, "complete") => ("amount", "bigint"),
        (Change::ShadowColumn, _) => ("amount", "integer"),
        (Change::Rename, "complete") => ("title", "text"),
        (Change::Rename, _) => ("label", "text"),
    };
    assert_eq!(column_type(s.direct(), schema, "t", column).await, want);
    // After a rename's complete the old name is gone, as it is on PostgreSQL alone.
    if !(change == Change::Rename && finish == "complete") {
        round(&s, change, schema, 1600, finish).await;
    }
    assert_same_rows(&s, schema).await;
    assert_clean(&s.duet, s.direct(), schema, id, phase).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_sweep_every_phase_then_complete() {
    sweep("write_sweep_complete", "wsc", Change::KeyType, "complete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_sweep_every_phase_then_revert() {
    sweep("write_sweep_revert", "wsr", Change::KeyType, "revert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_sweep_shadow_column_every_phase_then_complete() {
    sweep(
        "write_sweep_column_complete",
        "wscc",
        Change::ShadowColumn,
        "complete",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_sweep_shadow_column_every_phase_then_revert() {
    sweep(
        "write_sweep_column_revert",
        "wscr",
        Change::ShadowColumn,
        "revert",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_sweep_rename_every_phase_then_complete() {
    sweep(
        "write_sweep_rename_complete",
        "wsnc",
        Change::Rename,
        "complete",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_sweep_rename_every_phase_then_revert() {
    sweep(
        "write_sweep_rename_revert",
        "wsnr",
        Change::Rename,
        "revert",
    )
    .await;
}
