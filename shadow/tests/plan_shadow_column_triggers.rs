//! A shadow column is filled by an UPDATE of every row, so a table whose own triggers fire on any
//! UPDATE is refused for it before anything is created (such a trigger would fire for every row
//! besides the application's writes: an audit trigger would log the whole table). Found by a
//! twin-table sweep with an audit trigger: 20 000 extra audit rows. Triggers restricted to their
//! columns (`UPDATE OF …`), disabled ones, and the shadow-table strategy are not affected.

mod migrate_support;

use duet_shadow::plan::{plan, PlanError, PlanInput, PlanKind};
use migrate_support::TestDb;

fn shadow_column(sql: &str) -> PlanInput {
    PlanInput::Sql {
        sql: sql.into(),
        shadow_column: true,
    }
}

#[tokio::test]
async fn a_shadow_column_is_refused_for_tables_whose_triggers_fire_on_any_update() {
    let Some(db) = TestDb::create("plan_column_triggers").await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE audit (op text);
             CREATE FUNCTION log_op() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO audit VALUES (TG_OP); RETURN NULL; END $$;
             CREATE TABLE logged (id int PRIMARY KEY, n int, note text);
             CREATE TRIGGER \"Audit Me\" AFTER INSERT OR DELETE OR UPDATE ON logged
               FOR EACH ROW EXECUTE FUNCTION log_op();
             CREATE TABLE per_statement (id int PRIMARY KEY, n int);
             CREATE TRIGGER s AFTER UPDATE ON per_statement
               FOR EACH STATEMENT EXECUTE FUNCTION log_op();
             CREATE TABLE watched (id int PRIMARY KEY, n int, note text);
             CREATE TRIGGER w AFTER UPDATE OF note ON watched
               FOR EACH ROW EXECUTE FUNCTION log_op();
             CREATE TRIGGER i AFTER INSERT ON watched FOR EACH ROW EXECUTE FUNCTION log_op();
             CREATE TABLE switched_off (id int PRIMARY KEY, n int);
             CREATE TRIGGER off AFTER UPDATE ON switched_off
               FOR EACH ROW EXECUTE FUNCTION log_op();
             ALTER TABLE switched_off DISABLE TRIGGER off;",
        )
        .await
        .expect("setup");

    for (table, trigger) in [("logged", "\"Audit Me\""), ("per_statement", "s")] {
        let sql = format!("ALTER TABLE {table} ALTER COLUMN n TYPE bigint");
        match plan(&client, &shadow_column(&sql)).await {
            Err(PlanError::Unsupported(message)) => {
                for needle in [trigger, "fire on UPDATE", "without --shadow-column"] {
                    assert!(
                        message.contains(needle),
                        "{sql}: {message} lacks {needle:?}"
                    );
                }
            }
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
        // The default strategy carries the trigger and fires it once per application write.
        let p = plan(&client, &PlanInput::sql(&sql))
            .await
            .unwrap_or_else(|e| panic!("{sql} as a shadow table: {e}"));
        assert_eq!(p.kind, PlanKind::ShadowTable);
    }
    for table in ["watched", "switched_off"] {
        let sql = format!("ALTER TABLE {table} ALTER COLUMN n TYPE bigint");
        let p = plan(&client, &shadow_column(&sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(p.kind, PlanKind::ShadowColumn, "{sql}");
    }
    let logged: i64 = client
        .query_one("SELECT count(*) FROM audit", &[])
        .await
        .expect("audit")
        .get(0);
    assert_eq!(logged, 0, "planning wrote nothing");
}
