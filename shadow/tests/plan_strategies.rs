//! The planner against the real PostgreSQL: each strategy planned on a populated table, its steps
//! run by hand in the controller's order, and the real outcome checked (new shape, data, names,
//! sequences, and nothing of duet's left after complete, revert or abort).

mod migrate_support;

use duet_shadow::migrate::backfill::{backfill, verify_column};
use duet_shadow::migrate::copier::{CopierConfig, CopyOutcome};
use duet_shadow::migrate::state;
use duet_shadow::plan::{plan, CopySpec, Plan, PlanError, PlanInput, PlanKind};
use duet_shadow::rewrite::Target;
use migrate_support::steps::{copy, duet_leftovers, migration_id, run_each, run_in_tx, text};
use migrate_support::TestDb;
use tokio_postgres::Client;

fn sql(text: &str) -> PlanInput {
    PlanInput::sql(text)
}

/// SQL with the operator's consent to a visible shadow column (`--shadow-column`).
fn sql_shadow_column(text: &str) -> PlanInput {
    PlanInput::Sql {
        sql: text.into(),
        shadow_column: true,
    }
}

/// The revert's first step refuses (55000, saying to complete instead) while the new shape holds
/// values the old one cannot; nothing is changed.
async fn assert_revert_refused(client: &Client, p: &Plan) {
    client.batch_execute("BEGIN").await.expect("begin");
    let refused = client
        .batch_execute(&p.revert[0].sql)
        .await
        .expect_err("revert must refuse while a value beyond int4 exists");
    assert_eq!(
        refused.code().map(|c| c.code()),
        Some("55000"),
        "{refused:?}"
    );
    assert!(
        format!("{refused:?}").contains("complete the migration instead"),
        "{refused:?}"
    );
    client.batch_execute("ROLLBACK").await.expect("rollback");
}

const ORDERS: &str = "CREATE TABLE customers (id int PRIMARY KEY);
     INSERT INTO customers VALUES (1), (2);
     CREATE TABLE orders (id serial PRIMARY KEY, name text NOT NULL,
       qty int CHECK (qty >= 0), code text, customer int REFERENCES customers (id));
     CREATE INDEX orders_name_idx ON orders (name);
     ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE (code);
     GRANT SELECT ON orders TO PUBLIC;
     INSERT INTO orders (name, qty, code, customer) SELECT 'n' || g, g, 'c' || g, g % 2 + 1 FROM generate_series(1, 300) g;
     ANALYZE orders;";

const ORDERS_DATA: &str =
    "SELECT string_agg(id || ':' || name || ':' || qty || ':' || code || ':' || customer, ',' ORDER BY id) FROM orders";

async fn planned_orders(db: &TestDb, client: &mut Client) -> (Plan, i64) {
    client.batch_execute(ORDERS).await.expect("orders");
    let p = plan(
        client,
        &sql("ALTER TABLE orders ALTER COLUMN id TYPE bigint"),
    )
    .await
    .expect("plan");
    assert_eq!(p.kind, PlanKind::ShadowTable, "{p:#?}");
    let id = migration_id(client, &p).await;
    run_each(client, &p.expand).await;
    // An expand cut short (a later step failed, duet restarted) runs again from its first step:
    // the shadow it made is kept, not made twice.
    run_each(client, &p.expand).await;
    copy(db, client, &p, id).await;
    run_each(client, &p.prepare_flip).await;
    // A controller killed midway re-runs the whole list: every step is safe to repeat.
    run_each(client, &p.prepare_flip).await;
    (p, id)
}

