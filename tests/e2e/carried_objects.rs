//! A table with a view, a view over that view, an audit trigger writing to another table and
//! row-level security, changed from int to bigint keys online while a non-owner application role
//! writes it through duet: the views, the trigger and the policies are carried over at the cutover
//! (and back at a revert), so in every phase
//!
//! - the trigger writes exactly one audit row per application write (counted against the writes
//!   the clients made: the shadow's copy, dual-writes and mirrors fire nothing);
//! - the role sees exactly the rows its policies allow, through the table and through the view,
//!   and may insert rows its policies then hide (which a rewritten `INSERT … RETURNING` could not:
//!   such a table is mirrored by the safety net alone);
//! - after the cutover the views read the new table (a key beyond 2^31 is visible through the
//!   view over the view) and have the new column type;
//!
//! and the table holds exactly the rows the clients wrote. The same without row-level security
//! exercises the rewrite's path with the trigger and the views. `plan` names what it carries; a
//! trigger made straight on PostgreSQL after planning makes the cutover refuse, naming it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, SimpleQueryMessage};

use crate::support::backend_or_skip;
use crate::support::database::describe;
use crate::support::duet_process::{through, DuetProcess};
use crate::support::migration::{
    assert_clean, column_type, cutover_retried, migrate_sql, migrate_sql_shadow_column, request,
    rows_as_text, settle, wait_phase,
};
use crate::support::pg_client::{connect, Session};
use crate::support::{Backend, TestDatabase};

const ROWS: i64 = 2_000;
const WRITERS: usize = 4;
/// Each writer's keys start at `FIRST_KEY + writer * 1_000_000` (within int4).
const FIRST_KEY: i64 = 100_000_000;
/// The key beyond int4 written after the cutover of the key's type (a shadow table).
const BIG_KEY: i64 = 3_000_000_000;
/// The key of the row with an amount beyond int4 written after the cutover of the amount's type
/// (a shadow column).
const BIG_AMOUNT_KEY: i64 = 2_000_000_000;
/// The amount beyond int4.
const BIG_AMOUNT: i64 = 5_000_000_000;

/// The schema, the table with its views, trigger and (with `rls`) policies, and the role. With
/// `update_of`, the trigger lists the columns it watches on UPDATE (`UPDATE OF …`): a shadow
/// column is refused for a table whose triggers fire on any UPDATE, since its backfill updates
/// every row.
fn setup_sql(schema: &str, role: &str, rls: bool, update_of: bool) -> String {
    let update = if update_of {
        "UPDATE OF id, owner, label, amount"
    } else {
        "UPDATE"
    };
    let mut sql = format!(
        "DO $r$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $r$;
         CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id int PRIMARY KEY, owner text NOT NULL, label text NOT NULL, amount int);
         INSERT INTO {schema}.t SELECT g, CASE WHEN g % 3 = 0 THEN '{role}' ELSE 'other' END, 'r' || g, g
           FROM generate_series(1, {ROWS}) g;
         CREATE TABLE {schema}.audit (seq bigserial PRIMARY KEY, op text NOT NULL, id bigint NOT NULL);
         CREATE FUNCTION {schema}.audit_t() RETURNS trigger LANGUAGE plpgsql AS $f$
           BEGIN
             INSERT INTO {schema}.audit (op, id) VALUES (TG_OP, coalesce(NEW.id, OLD.id));
             RETURN NULL;
           END $f$;
         CREATE TRIGGER t_audit AFTER INSERT OR {update} OR DELETE ON {schema}.t
           FOR EACH ROW EXECUTE FUNCTION {schema}.audit_t();
         CREATE VIEW {schema}.v WITH (security_invoker = true) AS
           SELECT id, owner, label, amount FROM {schema}.t;
         COMMENT ON VIEW {schema}.v IS 'the rows, as the reader may see them';
         CREATE VIEW {schema}.v2 AS SELECT id, label FROM {schema}.v WHERE amount IS NOT NULL;
         GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.t TO {role};
         GRANT SELECT ON {schema}.v, {schema}.v2 TO {role};
         GRANT INSERT ON {schema}.audit TO {role};
         GRANT USAGE ON SEQUENCE {schema}.audit_seq_seq TO {role};
         ANALYZE {schema}.t;"
    );
    if rls {
        sql.push_str(&format!(
            "ALTER TABLE {schema}.t ENABLE ROW LEVEL SECURITY;
             CREATE POLICY mine ON {schema}.t FOR ALL TO {role} USING (owner = current_user);
             CREATE POLICY hand_over ON {schema}.t FOR INSERT TO {role} WITH CHECK (owner = 'other');"
        ));
    }
    sql
}

