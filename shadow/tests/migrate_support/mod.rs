//! Shared fixture of the database tests (migrate, engine facts, live catalog): a fresh database
//! per test on the real PostgreSQL.
#![allow(dead_code)]

pub mod steps;

use tokio_postgres::{Client, NoTls};

use duet_shadow::ident::QualifiedName;
use duet_shadow::migrate::state;
use duet_shadow::migrate::{ColumnMapping, CopyTarget};
use duet_testkit::{backend_or_skip, Backend, TestDatabase};

/// The test server as a libpq key=value string without a database (append ` dbname=…`).
pub fn base_url() -> String {
    let backend = duet_testkit::backend()
        .unwrap_or_else(|why| panic!("base_url() before a test database exists: {why}"));
    key_value(&backend)
}

fn key_value(backend: &Backend) -> String {
    let mut url = format!(
        "host={} port={} user={}",
        backend.host, backend.port, backend.user
    );
    if let Some(password) = &backend.password {
        url.push_str(&format!(" password={password}"));
    }
    url
}

/// A database created for one test, dropped when the test ends ([`TestDb::drop_db`] or a panic).
pub struct TestDb {
    pub name: String,
    backend: Backend,
    database: TestDatabase,
}

impl TestDb {
    /// Create the database, or return None (after saying so loudly) when PostgreSQL is unreachable
    /// and `DUET_REQUIRE_DATABASE` is not 1.
    pub async fn create(test: &str) -> Option<TestDb> {
        let backend = backend_or_skip(test)?;
        // The kit's database calls are blocking (usable from `Drop`): keep them off the runtime.
        let database = tokio::task::spawn_blocking({
            let backend = backend.clone();
            let label = format!("shadow_{test}");
            move || TestDatabase::create(&backend, &label)
        })
        .await
        .expect("creating the test database");
        Some(TestDb {
            name: database.name().to_string(),
            backend,
            database,
        })
    }

    /// A libpq key=value connection string for the database.
    pub fn url(&self) -> String {
        format!("{} dbname={}", key_value(&self.backend), self.name)
    }

    pub async fn connect(&self) -> Client {
        let (c, conn) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .expect("connect to test database");
        tokio::spawn(conn);
        c
    }

    /// Drops the database (the kit's drop runs blocking: off the runtime).
    pub async fn drop_db(self) {
        let TestDb { database, .. } = self;
        tokio::task::spawn_blocking(move || drop(database))
            .await
            .expect("dropping the test database");
    }
}

/// `public.t (id int PRIMARY KEY, v int, note text)` with rows 1..=n (v = id, note = 'n'||id).
pub async fn populate(client: &Client, n: i64) {
    client
        .batch_execute(&format!(
            "CREATE TABLE t (id int PRIMARY KEY, v int, note text);
             INSERT INTO t SELECT g, g, 'n' || g FROM generate_series(1, {n}) g;
             ANALYZE t;"
        ))
        .await
        .expect("populate t");
}

/// The int → bigint key mapping of `t`.
pub fn bigint_key_mapping() -> Vec<ColumnMapping> {
    vec![
        ColumnMapping::new("id", "\"id\"::bigint"),
        ColumnMapping::new("v", "\"v\""),
        ColumnMapping::new("note", "\"note\""),
    ]
}

/// Schema duet, a migration of `public.t` in phase copying, and its shadow; returns (id, target).
pub async fn shadow_migration(client: &mut Client) -> (i64, CopyTarget) {
    shadow_migration_of(client, "t", bigint_key_mapping()).await
}

/// [`shadow_migration`] of `public.<table>` with `mapping`.
pub async fn shadow_migration_of(
    client: &mut Client,
    table: &str,
    mapping: Vec<ColumnMapping>,
) -> (i64, CopyTarget) {
    use duet_shadow::migrate::expand::create_shadow_table;
    use duet_shadow::migrate::guard::{GuardConfig, GuardedConnection, PhaseStep};
    use duet_shadow::migrate::Phase;

    state::ensure_schema(client).await.expect("schema duet");
    let mut target = CopyTarget::plan(client, QualifiedName::new("public", table), mapping)
        .await
        .expect("plan");
    let plan = serde_json::to_value(&target).expect("plan json");
    let id = state::create_migration(client, &target.source.sql(), "shadow_table", &plan)
        .await
        .expect("create migration");
    state::transition(
        client,
        id,
        Phase::Planned,
        Phase::Expanding,
        None,
        &serde_json::json!({}),
    )
    .await
    .expect("planned -> expanding");
    let raw = {
        let (c, conn) = tokio_postgres::connect(&target_url(client).await, tokio_postgres::NoTls)
            .await
            .expect("control connection");
        tokio::spawn(conn);
        c
    };
    let mut guard = GuardedConnection::from_client(raw, GuardConfig::default())
        .await
        .expect("guard");
    let step = PhaseStep {
        migration_id: id,
        from: Phase::Expanding,
        to: Phase::Copying,
    };
    create_shadow_table(&mut guard, &mut target, Some(&step))
        .await
        .expect("create shadow");
    (id, target)
}

async fn target_url(client: &Client) -> String {
    let db: String = client
        .query_one("SELECT current_database()::text", &[])
        .await
        .expect("current_database")
        .get(0);
    format!("{} dbname={db}", base_url())
}

/// Rows of t converted, minus live rows of the shadow, both ways: 0 when equal.
pub async fn difference_count(client: &Client) -> i64 {
    client
        .query_one(
            "SELECT (SELECT count(*) FROM (
                 (SELECT id::bigint, v, note FROM t
                  EXCEPT ALL SELECT id, v, note FROM t__duet WHERE NOT __duet_deleted)
                 UNION ALL
                 (SELECT id, v, note FROM t__duet WHERE NOT __duet_deleted
                  EXCEPT ALL SELECT id::bigint, v, note FROM t)) d)",
            &[],
        )
        .await
        .expect("difference")
        .get(0)
}
