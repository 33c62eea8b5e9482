//! The safety net: every write to a table under migration lands in both shapes, whoever sends it
//! and however — through duet but hidden from its rewrite (SQL `PREPARE`/`EXECUTE`, a function
//! with dynamic SQL, a `DO` block, a trigger on another table, a rule created during the
//! migration), straight to PostgreSQL, or through a second duet that knows nothing of the
//! migration — during the copy, once ready (after the verification), after the flip and after a
//! revert or complete. Each write is also made on an unmigrated control table, and the two are
//! compared row for row. Also: a same-named table on the session's `search_path` or a temporary
//! table shadowing it is written as PostgreSQL resolves it and never reaches the migrating table's
//! shadow; a non-owner application role writes through every phase without a privilege error;
//! DDL through duet that would make an object depend on the table is refused (55000, with a hint).

use serde_json::json;

use crate::support::backend_or_skip;
use crate::support::duet_process::{through, DuetProcess};
use crate::support::migration::{
    assert_clean, column_type, migrate_sql, migrate_sql_shadow_column, request, rows_as_text,
    wait_phase,
};
use crate::support::pg_client::{connect, Session};
use crate::support::scenario::Scenario;

/// The objects the hidden write paths use, for `t` and for `t_control`.
fn setup_sql(schema: &str) -> String {
    format!(
        "CREATE FUNCTION {schema}.put(tbl regclass, k bigint, lbl text) RETURNS void LANGUAGE plpgsql AS $f$
         BEGIN
           EXECUTE format('INSERT INTO %s (id, label, amount) VALUES ($1, $2, 1)
                           ON CONFLICT (id) DO UPDATE SET label = EXCLUDED.label', tbl) USING k, lbl;
         END $f$;
         CREATE TABLE {schema}.events (tbl text NOT NULL, k bigint NOT NULL);
         CREATE FUNCTION {schema}.on_event() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           EXECUTE format('UPDATE %s SET amount = coalesce(amount, 0) + 1 WHERE id = $1', NEW.tbl)
             USING NEW.k;
           RETURN NULL;
         END $f$;
         CREATE TRIGGER on_event AFTER INSERT ON {schema}.events
           FOR EACH ROW EXECUTE FUNCTION {schema}.on_event();
         CREATE TABLE {schema}.ruled_t (k bigint);
         CREATE TABLE {schema}.ruled_t_control (k bigint);"
    )
}

/// One round of the hidden write paths: `via` (through a duet) on `t`, and directly on the
/// control table. Ids of round `k` are its own.
async fn hidden_round(s: &Scenario, via: &tokio_postgres::Client, k: i64) {
    let schema = &s.pair.schema;
    let id = 2_000_000 + k * 100;
    let touch = k % 50 + 1;
    for (client, table) in [(via, "t"), (s.direct(), "t_control")] {
        let t = format!("{schema}.{table}");
        client
            .batch_execute(&format!(
                "PREPARE p{k}(bigint, text) AS UPDATE {t} SET label = $2 WHERE id = $1;
                 EXECUTE p{k}({touch}, 'prepared {k}');
                 PREPARE q{k}(bigint) AS INSERT INTO {t} (id, label, amount) VALUES ($1, 'prepared insert', 3);
                 EXECUTE q{k}({id});
                 DEALLOCATE p{k}; DEALLOCATE q{k};
                 SELECT {schema}.put('{t}', {id} + 1, 'function {k}');
                 SELECT {schema}.put('{t}', {touch} + 1, 'function update {k}');
                 DO $do$ BEGIN
                   UPDATE {t} SET amount = amount * 2 WHERE id = {touch} + 2;
                   DELETE FROM {t} WHERE id = {id};
                   INSERT INTO {t} (id, label) VALUES ({id} + 2, 'do block');
                 END $do$;
                 INSERT INTO {schema}.events VALUES ('{t}', {touch} + 3);
                 INSERT INTO {schema}.ruled_{table} VALUES ({touch} + 4);"
            ))
            .await
            .unwrap_or_else(|e| panic!("hidden writes on {t} (round {k}): {e:?}"));
        // The same paths in the extended protocol, with parameters.
        client
            .execute(
                format!("SELECT {schema}.put($1::text::regclass, $2, $3)").as_str(),
                &[&t, &(id + 4), &format!("extended function {k}")],
            )
            .await
            .unwrap_or_else(|e| panic!("a function through the extended protocol: {e:?}"));
        client
            .execute(
                format!("INSERT INTO {schema}.events VALUES ($1, $2)").as_str(),
                &[&t, &(touch + 6)],
            )
            .await
            .unwrap_or_else(|e| panic!("a trigger through the extended protocol: {e:?}"));
        // Short transactions of their own, straight to PostgreSQL, and a COPY.
        s.direct()
            .batch_execute(&format!(
                "UPDATE {t} SET label = label || '+direct' WHERE id = {touch} + 5;
                 INSERT INTO {t} (id, label, amount) VALUES ({id} + 3, 'direct', 7);"
            ))
            .await
            .expect("a direct write");
        let sink = s
            .direct()
            .copy_in::<_, bytes::Bytes>(format!("COPY {t} (id, label, amount) FROM STDIN").as_str())
            .await
            .expect("a direct COPY");
        futures_util::pin_mut!(sink);
        futures_util::SinkExt::send(
            &mut sink,
            bytes::Bytes::from(format!("{}\tcopied\t8\n{}\tcopied\t9\n", id + 5, id + 6)),
        )
        .await
        .expect("COPY data");
        assert_eq!(sink.finish().await.expect("COPY done"), 2);
    }
}

/// A rule on another table that writes the migrating table (and its twin), created straight on
/// PostgreSQL while the migration runs.
async fn create_rules(s: &Scenario) {
    let schema = &s.pair.schema;
    for table in ["t", "t_control"] {
        s.direct()
            .batch_execute(&format!(
                "CREATE RULE ruled_{table} AS ON INSERT TO {schema}.ruled_{table}
                   DO ALSO UPDATE {schema}.{table} SET label = label || '+rule' WHERE id = NEW.k"
            ))
            .await
            .expect("a rule");
    }
}

/// Rules bind the table they write by its identity: the flip would leave them on the old table.
async fn drop_rules(s: &Scenario) {
    let schema = &s.pair.schema;
    for table in ["t", "t_control"] {
        s.direct()
            .batch_execute(&format!(
                "DROP RULE ruled_{table} ON {schema}.ruled_{table}"
            ))
            .await
            .expect("dropping a rule");
    }
}

/// A same-named table of another shape in another schema first on the search_path, and a
/// temporary table of the same name: writes through duet reach them as PostgreSQL resolves the
/// name, never the migrating table's shadow, and do not fail (the session is noticed changing its
/// name resolution, and its writes go through the safety net instead of the rewrite).
async fn shadowing_names(s: &Scenario, k: i64) {
    let schema = &s.pair.schema;
    let other = format!("{schema}_other");
    let session = connect(&through(&s.backend, &s.duet, &s.db, "search-path")).await;
    session
        .client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {other}.t (id int PRIMARY KEY, label text, extra int);
             SET search_path = {other}, {schema};
             INSERT INTO t (id, label) VALUES ({0}, 'other schema');
             UPDATE t SET label = 'other schema, updated' WHERE id = {0};
             DELETE FROM t WHERE id = 1;
             CREATE TEMP TABLE t (LIKE {schema}.t_control INCLUDING ALL);
             INSERT INTO t (id, label, amount) VALUES (1, 'temporary', 1), ({0}, 'temporary', 2);
             UPDATE t SET label = 'temporary, updated' WHERE id = 1;
             DROP TABLE pg_temp.t;
             RESET search_path;",
            3_000_000 + k
        ))
        .await
        .unwrap_or_else(|e| panic!("writes to same-named tables (round {k}): {e:?}"));
    // The same in the extended protocol, with the path changed by a function call rather than
    // `SET` (what an ORM's connection hook does): `set_config('search_path', …, false)` is
    // noticed too, and the parameterized writes reach the table PostgreSQL resolves.
    let id = 3_500_000 + k;
    let path = format!("{other}, {schema}");
    session
        .client
        .query_one(
            "SELECT pg_catalog.set_config('Search_Path', $1, false)",
            &[&path],
        )
        .await
        .unwrap_or_else(|e| panic!("set_config of the search_path (round {k}): {e:?}"));
    let inserted = session
        .client
        .execute(
            "INSERT INTO t (id, label) VALUES ($1::int, 'other schema, extended')",
            &[&(id as i32)],
        )
        .await
        .unwrap_or_else(|e| panic!("an extended-protocol write after set_config: {e:?}"));
    assert_eq!(inserted, 1);
    session
        .client
        .execute(
            "UPDATE t SET label = label || '+' WHERE id = $1::int",
            &[&(id as i32)],
        )
        .await
        .unwrap_or_else(|e| panic!("an extended-protocol update after set_config: {e:?}"));
    session
        .client
        .batch_execute("RESET search_path")
        .await
        .expect("RESET search_path");
    let extended_rows = rows_as_text(
        s.direct(),
        &format!("SELECT label FROM {other}.t WHERE id = {id}"),
    )
    .await;
    assert_eq!(
        extended_rows,
        vec![vec!["other schema, extended+".to_owned()]],
        "the extended-protocol write went to the table PostgreSQL resolved"
    );
    // The same session's writes to the migrating table itself still land in both shapes.
    for (client, table) in [(&session.client, "t"), (s.direct(), "t_control")] {
        client
            .batch_execute(&format!(
                "UPDATE {schema}.{table} SET label = label || '+netted' WHERE id = {}",
                k % 30 + 200
            ))
            .await
            .expect("a qualified write after the search_path changed");
    }
    let other_rows = rows_as_text(
        s.direct(),
        &format!(
            "SELECT id::text, label FROM {other}.t WHERE id = {}",
            3_000_000 + k
        ),
    )
    .await;
    assert_eq!(
        other_rows,
        vec![vec![
            (3_000_000 + k).to_string(),
            "other schema, updated".to_owned()
        ]],
        "the write went to the table PostgreSQL resolved"
    );
}

