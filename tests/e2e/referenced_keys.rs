//! The migration people need most: an `int` primary key referenced by two other tables (one key `ON
//! DELETE CASCADE`), with a view over it and an audit trigger, widened to bigint online while a
//! non-owner application role writes all three tables through duet (both protocols, and inside `DO`
//! blocks duet cannot see into) and straight on PostgreSQL. Every write is made on an unmigrated
//! twin of the three tables as well, and its outcome compared: the same success, or the same
//! SQLSTATE — the writers also try writes the foreign keys must refuse (a line of a missing order,
//! deleting an invoiced order), in every phase. After every phase the tables equal their twins, the
//! audit trigger wrote one row per write, the view reads the table; after the cutover the keys
//! reference the new table (an invoice of an order past 2^31 is accepted), after `complete` they
//! are validated again and the column order is unchanged; after `revert` the keys reference the old
//! table again. duet runs as the tables' owner, not a superuser, and the orders table enforces row-
//! level security for the application's role. After `complete`, the migration `plan` names next —
//! the referencing `integer` column widened, online too — takes a line of the order past 2^31.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config};

use crate::support::backend_or_skip;
use crate::support::duet_process::{through, DuetProcess};
use crate::support::migration::{
    assert_clean, column_type, cutover_retried, request, retried, rows_as_text, settle, wait_phase,
};
use crate::support::pg_client::connect;

const ORDERS: i64 = 2_000;
/// Each writer's keys start at `FIRST_KEY + writer * 1_000_000` (within int4).
const FIRST_KEY: i64 = 100_000_000;
/// Orders from here on are never written (below the writers' keys, above the first rows): a line
/// of one is refused by the key on both sides, whatever the other writers do meanwhile.
const MISSING_ORDER: i64 = 50_000_000;
/// The order past int4 written after the cutover.
const BIG_KEY: i64 = 3_000_000_000;

/// The three tables and their twins (the twins' orders key is bigint from the start, so the row
/// past int4 fits there too), the audit trigger and a row-level security policy on both orders
/// tables, the view, the application's role `role`, and duet's role `owner` — not a superuser,
/// the owner of the schema and everything in it, with CREATE on the database (for its own
/// schema `duet`), as on a managed server.
fn setup_sql(schema: &str, role: &str, owner: &str) -> String {
    let mut sql = format!(
        "DO $r$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $r$;
         DO $r$ BEGIN CREATE ROLE {owner} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $r$;
         DO $r$ BEGIN
           EXECUTE format('GRANT CREATE, CONNECT ON DATABASE %I TO {owner}', current_database());
         END $r$;
         CREATE SCHEMA {schema};
         CREATE TABLE {schema}.audit (seq bigserial PRIMARY KEY, tbl text NOT NULL, op text NOT NULL, id bigint NOT NULL);
         CREATE FUNCTION {schema}.audit_row() RETURNS trigger LANGUAGE plpgsql AS $f$
           BEGIN
             INSERT INTO {schema}.audit (tbl, op, id) VALUES (TG_TABLE_NAME, TG_OP, coalesce(NEW.id, OLD.id));
             RETURN NULL;
           END $f$;
         GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT INSERT ON {schema}.audit TO {role};
         GRANT USAGE ON SEQUENCE {schema}.audit_seq_seq TO {role};"
    );
    for (suffix, key_type) in [("", "int"), ("_twin", "bigint")] {
        sql.push_str(&format!(
            "CREATE TABLE {schema}.orders{suffix} (id {key_type} PRIMARY KEY, customer text NOT NULL, amount int NOT NULL);
             CREATE TABLE {schema}.lines{suffix} (id int PRIMARY KEY,
               order_id int NOT NULL REFERENCES {schema}.orders{suffix} (id) ON DELETE CASCADE,
               qty int NOT NULL);
             CREATE TABLE {schema}.invoices{suffix} (id bigint PRIMARY KEY,
               order_id bigint NOT NULL REFERENCES {schema}.orders{suffix} (id));
             CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE OR DELETE ON {schema}.orders{suffix}
               FOR EACH ROW EXECUTE FUNCTION {schema}.audit_row();
             INSERT INTO {schema}.orders{suffix} SELECT g, 'c' || g % 17, g FROM generate_series(1, {ORDERS}) g;
             INSERT INTO {schema}.lines{suffix} SELECT g, (g - 1) / 2 + 1, g FROM generate_series(1, {lines}) g;
             INSERT INTO {schema}.invoices{suffix} SELECT g / 10, g FROM generate_series(10, {ORDERS}, 10) g;
             GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.orders{suffix}, {schema}.lines{suffix},
               {schema}.invoices{suffix} TO {role};
             ALTER TABLE {schema}.orders{suffix} ENABLE ROW LEVEL SECURITY;
             CREATE POLICY not_hidden ON {schema}.orders{suffix} FOR ALL TO {role}
               USING (customer <> 'hidden') WITH CHECK (customer <> 'hidden');
             ANALYZE {schema}.orders{suffix};",
            lines = ORDERS * 2
        ));
        sql.push_str(&view_sql(schema, suffix, role));
    }
    sql.push_str(&format!(
        "ALTER SCHEMA {schema} OWNER TO {owner};
         DO $r$ DECLARE r record; BEGIN
           FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
                     WHERE c.relnamespace = '{schema}'::regnamespace AND c.relkind IN ('r', 'v')
           LOOP
             EXECUTE format('ALTER TABLE %s OWNER TO {owner}', r.rel);
           END LOOP;
         END $r$;"
    ));
    sql
}

