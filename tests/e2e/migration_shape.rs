//! The visible shape is PostgreSQL's (issue 11): a type change of a middle column, through the
//! real binary, keeps the table's columns where they were in every phase. Positional writes
//! (`INSERT INTO t VALUES (…)`, `COPY t FROM STDIN` in both protocols) through duet land in the
//! same columns as on an unmigrated control table, `SELECT *` and `RETURNING *` name the control
//! table's columns in its order, and after `complete` (or `revert`) the catalog's column order is
//! the original one.

use tokio_postgres::Client;

use crate::support::backend_or_skip;
use crate::support::duet_process::{through, DuetProcess};
use crate::support::migration::{
    assert_clean, column_type, migrate_sql, request, rows_as_text, wait_phase,
};
use crate::support::pg_client::{connect, Session};
use crate::support::tools::{psql, Target};
use crate::support::writes::{assert_same_rows, Pair};
use crate::support::{Backend, TestDatabase};

/// The columns in the order both tables are created with; `amount` (the changed one) is in the
/// middle, so a column moved to the end would show.
const COLUMNS: &str = "id,amount,label,code";

/// The migrated table `t`, its control twin, duet in front, and a session each way.
struct Shape {
    backend: Backend,
    db: TestDatabase,
    duet: DuetProcess,
    pair: Pair,
    direct: Session,
    through: Session,
    /// Positional writes made so far (each uses ids of its own).
    rounds: i64,
}