/// What one writer did so far, and the rows it expects.
#[derive(Debug, Default, Clone)]
struct Writes {
    inserts: u64,
    updates: u64,
    deletes: u64,
    /// Its live rows (owned by the role): id → amount.
    live: BTreeMap<i64, i32>,
    /// Rows it inserted for another owner (hidden from it by the policies): id → amount.
    handed: BTreeMap<i64, i32>,
    next_key: i64,
    step: u64,
    failures: Vec<String>,
}

impl Writes {
    fn total(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }
}

/// The rows a write statement reported: the extended protocol's count, or the simple one's
/// CommandComplete.
async fn write(client: &Client, sql: &str, simple: bool) -> Result<u64, tokio_postgres::Error> {
    if simple {
        let messages = client.simple_query(sql).await?;
        Ok(messages
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(0))
    } else {
        client.execute(sql, &[]).await
    }
}

/// One writer's round: insert a row of its own, update an older one, every third round delete
/// its oldest, and (with `rls`) every fifth insert a row for another owner.
async fn writer_round(client: &Client, schema: &str, role: &str, rls: bool, w: &mut Writes) {
    w.step += 1;
    let simple = w.step % 2 == 0;
    let mut outcome = |what: String, result: Result<u64, tokio_postgres::Error>| match result {
        Ok(1) => true,
        Ok(n) => {
            w.failures.push(format!("{what}: {n} rows instead of 1"));
            false
        }
        Err(err) => {
            w.failures.push(format!("{what}: {}", describe(&err)));
            false
        }
    };
    let key = w.next_key;
    w.next_key += 1;
    let amount = (w.step % 1000) as i32;
    let sql = format!(
        "INSERT INTO {schema}.t (id, owner, label, amount) VALUES ({key}, '{role}', 'w{key}', {amount})"
    );
    if outcome(sql.clone(), write(client, &sql, simple).await) {
        w.inserts += 1;
        w.live.insert(key, amount);
    }
    if let Some((&older, &was)) = w.live.iter().rev().find(|(k, _)| **k != key) {
        let sql = format!("UPDATE {schema}.t SET amount = amount + 1 WHERE id = {older}");
        if outcome(sql.clone(), write(client, &sql, !simple).await) {
            w.updates += 1;
            w.live.insert(older, was + 1);
        }
    }
    if w.step % 3 == 0 {
        if let Some((&oldest, _)) = w.live.iter().next() {
            let sql = format!("DELETE FROM {schema}.t WHERE id = {oldest}");
            if outcome(sql.clone(), write(client, &sql, simple).await) {
                w.deletes += 1;
                w.live.remove(&oldest);
            }
        }
    }
    if rls && w.step % 5 == 0 {
        let key = w.next_key;
        w.next_key += 1;
        let sql = format!(
            "INSERT INTO {schema}.t (id, owner, label, amount) VALUES ({key}, 'other', 'handed {key}', 7)"
        );
        if outcome(sql.clone(), write(client, &sql, !simple).await) {
            w.inserts += 1;
            w.handed.insert(key, 7);
        }
    }
}

/// The role's writers, running until [`Writers::stop`].
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Writes>>,
}