/// The view over orders and lines (`suffix`: of the twins), readable by `role`.
fn view_sql(schema: &str, suffix: &str, role: &str) -> String {
    format!(
        "CREATE VIEW {schema}.order_sizes{suffix} AS
           SELECT o.id, o.amount, count(l.id) AS lines
             FROM {schema}.orders{suffix} o LEFT JOIN {schema}.lines{suffix} l ON l.order_id = o.id
            GROUP BY o.id, o.amount;
         GRANT SELECT ON {schema}.order_sizes{suffix} TO {role};"
    )
}

/// How a writer reaches the migrated tables.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Through duet, simple protocol.
    Simple,
    /// Through duet, extended protocol with parameters.
    Extended,
    /// Straight on PostgreSQL (the safety net mirrors it).
    Direct,
    /// Through duet, each write inside a `DO` block: duet cannot see the write (the safety net
    /// mirrors it), and the foreign keys check it like any other.
    DoBlock,
}

/// A write's outcome, as compared between a table and its twin: the rows it changed, or the
/// SQLSTATE it failed with.
type Outcome = Result<u64, String>;

fn outcome(result: Result<u64, tokio_postgres::Error>) -> Outcome {
    result.map_err(|e| {
        e.code()
            .map(|c| c.code().to_owned())
            .unwrap_or_else(|| e.to_string())
    })
}

/// One writer: its session on the tables (as the application role) and one on the twins.
struct Writer {
    via: Via,
    key: i64,
    step: u64,
    /// Writes whose outcome differed from the twin's, or failed where the twin's did not.
    failures: Vec<String>,
    /// Writes the foreign keys refused, on both sides alike.
    refused: u64,
}

impl Writer {
    /// `sql` as this writer sends it (inside a `DO` block for [`Via::DoBlock`]; the twin gets
    /// the same, so both report no row count).
    fn shaped(&self, sql: &str) -> String {
        match self.via {
            Via::DoBlock => format!("DO $w$ BEGIN {sql}; END $w$"),
            _ => sql.to_owned(),
        }
    }