#[tokio::test]
async fn shadow_table_flip_then_complete() {
    let Some(db) = TestDb::create("plan_table_complete").await else {
        return;
    };
    let mut client = db.connect().await;
    let (p, _) = planned_orders(&db, &mut client).await;
    let before = text(&client, ORDERS_DATA).await;
    let route = p.dual_write_route.as_ref().expect("route");
    assert_eq!(route.key, vec!["id".to_string()]);
    assert_eq!(route.columns[0].base_type, "int4");
    run_in_tx(&client, &p.flip).await;
    let flipped = p.flipped_route.as_ref().expect("flipped route");
    assert_eq!(flipped.columns[0].base_type, "int8");
    match &flipped.target {
        Target::ShadowTable {
            shadow, mapping, ..
        } => {
            assert_eq!(shadow, "orders__duet_old");
            assert_eq!(mapping[0].expr, "\"id\"::integer");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(text(&client, ORDERS_DATA).await, before);
    assert_eq!(
        text(&client, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'id'").await,
        "bigint"
    );
    let not_null: bool = client
        .query_one("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'name'", &[])
        .await
        .expect("attnotnull")
        .get(0);
    assert!(not_null);
    assert_eq!(
        text(&client, "SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 'orders'::regclass").await,
        "orders_code_key,orders_name_idx,orders_pkey"
    );
    assert_eq!(
        text(&client, "SELECT string_agg(conname::text || ':' || contype::text, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype IN ('p', 'u', 'c', 'f') AND convalidated").await,
        "orders_code_key:u,orders_customer_fkey:f,orders_pkey:p,orders_qty_check:c"
    );
    let id: i32 = client
        .query_one(
            "INSERT INTO orders (name, qty, code) VALUES ('new', 1, 'x') RETURNING id::int",
            &[],
        )
        .await
        .expect("insert after flip")
        .get(0);
    assert_eq!(id, 301);
    assert!(
        text(
            &client,
            "SELECT relacl::text FROM pg_class WHERE oid = 'orders'::regclass"
        )
        .await
        .contains("=r/"),
        "the new table keeps the grant to PUBLIC"
    );
    assert_eq!(
        text(&client, "SELECT format_type(seqtypid, NULL) FROM pg_sequence WHERE seqrelid = 'orders_id_seq'::regclass").await,
        "bigint"
    );
    run_each(&client, &p.complete).await;
    run_each(&client, &p.complete).await; // idempotent
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());
    let id: i64 = client
        .query_one(
            "INSERT INTO orders (name) VALUES ('after') RETURNING id",
            &[],
        )
        .await
        .expect("sequence survives complete")
        .get(0);
    assert_eq!(id, 302);
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn shadow_table_flip_then_revert() {
    let Some(db) = TestDb::create("plan_table_revert").await else {
        return;
    };
    let mut client = db.connect().await;
    let (p, _) = planned_orders(&db, &mut client).await;
    let before = text(&client, ORDERS_DATA).await;
    run_in_tx(&client, &p.flip).await;
    run_in_tx(&client, &p.revert).await;
    run_each(&client, &p.after_revert).await;
    run_each(&client, &p.after_revert).await;
    assert_eq!(text(&client, ORDERS_DATA).await, before);
    assert_eq!(
        text(&client, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'id'").await,
        "integer"
    );
    assert_eq!(
        text(&client, "SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 'orders'::regclass").await,
        "orders_code_key,orders_name_idx,orders_pkey"
    );
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());
    let id: i32 = client
        .query_one(
            "INSERT INTO orders (name) VALUES ('back') RETURNING id",
            &[],
        )
        .await
        .expect("sequence survives revert")
        .get(0);
    assert_eq!(id, 301);
    assert_eq!(
        text(&client, "SELECT format_type(seqtypid, NULL) FROM pg_sequence WHERE seqrelid = 'orders_id_seq'::regclass").await,
        "integer",
        "the sequence is back to the old column's type"
    );
    drop(client);
    db.drop_db().await;
}

/// After the flip of int → bigint, a row the old shape cannot hold (id past 2^31) must not fail
/// the application's write: the reverse dual-write skips it, and the revert refuses while it exists.
#[tokio::test]
async fn widened_keys_beyond_the_old_type_skip_the_mirror_and_block_revert() {
    let Some(db) = TestDb::create("plan_table_widened").await else {
        return;
    };
    let mut client = db.connect().await;
    let (p, _) = planned_orders(&db, &mut client).await;
    run_in_tx(&client, &p.flip).await;
    let route = p.flipped_route.clone().expect("flipped route");
    let routes = duet_shadow::rewrite::Routes {
        tables: vec![route],
        server_version_num: 150000,
        net_only: vec![],
    };
    let write = |sql: &str| match duet_shadow::rewrite::rewrite(
        sql,
        &routes,
        duet_shadow::rewrite::Protocol::Simple,
    ) {
        Ok(duet_shadow::rewrite::Rewrite::Changed { sql, .. }) => sql,
        other => panic!("{sql} was not rewritten: {other:?}"),
    };
    client
        .batch_execute(&write(
            "INSERT INTO orders (id, name) VALUES (3000000000, 'big'), (400, 'small')",
        ))
        .await
        .expect("a row beyond int4 is written without failing the statement");
    assert_eq!(
        text(
            &client,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders__duet_old WHERE id >= 400"
        )
        .await,
        "400",
        "the representable row is mirrored, the other is skipped"
    );
    assert_revert_refused(&client, &p).await;
    client
        .batch_execute(&write("DELETE FROM orders WHERE id = 3000000000"))
        .await
        .expect("delete");
    run_in_tx(&client, &p.revert).await;
    run_each(&client, &p.after_revert).await;
    assert_eq!(
        text(&client, "SELECT count(*)::text FROM orders WHERE id = 400").await,
        "1",
        "the mirrored row survives the revert"
    );
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn shadow_table_abort_leaves_nothing() {
    let Some(db) = TestDb::create("plan_table_abort").await else {
        return;
    };
    let mut client = db.connect().await;
    let (p, _) = planned_orders(&db, &mut client).await;
    run_each(&client, &p.abort).await;
    run_each(&client, &p.abort).await;
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());
    drop(client);
    db.drop_db().await;
}

const ACC: &str = "CREATE TABLE acc (id int PRIMARY KEY, amount int NOT NULL DEFAULT 7, note text);
     INSERT INTO acc SELECT g, g, 'n' || g FROM generate_series(1, 300) g; ANALYZE acc;";

#[tokio::test]
async fn shadow_column_flip_complete_and_revert() {
    let Some(db) = TestDb::create("plan_column").await else {
        return;
    };
    let mut client = db.connect().await;
    client.batch_execute(ACC).await.expect("acc");
    // By default a middle column's type change gets a shadow table: a shadow column would be
    // visible and end up last. The reason says what that costs and why.
    let p = plan(
        &client,
        &sql("ALTER TABLE acc ALTER COLUMN amount TYPE bigint USING amount * 10"),
    )
    .await
    .expect("plan");
    assert_eq!(p.kind, PlanKind::ShadowTable, "{p:#?}");
    for needle in [
        "keeps the column order",
        "whole table is copied",
        "\"amount__duet\"",
        "positional INSERT",
        "--shadow-column",
    ] {
        assert!(p.reason.contains(needle), "{needle:?} in {}", p.reason);
    }
    let p = plan(
        &client,
        &sql_shadow_column("ALTER TABLE acc ALTER COLUMN amount TYPE bigint USING amount * 10"),
    )
    .await
    .expect("plan");
    assert_eq!(p.kind, PlanKind::ShadowColumn, "{p:#?}");
    assert!(
        p.reason.contains("\"amount__duet_old\" after it"),
        "{}",
        p.reason
    );
    match &p.dual_write_route.as_ref().expect("route").target {
        Target::ShadowColumn {
            column,
            expr,
            skip_when,
            recover,
        } => {
            assert_eq!(recover, &None, "nothing parked before the flip");
            assert_eq!(column, "amount__duet");
            assert_eq!(expr, "(amount * 10)::bigint");
            assert_eq!(skip_when, &None, "nothing to skip on the way in");
        }
        other => panic!("{other:?}"),
    }
    // After the flip an INSERT's value found in the parked column is put back into the new
    // one — not for a column with a default, whose parked value may be that default.
    let recover_of = |p: &Plan| match &p.flipped_route.as_ref().expect("route").target {
        Target::ShadowColumn { recover, .. } => recover.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(recover_of(&p), None, "amount has a default: {p:#?}");
    client
        .batch_execute("CREATE TABLE acc_nodef (id int PRIMARY KEY, amount int)")
        .await
        .expect("acc_nodef");
    let without_default = plan(
        &client,
        &sql_shadow_column(
            "ALTER TABLE acc_nodef ALTER COLUMN amount TYPE bigint USING amount * 10",
        ),
    )
    .await
    .expect("plan");
    let recovered = recover_of(&without_default).expect("a column without a default is recovered");
    assert_eq!(recovered.column, "amount");
    assert_eq!(recovered.expr, "(amount * 10)::bigint");
    let id = migration_id(&mut client, &p).await;
    run_each(&client, &p.expand).await;
    // Run again after an interruption: the shadow column it added is kept.
    run_each(&client, &p.expand).await;
    assert_eq!(copy(&db, &mut client, &p, id).await, Some(300));
    run_each(&client, &p.prepare_flip).await;
    run_in_tx(&client, &p.flip).await;
    let converted = "SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM acc";
    let expected = text(
        &client,
        "SELECT string_agg(g || ':' || g * 10, ',' ORDER BY g) FROM generate_series(1, 300) g",
    )
    .await;
    assert_eq!(text(&client, converted).await, expected);
    assert_eq!(
        text(&client, "SELECT format_type(atttypid, atttypmod) || ':' || attnotnull FROM pg_attribute WHERE attrelid = 'acc'::regclass AND attname = 'amount'").await,
        "bigint:true"
    );
    let d: i64 = client
        .query_one(
            "INSERT INTO acc (id, amount__duet_old) VALUES (1000, 1) RETURNING amount",
            &[],
        )
        .await
        .expect("default on the new column")
        .get(0);
    assert_eq!(d, 7);
    client
        .batch_execute("DELETE FROM acc WHERE id = 1000")
        .await
        .expect("cleanup");
    run_each(&client, &p.complete).await;
    run_each(&client, &p.complete).await;
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());
    assert_eq!(text(&client, converted).await, expected);
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn shadow_column_revert_and_abort_leave_nothing() {
    let Some(db) = TestDb::create("plan_column_revert").await else {
        return;
    };
    let mut client = db.connect().await;
    client.batch_execute(ACC).await.expect("acc");
    // Nullable, so that the mirror back can leave a value beyond int4 out (below).
    client
        .batch_execute("ALTER TABLE acc ALTER COLUMN amount DROP NOT NULL")
        .await
        .expect("nullable");
    let p = plan(
        &client,
        &sql_shadow_column("ALTER TABLE acc ALTER COLUMN amount TYPE bigint"),
    )
    .await
    .expect("plan");
    assert_eq!(p.kind, PlanKind::ShadowColumn, "{p:#?}");
    let id = migration_id(&mut client, &p).await;
    run_each(&client, &p.expand).await;
    copy(&db, &mut client, &p, id).await;
    run_each(&client, &p.prepare_flip).await;
    run_in_tx(&client, &p.flip).await;
    // After the flip a value the old int column cannot hold is written without failing (the net
    // mirrors NULL into the old column), and the revert refuses while it exists.
    client
        .batch_execute("INSERT INTO acc (id, amount) VALUES (301, 3000000000); UPDATE acc SET amount = 5000000000 WHERE id = 1")
        .await
        .expect("a bigint beyond int4 after the flip");
    assert_eq!(
        text(
            &client,
            "SELECT count(*)::text FROM acc WHERE amount__duet_old IS NULL"
        )
        .await,
        "2"
    );
    assert_revert_refused(&client, &p).await;
    client
        .batch_execute("DELETE FROM acc WHERE id = 301; UPDATE acc SET amount = 1 WHERE id = 1")
        .await
        .expect("back within int4");
    run_in_tx(&client, &p.revert).await;
    run_each(&client, &p.after_revert).await;
    run_each(&client, &p.after_revert).await;
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());
    assert_eq!(
        text(
            &client,
            "SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM acc"
        )
        .await,
        text(
            &client,
            "SELECT string_agg(g || ':' || g, ',' ORDER BY g) FROM generate_series(1, 300) g"
        )
        .await
    );
    // Abort before a flip.
    run_each(&client, &p.expand).await;
    run_each(&client, &p.abort).await;
    run_each(&client, &p.abort).await;
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn rename_and_in_place_plans() {
    let Some(db) = TestDb::create("plan_in_place").await else {
        return;
    };
    let client = db.connect().await;
    client.batch_execute(ACC).await.expect("acc");
    let p = plan(
        &client,
        &sql("ALTER TABLE acc RENAME COLUMN note TO remark"),
    )
    .await
    .expect("rename plan");
    assert_eq!(p.kind, PlanKind::Rename);
    assert!(matches!(
        &p.flipped_route.as_ref().expect("route").target,
        Target::Renamed { columns } if columns == &vec![("note".to_string(), "remark".to_string())]
    ));
    run_in_tx(&client, &p.flip).await;
    run_in_tx(&client, &p.revert).await;
    client
        .batch_execute(
            "UPDATE acc SET note = NULL WHERE id = 1; UPDATE acc SET note = 'x' WHERE id = 1",
        )
        .await
        .expect("note is back");

    let p = plan(
        &client,
        &sql("CREATE INDEX acc_note_idx ON acc (note); ALTER TABLE acc ALTER COLUMN note SET NOT NULL;
              ALTER TABLE acc ADD CONSTRAINT acc_amount_pos CHECK (amount > 0); ALTER TABLE acc ADD COLUMN extra int"),
    )
    .await
    .expect("in-place plan");
    assert_eq!(p.kind, PlanKind::InPlace, "{p:#?}");
    assert!(p.expand[0].outside_transaction);
    assert!(
        p.expand[0].sql.contains("CONCURRENTLY"),
        "{}",
        p.expand[0].sql
    );
    assert!(
        p.expand
            .iter()
            .all(|s| s.sql.contains("\"public\".\"acc\"")),
        "every step names the table schema-qualified: {:#?}",
        p.expand
    );
    assert!(p.expand.iter().any(|s| s.sql.contains("NOT VALID")));
    run_each(&client, &p.expand).await;
    assert_eq!(
        text(&client, "SELECT string_agg(conname::text || ':' || convalidated, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'acc'::regclass AND contype IN ('p', 'u', 'c')").await,
        "acc_amount_pos:true,acc_pkey:true"
    );
    let notnull: bool = client
        .query_one("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'acc'::regclass AND attname = 'note'", &[])
        .await
        .expect("attnotnull")
        .get(0);
    assert!(notnull);
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());

    // A binary-compatible type change stays in place.
    client
        .batch_execute("CREATE TABLE v (id int PRIMARY KEY, s varchar(10))")
        .await
        .expect("v");
    let p = plan(
        &client,
        &sql("ALTER TABLE v ALTER COLUMN s TYPE varchar(20)"),
    )
    .await
    .expect("varchar plan");
    assert_eq!(p.kind, PlanKind::InPlace, "{p:#?}");
    let p = plan(
        &client,
        &sql("ALTER TABLE v DROP COLUMN s; DROP INDEX v_pkey"),
    )
    .await
    .expect("contract plan");
    assert_eq!(p.kind, PlanKind::InPlace);
    assert!(p.reason.contains("contract"), "{}", p.reason);
    drop(client);
    db.drop_db().await;
}

/// A refusal's kind and message.
fn kind_of(e: &PlanError) -> (&'static str, &str) {
    match e {
        PlanError::Invalid(m) => ("invalid", m),
        PlanError::Unknown(m) => ("unknown", m),
        PlanError::Unsupported(m) => ("unsupported", m),
        PlanError::Audit(m) => ("audit", m),
        PlanError::Database(m) => ("database", m),
    }
}

fn message(r: Result<Plan, PlanError>) -> PlanError {
    match r {
        Ok(p) => panic!("expected a refusal, got {p:#?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn refusals_say_what_to_do() {
    let Some(db) = TestDb::create("plan_refusals").await else {
        return;
    };
    let mut client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE acc (id int PRIMARY KEY, amount int, note text);
             CREATE TABLE gen (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED);
             CREATE TABLE busy (id int PRIMARY KEY, a int);
             CREATE TABLE nokey (a int, b text);
             CREATE TABLE trig (id int PRIMARY KEY, v int);
             CREATE RULE trig_r AS ON INSERT TO trig DO ALSO NOTIFY trig_inserted;
             CREATE TABLE colpriv (id int PRIMARY KEY, v int);
             GRANT SELECT (v) ON colpriv TO PUBLIC;",
        )
        .await
        .expect("setup");
    // (input, kind of refusal, what its message must say)
    let refusals: [(&str, &str, &[&str]); 10] = [
        (
            "ALTER TABLE acc ALTER COLUMN nope TYPE bigint",
            "unknown",
            &["\"nope\" does not exist", "amount"],
        ),
        ("ALTER TABLE missing ALTER COLUMN a TYPE bigint", "unknown", &["does not exist"]),
        ("ALTER TABLE acc ALTER COLUMN amount TYPE nosuchtype", "unknown", &["nosuchtype"]),
        (
            "ALTER TABLE acc ALTER COLUMN amount TYPE bigint USING no_such_fn(amount)",
            "invalid",
            &["no_such_fn"],
        ),
        (
            "ALTER TABLE nokey ALTER COLUMN a TYPE bigint",
            "unsupported",
            &[
                "no primary key",
                "ADD PRIMARY KEY",
                "unique index over NOT NULL columns",
            ],
        ),
        ("ALTER TABLE trig ALTER COLUMN v TYPE bigint", "audit", &["trig_r", "rules"]),
        (
            "ALTER TABLE acc ALTER COLUMN amount TYPE bigint; ALTER TABLE trig ALTER COLUMN v TYPE bigint",
            "unsupported",
            &["one table per migration"],
        ),
        // A shadow table is refused where a shadow column would do: the refusal says the
        // operator may ask for one, and what it costs.
        (
            "ALTER TABLE colpriv ALTER COLUMN v TYPE bigint",
            "unsupported",
            &["column privileges", "--shadow-column", "last column"],
        ),
        ("DROP TABLE acc", "unsupported", &[]),
        (
            "ALTER TABLE gen ALTER COLUMN a TYPE bigint",
            "unsupported",
            &["generated column \"b\"", "computed from \"a\"", "DROP EXPRESSION"],
        ),
    ];
    for (input, want, needles) in refusals {
        let e = message(plan(&client, &sql(input)).await);
        let (kind, text) = kind_of(&e);
        assert_eq!(kind, want, "{input}: {e}");
        for needle in needles {
            assert!(text.contains(needle), "{input}: {e} lacks {needle:?}");
        }
    }
    let p = plan(
        &client,
        &sql_shadow_column("ALTER TABLE colpriv ALTER COLUMN v TYPE bigint"),
    )
    .await
    .expect("a shadow column, asked for, where a shadow table is refused");
    assert_eq!(p.kind, PlanKind::ShadowColumn);
    state::ensure_schema(&mut client)
        .await
        .expect("schema duet");
    state::create_migration(
        &client,
        "\"public\".\"busy\"",
        "shadow_column",
        &serde_json::json!({}),
    )
    .await
    .expect("migration");
    let e = message(plan(&client, &sql("ALTER TABLE busy ALTER COLUMN a TYPE bigint")).await);
    assert_eq!(kind_of(&e).0, "unsupported", "{e}");
    assert!(kind_of(&e).1.contains("already has migration"), "{e}");
    // Nothing was created by planning.
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());
    drop(client);
    db.drop_db().await;
}

/// A name the migration would create that something already has is refused at plan time,
/// naming it, before anything is touched: the shadow table, its key index, the parked old
/// table, a secondary index's temporary and parked names, the shadow column and the parked old
/// column. Once the name is free again the same change plans.
#[tokio::test]
async fn names_already_taken_are_refused_naming_them() {
    let Some(db) = TestDb::create("plan_taken_names").await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE acc (id int PRIMARY KEY, amount int, note text);
             CREATE INDEX acc_note ON acc (note);",
        )
        .await
        .expect("setup");
    let shadow_table = "ALTER TABLE acc ALTER COLUMN id TYPE bigint";
    let takers: [(&str, &str, &str); 5] = [
        (
            "CREATE TABLE acc__duet (x int)",
            "DROP TABLE acc__duet",
            "\"acc__duet\"",
        ),
        (
            "CREATE SEQUENCE acc__duet_pkey",
            "DROP SEQUENCE acc__duet_pkey",
            "\"acc__duet_pkey\"",
        ),
        (
            "CREATE VIEW acc__duet_old AS SELECT 1 AS one",
            "DROP VIEW acc__duet_old",
            "\"acc__duet_old\"",
        ),
        (
            "CREATE TABLE acc_note__duet (x int)",
            "DROP TABLE acc_note__duet",
            "\"acc_note__duet\"",
        ),
        (
            "CREATE INDEX acc_note__duet_old ON acc (amount)",
            "DROP INDEX acc_note__duet_old",
            "\"acc_note__duet_old\"",
        ),
    ];
    for (take, free, named) in takers {
        client.batch_execute(take).await.expect(take);
        let e = message(plan(&client, &sql(shadow_table)).await);
        let (kind, text) = kind_of(&e);
        assert_eq!(kind, "unsupported", "{take}: {e}");
        for needle in [named, "already exists", "drop it", "rename it"] {
            assert!(text.contains(needle), "{take}: {e} lacks {needle:?}");
        }
        client.batch_execute(free).await.expect(free);
    }
    plan(&client, &sql(shadow_table))
        .await
        .expect("plans once the names are free");

    let shadow_column = "ALTER TABLE acc ALTER COLUMN amount TYPE bigint";
    for column in ["amount__duet", "amount__duet_old"] {
        client
            .batch_execute(&format!("ALTER TABLE acc ADD COLUMN {column} int"))
            .await
            .expect("a column taking the name");
        let e = message(plan(&client, &sql_shadow_column(shadow_column)).await);
        let (kind, text) = kind_of(&e);
        assert_eq!(kind, "unsupported", "{column}: {e}");
        assert!(
            text.contains(&format!("already has a column \"{column}\"")),
            "{column}: {e}"
        );
        client
            .batch_execute(&format!("ALTER TABLE acc DROP COLUMN {column}"))
            .await
            .expect("drop the column");
    }
    let p = plan(&client, &sql_shadow_column(shadow_column))
        .await
        .expect("plans once the names are free");
    assert_eq!(p.kind, PlanKind::ShadowColumn);
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn plan_round_trips_through_json() {
    let Some(db) = TestDb::create("plan_json").await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE items (id serial PRIMARY KEY, title text NOT NULL)")
        .await
        .expect("items");
    let p = plan(
        &client,
        &sql("ALTER TABLE items ALTER COLUMN id TYPE bigint"),
    )
    .await
    .expect("plan");
    let json = serde_json::to_string_pretty(&p).expect("json");
    println!("{json}");
    let back: Plan = serde_json::from_str(&json).expect("parse back");
    assert_eq!(back, p);
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn odd_identifiers_are_quoted_everywhere() {
    let Some(db) = TestDb::create("plan_odd_names").await else {
        return;
    };
    let mut client = db.connect().await;
    client
        .batch_execute(
            r#"CREATE SCHEMA "App Data";
               CREATE TABLE "App Data"."Order Lines" ("Id" serial PRIMARY KEY, "Qty""x" int NOT NULL, "select" text);
               CREATE INDEX "Odd Idx" ON "App Data"."Order Lines" ("select");
               INSERT INTO "App Data"."Order Lines" ("Qty""x", "select") SELECT g, 's' || g FROM generate_series(1, 300) g;"#,
        )
        .await
        .expect("setup");
    let data = r#"SELECT string_agg("Id" || ':' || "Qty""x" || ':' || "select", ',' ORDER BY "Id") FROM "App Data"."Order Lines""#;
    let before = text(&client, data).await;
    // Shadow tables (the default), then a shadow column (asked for), which moves the column last.
    for (change, input) in [
        (
            r#"ALTER TABLE "App Data"."Order Lines" ALTER COLUMN "Qty""x" TYPE bigint"#,
            sql as fn(&str) -> PlanInput,
        ),
        (
            r#"ALTER TABLE "App Data"."Order Lines" ALTER COLUMN "Id" TYPE bigint"#,
            sql,
        ),
        (
            r#"ALTER TABLE "App Data"."Order Lines" ALTER COLUMN "Qty""x" TYPE numeric"#,
            sql_shadow_column,
        ),
    ] {
        let p = plan(&client, &input(change)).await.expect("plan");
        let id = migration_id(&mut client, &p).await;
        run_each(&client, &p.expand).await;
        copy_odd(&db, &mut client, &p, id).await;
        run_each(&client, &p.prepare_flip).await;
        run_in_tx(&client, &p.flip).await;
        run_each(&client, &p.complete).await;
        client
            .batch_execute("DELETE FROM duet.copy_progress; DELETE FROM duet.migrations")
            .await
            .expect("forget the migration");
        assert_eq!(text(&client, data).await, before, "{change}");
    }
    assert_eq!(
        text(&client, r#"SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '"App Data"."Order Lines"'::regclass AND attnum > 0 AND NOT attisdropped"#).await,
        "bigint,text,numeric"
    );
    assert_eq!(
        text(&client, r#"SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = '"App Data"."Order Lines"'::regclass"#).await,
        r#""App Data"."Odd Idx","App Data"."Order Lines_pkey""#
    );
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());
    drop(client);
    db.drop_db().await;
}

/// Like [`copy`] without the row-count assertion of the column case.
async fn copy_odd(db: &TestDb, client: &mut Client, p: &Plan, id: i64) {
    match p.copy.as_ref().expect("copy spec") {
        CopySpec::Column(spec) => {
            let (runner, _control) =
                backfill(db.connect().await, spec, id, CopierConfig::default())
                    .await
                    .expect("backfill");
            assert_eq!(runner.run().await.expect("backfill run"), CopyOutcome::Done);
            let report = verify_column(
                client,
                spec,
                &duet_shadow::migrate::verify::VerifyConfig::with_chunk_rows(50),
            )
            .await
            .expect("verify column");
            assert!(report.is_clean(), "{report:?}");
        }
        CopySpec::Table(_) => {
            copy(db, client, p, id).await;
        }
    }
}