impl Writers {
    /// Resumes every writer of `state` (one connection each, as the role, through duet).
    fn start(config: &Config, schema: &str, role: &str, rls: bool, state: Vec<Writes>) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = state
            .into_iter()
            .map(|mut w| {
                let (config, stop) = (config.clone(), stop.clone());
                let (schema, role) = (schema.to_owned(), role.to_owned());
                tokio::spawn(async move {
                    let session = connect(&config).await;
                    // At least a few rounds per segment, however short.
                    let mut rounds = 0;
                    while rounds < 5 || !stop.load(Ordering::SeqCst) {
                        writer_round(&session.client, &schema, &role, rls, &mut w).await;
                        rounds += 1;
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    w
                })
            })
            .collect();
        Writers { stop, tasks }
    }

    async fn stop(self) -> Vec<Writes> {
        self.stop.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        for task in self.tasks {
            out.push(task.await.expect("a writer panicked"));
        }
        out
    }
}

/// The test's frame: the database, duet, the role's session and the writers' state.
struct Frame {
    backend: Backend,
    db: TestDatabase,
    duet: DuetProcess,
    direct: Session,
    app: Session,
    app_config: Config,
    schema: String,
    role: String,
    rls: bool,
    writes: Vec<Writes>,
    /// Writes the test made itself as the role (the value beyond int4): (inserts, updates,
    /// deletes).
    own: (u64, u64, u64),
    /// The key of the row the test writes itself after the cutover (left out of the writers'
    /// rows).
    big_row: i64,
}

impl Frame {
    async fn start(
        label: &str,
        schema: &str,
        rls: bool,
        big_row: i64,
        update_of: bool,
    ) -> Option<Frame> {
        let backend = backend_or_skip(label)?;
        let role = format!("{schema}_app");
        let db = TestDatabase::create(&backend, label);
        db.execute(&setup_sql(schema, &role, rls, update_of));
        let duet = DuetProcess::start(&backend.url(db.name()), &[]);
        let direct = connect(&db.direct_config()).await;
        let mut app_config = through(&backend, &duet, &db, "carried-app");
        app_config.user(&role);
        let app = connect(&app_config).await;
        let writes = (0..WRITERS)
            .map(|w| Writes {
                next_key: FIRST_KEY + w as i64 * 1_000_000,
                ..Writes::default()
            })
            .collect();
        Some(Frame {
            backend,
            db,
            duet,
            direct,
            app,
            app_config,
            schema: schema.to_owned(),
            role,
            rls,
            writes,
            own: (0, 0, 0),
            big_row,
        })
    }

    fn direct(&self) -> &Client {
        &self.direct.client
    }

    fn writers(&mut self) -> Writers {
        Writers::start(
            &self.app_config,
            &self.schema,
            &self.role,
            self.rls,
            std::mem::take(&mut self.writes),
        )
    }

    async fn stopped(&mut self, writers: Writers) {
        self.writes = writers.stop().await;
        let failures: Vec<&String> = self.writes.iter().flat_map(|w| &w.failures).collect();
        assert!(
            failures.is_empty(),
            "{} failed writes, first: {:?}\n--- duet log ---\n{}",
            failures.len(),
            failures.iter().take(5).collect::<Vec<_>>(),
            self.duet.log()
        );
    }

