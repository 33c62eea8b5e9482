//! What a shadow migration carries over (views, triggers, row-level security), against the real
//! PostgreSQL: planned on a table that has them, the plan's steps run by hand in the controller's
//! order, and the outcome checked after the flip, a revert and a complete — views reading the side
//! that has the table's name (with their options, owner, privileges and comments), triggers firing
//! on exactly one side, policies on the new table; and what cannot be carried refused up front.

mod migrate_support;

use duet_shadow::plan::carried::{differences, uncarried_dependents};
use duet_shadow::plan::{plan, Plan, PlanError, PlanInput, PlanKind};
use migrate_support::steps::{run_each, run_in_tx, text, up_to_ready};
use migrate_support::TestDb;
use tokio_postgres::Client;

/// Drops `role` (the test's database is gone by then, and with it everything the role had).
async fn drop_role(role: &str) {
    let (admin, connection) = tokio_postgres::connect(
        &format!("{} dbname=postgres", migrate_support::base_url()),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect to postgres");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await
        .expect("drop the test's role");
}

async fn count(client: &Client, q: &str) -> i64 {
    client
        .query_one(q, &[])
        .await
        .unwrap_or_else(|e| panic!("{q}: {e:?}"))
        .get(0)
}

/// `acc` with a view and a view over it (options, grants, comments), a materialized view with an
/// index, an audit trigger, and row-level security for the role `carry_app` (each test its own
/// role: roles are the whole cluster's).
fn setup(role: &str) -> String {
    SETUP.replace("carry_app", role)
}

const SETUP: &str = "
    DO $$ BEGIN CREATE ROLE carry_app; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
    CREATE TABLE acc (id int PRIMARY KEY, owner text NOT NULL, amount int);
    INSERT INTO acc SELECT g, CASE WHEN g % 2 = 0 THEN 'carry_app' ELSE 'other' END, g FROM generate_series(1, 200) g;
    CREATE TABLE audit (op text NOT NULL, id bigint NOT NULL);
    CREATE FUNCTION audit_acc() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO audit VALUES (TG_OP, coalesce(NEW.id, OLD.id)); RETURN NULL; END $$;
    CREATE TRIGGER acc_audit AFTER INSERT OR DELETE OR UPDATE OF amount ON acc
      FOR EACH ROW WHEN (pg_trigger_depth() < 2) EXECUTE FUNCTION audit_acc();
    CREATE TRIGGER acc_replica AFTER INSERT ON acc FOR EACH ROW EXECUTE FUNCTION audit_acc();
    ALTER TABLE acc ENABLE REPLICA TRIGGER acc_replica;
    COMMENT ON TRIGGER acc_audit ON acc IS 'one audit row per write';
    CREATE VIEW acc_v WITH (security_invoker = true, security_barrier = true) AS
      SELECT id, owner, amount FROM acc WHERE amount >= 0 WITH LOCAL CHECK OPTION;
    CREATE VIEW acc_v2 AS SELECT id, amount * 2 AS doubled FROM acc_v;
    COMMENT ON VIEW acc_v IS 'the accounts';
    COMMENT ON COLUMN acc_v.amount IS 'in cents';
    GRANT SELECT ON acc_v, acc_v2 TO carry_app;
    GRANT SELECT (id) ON acc_v2 TO PUBLIC;
    CREATE MATERIALIZED VIEW acc_totals AS SELECT owner, sum(amount) AS total FROM acc GROUP BY owner;
    CREATE UNIQUE INDEX acc_totals_owner ON acc_totals (owner);
    GRANT SELECT ON acc, audit TO carry_app;
    ALTER TABLE acc ENABLE ROW LEVEL SECURITY;
    CREATE POLICY acc_mine ON acc FOR ALL TO carry_app USING (owner = current_user);
    COMMENT ON POLICY acc_mine ON acc IS 'tenant rows';";

/// What `role` sees of `relation`, as one string.
async fn seen_by(client: &Client, role: &str, relation: &str) -> String {
    client
        .batch_execute(&format!("SET ROLE {role}"))
        .await
        .expect("set role");
    let seen = text(
        client,
        &format!("SELECT count(*)::text || ':' || coalesce(sum(id), 0)::text FROM {relation}"),
    )
    .await;
    client
        .batch_execute("RESET ROLE")
        .await
        .expect("reset role");
    seen
}

/// The definition, options, owner, privileges and comments of each carried view, as text.
async fn views_described(client: &Client) -> String {
    text(
        client,
        "SELECT string_agg(c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.reloptions::text, '-')
                || ' ' || pg_get_userbyid(c.relowner) || ' ' || coalesce(c.relacl::text, '-')
                || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
                || ' ' || coalesce(col_description(c.oid, 3), '-')
                || ' ' || (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid), '; ' ORDER BY c.relname)
           FROM pg_class c WHERE c.relname IN ('acc_v', 'acc_v2', 'acc_totals')",
    )
    .await
}

