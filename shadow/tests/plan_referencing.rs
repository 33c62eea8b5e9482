//! A primary key referenced by other tables, widened from int to bigint through a shadow table,
//! against the real PostgreSQL: the plan carries the referencing foreign keys, the flip's
//! transaction re-creates them `NOT VALID` on the new table (enforced at once: a violating write
//! fails, a cascade still cascades), `complete` validates again the one that was valid, and a
//! revert points them back at the old table. What cannot be re-pointed is refused before anything
//! is created.

mod migrate_support;

use duet_shadow::plan::{plan, plan_group, GroupOptions, Plan, PlanError, PlanInput, PlanKind};
use migrate_support::steps::{duet_leftovers, run_each, run_in_tx, text, up_to_ready};
use migrate_support::TestDb;
use tokio_postgres::Client;

const SETUP: &str = "
    CREATE TABLE orders (id int PRIMARY KEY, note text);
    CREATE TABLE lines (id int PRIMARY KEY,
                        order_id int NOT NULL REFERENCES orders (id) ON DELETE CASCADE);
    COMMENT ON CONSTRAINT lines_order_id_fkey ON lines IS 'each line has its order';
    CREATE TABLE invoices (id bigint PRIMARY KEY, order_id bigint);
    INSERT INTO orders SELECT g, 'o' || g FROM generate_series(1, 200) g;
    INSERT INTO lines SELECT g, (g % 200) + 1 FROM generate_series(1, 400) g;
    INSERT INTO invoices SELECT g, g FROM generate_series(1, 50) g;
    ALTER TABLE invoices ADD CONSTRAINT invoices_order FOREIGN KEY (order_id)
      REFERENCES orders (id) NOT VALID;";

/// Each referencing key: `name:referenced table:validated`.
async fn keys(client: &Client) -> String {
    text(
        client,
        "SELECT string_agg(conname || ':' || confrelid::regclass::text || ':' || convalidated, ','
                           ORDER BY conname)
           FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
    )
    .await
}

/// The types of the key and of the column referencing it: `lines.order_id,orders.id`.
async fn key_types(client: &Client) -> String {
    text(
        client,
        "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attrelid::regclass::text)
           FROM pg_attribute
          WHERE (attrelid, attname) IN (('orders'::regclass, 'id'), ('lines'::regclass, 'order_id'))",
    )
    .await
}

/// Nothing of duet's is left; the test's database goes.
async fn finished(client: Client, db: TestDb) {
    assert_eq!(duet_leftovers(&client).await, Vec::<String>::new());
    drop(client);
    db.drop_db().await;
}