    /// Runs `sql` with `params` on the tables (`{s}` the tables' suffix) and on the twins, and
    /// compares the outcomes.
    async fn write(
        &mut self,
        what: &str,
        sql: &str,
        params: &[i64],
        table: &Client,
        twin: &Client,
    ) {
        let on_table = sql.replace("{s}", "");
        let on_twin = sql.replace("{s}", "_twin");
        let literal = |sql: &str| {
            params
                .iter()
                .enumerate()
                .rev()
                .fold(sql.to_owned(), |sql, (i, p)| {
                    sql.replace(&format!("${}", i + 1), &p.to_string())
                })
        };
        let result = match self.via {
            Via::Extended => {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                outcome(table.execute(&on_table, &params).await)
            }
            Via::Simple | Via::Direct | Via::DoBlock => outcome(
                table
                    .simple_query(&self.shaped(&literal(&on_table)))
                    .await
                    .map(|m| rows_changed(&m)),
            ),
        };
        let expected = outcome(
            twin.simple_query(&self.shaped(&literal(&on_twin)))
                .await
                .map(|m| rows_changed(&m)),
        );
        if result != expected {
            self.failures.push(format!(
                "{:?} {what}: {result:?} where the twin gave {expected:?} ({on_table})",
                self.via
            ));
        } else if result.is_err() {
            self.refused += 1;
        }
    }

    /// One round: a new order with two lines, an invoice for the previous order (odd steps),
    /// an update, every third round a delete of an order without invoice (its lines cascade), and
    /// writes the keys refuse: a line of a missing order, deleting an invoiced order.
    async fn round(&mut self, schema: &str, table: &Client, twin: &Client) {
        self.step += 1;
        let k = self.key + self.step as i64;
        let step = self.step as i64;
        self.write(
            "insert order",
            &format!("INSERT INTO {schema}.orders{{s}} (id, customer, amount) VALUES ($1::bigint, 'w', $2::bigint)"),
            &[k, step],
            table,
            twin,
        )
        .await;
        self.write(
            "insert lines",
            &format!("INSERT INTO {schema}.lines{{s}} (id, order_id, qty) VALUES ($1::bigint * 2, $2::bigint, 1), ($1::bigint * 2 + 1, $2::bigint, 2)"),
            &[k - FIRST_KEY / 2, k],
            table,
            twin,
        )
        .await;
        if self.step % 2 == 0 {
            self.write(
                "insert invoice",
                &format!("INSERT INTO {schema}.invoices{{s}} (id, order_id) VALUES ($1::bigint, $1::bigint)"),
                &[k - 1],
                table,
                twin,
            )
            .await;
        }
        self.write(
            "update order",
            &format!("UPDATE {schema}.orders{{s}} SET amount = amount + 1 WHERE id = $1::bigint"),
            &[k - 1],
            table,
            twin,
        )
        .await;
        if self.step % 3 == 0 && self.step >= 3 {
            // Steps k - 2 with an even step got no invoice (invoices go to odd ones).
            let old = k - 2;
            if (self.step - 2) % 2 == 0 {
                self.write(
                    "delete order",
                    &format!("DELETE FROM {schema}.orders{{s}} WHERE id = $1::bigint"),
                    &[old],
                    table,
                    twin,
                )
                .await;
            }
        }
        if self.step % 5 == 0 {
            self.write(
                "a line of a missing order",
                &format!("INSERT INTO {schema}.lines{{s}} (id, order_id, qty) VALUES ($1::bigint, $2::bigint, 1)"),
                &[1_900_000_000 + k - FIRST_KEY, MISSING_ORDER + k],
                table,
                twin,
            )
            .await;
            self.write(
                "deleting an invoiced order",
                &format!("DELETE FROM {schema}.orders{{s}} WHERE id = $1::bigint"),
                // An odd step's order, invoiced a step later and never deleted.
                &[self.key + step - 3 - step % 2],
                table,
                twin,
            )
            .await;
        }
    }
}