/// Which table each trigger is enabled on (`table:trigger:state`).
async fn trigger_states(client: &Client) -> String {
    text(
        client,
        "SELECT string_agg(tgrelid::regclass::text || ':' || tgname || ':' || tgenabled::text, ',' ORDER BY 1)
           FROM pg_trigger WHERE tgname LIKE 'acc\\_%' AND NOT tgisinternal",
    )
    .await
}

async fn carried_plan(db: &TestDb, role: &str) -> (Client, Plan) {
    let client = db.connect().await;
    client.batch_execute(&setup(role)).await.expect("setup");
    let p = plan(
        &client,
        &PlanInput::sql("ALTER TABLE acc ALTER COLUMN id TYPE bigint"),
    )
    .await
    .expect("a table with views, triggers and row-level security is planned");
    assert_eq!(p.kind, PlanKind::ShadowTable);
    let carried = p.carried.describe();
    assert_eq!(
        carried,
        vec![
            "materialized view \"public\".\"acc_totals\" (refreshed inside the cutover when it holds rows)".to_string(),
            "view \"public\".\"acc_v\"".into(),
            "view \"public\".\"acc_v2\"".into(),
            "trigger \"acc_audit\"".into(),
            "trigger \"acc_replica\" (replica only)".into(),
            "row-level security enabled".into(),
            format!("policy \"acc_mine\" (permissive, FOR ALL, TO {role}, USING ((owner = CURRENT_USER)))"),
        ],
        "{p:#?}"
    );
    assert!(p.writes_mirrored_by_net_only());
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("acc_totals") && w.contains("refreshed when it holds rows")),
        "{:?}",
        p.warnings
    );
    (client, p)
}

