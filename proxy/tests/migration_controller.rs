//! The migration controller against the real PostgreSQL, through an in-process proxy driven over
//! its admin socket.
//!
//! Each test gets its own database (so a restarted proxy restores only that test's migrations)
//! and drops it at the end. Most plans are built by hand here (a column rename; an int → bigint
//! key through a shadow table) so the controller's own paths are tested independently of the
//! planner; one test runs the planner's plans end to end, and the `duet admin` binary.
//!
//! The server comes from `DUET_TEST_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432,
//! through `duet_testkit`); without one the tests say so and pass, unless
//! `DUET_REQUIRE_DATABASE=1`.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use duet_proxy::admin::protocol::{Reply, Request};
use duet_proxy::config::{self, Overrides};
use duet_proxy::context::ProxyContext;
use duet_proxy::server::Proxy;
use duet_shadow::check::LockMode;
use duet_shadow::ident::QualifiedName;
use duet_shadow::migrate::key::CopyKey;
use duet_shadow::migrate::{ColumnMapping, CopyTarget};
use duet_shadow::plan::{CopySpec, Plan, PlanInput, PlanKind, Step, StepLock};
use duet_shadow::rewrite::{Column, TableRoute, Target};
use duet_testkit::TestDatabase;
use serde_json::{json, Value};
use tokio_postgres::{Client, NoTls};

async fn connect(config: &tokio_postgres::Config) -> Client {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {config:?}: {e}"));
    tokio::spawn(connection);
    client
}

/// This test's own database on the test server (so a restarted proxy restores only this test's
/// migrations), or `None` after the kit's loud skip.
fn test_database(label: &str) -> Option<TestDatabase> {
    let backend = support::backend_or_skip()?;
    Some(TestDatabase::create(&backend, &format!("mc_{label}")))
}

/// A session straight on `db` (not through the proxy).
async fn connect_direct(db: &TestDatabase) -> Client {
    connect(&db.direct_config()).await
}

/// A proxy running in this process.
struct Harness {
    ctx: Arc<ProxyContext>,
    run: tokio::task::JoinHandle<()>,
    socket: PathBuf,
    /// How a client reaches the test's database through this proxy.
    through: tokio_postgres::Config,
}

impl Harness {
    async fn start(db: &TestDatabase, tag: &str) -> Harness {
        let socket = std::env::temp_dir().join(format!(
            "duet-mc-{}-{}-{tag}.sock",
            std::process::id(),
            db.name()
        ));
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".into()),
            backend: Some(db.url()),
            admin_socket: Some(socket.clone()),
            workers: Some(1),
            ..Overrides::default()
        };
        let config = config::from_str("", overrides).expect("config");
        let proxy = Proxy::bind(config).await.expect("proxy starts");
        let ctx = proxy.context().clone();
        let port = proxy.listen_addr().port();
        let run = tokio::spawn(proxy.run());
        Harness {
            ctx,
            run,
            socket,
            through: db.config_at("127.0.0.1", port),
        }
    }

    async fn client(&self) -> Client {
        connect(&self.through).await
    }

    async fn admin(&self, request: Value) -> Reply {
        let request: Request = serde_json::from_value(request).expect("a valid request");
        let socket = self.socket.clone();
        tokio::task::spawn_blocking(move || {
            duet_proxy::admin::client::request(&socket, &request, Duration::from_secs(120))
        })
        .await
        .unwrap()
        .expect("admin reply")
    }

    async fn status_of(&self, id: i64) -> Value {
        let reply = self.admin(json!({"command": "status"})).await;
        let result = reply.result.expect("status result");
        result["migrations"]
            .as_array()
            .and_then(|l| l.iter().find(|m| m["id"] == id).cloned())
            .unwrap_or(Value::Null)
    }

    /// Polls status until the migration reaches `phase` (fails on an error or after a long wait).
    async fn wait_phase(&self, id: i64, phase: &str) -> Value {
        for _ in 0..600 {
            let m = self.status_of(id).await;
            if m["phase"] == phase {
                return m;
            }
            assert!(m["error"].is_null(), "migration failed: {m}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "migration {id} never reached {phase}: {}",
            self.status_of(id).await
        );
    }

    async fn wait_copy_state(&self, id: i64, needle: &str) -> Value {
        for _ in 0..600 {
            let m = self.status_of(id).await;
            if m["copy_state"].as_str().is_some_and(|s| s.contains(needle)) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "copy state never showed {needle:?}: {}",
            self.status_of(id).await
        );
    }

    async fn stop(self) {
        self.ctx
            .shutdown
            .begin(self.ctx.sessions.clone(), Duration::from_secs(1));
        let _ = self.run.await;
    }
}

fn step(sql: &str, why: &str) -> Step {
    Step {
        sql: sql.to_owned(),
        lock: StepLock::new(LockMode::AccessExclusive, "(brief, metadata only)"),
        why: why.to_owned(),
        outside_transaction: false,
    }
}