impl Shape {
    async fn start(backend: Backend, label: &str, schema: &str, amount_type: &str) -> Shape {
        let db = TestDatabase::create(&backend, label);
        for table in ["t", "t_control"] {
            db.execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE {schema}.{table} (id int PRIMARY KEY, amount {amount_type},
                                                label text NOT NULL, code text);
                 INSERT INTO {schema}.{table}
                   SELECT g, g * 3, 'r' || g, 'c' || (g % 7) FROM generate_series(1, 2000) g;
                 ANALYZE {schema}.{table};"
            ));
        }
        let duet = DuetProcess::start(&backend.url(db.name()), &[]);
        let direct = connect(&db.direct_config()).await;
        let through_session = connect(&through(&backend, &duet, &db, "shape-test")).await;
        Shape {
            pair: Pair {
                schema: schema.into(),
                table: "t".into(),
                control: "t_control".into(),
                control_renames: vec![],
            },
            backend,
            db,
            duet,
            direct,
            through: through_session,
            rounds: 0,
        }
    }

    fn direct(&self) -> &Client {
        &self.direct.client
    }

    fn psql_target(&self, via_duet: bool) -> Target {
        let target = if via_duet {
            self.duet.target(&self.backend.user, self.db.name())
        } else {
            Target::tcp(
                &self.backend.host,
                self.backend.port,
                &self.backend.user,
                self.db.name(),
            )
        };
        match &self.backend.password {
            Some(password) => target.with_password(password),
            None => target,
        }
    }

    /// Positional writes through duet on `t` and directly on `t_control`, in `phase`: an
    /// `INSERT … VALUES` without a column list (simple and extended protocol) with `RETURNING *`,
    /// a psql `COPY … FROM STDIN` (simple protocol: duet stages it) and a tokio-postgres
    /// `copy_in` (extended protocol: forwarded, mirrored by the safety net), none naming a
    /// column. Then `SELECT *` through duet must name the control table's columns in its order,
    /// and both tables must hold the same rows.
    async fn positional_writes(&mut self, phase: &str) {
        self.rounds += 1;
        let base = 100_000 + self.rounds * 100;
        // Values as untyped literals, so the same text fits the old and the new type.
        let values = |id: i64| format!("({id}, '{}', 'pos {phase}', 'k{id}')", id * 3);
        for (client, table) in [
            (&self.through.client, self.pair.migrated()),
            (&self.direct.client, self.pair.control()),
        ] {
            let returned = client
                .simple_query(&format!(
                    "INSERT INTO {table} VALUES {}, {} RETURNING *",
                    values(base),
                    values(base + 1)
                ))
                .await
                .unwrap_or_else(|e| panic!("{phase}: positional INSERT into {table}: {e:?}"));
            let names: Vec<String> = returned
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::RowDescription(d) => {
                        Some(d.iter().map(|c| c.name().to_string()).collect())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{phase}: RETURNING * of {table} described no row"));
            assert_eq!(names.join(","), COLUMNS, "{phase}: RETURNING * of {table}");
            client
                .execute(
                    // Through numeric, which assigns to int, bigint, numeric and text alike.
                    format!("INSERT INTO {table} VALUES ($1, $2::text::numeric, $3, $4)").as_str(),
                    &[
                        &((base + 2) as i32),
                        &((base + 2) * 3).to_string(),
                        &format!("ext {phase}"),
                        &format!("k{}", base + 2),
                    ],
                )
                .await
                .unwrap_or_else(|e| {
                    panic!("{phase}: positional INSERT (extended) into {table}: {e:?}")
                });
            let sink = client
                .copy_in::<_, bytes::Bytes>(format!("COPY {table} FROM STDIN").as_str())
                .await
                .unwrap_or_else(|e| panic!("{phase}: COPY {table} FROM STDIN (extended): {e:?}"));
            futures_util::pin_mut!(sink);
            futures_util::SinkExt::send(
                &mut sink,
                bytes::Bytes::from(format!(
                    "{0}\t{1}\tcopy_in {phase}\tk{0}\n{2}\t\\N\tcopy_in {phase}\t\\N\n",
                    base + 3,
                    (base + 3) * 3,
                    base + 4
                )),
            )
            .await
            .expect("COPY data");
            assert_eq!(sink.finish().await.expect("COPY done"), 2, "{phase}");
        }
        let script = |table: String| {
            format!(
                "COPY {table} FROM STDIN;\n{0}\t{1}\tpsql {phase}\tk{0}\n{2}\t{3}\tpsql {phase}\t\\N\n\\.\n",
                base + 5,
                (base + 5) * 3,
                base + 6,
                (base + 6) * 3
            )
        };
        for (via_duet, table) in [(true, self.pair.migrated()), (false, self.pair.control())] {
            let out = self.psql_script(via_duet, script(table)).await;
            assert_eq!(out.trim(), "COPY 2", "{phase}: psql COPY");
        }
        self.assert_visible_shape(phase).await;
        assert_same_rows(&self.pair, self.direct(), "*", "*").await;
    }

    /// Runs `script` with psql (through duet or straight), stopping at its first error; its
    /// output.
    async fn psql_script(&self, via_duet: bool, script: String) -> String {
        let target = self.psql_target(via_duet);
        let out = tokio::task::spawn_blocking(move || {
            psql(
                &target,
                &["-A", "-v", "ON_ERROR_STOP=1"],
                Some(script.as_bytes()),
            )
        })
        .await
        .expect("psql");
        out.assert_success();
        out.stdout_text()
    }

    /// `SELECT *` and `COPY (SELECT *)` through duet show the control table's columns, in order.
    async fn assert_visible_shape(&self, phase: &str) {
        for (client, table, who) in [
            (&self.through.client, self.pair.migrated(), "through duet"),
            (&self.direct.client, self.pair.control(), "control"),
        ] {
            let statement = client
                .prepare(&format!("SELECT * FROM {table}"))
                .await
                .unwrap_or_else(|e| panic!("{phase}: SELECT * FROM {table}: {e:?}"));
            let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
            assert_eq!(names.join(","), COLUMNS, "{phase}: SELECT * {who}");
        }
        // A COPY out of SELECT * through duet: four fields a line, the key first.
        let out = psql(
            &self.psql_target(true),
            &[
                "-A",
                "-c",
                &format!(
                    "COPY (SELECT * FROM {} WHERE id = 5) TO STDOUT",
                    self.pair.migrated()
                ),
            ],
            None,
        );
        out.assert_success();
        let line = out.stdout_text();
        let fields: Vec<&str> = line.trim_end().split('\t').collect();
        assert_eq!(fields.len(), 4, "{phase}: COPY (SELECT *) gave {line:?}");
        assert_eq!(fields[0], "5", "{phase}: COPY (SELECT *) gave {line:?}");
        assert_eq!(fields[2], "r5", "{phase}: COPY (SELECT *) gave {line:?}");
    }

    /// The live columns of `table` in `pg_attribute` order.
    async fn catalog_order(&self, table: &str) -> String {
        let rows = rows_as_text(
            self.direct(),
            &format!(
                "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                  WHERE attrelid = '{}.{table}'::regclass AND attnum > 0 AND NOT attisdropped",
                self.pair.schema
            ),
        )
        .await;
        rows[0][0].clone()
    }
}