/// A role that does not own the table, allowed to write it, through duet.
async fn app_role_session(s: &Scenario, role: &str) -> Session {
    let schema = &s.pair.schema;
    s.direct()
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA {schema} TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.t, {schema}.t_control TO {role};"
        ))
        .await
        .expect("an application role");
    let mut config = through(&s.backend, &s.duet, &s.db, "app-role");
    config.user(role);
    connect(&config).await
}

async fn app_role_round(s: &Scenario, app: &tokio_postgres::Client, k: i64) {
    let schema = &s.pair.schema;
    for (client, table) in [(app, "t"), (s.direct(), "t_control")] {
        client
            .batch_execute(&format!(
                "INSERT INTO {schema}.{table} (id, label, amount) VALUES ({0}, 'app role', 1);
                 UPDATE {schema}.{table} SET amount = amount + 1 WHERE id = {1};
                 DELETE FROM {schema}.{table} WHERE id = {0};
                 INSERT INTO {schema}.{table} (id, label, amount) VALUES ({0} + 1, 'app role', 2);",
                4_000_000 + k * 10,
                k % 40 + 60
            ))
            .await
            .unwrap_or_else(|e| panic!("the application role's writes on {table}: {e:?}"));
    }
}

async fn drop_role(s: &Scenario, role: &str) {
    s.direct()
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .expect("dropping the application role");
}