/// The rows a simple query's CommandComplete reported.
fn rows_changed(messages: &[tokio_postgres::SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

/// The writers, running until [`Writers::stop`].
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Writer>>,
}

impl Writers {
    fn start(schema: &str, through: &Config, direct: &Config, writers: Vec<Writer>) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = writers
            .into_iter()
            .map(|mut writer| {
                let (schema, stop) = (schema.to_owned(), stop.clone());
                let table_config = match writer.via {
                    Via::Direct => direct.clone(),
                    _ => through.clone(),
                };
                let twin_config = direct.clone();
                tokio::spawn(async move {
                    let table = connect(&table_config).await;
                    let twin = connect(&twin_config).await;
                    let mut rounds = 0;
                    // At least a few rounds per phase, however short.
                    while rounds < 6 || !stop.load(Ordering::SeqCst) {
                        writer.round(&schema, &table.client, &twin.client).await;
                        rounds += 1;
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    writer
                })
            })
            .collect();
        Writers { stop, tasks }
    }

    async fn stop(self, duet: &DuetProcess) -> Vec<Writer> {
        self.stop.store(true, Ordering::SeqCst);
        let mut writers = Vec::new();
        for task in self.tasks {
            writers.push(task.await.expect("a writer panicked"));
        }
        let failures: Vec<&String> = writers.iter().flat_map(|w| &w.failures).collect();
        assert!(
            failures.is_empty(),
            "{} writes differed from the twin's, first: {:?}\n--- duet log ---\n{}",
            failures.len(),
            failures.iter().take(5).collect::<Vec<_>>(),
            duet.log()
        );
        writers
    }
}

/// Runs `sql(suffix)` on the tables through duet as the application (`""`) and on their twins
/// straight on PostgreSQL (`"_twin"`): the same change on both sides, outside the writers.
async fn on_both(app: &Client, direct: &Client, what: &str, sql: impl Fn(&str) -> String) {
    for (client, suffix) in [(app, ""), (direct, "_twin")] {
        client
            .batch_execute(&sql(suffix))
            .await
            .unwrap_or_else(|e| panic!("{what} ({suffix:?}): {e:?}"));
    }
}

/// The tables equal their twins (rows, the audit trigger's rows per operation, the view).
async fn assert_same_as_twins(direct: &Client, schema: &str, phase: &str) {
    for (table, columns) in [
        ("orders", "id, customer, amount"),
        ("lines", "id, order_id, qty"),
        ("invoices", "id, order_id"),
        ("order_sizes", "id, amount, lines"),
    ] {
        let query = |suffix: &str| {
            format!(
                "SELECT count(*)::text, md5(coalesce(string_agg(({columns})::text, ',' ORDER BY id), ''))
                   FROM {schema}.{table}{suffix}"
            )
        };
        let have = rows_as_text(direct, &query("")).await;
        let want = rows_as_text(direct, &query("_twin")).await;
        assert_eq!(have, want, "{phase}: {table} differs from its twin");
    }
    let audited = |table: &str| {
        format!(
            "SELECT op, count(*)::text FROM {schema}.audit WHERE tbl = '{table}' GROUP BY op ORDER BY op"
        )
    };
    assert_eq!(
        rows_as_text(direct, &audited("orders")).await,
        rows_as_text(direct, &audited("orders_twin")).await,
        "{phase}: one audit row per write, as on the twin"
    );
    eprintln!("{phase}: the tables equal their twins");
}

/// The twin's `lines.order_id` widened offline, as the migration widens the table's: PostgreSQL's
/// own ALTER refuses a column a view reads (duet carries the view over), so the twin's view is
/// dropped and made again around it.
async fn widen_twin_lines(direct: &Client, schema: &str, role: &str) {
    direct
        .batch_execute(&format!(
            "DROP VIEW {schema}.order_sizes_twin;
             ALTER TABLE {schema}.lines_twin ALTER COLUMN order_id TYPE bigint;
             {}",
            view_sql(schema, "_twin", role)
        ))
        .await
        .expect("the twin's column, offline");
}

/// Migrates `sql` (one table or several; with `keep`, leaving referencing columns as they are)
/// and returns the id of each table's migration, in flip order.
async fn migrate_all(duet: &DuetProcess, sql: &str, keep: bool) -> Vec<i64> {
    let reply = request(
        duet,
        json!({"command": "migrate", "input": {"kind": "sql", "sql": sql}, "auto_cutover": false,
               "keep_referencing_types": keep}),
    )
    .await
    .expect_ok(&format!("migrate {sql:?}"));
    match reply["migrations"].as_array() {
        Some(members) => members
            .iter()
            .map(|m| m["id"].as_i64().expect("an id per table"))
            .collect(),
        None => vec![reply["id"].as_i64().expect("an id")],
    }
}

/// Each foreign key of the lines and invoices tables: `table:constraint:referenced:validated`.
async fn keys(direct: &Client, schema: &str) -> Vec<Vec<String>> {
    rows_as_text(
        direct,
        &format!(
            "SELECT conrelid::regclass::text, conname::text, confrelid::regclass::text, convalidated::text
               FROM pg_constraint
              WHERE contype = 'f' AND conrelid IN ('{schema}.lines'::regclass, '{schema}.invoices'::regclass)
              ORDER BY 1, 2"
        ),
    )
    .await
}

fn expected_keys(schema: &str, validated: bool) -> Vec<Vec<String>> {
    [
        ("invoices", "invoices_order_id_fkey"),
        ("lines", "lines_order_id_fkey"),
    ]
    .iter()
    .map(|(table, key)| {
        vec![
            format!("{schema}.{table}"),
            (*key).to_owned(),
            format!("{schema}.orders"),
            validated.to_string(),
        ]
    })
    .collect()
}

/// The columns of `orders`, in order.
async fn column_order(direct: &Client, schema: &str) -> String {
    rows_as_text(
        direct,
        &format!(
            "SELECT string_agg(attname::text, ',' ORDER BY attnum) FROM pg_attribute
              WHERE attrelid = '{schema}.orders'::regclass AND attnum > 0 AND NOT attisdropped"
        ),
    )
    .await
    .remove(0)
    .remove(0)
}

/// How the referencing column `lines.order_id` is widened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lines {
    /// Named in the same migration (one migration of two tables, flipped in one transaction).
    Named,
    /// Not named: the migration of the key takes it along by itself.
    Implied,
    /// Left (`--keep-referencing-types`), and migrated after the key's migration completes.
    Later,
}