/// `ALTER TABLE s.t RENAME COLUMN a TO b` as the planner would plan it.
fn rename_plan(schema: &str) -> Plan {
    let table = QualifiedName::new(schema, "t");
    let t = table.sql();
    Plan {
        table: table.clone(),
        kind: PlanKind::Rename,
        reason: "a rename is a metadata change; old names are translated".into(),
        input: PlanInput::sql(format!("ALTER TABLE {t} RENAME COLUMN a TO b")),
        expand: vec![],
        dual_write_route: None,
        copy: None,
        prepare_flip: vec![],
        flip: vec![step(
            &format!("ALTER TABLE {t} RENAME COLUMN a TO b"),
            "rename",
        )],
        flipped_route: Some(TableRoute {
            schema: schema.into(),
            name: "t".into(),
            columns: vec![
                Column {
                    name: "id".into(),
                    base_type: "int4".into(),
                },
                Column {
                    name: "b".into(),
                    base_type: "text".into(),
                },
            ],
            key: vec!["id".into()],
            target: Target::Renamed {
                columns: vec![("a".into(), "b".into())],
            },
        }),
        revert: vec![step(
            &format!("ALTER TABLE {t} RENAME COLUMN b TO a"),
            "rename back",
        )],
        after_revert: vec![],
        complete: vec![],
        abort: vec![],
        warnings: vec![],
        carried: Default::default(),
        group: Vec::new(),
    }
}

fn route_mapping(pairs: &[(&str, &str)]) -> Vec<duet_shadow::rewrite::ColumnMapping> {
    pairs
        .iter()
        .map(|(target, expr)| duet_shadow::rewrite::ColumnMapping {
            target: (*target).into(),
            expr: (*expr).into(),
        })
        .collect()
}

/// `s.t.id` int → bigint through the shadow table `s.t__duet`.
fn bigint_plan(schema: &str) -> Plan {
    let table = QualifiedName::new(schema, "t");
    let q = |n: &str| QualifiedName::new(schema, n).sql();
    let (t, shadow, old) = (q("t"), q("t__duet"), q("t__duet_old"));
    let columns = |id_type: &str| {
        vec![
            Column {
                name: "id".into(),
                base_type: id_type.into(),
            },
            Column {
                name: "v".into(),
                base_type: "text".into(),
            },
        ]
    };
    Plan {
        table: table.clone(),
        kind: PlanKind::ShadowTable,
        reason: "the key's type changes: rows are copied into a shadow table".into(),
        input: PlanInput::sql(format!("ALTER TABLE {t} ALTER COLUMN id TYPE bigint")),
        expand: vec![step(
            &format!(
                "CREATE TABLE IF NOT EXISTS {shadow} (id bigint NOT NULL PRIMARY KEY, v text, \
                 \"__duet_deleted\" boolean NOT NULL DEFAULT false)"
            ),
            "create the shadow",
        )],
        dual_write_route: Some(TableRoute {
            schema: schema.into(),
            name: "t".into(),
            columns: columns("int4"),
            key: vec!["id".into()],
            target: Target::ShadowTable {
                shadow: "t__duet".into(),
                mapping: route_mapping(&[("id", "\"id\"::bigint"), ("v", "\"v\"")]),
                shadow_key: vec!["id".into()],
                skip_when: None,
                plain_deletes: false,
            },
        }),
        copy: Some(CopySpec::Table(CopyTarget {
            source: table.clone(),
            shadow: QualifiedName::new(schema, "t__duet"),
            key: CopyKey {
                columns: vec!["id".into()],
                source_types: vec!["integer".into()],
                index_name: "t_pkey".into(),
                is_primary: true,
            },
            shadow_key_types: vec!["bigint".into()],
            mapping: vec![
                ColumnMapping::new("id", "\"id\"::bigint"),
                ColumnMapping::new("v", "\"v\""),
            ],
        })),
        prepare_flip: vec![],
        flip: vec![
            step(
                &format!("DELETE FROM {shadow} WHERE \"__duet_deleted\""),
                "drop tombstones",
            ),
            step(
                &format!("ALTER TABLE {shadow} DROP COLUMN \"__duet_deleted\""),
                "no tombstones in the new table",
            ),
            step(
                &format!(
                    "ALTER TABLE {t} ADD COLUMN \"__duet_deleted\" boolean NOT NULL DEFAULT false"
                ),
                "reverse dual-writes",
            ),
            step(&format!("ALTER TABLE {t} RENAME TO t__duet_old"), "swap"),
            step(
                &format!("ALTER TABLE {old} RENAME CONSTRAINT t_pkey TO t__duet_old_pkey"),
                "swap",
            ),
            step(&format!("ALTER TABLE {shadow} RENAME TO t"), "swap"),
            step(
                &format!("ALTER TABLE {t} RENAME CONSTRAINT t__duet_pkey TO t_pkey"),
                "swap",
            ),
        ],
        flipped_route: Some(TableRoute {
            schema: schema.into(),
            name: "t".into(),
            columns: columns("int8"),
            key: vec!["id".into()],
            target: Target::ShadowTable {
                shadow: "t__duet_old".into(),
                mapping: route_mapping(&[("id", "\"id\"::integer"), ("v", "\"v\"")]),
                shadow_key: vec!["id".into()],
                skip_when: None,
                plain_deletes: false,
            },
        }),
        revert: vec![
            step(
                &format!("ALTER TABLE {t} RENAME CONSTRAINT t_pkey TO t__duet_pkey"),
                "swap back",
            ),
            step(&format!("ALTER TABLE {t} RENAME TO t__duet"), "swap back"),
            step(
                &format!("ALTER TABLE {old} RENAME CONSTRAINT t__duet_old_pkey TO t_pkey"),
                "swap back",
            ),
            step(&format!("ALTER TABLE {old} RENAME TO t"), "swap back"),
            step(
                &format!("DELETE FROM {t} WHERE \"__duet_deleted\""),
                "drop tombstones",
            ),
            step(
                &format!("ALTER TABLE {t} DROP COLUMN \"__duet_deleted\""),
                "old shape again",
            ),
        ],
        after_revert: vec![step(
            &format!("DROP TABLE IF EXISTS {shadow}"),
            "drop the new shape",
        )],
        complete: vec![step(
            &format!("DROP TABLE IF EXISTS {old}"),
            "drop the old shape",
        )],
        abort: vec![step(
            &format!("DROP TABLE IF EXISTS {shadow}"),
            "drop the shadow",
        )],
        warnings: vec![],
        carried: Default::default(),
        group: Vec::new(),
    }
}