/// DDL through duet that would make a new object depend on the table under migration is refused
/// with 55000 and a hint; the session stays usable and nothing was created.
async fn refused_dependencies(s: &Scenario) {
    let schema = &s.pair.schema;
    for sql in [
        format!("CREATE VIEW {schema}.v AS SELECT id, label FROM {schema}.t"),
        format!("CREATE TABLE {schema}.child (id int REFERENCES {schema}.t)"),
        format!("COMMENT ON TABLE {schema}.t IS 'during the migration'"),
    ] {
        let err = s
            .through()
            .batch_execute(&sql)
            .await
            .expect_err("a dependency on a migrating table is refused");
        let db = err.as_db_error().expect("a server-style error");
        assert_eq!(db.code().code(), "55000", "{sql}: {db:?}");
        assert!(
            db.hint().is_some_and(|h| h.contains("duet admin complete")),
            "{sql}: {db:?}"
        );
    }
    s.through()
        .simple_query("SELECT 1")
        .await
        .expect("the session stays usable");
    let created = rows_as_text(
        s.direct(),
        &format!(
            "SELECT relname::text FROM pg_class WHERE relnamespace = '{schema}'::regnamespace AND relname IN ('v', 'child')"
        ),
    )
    .await;
    assert!(created.is_empty(), "nothing was created: {created:?}");
}