    /// The checks of every phase: one audit row per write, the rows the writers expect, what
    /// the role sees through the table and the views.
    async fn check(&self, phase: &str) {
        let schema = &self.schema;
        let sum = |f: fn(&Writes) -> u64| self.writes.iter().map(f).sum::<u64>();
        let expected = (
            sum(|w| w.inserts) + self.own.0,
            sum(|w| w.updates) + self.own.1,
            sum(|w| w.deletes) + self.own.2,
        );
        let audited = rows_as_text(
            self.direct(),
            &format!(
                "SELECT count(*) FILTER (WHERE op = 'INSERT'), count(*) FILTER (WHERE op = 'UPDATE'),
                        count(*) FILTER (WHERE op = 'DELETE')
                   FROM {schema}.audit"
            ),
        )
        .await;
        assert_eq!(
            audited[0],
            vec![
                expected.0.to_string(),
                expected.1.to_string(),
                expected.2.to_string()
            ],
            "{phase}: audit rows (INSERT, UPDATE, DELETE) must be one per application write\n--- duet log ---\n{}",
            self.duet.log()
        );
        // The rows the writers expect, and no other.
        let mut want: Vec<Vec<String>> = self
            .writes
            .iter()
            .flat_map(|w| {
                w.live
                    .iter()
                    .map(|(k, a)| (*k, self.role.clone(), *a))
                    .chain(w.handed.iter().map(|(k, a)| (*k, "other".to_owned(), *a)))
                    .collect::<Vec<_>>()
            })
            .map(|(k, o, a)| vec![k.to_string(), o, a.to_string()])
            .collect();
        want.sort();
        let have = rows_as_text(
            self.direct(),
            &format!(
                "SELECT id::text, owner, amount::text FROM {schema}.t
                  WHERE id >= {FIRST_KEY} AND id <> {} ORDER BY 1",
                self.big_row
            ),
        )
        .await;
        assert_eq!(
            have, want,
            "{phase}: the table holds what the writers wrote"
        );
        // What the role sees: its own rows under row-level security, every row without.
        let visible = if self.rls {
            format!("WHERE owner = '{}'", self.role)
        } else {
            String::new()
        };
        let owner_view = rows_as_text(
            self.direct(),
            &format!("SELECT count(*)::text, coalesce(sum(id), 0)::text FROM {schema}.t {visible}"),
        )
        .await;
        for relation in ["t", "v"] {
            let seen = rows_as_text(
                &self.app.client,
                &format!(
                    "SELECT count(*)::text, coalesce(sum(id), 0)::text FROM {schema}.{relation}"
                ),
            )
            .await;
            assert_eq!(
                seen, owner_view,
                "{phase}: the role sees exactly the rows its policies allow through {relation}"
            );
        }
        // v2 reads v, whose security_invoker makes the policies apply to the reading role.
        let all = rows_as_text(
            self.direct(),
            &format!(
                "SELECT count(*)::text FROM {schema}.t {visible} {} amount IS NOT NULL",
                if visible.is_empty() { "WHERE" } else { "AND" }
            ),
        )
        .await;
        let through_v2 = rows_as_text(
            &self.app.client,
            &format!("SELECT count(*)::text FROM {schema}.v2"),
        )
        .await;
        assert_eq!(through_v2, all, "{phase}: the view over the view");
        eprintln!(
            "{phase}: {} writes checked ({} inserts, {} updates, {} deletes)",
            sum(Writes::total),
            expected.0,
            expected.1,
            expected.2
        );
    }

    /// The triggers of every table of the schema and whether each fires (`table:trigger:state`).
    async fn triggers(&self) -> Vec<Vec<String>> {
        rows_as_text(
            self.direct(),
            &format!(
                "SELECT tgrelid::regclass::text, tgname::text, tgenabled::text FROM pg_trigger
                  WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE '{}.%'
                  ORDER BY tgrelid::regclass::text COLLATE \"C\", tgname::text COLLATE \"C\"",
                self.schema
            ),
        )
        .await
    }
}

/// Which column changes type, and so which strategy carries the objects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The key, int → bigint: a shadow table.
    Key,
    /// `amount`, int → bigint, asked for as a shadow column.
    Amount,
}