async fn setup_table(db: &Client, schema: &str, column: &str, rows: i32) {
    db.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id int PRIMARY KEY, {column} text);
         INSERT INTO {schema}.t SELECT g, 'row ' || g FROM generate_series(1, {rows}) g;
         ANALYZE {schema}.t;"
    ))
    .await
    .expect("test table");
}

/// Relations of `schema` whose name contains `__duet`, plus live `__duet` columns.
async fn duet_leftovers(db: &Client, schema: &str) -> Vec<String> {
    let rows = db
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname LIKE '%\\_\\_duet%'
             UNION ALL
             SELECT c.relname || '.' || a.attname FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND a.attname LIKE '%\\_\\_duet%' AND NOT a.attisdropped
             UNION ALL
             SELECT conname::text FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE n.nspname = $1 AND conname LIKE '%\\_\\_duet%'",
            &[&schema],
        )
        .await
        .expect("catalog");
    rows.iter().map(|r| r.get(0)).collect()
}

async fn stored_phase(db: &Client, id: i64) -> String {
    db.query_one("SELECT phase FROM duet.migrations WHERE id = $1", &[&id])
        .await
        .expect("migration row")
        .get(0)
}

async fn column_type(db: &Client, schema: &str, column: &str) -> String {
    db.query_one(
        "SELECT format_type(atttypid, NULL) FROM pg_attribute
         WHERE attrelid = ($1 || '.t')::regclass AND attname = $2 AND NOT attisdropped",
        &[&schema, &column],
    )
    .await
    .expect("column")
    .get(0)
}