/// An old transaction (opened directly, before the migration) keeps the copy from finishing, so
/// the test can write while the migration is in its copy phase.
async fn hold_old_transaction(s: &Shape) -> Session {
    let old = connect(&s.db.direct_config()).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");
    old
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_shape_positional_writes_int_to_bigint_then_complete() {
    let Some(backend) = backend_or_skip("migration_shape_complete") else {
        return;
    };
    let mut s = Shape::start(backend, "mig_shape_complete", "msh", "int").await;
    s.positional_writes("before").await;

    // The plan says what the column order costs.
    let plan = request(
        &s.duet,
        serde_json::json!({"command": "plan", "input": {"kind": "sql",
            "sql": "ALTER TABLE msh.t ALTER COLUMN amount TYPE bigint"}}),
    )
    .await
    .expect_ok("plan");
    assert_eq!(plan["kind"], "shadow_table", "{plan}");
    let reason = plan["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("keeps the column order") && reason.contains("whole table is copied"),
        "{reason}"
    );

    let old = hold_old_transaction(&s).await;
    let id = migrate_sql(&s.duet, "ALTER TABLE msh.t ALTER COLUMN amount TYPE bigint").await;
    let m = wait_phase(&s.duet, id, "copying").await;
    assert_eq!(m["strategy"], "shadow_table", "{m}");
    s.positional_writes("copying").await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    wait_phase(&s.duet, id, "ready").await;
    s.positional_writes("ready").await;
    request(
        &s.duet,
        serde_json::json!({"command": "cutover", "budget_ms": 5000}),
    )
    .await
    .expect_ok("cutover");
    assert_eq!(
        column_type(s.direct(), "msh", "t", "amount").await,
        "bigint"
    );
    s.positional_writes("flipped").await;
    request(
        &s.duet,
        serde_json::json!({"command": "complete", "id": id}),
    )
    .await
    .expect_ok("complete");
    s.positional_writes("completed").await;
    assert_eq!(
        s.catalog_order("t").await,
        COLUMNS,
        "catalog order after complete"
    );
    assert_eq!(
        column_type(s.direct(), "msh", "t", "amount").await,
        "bigint"
    );
    assert_clean(&s.duet, s.direct(), "msh", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_shape_positional_writes_numeric_to_text_then_revert() {
    let Some(backend) = backend_or_skip("migration_shape_revert") else {
        return;
    };
    let mut s = Shape::start(backend, "mig_shape_revert", "mshr", "numeric").await;
    let old = hold_old_transaction(&s).await;
    let id = migrate_sql(
        &s.duet,
        "ALTER TABLE mshr.t ALTER COLUMN amount TYPE text USING amount::text",
    )
    .await;
    let m = wait_phase(&s.duet, id, "copying").await;
    assert_eq!(m["strategy"], "shadow_table", "{m}");
    s.positional_writes("copying").await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    wait_phase(&s.duet, id, "ready").await;
    s.positional_writes("ready").await;
    request(
        &s.duet,
        serde_json::json!({"command": "cutover", "budget_ms": 5000}),
    )
    .await
    .expect_ok("cutover");
    assert_eq!(column_type(s.direct(), "mshr", "t", "amount").await, "text");
    s.positional_writes("flipped").await;
    request(&s.duet, serde_json::json!({"command": "revert", "id": id}))
        .await
        .expect_ok("revert");
    assert_eq!(
        column_type(s.direct(), "mshr", "t", "amount").await,
        "numeric"
    );
    s.positional_writes("reverted").await;
    assert_eq!(
        s.catalog_order("t").await,
        COLUMNS,
        "catalog order after revert"
    );
    assert_clean(&s.duet, s.direct(), "mshr", id, "reverted").await;
}

/// With a shadow column (asked for: the visible shape changes), positional writes that write the
/// table's own columns — `INSERT … VALUES`, `INSERT … SELECT`, one in a `DO` block and a psql
/// `COPY … FROM STDIN`, none naming a column — land where the application meant in every phase,
/// through duet and straight to PostgreSQL. After the flip the parked old column sits where `amount` was and the
/// new one is last: the value would fill the parked column and be overwritten by the safety net
/// (lost). duet lists the columns of the writes it sees; the safety net recovers the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_shape_shadow_column_positional_writes_land_in_place() {
    let Some(backend) = backend_or_skip("migration_shape_shadow_column") else {
        return;
    };
    let mut s = Shape::start(backend, "mig_shape_column", "msc", "int").await;
    let old = hold_old_transaction(&s).await;
    let id = crate::support::migration::migrate_sql_shadow_column(
        &s.duet,
        "ALTER TABLE msc.t ALTER COLUMN amount TYPE bigint",
    )
    .await;
    wait_phase(&s.duet, id, "copying").await;
    let own_columns = "id, amount, label, code";
    /// One round of unlisted writes on `t` (through duet, or straight to PostgreSQL: no listing
    /// then, the safety net recovers the value from the parked column after the flip; nor for
    /// the `DO` block's, which duet does not rewrite), and straight on `t_control`.
    async fn write(s: &mut Shape, phase: &'static str, via_duet: bool) {
        s.rounds += 1;
        let base = 100_000 + s.rounds * 100;
        for (via, table) in [(via_duet, s.pair.migrated()), (false, s.pair.control())] {
            let mut script = format!(
                "INSERT INTO {table} VALUES ({0}, {1}, 'pos {phase}', 'k{0}');
                 INSERT INTO {table} SELECT {2}, {3}, 'sel {phase}', NULL;
                 DO $$ BEGIN INSERT INTO {table} VALUES ({4}, {5}, 'do {phase}', NULL); END $$;\n",
                base,
                base * 3,
                base + 1,
                (base + 1) * 3,
                base + 3,
                (base + 3) * 3,
            );
            // Straight to PostgreSQL a COPY without a list fails on the table's extra column
            // ("missing data"), as PostgreSQL alone does: only through duet is it listed.
            if via_duet {
                script.push_str(&format!(
                    "COPY {table} FROM STDIN;\n{0}\t{1}\tpsql {phase}\tk{0}\n\\.\n",
                    base + 2,
                    (base + 2) * 3
                ));
            }
            s.psql_script(via, script).await;
        }
    }
    write(&mut s, "copying", true).await;
    write(&mut s, "copying", false).await;
    assert_same_rows(&s.pair, s.direct(), own_columns, own_columns).await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    wait_phase(&s.duet, id, "ready").await;
    write(&mut s, "ready", true).await;
    write(&mut s, "ready", false).await;
    assert_same_rows(&s.pair, s.direct(), own_columns, own_columns).await;
    request(
        &s.duet,
        serde_json::json!({"command": "cutover", "budget_ms": 5000}),
    )
    .await
    .expect_ok("cutover");
    write(&mut s, "flipped", true).await;
    write(&mut s, "flipped", false).await;
    assert_same_rows(&s.pair, s.direct(), own_columns, own_columns).await;
    request(
        &s.duet,
        serde_json::json!({"command": "complete", "id": id}),
    )
    .await
    .expect_ok("complete");
    assert_same_rows(&s.pair, s.direct(), own_columns, own_columns).await;
    assert_clean(&s.duet, s.direct(), "msc", id, "completed").await;
}
