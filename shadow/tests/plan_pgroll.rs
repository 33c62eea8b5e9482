//! pgroll-format input (YAML and JSON) planned against the real PostgreSQL: each operation maps
//! to the same plan as its SQL form.

mod migrate_support;

use duet_shadow::plan::{plan, CopySpec, PlanError, PlanInput, PlanKind};
use duet_shadow::rewrite::Target;
use migrate_support::TestDb;

fn pgroll(text: &str, file: &str) -> PlanInput {
    PlanInput::Pgroll {
        text: text.into(),
        file_name: file.into(),
        shadow_column: false,
    }
}

const SETUP: &str = "CREATE TABLE acc (id int PRIMARY KEY, amount int NOT NULL, note text);
     INSERT INTO acc SELECT g, g, 'n' || g FROM generate_series(1, 20) g;";

#[tokio::test]
async fn yaml_and_json_operations_plan_like_sql() {
    let Some(db) = TestDb::create("plan_pgroll").await else {
        return;
    };
    let client = db.connect().await;
    client.batch_execute(SETUP).await.expect("setup");

    let yaml = r#"
name: 02_amount_bigint
operations:
  - alter_column:
      table: acc
      column: amount
      type: bigint
      up: amount * 100
      down: amount / 100
"#;
    // By default a shadow table (it keeps the column order) carrying `up` and `down`.
    let p = plan(&client, &pgroll(yaml, "02_amount_bigint.yaml"))
        .await
        .expect("alter_column plan");
    assert_eq!(p.kind, PlanKind::ShadowTable, "{p:#?}");
    match &p.copy {
        Some(CopySpec::Table(target)) => {
            let amount = target.mapping.iter().find(|m| m.target == "amount");
            assert_eq!(
                amount.map(|m| m.expr.as_str()),
                Some("(amount * 100)::bigint")
            );
        }
        other => panic!("{other:?}"),
    }
    match &p.flipped_route.as_ref().expect("flipped").target {
        Target::ShadowTable { mapping, .. } => {
            let amount = mapping.iter().find(|m| m.target == "amount");
            assert_eq!(
                amount.map(|m| m.expr.as_str()),
                Some("(amount / 100)::integer")
            );
        }
        other => panic!("{other:?}"),
    }
    // With the operator's consent, a shadow column.
    let mut input = pgroll(yaml, "02_amount_bigint.yaml");
    if let PlanInput::Pgroll { shadow_column, .. } = &mut input {
        *shadow_column = true;
    }
    let p = plan(&client, &input).await.expect("alter_column plan");
    assert_eq!(p.kind, PlanKind::ShadowColumn, "{p:#?}");
    match &p.copy {
        Some(CopySpec::Column(spec)) => {
            assert_eq!(spec.column, "amount__duet");
            assert_eq!(spec.expr, "(amount * 100)::bigint");
        }
        other => panic!("{other:?}"),
    }
    match &p.flipped_route.as_ref().expect("flipped").target {
        Target::ShadowColumn { column, expr, .. } => {
            assert_eq!(column, "amount__duet_old");
            assert_eq!(expr, "(amount / 100)::integer");
        }
        other => panic!("{other:?}"),
    }

    let json = r#"{"name": "03_rename", "operations": [
        {"rename_column": {"table": "acc", "from": "note", "to": "remark"}}]}"#;
    let p = plan(&client, &pgroll(json, "03_rename.json"))
        .await
        .expect("rename plan");
    assert_eq!(p.kind, PlanKind::Rename);
    assert!(p.flip[0]
        .sql
        .contains("RENAME COLUMN \"note\" TO \"remark\""));

    let json = r#"{"name": "04_rename_via_alter", "operations": [
        {"alter_column": {"table": "acc", "column": "note", "name": "remark"}}]}"#;
    let p = plan(&client, &pgroll(json, ""))
        .await
        .expect("alter rename");
    assert_eq!(p.kind, PlanKind::Rename);

    let yaml = r#"
name: 05_index_and_column
operations:
  - create_index:
      name: acc_note_idx
      table: acc
      columns: [note]
  - add_column:
      table: acc
      column:
        name: extra
        type: text
        default: "'x'"
        nullable: false
"#;
    let p = plan(&client, &pgroll(yaml, "05.yaml"))
        .await
        .expect("index plan");
    assert_eq!(p.kind, PlanKind::InPlace, "{p:#?}");
    assert!(p.expand[0].outside_transaction);
    for s in &p.expand {
        client.batch_execute(&s.sql).await.expect(&s.sql);
    }
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM acc WHERE extra = 'x' AND to_regclass('acc_note_idx') IS NOT NULL",
            &[],
        )
        .await
        .expect("applied")
        .get(0);
    assert_eq!(n, 20);

    let yaml = "name: 06\noperations:\n  - drop_column:\n      table: acc\n      column: extra\n  - drop_index:\n      name: acc_note_idx\n";
    let p = plan(&client, &pgroll(yaml, "06.yaml"))
        .await
        .expect("drop plan");
    assert_eq!(p.kind, PlanKind::InPlace);
    assert!(p.reason.contains("contract"), "{}", p.reason);
    for s in &p.expand {
        client.batch_execute(&s.sql).await.expect(&s.sql);
    }

    // A CHECK constraint (NOT VALID, then VALIDATE) and NOT NULL (through a validated CHECK).
    let yaml = r#"
name: 07_constraints
operations:
  - create_constraint:
      table: acc
      name: acc_amount_positive
      type: check
      check: amount > 0
  - alter_column:
      table: acc
      column: note
      nullable: false
"#;
    let p = plan(&client, &pgroll(yaml, "07.yaml"))
        .await
        .expect("constraint plan");
    assert_eq!(p.kind, PlanKind::InPlace, "{p:#?}");
    assert!(
        p.expand.iter().any(|s| s.sql.contains("NOT VALID")),
        "{p:#?}"
    );
    for s in &p.expand {
        client.batch_execute(&s.sql).await.expect(&s.sql);
    }
    let row = client
        .query_one(
            "SELECT (SELECT convalidated FROM pg_constraint WHERE conname = 'acc_amount_positive'),
                    (SELECT attnotnull FROM pg_attribute WHERE attrelid = 'acc'::regclass AND attname = 'note')",
            &[],
        )
        .await
        .expect("applied");
    assert_eq!(
        (row.get::<_, bool>(0), row.get::<_, bool>(1)),
        (true, true),
        "the check is validated and note is NOT NULL"
    );

    let bad = "name: x\noperations:\n  - alter_column:\n      table: acc\n      column: amount\n      type: \"int; DROP TABLE acc\"\n";
    let e = plan(&client, &pgroll(bad, "bad.yaml"))
        .await
        .expect_err("injection");
    assert!(matches!(e, PlanError::Invalid(_)), "{e}");
    let e = plan(
        &client,
        &pgroll(
            "name: x\noperations:\n  - create_table:\n      name: t\n",
            "y.yaml",
        ),
    )
    .await
    .expect_err("create_table");
    assert!(
        matches!(&e, PlanError::Unsupported(m) if m.contains("create_table")),
        "{e}"
    );
    let e = plan(&client, &pgroll("operations: [", "broken.yaml"))
        .await
        .expect_err("broken yaml");
    assert!(
        matches!(&e, PlanError::Invalid(m) if m.contains("broken.yaml")),
        "{e}"
    );
    drop(client);
    db.drop_db().await;
}