const STATUS_FIELDS: &[&str] = &[
    "id",
    "table",
    "strategy",
    "phase",
    "error",
    "rows_done",
    "rows_total",
    "rate_rows_per_s",
    "eta_s",
    "copy_state",
    "dual_writes",
    "refusals",
    "old_shape_statements",
    "old_shape_last_seen_s_ago",
    "bypassing_writers",
    "last_flip",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_cutover_is_refused_on_locks_and_open_transactions_then_reverts_and_completes() {
    let Some(db) = test_database("rename") else {
        return;
    };
    let direct = connect_direct(&db).await;
    let schema = "mc_rename";
    setup_table(&direct, schema, "a", 10).await;
    let proxy = Harness::start(&db, "a").await;

    let m = duet_proxy::control::commands::start(&proxy.ctx, rename_plan(schema), false)
        .await
        .expect("migration starts");
    let status = proxy.wait_phase(m.id, "ready").await;
    for field in STATUS_FIELDS {
        assert!(
            status.get(*field).is_some(),
            "status lacks {field}: {status}"
        );
    }
    assert_eq!(status["strategy"], "rename");
    assert_eq!(status["table"], format!("{schema}.t"));

    // A second migration of the same table is refused by the database, with a clear message.
    let second = duet_proxy::control::commands::start(&proxy.ctx, rename_plan(schema), false)
        .await
        .expect_err("one active migration per table");
    assert!(
        matches!(
            second,
            duet_proxy::control::error::MigrationError::AlreadyActive { .. }
        ),
        "{second:?}"
    );
    assert!(
        second
            .to_string()
            .contains("already has an active migration"),
        "{second}"
    );

    // An operator's pause is not taken over (the flip's resume would release it).
    let reply = proxy
        .admin(json!({"command": "pause", "timeout_ms": 5000}))
        .await;
    assert!(reply.ok);
    let reply = proxy.admin(json!({"command": "cutover"})).await;
    assert!(!reply.ok, "{reply:?}");
    assert!(
        reply
            .error
            .as_deref()
            .unwrap_or("")
            .contains("duet admin resume"),
        "{reply:?}"
    );
    assert!(proxy.ctx.gate.is_paused(), "the operator's pause stays");
    proxy.admin(json!({"command": "resume"})).await;

    // A direct connection holding a lock: the flip's lock times out, nothing changes.
    let blocker = connect_direct(&db).await;
    blocker
        .batch_execute(&format!("BEGIN; SELECT count(*) FROM {schema}.t"))
        .await
        .unwrap();
    let client = proxy.client().await;
    let reply = proxy
        .admin(json!({"command": "cutover", "table": format!("{schema}.t")}))
        .await;
    assert!(!reply.ok, "{reply:?}");
    assert!(
        reply.error.as_deref().unwrap_or("").contains("lock"),
        "{reply:?}"
    );
    let status = proxy.status_of(m.id).await;
    assert_eq!(status["phase"], "ready");
    assert_eq!(status["last_flip"]["outcome"], "lock_timeout", "{status}");
    client
        .simple_query(&format!("SELECT a FROM {schema}.t"))
        .await
        .expect("clients are unaffected");
    blocker.batch_execute("COMMIT").await.unwrap();

    // A client idle in a transaction through duet: the drain budget is missed and it is named.
    client.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let reply = proxy
        .admin(json!({"command": "cutover", "budget_ms": 200}))
        .await;
    assert!(!reply.ok, "{reply:?}");
    let status = proxy.status_of(m.id).await;
    assert_eq!(status["phase"], "ready");
    let flip = &status["last_flip"];
    assert_eq!(flip["outcome"], "budget_missed", "{status}");
    assert_eq!(
        flip["blocked_by"][0]["state"], "idle in transaction",
        "{status}"
    );
    assert!(flip["stall_ms"].is_u64());
    client.batch_execute("COMMIT").await.unwrap();

    // Now it flips.
    let reply = proxy.admin(json!({"command": "cutover"})).await;
    assert!(reply.ok, "{reply:?}");
    let result = reply.result.unwrap();
    assert_eq!(result["phase"], "flipped");
    assert!(result["stall_ms"].is_u64());
    assert_eq!(column_type(&direct, schema, "b").await, "text");
    assert_eq!(proxy.ctx.routes.current().routes.tables.len(), 1);

    // Revert: back to `a`, routes cleared, the migration terminal.
    let reply = proxy.admin(json!({"command": "revert"})).await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(column_type(&direct, schema, "a").await, "text");
    assert!(proxy.ctx.routes.current().is_empty());
    assert_eq!(stored_phase(&direct, m.id).await, "reverted");

    // Again, to completion.
    let m2 = duet_proxy::control::commands::start(&proxy.ctx, rename_plan(schema), false)
        .await
        .expect("a new migration after the revert");
    proxy.wait_phase(m2.id, "ready").await;
    let reply = proxy
        .admin(json!({"command": "cutover", "id": m2.id}))
        .await;
    assert!(reply.ok, "{reply:?}");
    let reply = proxy.admin(json!({"command": "complete"})).await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(column_type(&direct, schema, "b").await, "text");
    assert!(proxy.ctx.routes.current().is_empty());
    assert_eq!(stored_phase(&direct, m2.id).await, "completed");
    assert!(duet_leftovers(&direct, schema).await.is_empty());
    let reply = proxy.admin(json!({"command": "complete"})).await;
    assert!(!reply.ok, "nothing left to complete");

    drop(client);
    proxy.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_table_copy_flips_and_completes_or_reverts_leaving_nothing() {
    let Some(db) = test_database("bigint") else {
        return;
    };
    let direct = connect_direct(&db).await;
    let schema = "mc_bigint";
    setup_table(&direct, schema, "v", 2500).await;
    let proxy = Harness::start(&db, "a").await;

    // First round: flip, then revert.
    let m = duet_proxy::control::commands::start(&proxy.ctx, bigint_plan(schema), false)
        .await
        .expect("migration starts");
    let status = proxy.wait_phase(m.id, "ready").await;
    assert_eq!(status["strategy"], "shadow_table");
    assert_eq!(status["rows_done"], 2500, "{status}");
    assert_eq!(proxy.ctx.routes.current().routes.tables.len(), 1);

    // A writer that bypasses duet: named in status; while its transaction holds the table the
    // flip cannot take its lock, and the refusal names it.
    let bypasser = connect_direct(&db).await;
    bypasser
        .batch_execute(&format!(
            "SET application_name = 'bypass-job'; BEGIN; INSERT INTO {schema}.t VALUES (100001, 'direct')"
        ))
        .await
        .unwrap();
    let mut seen = Value::Null;
    for _ in 0..300 {
        let status = proxy.status_of(m.id).await;
        if status["bypassing_writers"]
            .as_array()
            .is_some_and(|w| !w.is_empty())
        {
            seen = status;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen["bypassing_writers"][0]["application_name"], "bypass-job",
        "{seen}"
    );
    let reply = proxy.admin(json!({"command": "cutover"})).await;
    assert!(!reply.ok, "{reply:?}");
    let error = reply.error.as_deref().unwrap_or("");
    assert!(
        error.contains("could not lock") && error.contains("bypass-job"),
        "{reply:?}"
    );
    bypasser.batch_execute("COMMIT").await.unwrap();
    // Once it is gone the cutover flips; the safety net mirrored its row in its own transaction.
    let mut flipped = false;
    for _ in 0..300 {
        let reply = proxy.admin(json!({"command": "cutover"})).await;
        if reply.ok {
            flipped = true;
            break;
        }
        assert!(
            reply
                .error
                .as_deref()
                .unwrap_or("")
                .contains("could not lock"),
            "{reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(flipped, "the cutover never succeeded");
    assert_eq!(column_type(&direct, schema, "id").await, "bigint");
    let row = direct
        .query_one(&format!("SELECT v FROM {schema}.t WHERE id = 100001"), &[])
        .await
        .expect("the bypassing writer's row reached the new table");
    assert_eq!(row.get::<_, &str>(0), "direct");
    let reply = proxy.admin(json!({"command": "revert"})).await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(column_type(&direct, schema, "id").await, "integer");
    assert!(duet_leftovers(&direct, schema).await.is_empty());
    assert!(proxy.ctx.routes.current().is_empty());
    assert_eq!(stored_phase(&direct, m.id).await, "reverted");

    // Second round: flip, then complete.
    let m = duet_proxy::control::commands::start(&proxy.ctx, bigint_plan(schema), false)
        .await
        .expect("migration starts again");
    proxy.wait_phase(m.id, "ready").await;
    let reply = proxy.admin(json!({"command": "cutover"})).await;
    assert!(reply.ok, "{reply:?}");
    let reply = proxy.admin(json!({"command": "complete"})).await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(column_type(&direct, schema, "id").await, "bigint");
    let count: i64 = direct
        .query_one(&format!("SELECT count(*) FROM {schema}.t"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2501);
    assert!(duet_leftovers(&direct, schema).await.is_empty());
    assert!(proxy.ctx.routes.current().is_empty());
    assert_eq!(stored_phase(&direct, m.id).await, "completed");

    proxy.stop().await;
    drop(db);
}

/// A complete step the server refuses reports the server's own SQLSTATE, message, detail and
/// hint (not tokio-postgres's bare "db error"), leaves the migration in `completing`, and running
/// complete again once the cause is gone finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_complete_step_reports_the_server_error_and_is_retried() {
    let Some(db) = test_database("complete_retry") else {
        return;
    };
    let direct = connect_direct(&db).await;
    let schema = "mc_complete_retry";
    setup_table(&direct, schema, "v", 50).await;
    let proxy = Harness::start(&db, "a").await;
    let m = duet_proxy::control::commands::start(&proxy.ctx, bigint_plan(schema), false)
        .await
        .expect("migration starts");
    proxy.wait_phase(m.id, "ready").await;
    let reply = proxy.admin(json!({"command": "cutover"})).await;
    assert!(reply.ok, "{reply:?}");

    // An object made directly on the old shape blocks its drop.
    direct
        .batch_execute(&format!(
            "CREATE VIEW {schema}.old_rows AS SELECT * FROM {schema}.t__duet_old"
        ))
        .await
        .expect("a view on the old shape");
    let reply = proxy.admin(json!({"command": "complete"})).await;
    assert!(!reply.ok, "{reply:?}");
    let error = reply.error.unwrap_or_default();
    for needle in [
        "2BP01",
        "cannot drop table",
        "DETAIL: view mc_complete_retry.old_rows depends on table",
        "HINT: Use DROP ... CASCADE",
    ] {
        assert!(error.contains(needle), "{needle:?} missing from: {error}");
    }
    assert!(!error.contains("db error"), "{error}");
    assert_eq!(stored_phase(&direct, m.id).await, "completing");

    // The cause removed, complete again: retried from `completing`.
    direct
        .batch_execute(&format!("DROP VIEW {schema}.old_rows"))
        .await
        .unwrap();
    let reply = proxy.admin(json!({"command": "complete"})).await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(stored_phase(&direct, m.id).await, "completed");
    assert_eq!(column_type(&direct, schema, "id").await, "bigint");
    assert!(duet_leftovers(&direct, schema).await.is_empty());

    proxy.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_during_copy_leaves_nothing() {
    let Some(db) = test_database("abort") else {
        return;
    };
    let direct = connect_direct(&db).await;
    let schema = "mc_abort";
    setup_table(&direct, schema, "v", 100).await;
    let proxy = Harness::start(&db, "a").await;

    // A transaction older than dual-writes keeps the copy waiting (status names it).
    let old = connect_direct(&db).await;
    old.batch_execute("BEGIN; SELECT txid_current()")
        .await
        .unwrap();
    let m = duet_proxy::control::commands::start(&proxy.ctx, bigint_plan(schema), false)
        .await
        .expect("migration starts");
    let status = proxy.wait_copy_state(m.id, "older than dual-writes").await;
    assert_eq!(status["phase"], "copying");
    assert_eq!(proxy.ctx.routes.current().routes.tables.len(), 1);

    // The operator pauses the copy before it starts and tunes it; the copier starts paused.
    let reply = proxy
        .admin(json!({"command": "pause_copy", "table": "t"}))
        .await;
    assert!(reply.ok, "{reply:?}");
    let reply = proxy
        .admin(json!({"command": "set", "settings": {"chunk_time_ms": 50}}))
        .await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.result.unwrap()["chunk_time_ms"], 50);
    old.batch_execute("COMMIT").await.unwrap();
    let status = proxy.wait_copy_state(m.id, "paused").await;
    assert_eq!(status["phase"], "copying");

    // A load limit the server exceeds (two backends sleeping in a statement): the resumed copy
    // waits and says why.
    let reply = proxy
        .admin(json!({"command": "set", "settings": {"max_active_backends": 1, "max_replication_lag_ms": 5000}}))
        .await;
    assert!(reply.ok, "{reply:?}");
    let settings = reply.result.unwrap();
    assert_eq!(settings["max_active_backends"], 1);
    assert_eq!(settings["max_replication_lag_ms"], 5000);
    let mut sleepers = Vec::new();
    for _ in 0..2 {
        let busy = connect_direct(&db).await;
        sleepers.push(tokio::spawn(async move {
            let _ = busy.batch_execute("SELECT pg_sleep(3)").await;
        }));
    }
    let reply = proxy.admin(json!({"command": "resume_copy"})).await;
    assert!(reply.ok, "{reply:?}");
    let status = proxy
        .wait_copy_state(m.id, "throttled: active_backends")
        .await;
    assert_eq!(status["phase"], "copying");

    let reply = proxy.admin(json!({"command": "abort"})).await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(stored_phase(&direct, m.id).await, "aborted");
    assert!(duet_leftovers(&direct, schema).await.is_empty());
    assert!(proxy.ctx.routes.current().is_empty());
    let reply = proxy.admin(json!({"command": "abort", "id": m.id})).await;
    assert!(!reply.ok, "an aborted migration cannot be aborted again");
    let reply = proxy.admin(json!({"command": "resume_copy"})).await;
    assert!(!reply.ok, "no active migration: {reply:?}");
    for sleeper in sleepers {
        let _ = sleeper.await;
    }

    proxy.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_proxy_resumes_a_copy_to_ready() {
    let Some(db) = test_database("restart") else {
        return;
    };
    let direct = connect_direct(&db).await;
    let schema = "mc_restart";
    setup_table(&direct, schema, "v", 300).await;

    let old = connect_direct(&db).await;
    old.batch_execute("BEGIN; SELECT txid_current()")
        .await
        .unwrap();
    let proxy = Harness::start(&db, "a").await;
    let m = duet_proxy::control::commands::start(&proxy.ctx, bigint_plan(schema), false)
        .await
        .expect("migration starts");
    proxy.wait_copy_state(m.id, "older than dual-writes").await;
    // What the operator chooses before the restart is stored, not only applied.
    for request in [
        json!({"command": "pause_copy"}),
        json!({"command": "set", "settings": {"chunk_time_ms": 30, "auto_cutover": true}}),
    ] {
        let reply = proxy.admin(request).await;
        assert!(reply.ok, "{reply:?}");
    }
    proxy.stop().await;
    assert_eq!(stored_phase(&direct, m.id).await, "copying");
    old.batch_execute("COMMIT").await.unwrap();

    // The new proxy restores the migration before serving, with the operator's settings: the
    // copy stays paused with nothing old in the way.
    let proxy = Harness::start(&db, "b").await;
    assert_eq!(
        proxy.ctx.routes.current().routes.tables.len(),
        1,
        "dual-writes are republished before clients are accepted"
    );
    let status = proxy.wait_copy_state(m.id, "paused").await;
    assert_eq!(status["phase"], "copying");
    assert_eq!(status["settings"]["chunk_time_ms"], 30);
    assert_eq!(status["settings"]["auto_cutover"], true);
    assert_eq!(status["settings"]["copy_paused"], true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = proxy.status_of(m.id).await;
    assert_eq!(
        status["phase"], "copying",
        "a paused copy stays paused: {status}"
    );

    // Resumed, it copies, verifies and flips on its own (auto-cutover survived the restart).
    let reply = proxy.admin(json!({"command": "resume_copy"})).await;
    assert!(reply.ok, "{reply:?}");
    proxy.wait_phase(m.id, "flipped").await;
    let reply = proxy.admin(json!({"command": "revert"})).await;
    assert!(reply.ok, "{reply:?}");
    assert!(duet_leftovers(&direct, schema).await.is_empty());

    proxy.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_plans_touch_nothing_and_in_place_changes_complete() {
    let Some(db) = test_database("inplace") else {
        return;
    };
    let direct = connect_direct(&db).await;
    let schema = "mc_inplace";
    setup_table(&direct, schema, "v", 50).await;
    let proxy = Harness::start(&db, "a").await;

    // A plan the planner refuses: ok:false with its message, nothing recorded.
    let reply = proxy
        .admin(json!({"command": "migrate",
            "input": {"kind": "sql", "sql": "ALTER TABLE mc_inplace.does_not_exist ADD COLUMN x int"}}))
        .await;
    assert!(!reply.ok, "{reply:?}");
    assert!(!reply.error.unwrap_or_default().is_empty());
    let recorded: bool = direct
        .query_one(
            "SELECT to_regclass('duet.migrations') IS NOT NULL \
             AND EXISTS (SELECT 1 FROM duet.migrations)",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(false);
    assert!(!recorded, "a refused plan recorded a migration");
    let reply = proxy
        .admin(json!({"command": "plan", "input": {"kind": "sql", "sql": "not sql at all"}}))
        .await;
    assert!(!reply.ok, "{reply:?}");

    // A failed concurrent build left an INVALID index of the name the plan uses.
    direct
        .batch_execute(&format!("INSERT INTO {schema}.t VALUES (1000, 'row 1')"))
        .await
        .unwrap();
    direct
        .batch_execute(&format!(
            "CREATE UNIQUE INDEX CONCURRENTLY t_v ON {schema}.t (v)"
        ))
        .await
        .expect_err("duplicates make the build fail");
    direct
        .batch_execute(&format!("DELETE FROM {schema}.t WHERE id = 1000"))
        .await
        .unwrap();

    // In place: the expand steps (one CONCURRENTLY, outside a transaction), then completed; the
    // invalid leftover is dropped and built again rather than skipped by IF NOT EXISTS.
    let table = QualifiedName::new(schema, "t");
    let plan = Plan {
        table: table.clone(),
        kind: PlanKind::InPlace,
        reason: "an index built concurrently".into(),
        input: PlanInput::sql("CREATE INDEX CONCURRENTLY t_v ON t (v)"),
        expand: vec![Step {
            sql: format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v ON {} (v)",
                table.sql()
            ),
            lock: StepLock::new(LockMode::ShareUpdateExclusive, ""),
            why: "the index".into(),
            outside_transaction: true,
        }],
        dual_write_route: None,
        copy: None,
        prepare_flip: vec![],
        flip: vec![],
        flipped_route: None,
        revert: vec![],
        after_revert: vec![],
        complete: vec![],
        abort: vec![],
        warnings: vec![],
        carried: Default::default(),
        group: Vec::new(),
    };
    let m = duet_proxy::control::commands::start(&proxy.ctx, plan, false)
        .await
        .expect("migration starts");
    proxy.wait_phase(m.id, "completed").await;
    assert_eq!(stored_phase(&direct, m.id).await, "completed");
    let valid: bool = direct
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'mc_inplace.t_v'::regclass",
            &[],
        )
        .await
        .expect("the index exists")
        .get(0);
    assert!(valid);
    assert!(proxy.ctx.routes.current().is_empty());

    proxy.stop().await;
    drop(db);
}

/// The planner's own plans (SQL in, through `migrate`), for each strategy with a flip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_plans_run_through_the_admin_socket() {
    let Some(db) = test_database("real") else {
        return;
    };
    let direct = connect_direct(&db).await;
    let schema = "mc_real";
    direct
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.acc (id int PRIMARY KEY, amount int NOT NULL, note text);
             INSERT INTO {schema}.acc SELECT g, g, 'n' || g FROM generate_series(1, 500) g;
             CREATE TABLE {schema}.orders (id int PRIMARY KEY, v text);
             INSERT INTO {schema}.orders SELECT g, 'o' || g FROM generate_series(1, 500) g;
             ANALYZE {schema}.acc; ANALYZE {schema}.orders;"
        ))
        .await
        .expect("tables");
    let proxy = Harness::start(&db, "a").await;
    let migrate = |sql: String, auto: bool| json!({"command": "migrate", "input": {"kind": "sql", "sql": sql}, "auto_cutover": auto});

    // Dry run: the plan as JSON, nothing recorded. A plain column's type change gets a shadow
    // table by default (it keeps the column order), a shadow column when the operator asks.
    let reply = proxy
        .admin(json!({"command": "plan", "input": {"kind": "sql",
            "sql": format!("ALTER TABLE {schema}.acc ALTER COLUMN amount TYPE bigint USING amount * 10")}}))
        .await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.result.unwrap()["kind"], "shadow_table");
    let reply = proxy
        .admin(json!({"command": "plan", "input": {"kind": "sql", "shadow_column": true,
            "sql": format!("ALTER TABLE {schema}.acc ALTER COLUMN amount TYPE bigint USING amount * 10")}}))
        .await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.result.unwrap()["kind"], "shadow_column");

    // Shadow column (asked for): backfill, verify, flip, complete.
    let reply = proxy
        .admin(json!({"command": "migrate", "input": {"kind": "sql", "shadow_column": true,
            "sql": format!("ALTER TABLE {schema}.acc ALTER COLUMN amount TYPE bigint USING amount * 10")},
            "auto_cutover": false}))
        .await;
    assert!(reply.ok, "{reply:?}");
    let started = reply.result.unwrap();
    assert_eq!(started["strategy"], "shadow_column", "{started}");
    let id = started["id"].as_i64().unwrap();
    proxy.wait_phase(id, "ready").await;
    let reply = proxy
        .admin(json!({"command": "cutover", "table": format!("{schema}.acc")}))
        .await;
    assert!(reply.ok, "{reply:?}");
    let reply = proxy.admin(json!({"command": "complete", "id": id})).await;
    assert!(reply.ok, "{reply:?}");
    let row = direct
        .query_one(
            &format!("SELECT pg_typeof(amount)::text, amount FROM {schema}.acc WHERE id = 7"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "bigint");
    assert_eq!(row.get::<_, i64>(1), 70);

    // Rename: ready at once, flip, complete.
    let reply = proxy
        .admin(migrate(
            format!("ALTER TABLE {schema}.acc RENAME COLUMN note TO remark"),
            false,
        ))
        .await;
    assert!(reply.ok, "{reply:?}");
    let id = reply.result.unwrap()["id"].as_i64().unwrap();
    proxy.wait_phase(id, "ready").await;
    assert!(proxy.admin(json!({"command": "cutover"})).await.ok);
    assert!(proxy.admin(json!({"command": "complete"})).await.ok);
    direct
        .simple_query(&format!("SELECT remark FROM {schema}.acc"))
        .await
        .expect("renamed");

    // Shadow table with automatic cutover, then revert.
    let reply = proxy
        .admin(migrate(
            format!("ALTER TABLE {schema}.orders ALTER COLUMN id TYPE bigint"),
            true,
        ))
        .await;
    assert!(reply.ok, "{reply:?}");
    let started = reply.result.unwrap();
    assert_eq!(started["strategy"], "shadow_table", "{started}");
    let id = started["id"].as_i64().unwrap();
    proxy.wait_phase(id, "flipped").await;
    let reply = proxy.admin(json!({"command": "revert"})).await;
    assert!(reply.ok, "{reply:?}");
    let count: i64 = direct
        .query_one(&format!("SELECT count(*) FROM {schema}.orders"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 500);

    assert!(
        duet_leftovers(&direct, schema).await.is_empty(),
        "{:?}",
        duet_leftovers(&direct, schema).await
    );
    assert!(proxy.ctx.routes.current().is_empty());
    proxy.stop().await;
    drop(db);
}

/// A restart restores `ready` (dual-writes) and `flipped` (the flipped route) before serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_cutover_switched_on_when_ready_or_stored_before_a_restart_flips() {
    let Some(db) = test_database("auto") else {
        return;
    };
    let direct = connect_direct(&db).await;
    let schema = "mc_auto";
    setup_table(&direct, schema, "v", 10).await;

    // Switched on while ready: the flip happens without a `cutover`.
    let proxy = Harness::start(&db, "a").await;
    let first = duet_proxy::control::commands::start(&proxy.ctx, bigint_plan(schema), false)
        .await
        .expect("migration starts");
    proxy.wait_phase(first.id, "ready").await;
    let reply = proxy
        .admin(json!({"command": "set", "settings": {"auto_cutover": true}}))
        .await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.result.unwrap()["auto_cutover"], true);
    proxy.wait_phase(first.id, "flipped").await;
    assert!(proxy.admin(json!({"command": "revert"})).await.ok);

    // An operator's pause holds the automatic cutover instead of ending it: switched on while
    // paused, the migration stays ready with no error, and flips once the operator resumes.
    let paused = duet_proxy::control::commands::start(&proxy.ctx, bigint_plan(schema), false)
        .await
        .expect("migration starts");
    proxy.wait_phase(paused.id, "ready").await;
    let reply = proxy
        .admin(json!({"command": "pause", "timeout_ms": 5000}))
        .await;
    assert!(reply.ok, "{reply:?}");
    let reply = proxy
        .admin(json!({"command": "set", "id": paused.id, "settings": {"auto_cutover": true}}))
        .await;
    assert!(reply.ok, "{reply:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = proxy.status_of(paused.id).await;
    assert_eq!(status["phase"], "ready", "held by the pause: {status}");
    assert!(
        status["error"].is_null() || status["error"] == "",
        "a pause is not a refusal: {status}"
    );
    assert!(proxy.ctx.gate.is_paused(), "the operator's pause stays");
    assert!(proxy.admin(json!({"command": "resume"})).await.ok);
    proxy.wait_phase(paused.id, "flipped").await;
    assert!(proxy.admin(json!({"command": "revert"})).await.ok);

    // Stored while ready and duet stops before flipping (as when `set` is stored and duet dies):
    // the restarted duet flips it on its own.
    let second = duet_proxy::control::commands::start(&proxy.ctx, bigint_plan(schema), false)
        .await
        .expect("second migration starts");
    proxy.wait_phase(second.id, "ready").await;
    proxy.stop().await;
    direct
        .execute(
            "UPDATE duet.migrations SET settings = settings || '{\"auto_cutover\": true}' WHERE id = $1",
            &[&second.id],
        )
        .await
        .unwrap();
    let proxy = Harness::start(&db, "b").await;
    proxy.wait_phase(second.id, "flipped").await;
    assert!(proxy.admin(json!({"command": "revert"})).await.ok);
    assert!(duet_leftovers(&direct, schema).await.is_empty());

    proxy.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_ready_and_flipped_routes() {
    let Some(db) = test_database("restore") else {
        return;
    };
    let direct = connect_direct(&db).await;
    setup_table(&direct, "mc_flipped", "a", 10).await;
    setup_table(&direct, "mc_ready", "v", 10).await;
    let proxy = Harness::start(&db, "a").await;
    let renamed =
        duet_proxy::control::commands::start(&proxy.ctx, rename_plan("mc_flipped"), false)
            .await
            .expect("rename starts");
    proxy.wait_phase(renamed.id, "ready").await;
    assert!(
        proxy
            .admin(json!({"command": "cutover", "id": renamed.id}))
            .await
            .ok
    );
    let copied = duet_proxy::control::commands::start(&proxy.ctx, bigint_plan("mc_ready"), false)
        .await
        .expect("copy starts");
    proxy.wait_phase(copied.id, "ready").await;
    proxy.stop().await;

    let proxy = Harness::start(&db, "b").await;
    let routes = proxy.ctx.routes.current();
    let route = |schema: &str| {
        routes
            .routes
            .tables
            .iter()
            .find(|t| t.schema == schema)
            .map(|t| t.target.clone())
    };
    assert!(
        matches!(route("mc_flipped"), Some(Target::Renamed { .. })),
        "{routes:?}"
    );
    assert!(
        matches!(route("mc_ready"), Some(Target::ShadowTable { ref shadow, .. }) if shadow == "t__duet"),
        "{routes:?}"
    );
    assert_eq!(proxy.status_of(renamed.id).await["phase"], "flipped");
    assert_eq!(proxy.status_of(copied.id).await["phase"], "ready");
    assert!(
        proxy
            .admin(json!({"command": "complete", "id": renamed.id}))
            .await
            .ok
    );
    assert!(
        proxy
            .admin(json!({"command": "abort", "table": "mc_ready.t"}))
            .await
            .ok
    );
    assert!(proxy.ctx.routes.current().is_empty());
    assert!(duet_leftovers(&direct, "mc_ready").await.is_empty());
    assert!(duet_leftovers(&direct, "mc_flipped").await.is_empty());

    proxy.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_stored_without_the_safety_net_says_so_after_a_restart() {
    let Some(db) = test_database("unnetted") else {
        return;
    };
    let direct = connect_direct(&db).await;
    let schema = "mc_unnetted";
    setup_table(&direct, schema, "v", 100).await;
    let old = connect_direct(&db).await;
    old.batch_execute("BEGIN; SELECT txid_current()")
        .await
        .unwrap();
    let proxy = Harness::start(&db, "a").await;
    let m = duet_proxy::control::commands::start(&proxy.ctx, bigint_plan(schema), false)
        .await
        .expect("migration starts");
    proxy.wait_copy_state(m.id, "older than dual-writes").await;
    proxy.stop().await;
    // As an older duet stored it: the plan without the net's steps.
    let plan = serde_json::to_string(&bigint_plan(schema)).unwrap();
    direct
        .execute(
            "UPDATE duet.migrations SET plan = $1::text::jsonb WHERE id = $2",
            &[&plan, &m.id],
        )
        .await
        .unwrap();
    let proxy = Harness::start(&db, "b").await;
    let status = proxy.status_of(m.id).await;
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("without the safety net")),
        "{status}"
    );
    // Running a step again cannot mirror what bypassed the rewrite meanwhile: retry says what
    // to do instead. (The old transaction keeps the copy waiting, so the phase stays put.)
    let retry = proxy.admin(json!({"command": "retry", "id": m.id})).await;
    assert!(!retry.ok, "{retry:?}");
    assert!(
        retry
            .error
            .as_deref()
            .is_some_and(|e| e.contains("started by a duet without the safety net")
                && e.contains("abort it")),
        "{retry:?}"
    );
    old.batch_execute("COMMIT").await.unwrap();
    proxy.stop().await;
}