/// Every hidden path in every phase of one migration, then `finish` (`revert` or `complete`).
async fn every_path_every_phase(label: &str, schema: &str, column: &str, finish: &str) {
    let alter = format!("ALTER TABLE {schema}.t ALTER COLUMN {column} TYPE bigint");
    let Some(backend) = backend_or_skip(label) else {
        return;
    };
    let s = Scenario::start(backend.clone(), label, schema, "int", "int", 3000).await;
    s.direct()
        .batch_execute(&format!(
            "{} CREATE SCHEMA {schema}_other;",
            setup_sql(schema)
        ))
        .await
        .expect("setup");
    let role = format!("{schema}_app");
    let app = app_role_session(&s, &role).await;
    let second = DuetProcess::start(&backend.url(s.db.name()), &[]);
    let second_session = connect(&through(&backend, &second, &s.db, "second-duet")).await;

    // The copy phase, held open by an older transaction.
    let old = connect(&s.db.direct_config()).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction");
    // `amount` has no index: without the operator's consent it would get a shadow table.
    let id = if column == "amount" {
        migrate_sql_shadow_column(&s.duet, &alter).await
    } else {
        migrate_sql(&s.duet, &alter).await
    };
    let m = wait_phase(&s.duet, id, "copying").await;
    let strategy = if column == "amount" {
        "shadow_column"
    } else {
        "shadow_table"
    };
    assert_eq!(m["strategy"], strategy, "{m}");
    create_rules(&s).await;
    refused_dependencies(&s).await;
    let mut k = 0;
    for via in [s.through(), &second_session.client] {
        k += 1;
        hidden_round(&s, via, k).await;
    }
    app_role_round(&s, &app.client, k).await;
    shadowing_names(&s, k).await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");

    // Ready: verified, and nothing verifies again before the flip.
    wait_phase(&s.duet, id, "ready").await;
    for via in [s.through(), &second_session.client] {
        k += 1;
        hidden_round(&s, via, k).await;
    }
    app_role_round(&s, &app.client, k).await;
    shadowing_names(&s, k).await;
    drop_rules(&s).await;
    request(&s.duet, json!({"command": "cutover", "budget_ms": 5000}))
        .await
        .expect_ok("cutover");
    assert_eq!(column_type(s.direct(), schema, "t", column).await, "bigint");
    s.assert_same_rows().await;

    // After the flip: mirrored back into the old shape.
    for via in [s.through(), &second_session.client] {
        k += 1;
        hidden_round(&s, via, k).await;
    }
    app_role_round(&s, &app.client, k).await;
    shadowing_names(&s, k).await;
    request(&s.duet, json!({"command": finish}))
        .await
        .expect_ok(finish);
    s.assert_same_rows().await;
    let phase = if finish == "revert" {
        "reverted"
    } else {
        "completed"
    };
    assert_clean(&s.duet, s.direct(), schema, id, phase).await;

    // Afterwards, the same paths on the table as it is now.
    for via in [s.through(), &second_session.client] {
        k += 1;
        hidden_round(&s, via, k).await;
    }
    app_role_round(&s, &app.client, k).await;
    s.assert_same_rows().await;
    let net_left = rows_as_text(
        s.direct(),
        "SELECT tgname::text FROM pg_trigger WHERE tgname LIKE '~duet%'
         UNION ALL SELECT proname::text FROM pg_proc WHERE proname LIKE '%\\_\\_net%'",
    )
    .await;
    assert!(
        net_left.is_empty(),
        "the safety net is removed: {net_left:?}"
    );
    drop(app);
    drop_role(&s, &role).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_shadow_table_every_path_every_phase_then_revert() {
    every_path_every_phase("net_table_revert", "nettr", "id", "revert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_shadow_table_every_path_every_phase_then_complete() {
    every_path_every_phase("net_table_complete", "nettc", "id", "complete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_shadow_column_every_path_every_phase_then_revert() {
    every_path_every_phase("net_column_revert", "netcr", "amount", "revert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_shadow_column_every_path_every_phase_then_complete() {
    every_path_every_phase("net_column_complete", "netcc", "amount", "complete").await;
}

/// `TRUNCATE` of the table, through duet and straight to PostgreSQL, the table filled again by
/// the clients afterwards: during the copy, once ready, after the flip and after the finish; the
/// control table is truncated and filled the same way, and the two are compared row for row.
async fn truncate_every_phase(label: &str, schema: &str, column: bool, finish: &str) {
    let Some(backend) = backend_or_skip(label) else {
        return;
    };
    let mut s = Scenario::start(backend, label, schema, "int", "int", 3000).await;
    // Both tables truncated (`via` for the migrated one: duet or straight), then filled again
    // with ids 1..=3000 through duet (and straight on the control), then a round of writes.
    async fn truncate_and_refill(s: &mut Scenario, schema: &str, through_duet: bool) {
        let truncate = format!("TRUNCATE {schema}.t");
        if through_duet {
            s.through()
                .batch_execute(&truncate)
                .await
                .expect("TRUNCATE through duet");
        } else {
            s.direct()
                .batch_execute(&truncate)
                .await
                .expect("TRUNCATE straight");
        }
        s.direct()
            .batch_execute(&format!("TRUNCATE {schema}.t_control"))
            .await
            .expect("TRUNCATE control");
        s.assert_same_rows().await;
        let fill = |table: &str| {
            format!(
                "INSERT INTO {schema}.{table} SELECT g, 'r' || g, g FROM generate_series(1, 3000) g"
            )
        };
        s.through()
            .batch_execute(&fill("t"))
            .await
            .expect("refill through duet");
        s.direct()
            .batch_execute(&fill("t_control"))
            .await
            .expect("refill control");
        s.round().await;
        s.assert_same_rows().await;
    }
    let old = connect(&s.db.direct_config()).await;
    old.client
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .expect("an old transaction holding the copy phase open");
    let change = if column {
        format!("ALTER TABLE {schema}.t ALTER COLUMN amount TYPE bigint")
    } else {
        format!("ALTER TABLE {schema}.t ALTER COLUMN id TYPE bigint")
    };
    let id = if column {
        migrate_sql_shadow_column(&s.duet, &change).await
    } else {
        migrate_sql(&s.duet, &change).await
    };
    wait_phase(&s.duet, id, "copying").await;
    truncate_and_refill(&mut s, schema, true).await;
    old.client.batch_execute("COMMIT").await.expect("COMMIT");
    wait_phase(&s.duet, id, "ready").await;
    truncate_and_refill(&mut s, schema, false).await;
    request(&s.duet, json!({"command": "cutover", "budget_ms": 5000}))
        .await
        .expect_ok("cutover");
    truncate_and_refill(&mut s, schema, true).await;
    request(&s.duet, json!({"command": finish}))
        .await
        .expect_ok(finish);
    let phase = if finish == "complete" {
        "completed"
    } else {
        "reverted"
    };
    wait_phase(&s.duet, id, phase).await;
    s.assert_same_rows().await;
    truncate_and_refill(&mut s, schema, true).await;
    assert_clean(&s.duet, s.direct(), schema, id, phase).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_truncate_every_phase_shadow_table_then_revert() {
    truncate_every_phase("net_truncate_table_revert", "ntr", false, "revert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_truncate_every_phase_shadow_column_then_complete() {
    truncate_every_phase("net_truncate_column_complete", "ntc", true, "complete").await;
}