async fn carried_through_the_migration(
    label: &str,
    schema: &str,
    rls: bool,
    change: Change,
    finish: &str,
) {
    let (column, big_row, shadow_column) = match change {
        Change::Key => ("id", BIG_KEY, &[][..]),
        Change::Amount => ("amount", BIG_AMOUNT_KEY, &["--shadow-column"][..]),
    };
    let update_of = matches!(change, Change::Amount);
    let Some(mut f) = Frame::start(label, schema, rls, big_row, update_of).await else {
        return;
    };
    let alter = format!("ALTER TABLE {schema}.t ALTER COLUMN {column} TYPE bigint");
    f.check("before the migration").await;

    // `plan` names what the cutover carries over.
    let mut args = vec!["plan", "--sql", alter.as_str()];
    args.extend(shadow_column);
    let plan = f.duet.admin(&args);
    assert_eq!(plan.code, Some(0), "{}\n{}", plan.stdout, plan.stderr);
    let mut expected = vec![
        format!("  - view \"{schema}\".\"v\"\n"),
        format!("  - view \"{schema}\".\"v2\"\n"),
        "  - trigger \"t_audit\"\n".to_owned(),
    ];
    if rls {
        expected.push("  - row-level security enabled\n".into());
        expected.push(format!(
            "  - policy \"mine\" (permissive, FOR ALL, TO {}, USING ((owner = CURRENT_USER)))\n",
            f.role
        ));
        expected.push(format!(
            "  - policy \"hand_over\" (permissive, FOR INSERT, TO {}, WITH CHECK ((owner = 'other'::text)))\n",
            f.role
        ));
    }
    for line in &expected {
        assert!(
            plan.stdout.contains("\ncarried over: ") && plan.stdout.contains(line.as_str()),
            "plan lacks {line:?}:\n{}",
            plan.stdout
        );
    }

    // The copy phase, held open by an older transaction so the writers write during it.
    let old = connect(&f.db.direct_config()).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");
    let id = match change {
        Change::Key => migrate_sql(&f.duet, &alter).await,
        Change::Amount => migrate_sql_shadow_column(&f.duet, &alter).await,
    };
    let m = wait_phase(&f.duet, id, "copying").await;
    let strategy = match change {
        Change::Key => "shadow_table",
        Change::Amount => "shadow_column",
    };
    assert_eq!(m["strategy"], strategy, "{m}");
    let writers = f.writers();
    settle().await;
    f.stopped(writers).await;
    f.check("copying").await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    let writers = f.writers();
    wait_phase(&f.duet, id, "ready").await;
    settle().await;
    f.stopped(writers).await;
    f.check("ready").await;

    if rls {
        // A trigger made straight on PostgreSQL after planning is not carried: the cutover
        // refuses, naming it, and nothing changes.
        f.direct()
            .batch_execute(&format!(
                "CREATE TRIGGER t_late AFTER INSERT ON {schema}.t FOR EACH ROW EXECUTE FUNCTION {schema}.audit_t()"
            ))
            .await
            .expect("a trigger made after planning");
        let refused = request(&f.duet, json!({"command": "cutover", "budget_ms": 5000})).await;
        assert!(
            !refused.ok && refused.error.contains("t_late"),
            "{}",
            refused.raw
        );
        f.direct()
            .batch_execute(&format!("DROP TRIGGER t_late ON {schema}.t"))
            .await
            .expect("dropping it");
    }

    let writers = f.writers();
    settle().await;
    cutover_retried(&f.duet).await;
    settle().await;
    f.stopped(writers).await;
    assert_eq!(column_type(f.direct(), schema, "t", column).await, "bigint");
    assert_eq!(
        column_type(f.direct(), schema, "v", column).await,
        "bigint",
        "the view reads the new shape"
    );
    assert_eq!(
        column_type(f.direct(), schema, "v2", "id").await,
        if change == Change::Key {
            "bigint"
        } else {
            "integer"
        },
    );
    f.check("flipped").await;
    let t = format!("{schema}.t");
    let trigger = |table: &str, name: &str, state: &str| {
        vec![table.to_owned(), name.to_owned(), state.to_owned()]
    };
    let flipped_triggers = match change {
        Change::Key => vec![
            trigger(&t, "t_audit", "O"),
            trigger(&t, "~duet_net", "A"),
            trigger(&t, "~duet_net_statement", "A"),
            trigger(&format!("{schema}.t__duet_old"), "t_audit", "D"),
        ],
        Change::Amount => vec![trigger(&t, "t_audit", "O"), trigger(&t, "~duet_net", "A")],
    };
    assert_eq!(
        f.triggers().await,
        flipped_triggers,
        "the trigger fires on the new shape only"
    );
    // A value beyond int4, written by the role through duet, read through both views.
    // (RETURNING: through the rewrite, an INSERT's tag counts the rows mirrored into the old
    // table, which leaves this one out.)
    let (amount, find) = match change {
        Change::Key => (1, format!("id = {BIG_KEY}")),
        Change::Amount => (BIG_AMOUNT, format!("id = {BIG_AMOUNT_KEY}")),
    };
    let app = &f.app.client;
    let inserted = app
        .query(
            &format!(
                "INSERT INTO {schema}.t (id, owner, label, amount) VALUES ({big_row}, current_user, 'big', {amount}) RETURNING id"
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("a value beyond int4: {}", describe(&e)));
    assert_eq!(inserted.len(), 1);
    f.own.0 += 1;
    for view in ["v", "v2"] {
        let label: String = app
            .query_one(
                &format!("SELECT label FROM {schema}.{view} WHERE {find}"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("reading {view}: {}", describe(&e)))
            .get(0);
        assert_eq!(label, "big", "{view} reads the new shape");
    }
    if change == Change::Amount {
        let big: i64 = app
            .query_one(&format!("SELECT amount FROM {schema}.v WHERE {find}"), &[])
            .await
            .unwrap_or_else(|e| panic!("reading v: {}", describe(&e)))
            .get(0);
        assert_eq!(big, BIG_AMOUNT, "the view reads the new column");
    }
    f.check("flipped, with a value beyond int4").await;

    if finish == "revert" {
        // The old type cannot hold it: the revert would refuse while it exists.
        app.execute(&format!("DELETE FROM {schema}.t WHERE {find}"), &[])
            .await
            .unwrap_or_else(|e| panic!("deleting the value beyond int4: {}", describe(&e)));
        f.own.2 += 1;
    }
    let writers = f.writers();
    settle().await;
    request(&f.duet, json!({"command": finish}))
        .await
        .expect_ok(finish);
    settle().await;
    f.stopped(writers).await;
    let (phase, new_type) = if finish == "revert" {
        ("reverted", "integer")
    } else {
        ("completed", "bigint")
    };
    f.check(phase).await;
    let writers = f.writers();
    settle().await;
    f.stopped(writers).await;
    f.check(&format!("after {finish}")).await;
    assert_eq!(column_type(f.direct(), schema, "t", column).await, new_type);
    assert_eq!(column_type(f.direct(), schema, "v", column).await, new_type);
    assert_eq!(f.triggers().await, vec![trigger(&t, "t_audit", "O")]);
    let comment = rows_as_text(
        f.direct(),
        &format!("SELECT obj_description('{schema}.v'::regclass, 'pg_class')"),
    )
    .await;
    assert_eq!(comment[0][0], "the rows, as the reader may see them");
    if rls {
        let policies = rows_as_text(
            f.direct(),
            &format!(
                "SELECT string_agg(policyname::text, ',' ORDER BY policyname) FROM pg_policies
                  WHERE schemaname = '{schema}' AND tablename = 't'"
            ),
        )
        .await;
        assert_eq!(policies[0][0], "hand_over,mine");
    }
    assert_clean(&f.duet, f.direct(), schema, id, phase).await;
    drop(old);
    let role = f.role.clone();
    let direct = connect(&f.backend.direct_config(&f.backend.maintenance_db)).await;
    drop(f);
    // The database is gone with the frame; the role is the cluster's.
    let _ = direct
        .client
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carried_with_row_level_security_then_complete() {
    carried_through_the_migration(
        "carried_rls_complete",
        "carrc",
        true,
        Change::Key,
        "complete",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carried_with_row_level_security_then_revert() {
    carried_through_the_migration("carried_rls_revert", "carrr", true, Change::Key, "revert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carried_through_the_rewrite_then_complete() {
    carried_through_the_migration(
        "carried_rewrite_complete",
        "carwc",
        false,
        Change::Key,
        "complete",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carried_through_the_rewrite_then_revert() {
    carried_through_the_migration(
        "carried_rewrite_revert",
        "carwr",
        false,
        Change::Key,
        "revert",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carried_by_a_shadow_column_then_complete() {
    carried_through_the_migration(
        "carried_column_complete",
        "carcc",
        true,
        Change::Amount,
        "complete",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carried_by_a_shadow_column_then_revert() {
    carried_through_the_migration(
        "carried_column_revert",
        "carcr",
        true,
        Change::Amount,
        "revert",
    )
    .await;
}