#[tokio::test]
async fn views_triggers_and_policies_follow_the_flip_then_complete() {
    let Some(db) = TestDb::create("carried_complete").await else {
        return;
    };
    let role = "carry_app_complete";
    let (mut client, p) = carried_plan(&db, role).await;
    let before = views_described(&client).await;
    let app_before = seen_by(&client, role, "acc").await;
    assert_eq!(seen_by(&client, role, "acc_v").await, app_before);
    up_to_ready(&db, &mut client, &p).await;
    // The shadow is out of the application's reach until the flip.
    assert_eq!(seen_by(&client, role, "acc__duet").await, "0:0");

    run_in_tx(&client, &p.flip).await;
    assert_eq!(views_described(&client).await, before, "views as they were");
    assert_eq!(
        text(&client, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'acc_v2'::regclass AND attname = 'id'").await,
        "bigint",
        "the view over the view reads the new table"
    );
    assert_eq!(
        trigger_states(&client).await,
        "acc__duet_old:acc_audit:D,acc__duet_old:acc_replica:D,acc:acc_audit:O,acc:acc_replica:R"
    );
    assert_eq!(
        text(&client, "SELECT obj_description(oid, 'pg_trigger') FROM pg_trigger WHERE tgname = 'acc_audit' AND tgrelid = 'acc'::regclass").await,
        "one audit row per write"
    );
    assert_eq!(seen_by(&client, role, "acc").await, app_before);
    assert_eq!(seen_by(&client, role, "acc_v").await, app_before);
    let audited = count(&client, "SELECT count(*) FROM audit").await;
    client
        .batch_execute("INSERT INTO acc VALUES (3000000000, 'carry_app', 1); UPDATE acc SET amount = amount + 1 WHERE id = 2")
        .await
        .expect("writes after the flip");
    assert_eq!(
        count(&client, "SELECT count(*) FROM audit").await,
        audited + 2,
        "the new table's trigger fired once per write"
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM acc_v2 WHERE id = 3000000000").await,
        1
    );
    assert_eq!(
        text(
            &client,
            "SELECT total::text FROM acc_totals WHERE owner = 'other'"
        )
        .await,
        text(
            &client,
            "SELECT sum(amount)::text FROM acc WHERE owner = 'other'"
        )
        .await,
        "the materialized view was refreshed over the new table"
    );
    // The cutover's check: nothing changed since planning, nothing uncarried depends on it.
    let acc = p.table.clone();
    assert!(differences(&client, &acc, &p.carried, false)
        .await
        .expect("differences")
        .is_empty());
    assert!(uncarried_dependents(&client, &acc, &p.carried)
        .await
        .expect("dependents")
        .is_empty());

    run_each(&client, &p.complete).await;
    assert_eq!(views_described(&client).await, before);
    assert_eq!(
        trigger_states(&client).await,
        "acc:acc_audit:O,acc:acc_replica:R"
    );
    drop(client);
    db.drop_db().await;
    drop_role(role).await;
}

#[tokio::test]
async fn views_triggers_and_policies_come_back_at_a_revert() {
    let Some(db) = TestDb::create("carried_revert").await else {
        return;
    };
    let role = "carry_app_revert";
    let (mut client, p) = carried_plan(&db, role).await;
    let before = views_described(&client).await;
    let states = trigger_states(&client).await;
    let app_before = seen_by(&client, role, "acc").await;
    up_to_ready(&db, &mut client, &p).await;
    run_in_tx(&client, &p.flip).await;
    client
        .batch_execute("UPDATE acc SET amount = amount + 1 WHERE id = 4")
        .await
        .expect("a write after the flip");
    run_in_tx(&client, &p.revert).await;
    run_each(&client, &p.after_revert).await;
    assert_eq!(views_described(&client).await, before);
    assert_eq!(trigger_states(&client).await, states);
    assert_eq!(
        text(&client, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'acc_v2'::regclass AND attname = 'id'").await,
        "integer",
        "the view reads the old table again"
    );
    assert_eq!(seen_by(&client, role, "acc").await, app_before);
    let audited = count(&client, "SELECT count(*) FROM audit").await;
    client
        .batch_execute("DELETE FROM acc WHERE id = 6")
        .await
        .expect("a write after the revert");
    assert_eq!(
        count(&client, "SELECT count(*) FROM audit").await,
        audited + 1
    );
    drop(client);
    db.drop_db().await;
    drop_role(role).await;
}

/// A shadow column's table keeps its triggers and policies, created again at the swap so they
/// name the column that has the name; `complete` can then drop the old column.
#[tokio::test]
async fn a_shadow_column_swap_rebinds_views_triggers_and_policies() {
    let Some(db) = TestDb::create("carried_column").await else {
        return;
    };
    let mut client = db.connect().await;
    client
        .batch_execute(&setup("carry_app_column"))
        .await
        .expect("setup");
    let p = plan(
        &client,
        &PlanInput::Sql {
            sql: "ALTER TABLE acc ALTER COLUMN amount TYPE bigint".into(),
            shadow_column: true,
        },
    )
    .await
    .expect("plan");
    assert_eq!(p.kind, PlanKind::ShadowColumn);
    assert!(!p.writes_mirrored_by_net_only());
    let before = views_described(&client).await;
    up_to_ready(&db, &mut client, &p).await;
    run_in_tx(&client, &p.flip).await;
    assert_eq!(
        text(&client, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'acc_v2'::regclass AND attname = 'doubled'").await,
        "bigint"
    );
    let audited = count(&client, "SELECT count(*) FROM audit").await;
    client
        .batch_execute("UPDATE acc SET amount = 5000000000 WHERE id = 8")
        .await
        .expect("an update of the new column");
    assert_eq!(
        count(&client, "SELECT count(*) FROM audit").await,
        audited + 1,
        "UPDATE OF amount names the new column"
    );
    run_each(&client, &p.complete).await;
    assert_eq!(views_described(&client).await, before);
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM acc_v2 WHERE doubled = 10000000000"
        )
        .await,
        1
    );
    drop(client);
    db.drop_db().await;
    drop_role("carry_app_column").await;
}

/// A refusal's message.
fn refusal(r: Result<Plan, PlanError>) -> String {
    match r {
        Ok(p) => panic!("expected a refusal, got {p:#?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn what_cannot_be_carried_is_refused_naming_it() {
    let Some(db) = TestDb::create("carried_refusals").await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY, v int);
             CREATE FUNCTION a_count() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM a; END;
             CREATE TABLE b (id int PRIMARY KEY, v int);
             CREATE VIEW b_v AS SELECT id, v FROM b;
             CREATE FUNCTION b_label(b_v) RETURNS text LANGUAGE sql AS 'SELECT $1.id::text';
             CREATE TABLE c (id int PRIMARY KEY, v int);
             CREATE TABLE d (id int PRIMARY KEY);
             CREATE TABLE acc_plain (id int PRIMARY KEY);
             ALTER TABLE d ENABLE ROW LEVEL SECURITY;
             CREATE POLICY d_reads_c ON d USING (EXISTS (SELECT 1 FROM c WHERE c.id = d.id));",
        )
        .await
        .expect("setup");
    for (table, needle) in [
        ("a", "function a_count()"),
        ("b", "function b_label(b_v)"),
        ("c", "policy d_reads_c on table d"),
    ] {
        let message = refusal(
            plan(
                &client,
                &PlanInput::sql(format!("ALTER TABLE {table} ALTER COLUMN id TYPE bigint")),
            )
            .await,
        );
        assert!(
            message.contains(needle) && message.contains("re-create them after `complete`"),
            "{table}: {message}"
        );
    }
    // duet's role must see every row: as the table's owner (not a superuser) it may migrate a
    // table that enforces row-level security, but not one that forces it on its owner.
    client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE carry_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             CREATE TABLE e (id int PRIMARY KEY, v int);
             ALTER TABLE e OWNER TO carry_owner;
             ALTER TABLE e ENABLE ROW LEVEL SECURITY;
             ALTER TABLE e FORCE ROW LEVEL SECURITY;
             CREATE POLICY e_none ON e USING (false);
             SET ROLE carry_owner;",
        )
        .await
        .expect("a table owned by a role that is no superuser");
    let e = PlanInput::sql("ALTER TABLE e ALTER COLUMN id TYPE bigint");
    let message = refusal(plan(&client, &e).await);
    assert!(
        message.contains("BYPASSRLS") && message.contains("FORCE"),
        "{message}"
    );
    client
        .batch_execute("ALTER TABLE e NO FORCE ROW LEVEL SECURITY")
        .await
        .expect("no force");
    let p = plan(&client, &e)
        .await
        .expect("the owner bypasses the policies it does not force on itself");
    assert!(p.writes_mirrored_by_net_only());
    client
        .batch_execute("RESET ROLE")
        .await
        .expect("reset role");
    // Nothing carried and nothing bound: the check's one query says so; a trigger made after
    // planning is named all the same.
    let plain = plan(
        &client,
        &PlanInput::sql("ALTER TABLE acc_plain ALTER COLUMN id TYPE bigint"),
    )
    .await
    .expect("a plain table is planned");
    assert!(plain.carried.is_empty());
    assert!(differences(&client, &plain.table, &plain.carried, true)
        .await
        .expect("differences")
        .is_empty());
    client
        .batch_execute(
            "CREATE FUNCTION nothing() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
             CREATE TRIGGER plain_late AFTER INSERT ON acc_plain FOR EACH ROW EXECUTE FUNCTION nothing();",
        )
        .await
        .expect("a trigger made after planning");
    assert_eq!(
        differences(&client, &plain.table, &plain.carried, true)
            .await
            .expect("differences"),
        vec!["trigger \"plain_late\" on \"public\".\"acc_plain\" was made".to_string()]
    );
    // Made after planning: the cutover's check names it.
    let p = plan(
        &client,
        &PlanInput::sql("ALTER TABLE d ALTER COLUMN id TYPE bigint"),
    )
    .await
    .expect("d is planned");
    client
        .batch_execute(
            "CREATE TRIGGER d_late AFTER INSERT ON d FOR EACH ROW EXECUTE FUNCTION nothing();
             CREATE POLICY d_late ON d USING (true);",
        )
        .await
        .expect("objects made after planning");
    let found = differences(&client, &p.table, &p.carried, true)
        .await
        .expect("differences");
    assert_eq!(
        found,
        vec![
            "trigger \"d_late\" on \"public\".\"d\" was made".to_string(),
            "policy \"d_late\" on \"public\".\"d\" was made".into(),
        ]
    );
    drop(client);
    db.drop_db().await;
    drop_role("carry_owner").await;
}
