//! Shared helpers of the rewrite tests: a throw-away database per test, a raw simple-query client
//! (tokio-postgres hides the CommandComplete verb, which the rewrite must restore), and routes.

#![allow(dead_code)]

use duet_shadow::rewrite::{Column, ColumnMapping, Routes, TableRoute, Target};
use duet_testkit::{backend_or_skip, Backend, TestDatabase};

#[allow(unused_imports)]
pub use duet_testkit::{Answer, RawClient};

/// Connects to the maintenance database, or reports the skip (fails under
/// DUET_REQUIRE_DATABASE=1).
pub fn admin(test: &str) -> Option<RawClient> {
    let backend = backend_or_skip(test)?;
    Some(
        RawClient::connect(&backend, &backend.maintenance_db)
            .unwrap_or_else(|err| panic!("{test}: connecting to the maintenance database: {err}")),
    )
}

/// A database created for one test and dropped at the end.
pub struct TestDb {
    pub name: String,
    backend: Backend,
    _database: TestDatabase,
}

impl TestDb {
    pub fn create(test: &str) -> Option<TestDb> {
        let backend = backend_or_skip(test)?;
        let database = TestDatabase::create(&backend, &format!("rw_{test}"));
        Some(TestDb {
            name: database.name().to_string(),
            backend,
            _database: database,
        })
    }

    pub fn connect(&self) -> RawClient {
        RawClient::connect(&self.backend, &self.name).expect("connect to test db")
    }

    /// A libpq key=value connection string for the database (for tokio-postgres).
    pub fn url(&self) -> String {
        let b = &self.backend;
        let mut url = format!(
            "host={} port={} user={} dbname={}",
            b.host, b.port, b.user, self.name
        );
        if let Some(password) = &b.password {
            url.push_str(&format!(" password={password}"));
        }
        url
    }
}

/// The columns of the test table `t` in both schemas.
pub const TABLE_DDL: &str =
    "CREATE TABLE t (id serial PRIMARY KEY, amount numeric(12,2), note text,
    created timestamptz DEFAULT clock_timestamp(), r float8 DEFAULT random(),
    u uuid DEFAULT gen_random_uuid());
  CREATE TABLE other (id int, note text);
  INSERT INTO t (amount, note, created, r, u)
    SELECT g * 1.5, 'n' || g, '2020-01-01', 0.5, md5(g::text)::uuid FROM generate_series(1, 5) g;
  INSERT INTO other VALUES (1, 'x'), (2, 'y'), (9, 'z');";

/// The shadow-column route of `public.acc`: `amount__duet bigint` = `amount * 10`.
pub fn shadow_column_routes() -> Routes {
    let col = |name: &str, ty: &str| Column {
        name: name.into(),
        base_type: ty.into(),
    };
    Routes {
        tables: vec![TableRoute {
            schema: "public".into(),
            name: "acc".into(),
            columns: vec![
                col("id", "int4"),
                col("amount", "int4"),
                col("note", "text"),
            ],
            key: vec!["id".into()],
            target: Target::ShadowColumn {
                column: "amount__duet".into(),
                expr: "\"amount\"::bigint * 10".into(),
                skip_when: None,
                recover: None,
            },
        }],
        server_version_num: 150000,
        net_only: vec![],
    }
}

/// The shadow-table route of `app.t`: id int → bigint, amount numeric(12,2) → numeric.
pub fn shadow_table_routes() -> Routes {
    let col = |name: &str, ty: &str| Column {
        name: name.into(),
        base_type: ty.into(),
    };
    let map = |target: &str, expr: &str| ColumnMapping {
        target: target.into(),
        expr: expr.into(),
    };
    Routes {
        tables: vec![TableRoute {
            schema: "app".into(),
            name: "t".into(),
            columns: vec![
                col("id", "int4"),
                col("amount", "numeric"),
                col("note", "text"),
                col("created", "timestamptz"),
                col("r", "float8"),
                col("u", "uuid"),
            ],
            key: vec!["id".into()],
            target: Target::ShadowTable {
                shadow: "t__duet".into(),
                mapping: vec![
                    map("id", "\"id\"::bigint"),
                    map("amount", "\"amount\"::numeric"),
                    map("note", "\"note\""),
                    map("created", "\"created\""),
                    map("r", "\"r\""),
                    map("u", "\"u\""),
                ],
                shadow_key: vec!["id".into()],
                skip_when: None,
                plain_deletes: false,
            },
        }],
        server_version_num: 150000,
        net_only: vec![],
    }
}

/// Fresh `ctl.t` (control, original statements) and `app.t` + `app.t__duet` (rewritten
/// statements), the shadow already filled by a "copier".
pub fn reset_shadow_table(c: &mut RawClient) {
    c.run(
        "DROP SCHEMA IF EXISTS ctl CASCADE; DROP SCHEMA IF EXISTS app CASCADE;
           CREATE SCHEMA ctl; CREATE SCHEMA app;",
    );
    for schema in ["ctl", "app"] {
        c.run(&format!("SET search_path = {schema}; {TABLE_DDL}"));
    }
    c.run("CREATE TABLE app.t__duet (id bigint PRIMARY KEY, amount numeric, note text,
             created timestamptz, r float8, u uuid, __duet_deleted boolean NOT NULL DEFAULT false);
           INSERT INTO app.t__duet SELECT id::bigint, amount::numeric, note, created, r, u FROM app.t;");
}

/// Installs the safety net of the first route's table, as a migration's expand step does.
pub fn install_net(c: &mut RawClient, routes: &Routes) {
    let route = &routes.tables[0];
    let table = duet_shadow::ident::QualifiedName::new(route.schema.clone(), route.name.clone());
    let install = duet_shadow::rewrite::net::install_sql(&table, &table, route).expect("a net");
    c.run(&format!("CREATE SCHEMA IF NOT EXISTS duet; {install}"));
}