/// The SQLSTATE of `sql`'s failure.
async fn refused(client: &Client, sql: &str) -> String {
    let err = client
        .batch_execute(sql)
        .await
        .expect_err(&format!("{sql} must fail"));
    err.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

/// Plans the widening of `orders.id` and runs it up to the flip, checking what the plan says.
async fn flipped(db: &TestDb, client: &mut Client) -> Plan {
    client.batch_execute(SETUP).await.expect("setup");
    let p = plan(
        client,
        &PlanInput::sql("ALTER TABLE orders ALTER COLUMN id TYPE bigint"),
    )
    .await
    .expect("a key referenced by other tables is planned");
    assert_eq!(p.kind, PlanKind::ShadowTable, "{p:#?}");
    let carried = p.carried.describe().join("\n");
    assert!(
        carried.contains(r#"foreign key "invoices_order" of "public"."invoices" (FOREIGN KEY (order_id) REFERENCES public.orders(id)) NOT VALID"#)
            && carried.contains(r#"foreign key "lines_order_id_fkey" of "public"."lines" (FOREIGN KEY (order_id) REFERENCES public.orders(id) ON DELETE CASCADE)"#),
        "{carried}"
    );
    // The integer column referencing the widened key is named, with the migration to run next;
    // the bigint one is not.
    let warnings = p.warnings.join("\n");
    assert!(
        warnings.contains(r#""public"."lines"."order_id" (integer"#)
            && warnings.contains(
                r#"--sql 'ALTER TABLE "public"."lines" ALTER COLUMN "order_id" TYPE bigint'"#
            ),
        "{warnings}"
    );
    assert!(!warnings.contains("invoices"), "{warnings}");

    up_to_ready(db, client, &p).await;
    assert_eq!(
        keys(client).await,
        "invoices_order:orders:false,lines_order_id_fkey:orders:true"
    );
    run_in_tx(client, &p.flip).await;
    p
}

/// What every phase after the flip must hold: the keys reference the table named `orders` and
/// are enforced for every write.
async fn enforced(client: &Client, when: &str) {
    assert_eq!(
        refused(client, "INSERT INTO lines VALUES (100000, 99999)").await,
        "23503",
        "{when}: a line of a missing order"
    );
    assert_eq!(
        refused(client, "INSERT INTO invoices VALUES (100000, 99999)").await,
        "23503",
        "{when}: an invoice of a missing order (a NOT VALID key checks new rows)"
    );
    assert_eq!(
        refused(client, "DELETE FROM orders WHERE id = 7").await,
        "23503",
        "{when}: an order an invoice references"
    );
    // A cascade still cascades: order 150 has lines and no invoice.
    client
        .batch_execute("DELETE FROM orders WHERE id = 150")
        .await
        .expect("delete an order without invoices");
    assert_eq!(
        text(
            client,
            "SELECT count(*)::text FROM lines WHERE order_id = 150"
        )
        .await,
        "0",
        "{when}: its lines went with it"
    );
}

#[tokio::test]
async fn referencing_keys_follow_the_flip_then_complete() {
    let Some(db) = TestDb::create("plan_referencing_complete").await else {
        return;
    };
    let mut client = db.connect().await;
    let p = flipped(&db, &mut client).await;
    assert_eq!(
        key_types(&client).await,
        "integer,bigint",
        "the key widened, the column referencing it left (planned on its own)"
    );
    assert_eq!(
        keys(&client).await,
        "invoices_order:orders:false,lines_order_id_fkey:orders:false",
        "re-created NOT VALID on the new table inside the flip"
    );
    assert_eq!(
        text(
            &client,
            "SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint
              WHERE conname = 'lines_order_id_fkey'"
        )
        .await,
        "each line has its order"
    );
    enforced(&client, "flipped").await;
    // A key only the new type can hold is referenced by the bigint column.
    client
        .batch_execute(
            "INSERT INTO orders VALUES (3000000000, 'big');
             INSERT INTO invoices VALUES (3000000000, 3000000000);",
        )
        .await
        .expect("an invoice of an order past int4");

    run_each(&client, &p.complete).await;
    assert_eq!(
        keys(&client).await,
        "invoices_order:orders:false,lines_order_id_fkey:orders:true",
        "validated again as planned, the NOT VALID one left so"
    );
    enforced(&client, "completed").await;
    finished(client, db).await;
}

#[tokio::test]
async fn referencing_keys_go_back_with_a_revert() {
    let Some(db) = TestDb::create("plan_referencing_revert").await else {
        return;
    };
    let mut client = db.connect().await;
    let p = flipped(&db, &mut client).await;
    enforced(&client, "flipped").await;
    run_in_tx(&client, &p.revert).await;
    run_each(&client, &p.after_revert).await;
    assert_eq!(
        key_types(&client).await,
        "integer,integer",
        "the old table has the name again"
    );
    assert_eq!(
        keys(&client).await,
        "invoices_order:orders:false,lines_order_id_fkey:orders:true",
        "back on the old table, validated as before"
    );
    client
        .batch_execute("INSERT INTO lines VALUES (200000, 160)")
        .await
        .expect("a line of an order the old table holds");
    assert_eq!(
        refused(&client, "INSERT INTO lines VALUES (100001, 99999)").await,
        "23503"
    );
    finished(client, db).await;
}

fn message(r: Result<Plan, PlanError>) -> String {
    match r {
        Ok(p) => panic!("expected a refusal, got {p:#?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn keys_that_cannot_be_re_pointed_are_refused_before_anything_exists() {
    let Some(db) = TestDb::create("plan_referencing_refusals").await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE accounts (id int PRIMARY KEY);
             CREATE TABLE events (id int, account_id int REFERENCES accounts (id))
               PARTITION BY RANGE (id);
             CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (1000);",
        )
        .await
        .expect("setup");
    let e = message(
        plan(
            &client,
            &PlanInput::sql("ALTER TABLE accounts ALTER COLUMN id TYPE bigint"),
        )
        .await,
    );
    for needle in [
        "events_account_id_fkey",
        r#""public"."events" is partitioned"#,
        "add it again after `complete`",
    ] {
        assert!(e.contains(needle), "{e} lacks {needle:?}");
    }
    finished(client, db).await;
}

#[tokio::test]
async fn a_self_referencing_key_references_the_new_table() {
    let Some(db) = TestDb::create("plan_referencing_self").await else {
        return;
    };
    let mut client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE tree (id int PRIMARY KEY, parent int REFERENCES tree (id) ON DELETE CASCADE);
             INSERT INTO tree SELECT g, CASE WHEN g > 1 THEN g / 2 END FROM generate_series(1, 300) g;",
        )
        .await
        .expect("setup");
    let p = plan(
        &client,
        &PlanInput::sql("ALTER TABLE tree ALTER COLUMN id TYPE bigint"),
    )
    .await
    .expect("plan");
    up_to_ready(&db, &mut client, &p).await;
    run_in_tx(&client, &p.flip).await;
    assert_eq!(
        keys(&client).await,
        "tree_parent_fkey:tree:true,tree_parent_fkey__duet_old:tree__duet_old:true",
        "the new table's key references the new table; the old one's, parked, the old one"
    );
    client
        .batch_execute("DELETE FROM tree WHERE id = 2")
        .await
        .expect("delete a subtree");
    assert_eq!(
        text(&client, "SELECT count(*)::text FROM tree").await,
        // 2's subtree (ids 2, 4–5, 8–11, … up to 300) holds 172 of the 300 rows.
        "128",
        "the cascade removed the subtree of 2 in the new table"
    );
    assert_eq!(
        text(&client, "SELECT count(*)::text FROM tree__duet_old").await,
        "128",
        "and the safety net mirrored every cascaded delete into the old one"
    );
    run_each(&client, &p.complete).await;
    assert_eq!(keys(&client).await, "tree_parent_fkey:tree:true");
    finished(client, db).await;
}

/// Both tables' steps in one transaction, in the given order (a migration of several tables).
async fn run_together(client: &Client, steps: &[&[duet_shadow::plan::Step]]) {
    let all: Vec<duet_shadow::plan::Step> = steps.iter().flat_map(|s| s.iter().cloned()).collect();
    run_in_tx(client, &all).await;
}

/// The key and the column referencing it, planned as one migration of two tables: the
/// referencing table flips first, and the key's flip re-points the key on the new referencing
/// table; `complete` goes in the same order, a revert in the reverse one.
async fn key_and_referencing_column_together(db: &TestDb, client: &mut Client) -> Vec<Plan> {
    client.batch_execute(SETUP).await.expect("setup");
    let plans = plan_group(
        client,
        &PlanInput::sql(
            "ALTER TABLE orders ALTER COLUMN id TYPE bigint;
             ALTER TABLE lines ALTER COLUMN order_id TYPE bigint",
        ),
        GroupOptions::default(),
    )
    .await
    .expect("one migration of two tables");
    let tables: Vec<String> = plans.iter().map(|p| p.table.to_string()).collect();
    assert_eq!(
        tables,
        [r#""public"."lines""#, r#""public"."orders""#],
        "the referencing table flips first"
    );
    for p in &plans {
        assert_eq!(p.kind, PlanKind::ShadowTable, "{p:#?}");
        assert_eq!(
            p.group.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            tables
        );
    }
    assert!(
        !plans[1].warnings.iter().any(|w| w.contains("lines")),
        "no advice to migrate a column the migration changes: {:?}",
        plans[1].warnings
    );
    for p in &plans {
        up_to_ready(db, client, p).await;
    }
    run_together(client, &[&plans[0].flip, &plans[1].flip]).await;
    plans
}

#[tokio::test]
async fn a_key_and_its_referencing_column_flip_together_then_complete() {
    let Some(db) = TestDb::create("plan_referencing_group_complete").await else {
        return;
    };
    let mut client = db.connect().await;
    let plans = key_and_referencing_column_together(&db, &mut client).await;
    assert_eq!(key_types(&client).await, "bigint,bigint");
    assert_eq!(
        keys(&client).await,
        "invoices_order:orders:false,lines_order_id_fkey:orders:false,lines_order_id_fkey__duet_old:orders__duet_old:true",
        "the new tables' keys reference the new table; the old lines' parked key the old orders"
    );
    enforced(&client, "flipped").await;
    client
        .batch_execute(
            "INSERT INTO orders VALUES (3000000000, 'big');
             INSERT INTO lines VALUES (300000, 3000000000);",
        )
        .await
        .expect("a line of an order past int4");
    run_each(&client, &plans[0].complete).await;
    run_each(&client, &plans[1].complete).await;
    assert_eq!(
        keys(&client).await,
        "invoices_order:orders:false,lines_order_id_fkey:orders:true"
    );
    enforced(&client, "completed").await;
    finished(client, db).await;
}

#[tokio::test]
async fn a_key_and_its_referencing_column_revert_together() {
    let Some(db) = TestDb::create("plan_referencing_group_revert").await else {
        return;
    };
    let mut client = db.connect().await;
    let plans = key_and_referencing_column_together(&db, &mut client).await;
    enforced(&client, "flipped").await;
    run_together(&client, &[&plans[1].revert, &plans[0].revert]).await;
    run_each(&client, &plans[1].after_revert).await;
    run_each(&client, &plans[0].after_revert).await;
    assert_eq!(key_types(&client).await, "integer,integer");
    assert_eq!(
        keys(&client).await,
        "invoices_order:orders:false,lines_order_id_fkey:orders:true"
    );
    enforced(&client, "reverted").await;
    finished(client, db).await;
}

#[tokio::test]
async fn tables_that_reference_each_other_are_refused_together() {
    let Some(db) = TestDb::create("plan_referencing_cycle").await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY, b_id int);
             CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));
             ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b (id);",
        )
        .await
        .expect("setup");
    let e = plan_group(
        &client,
        &PlanInput::sql(
            "ALTER TABLE a ALTER COLUMN id TYPE bigint; ALTER TABLE b ALTER COLUMN id TYPE bigint",
        ),
        GroupOptions::default(),
    )
    .await
    .expect_err("a cycle");
    assert!(
        e.to_string().contains("reference each other") && e.to_string().contains("one at a time"),
        "{e}"
    );
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn a_pgroll_file_with_operations_on_two_tables_is_one_migration() {
    let Some(db) = TestDb::create("plan_referencing_pgroll").await else {
        return;
    };
    let client = db.connect().await;
    client.batch_execute(SETUP).await.expect("setup");
    let yaml = r#"
name: 07_order_ids_bigint
operations:
  - alter_column:
      table: orders
      column: id
      type: bigint
  - alter_column:
      table: lines
      column: order_id
      type: bigint
"#;
    let plans = plan_group(
        &client,
        &PlanInput::Pgroll {
            text: yaml.into(),
            file_name: "07_order_ids_bigint.yaml".into(),
            shadow_column: false,
        },
        GroupOptions::default(),
    )
    .await
    .expect("one migration of two tables");
    let tables: Vec<String> = plans.iter().map(|p| p.table.to_string()).collect();
    assert_eq!(tables, [r#""public"."lines""#, r#""public"."orders""#]);
    for p in &plans {
        assert_eq!(p.kind, PlanKind::ShadowTable, "{p:#?}");
        assert_eq!(p.group.len(), 2);
        match &p.input {
            PlanInput::Pgroll { file_name, .. } => assert!(
                file_name.starts_with("07_order_ids_bigint.yaml (operations on "),
                "{file_name}"
            ),
            other => panic!("{other:?}"),
        }
    }
    drop(client);
    db.drop_db().await;
}

#[tokio::test]
async fn a_widened_key_takes_its_narrower_referencing_columns_along_unless_told_not_to() {
    let Some(db) = TestDb::create("plan_referencing_auto").await else {
        return;
    };
    let client = db.connect().await;
    client.batch_execute(SETUP).await.expect("setup");
    let key = PlanInput::sql("ALTER TABLE orders ALTER COLUMN id TYPE bigint");
    // By default: lines.order_id (integer) is widened in the same migration; invoices.order_id
    // is bigint already.
    let plans = plan_group(&client, &key, GroupOptions::default())
        .await
        .expect("planned");
    let tables: Vec<String> = plans.iter().map(|p| p.table.to_string()).collect();
    assert_eq!(tables, [r#""public"."lines""#, r#""public"."orders""#]);
    assert!(
        plans[0].warnings.iter().any(|w| w
            .contains(r#""public"."lines"."order_id" (integer) references "public"."orders"."id", which becomes bigint: widened to bigint in the same migration"#)),
        "{:?}",
        plans[0].warnings
    );
    assert!(
        !plans[1]
            .warnings
            .iter()
            .any(|w| w.contains("Migrate it next")),
        "{:?}",
        plans[1].warnings
    );
    // Told to leave them: the key alone, and the plan names the column to migrate later.
    let alone = plan_group(
        &client,
        &key,
        GroupOptions {
            keep_referencing_types: true,
        },
    )
    .await
    .expect("planned");
    assert_eq!(alone.len(), 1);
    assert!(
        alone[0]
            .warnings
            .iter()
            .any(|w| w.contains("Migrate it next")),
        "{:?}",
        alone[0].warnings
    );
    drop(client);
    db.drop_db().await;
}