async fn referenced_key_widened(label: &str, schema: &str, finish: &str, lines_mode: Lines) {
    let together = lines_mode != Lines::Later;
    let Some(backend) = backend_or_skip(label) else {
        return;
    };
    let role = format!("{schema}_app");
    let owner = format!("{schema}_owner");
    let db = crate::support::TestDatabase::create(&backend, label);
    db.execute(&setup_sql(schema, &role, &owner));
    // duet runs as the tables' owner, not as a superuser.
    let as_owner = crate::support::Backend {
        user: owner.clone(),
        password: None,
        ..backend.clone()
    };
    let duet = DuetProcess::start(&as_owner.url(db.name()), &[]);
    let direct_config = db.direct_config();
    let direct = connect(&direct_config).await;
    let direct = &direct.client;
    let mut app_config = through(&backend, &duet, &db, "referenced-keys");
    app_config.user(&role);
    let mut app_direct = direct_config.clone();
    app_direct.user(&role);
    let mut alter = format!("ALTER TABLE {schema}.orders ALTER COLUMN id TYPE bigint");
    let widen_lines = format!("ALTER TABLE {schema}.lines ALTER COLUMN order_id TYPE bigint");
    if lines_mode == Lines::Named {
        alter = format!("{alter}; {widen_lines}");
    }
    let keep: &[&str] = if lines_mode == Lines::Later {
        &["--keep-referencing-types"]
    } else {
        &[]
    };

    // `plan` names the keys it re-points and the integer column that references the key — or,
    // for both in one migration, the two tables in the order they flip.
    let mut plan_args = vec!["plan", "--sql", alter.as_str()];
    plan_args.extend(keep);
    let plan = duet.admin(&plan_args);
    assert_eq!(plan.code, Some(0), "{}\n{}", plan.stdout, plan.stderr);
    let mut needles = vec![
        "policy \"not_hidden\"".to_owned(),
        "trigger \"orders_audit\"".to_owned(),
        format!("view \"{schema}\".\"order_sizes\""),
        format!("foreign key \"invoices_order_id_fkey\" of \"{schema}\".\"invoices\""),
        format!("foreign key \"lines_order_id_fkey\" of \"{schema}\".\"lines\""),
    ];
    if together {
        needles.push("2 tables, planned together".to_owned());
        if lines_mode == Lines::Implied {
            needles.push("widened to bigint in the same migration".to_owned());
        }
    } else {
        needles.push(format!("\"{schema}\".\"lines\".\"order_id\" (integer)"));
        needles.push(format!(
            "ALTER TABLE \"{schema}\".\"lines\" ALTER COLUMN \"order_id\" TYPE bigint"
        ));
    }
    for needle in needles {
        assert!(
            plan.stdout.contains(&needle),
            "plan lacks {needle:?}:\n{}",
            plan.stdout
        );
    }
    if together {
        let lines_at = plan.stdout.find(&format!("plan for {schema}.lines"));
        let orders_at = plan.stdout.find(&format!("plan for {schema}.orders"));
        assert!(
            lines_at.is_some() && lines_at < orders_at,
            "the referencing table flips first:\n{}",
            plan.stdout
        );
        assert!(
            !plan.stdout.contains("Migrate it next"),
            "no advice to migrate what the migration migrates:\n{}",
            plan.stdout
        );
    }
    assert_eq!(keys(direct, schema).await, expected_keys(schema, true));
    if together {
        // The tables flip together, when the operator says so: no auto-cutover, nothing started.
        let refused = request(
            &duet,
            json!({"command": "migrate", "input": {"kind": "sql", "sql": alter}, "auto_cutover": true}),
        )
        .await;
        // (the same for the key alone, which takes the referencing column along)
        assert!(
            !refused.ok && refused.error.contains("--auto-cutover is not available"),
            "{:?}",
            refused.raw
        );
        assert_eq!(
            crate::support::migration::migrations(&duet).await.len(),
            0,
            "nothing was started"
        );
    }

    let mut writers: Vec<Writer> = [Via::Simple, Via::Extended, Via::Direct, Via::DoBlock]
        .into_iter()
        .enumerate()
        .map(|(i, via)| Writer {
            via,
            key: FIRST_KEY + i as i64 * 1_000_000,
            step: 0,
            failures: Vec::new(),
            refused: 0,
        })
        .collect();
    let start = |writers: Vec<Writer>| Writers::start(schema, &app_config, &app_direct, writers);

    // The copy phase, held open by an older transaction so the writers write during it.
    let old = connect(&direct_config).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");
    let ids = migrate_all(&duet, &alter, lines_mode == Lines::Later).await;
    assert_eq!(ids.len(), if together { 2 } else { 1 });

    for id in &ids {
        let m = wait_phase(&duet, *id, "copying").await;
        assert_eq!(m["strategy"], "shadow_table", "{m}");
        let group: Vec<String> = if together {
            vec![
                format!("\"{schema}\".\"lines\""),
                format!("\"{schema}\".\"orders\""),
            ]
        } else {
            Vec::new()
        };
        assert_eq!(
            m.get("group").cloned().unwrap_or(json!([])),
            json!(group),
            "status names the tables that flip together, in flip order: {m}"
        );
    }
    let running = start(writers);
    settle().await;
    writers = running.stop(&duet).await;
    assert_same_as_twins(direct, schema, "copying").await;
    if together {
        let early = request(&duet, json!({"command": "cutover"})).await;
        assert!(
            !early.ok && early.error.contains("not ready"),
            "a cutover waits for every table: {:?}",
            early.raw
        );
    }
    old.client.batch_execute("COMMIT").await.expect("COMMIT");

    let running = start(writers);
    for id in &ids {
        wait_phase(&duet, *id, "ready").await;
    }
    settle().await;
    writers = running.stop(&duet).await;
    assert_same_as_twins(direct, schema, "ready").await;
    assert_eq!(keys(direct, schema).await, expected_keys(schema, true));

    let running = start(writers);
    settle().await;
    cutover_retried(&duet).await;
    settle().await;
    writers = running.stop(&duet).await;
    assert_eq!(column_type(direct, schema, "orders", "id").await, "bigint");
    assert_eq!(
        keys(direct, schema).await,
        expected_keys(schema, false),
        "the keys reference the new table, NOT VALID until complete"
    );
    assert_same_as_twins(direct, schema, "flipped").await;
    if together {
        assert_eq!(
            column_type(direct, schema, "lines", "order_id").await,
            "bigint",
            "both tables flipped in one transaction"
        );
        widen_twin_lines(direct, schema, &role).await;
    }

    // Only the new table can hold this order; the bigint column references it.
    let app = connect(&app_config).await;
    on_both(
        &app.client,
        direct,
        "an invoice (and a line) of an order past int4",
        |suffix| {
            format!(
                "INSERT INTO {schema}.orders{suffix} VALUES ({BIG_KEY}, 'big', 1);
             INSERT INTO {schema}.invoices{suffix} VALUES ({BIG_KEY}, {BIG_KEY});
             {}",
                if together {
                    format!("INSERT INTO {schema}.lines{suffix} VALUES (2000000000, {BIG_KEY}, 1)")
                } else {
                    String::new()
                }
            )
        },
    )
    .await;
    assert_same_as_twins(direct, schema, "past int4").await;
    if finish == "revert" {
        // The revert refuses while the new table holds a key the old one cannot.
        // (its line goes with it: ON DELETE CASCADE)
        on_both(
            &app.client,
            direct,
            "remove the order past int4",
            |suffix| {
                format!(
                    "DELETE FROM {schema}.invoices{suffix} WHERE id = {BIG_KEY};
                 DELETE FROM {schema}.orders{suffix} WHERE id = {BIG_KEY};"
                )
            },
        )
        .await;
    }

    let running = start(writers);
    settle().await;
    retried(&duet, json!({"command": finish})).await;
    settle().await;
    writers = running.stop(&duet).await;
    let done = if finish == "revert" {
        "reverted"
    } else {
        "completed"
    };
    assert_same_as_twins(direct, schema, done).await;
    let running = start(writers);
    settle().await;
    writers = running.stop(&duet).await;
    assert_same_as_twins(direct, schema, &format!("after {finish}")).await;

    assert_eq!(
        keys(direct, schema).await,
        expected_keys(schema, true),
        "{done}: the keys reference the table that has the name, validated again"
    );
    assert_eq!(column_order(direct, schema).await, "id,customer,amount");
    assert_eq!(
        column_type(direct, schema, "orders", "id").await,
        if finish == "revert" {
            "integer"
        } else {
            "bigint"
        }
    );
    assert_eq!(
        column_type(direct, schema, "lines", "order_id").await,
        if together && finish == "complete" {
            "bigint"
        } else {
            "integer"
        }
    );
    for id in &ids {
        assert_clean(&duet, direct, schema, *id, done).await;
    }
    if finish == "complete" && !together {
        // The migration `plan` named next: the referencing column, online too, its key carried
        // to the widened table by the shadow.
        let running = start(writers);
        let lines = migrate_all(&duet, &widen_lines, false).await[0];
        wait_phase(&duet, lines, "ready").await;
        cutover_retried(&duet).await;
        settle().await;
        retried(&duet, json!({"command": "complete"})).await;
        writers = running.stop(&duet).await;
        widen_twin_lines(direct, schema, &role).await;
        assert_eq!(
            column_type(direct, schema, "lines", "order_id").await,
            "bigint"
        );
        assert_eq!(keys(direct, schema).await, expected_keys(schema, true));
        on_both(
            &app.client,
            direct,
            "a line of the order past int4",
            |suffix| {
                format!("INSERT INTO {schema}.lines{suffix} VALUES (2000000000, {BIG_KEY}, 1)")
            },
        )
        .await;
        assert_same_as_twins(direct, schema, "lines widened").await;
        assert_clean(&duet, direct, schema, lines, "completed").await;
    }
    let refused: u64 = writers.iter().map(|w| w.refused).sum();
    assert!(
        refused >= 12,
        "the writers' violating writes were refused alike on both sides ({refused})"
    );
    drop(old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referenced_key_widened_then_complete() {
    referenced_key_widened("referenced_complete", "refc", "complete", Lines::Later).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referenced_key_widened_then_revert() {
    referenced_key_widened("referenced_revert", "refr", "revert", Lines::Later).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_referencing_column_in_one_migration_then_complete() {
    referenced_key_widened(
        "referenced_group_complete",
        "refgc",
        "complete",
        Lines::Named,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_alone_takes_its_referencing_column_along_then_revert() {
    referenced_key_widened("referenced_group_revert", "refgr", "revert", Lines::Implied).await;
}
