//! The common frame of a migration test: a database with a populated table and its control twin,
//! duet in front of it, a client of each protocol, and rounds of every write class.

use tokio_postgres::Client;

use super::duet_process::{through, DuetProcess};
use super::pg_client::{connect, Session};
use super::tools::Target;
use super::writes::{self, Pair};
use super::{Backend, TestDatabase};

/// A table under migration, its control table, duet, and clients.
pub struct Scenario {
    /// The server.
    pub backend: Backend,
    /// The test's database (dropped last).
    pub db: TestDatabase,
    /// duet in front of it.
    pub duet: DuetProcess,
    /// The two tables.
    pub pair: Pair,
    /// A direct session (catalog checks, control writes).
    pub direct_session: Session,
    /// A tokio-postgres session through duet.
    pub through_session: Session,
    /// The text column's name on the migrated table (as clients write it now).
    pub v: String,
    /// The int column's name on the migrated table (as clients write it now).
    pub n: String,
    /// Rows the tables start with (ids 1..=rows).
    pub rows: i64,
    /// Rounds run so far (each uses ids of its own).
    rounds: i64,
}

impl Scenario {
    /// Creates `schema.t (id <id_type> PRIMARY KEY, label text NOT NULL, amount <amount_type>)`
    /// with an index on `label` and `rows` rows, the same as `schema.t_control`, and starts duet.
    pub async fn start(
        backend: Backend,
        label: &str,
        schema: &str,
        id_type: &str,
        amount_type: &str,
        rows: i64,
    ) -> Scenario {
        Self::start_with(backend, label, schema, id_type, amount_type, rows, &[]).await
    }

    /// [`Scenario::start`] with more arguments for `duet proxy` (e.g. `--config FILE`).
    pub async fn start_with(
        backend: Backend,
        label: &str,
        schema: &str,
        id_type: &str,
        amount_type: &str,
        rows: i64,
        duet_args: &[&str],
    ) -> Scenario {
        let db = TestDatabase::create(&backend, label);
        for table in ["t", "t_control"] {
            db.execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE {schema}.{table} (id {id_type} PRIMARY KEY, label text NOT NULL, amount {amount_type});
                 CREATE INDEX {table}_label ON {schema}.{table} (label);
                 INSERT INTO {schema}.{table} SELECT g, 'r' || g, g FROM generate_series(1, {rows}) g;
                 ANALYZE {schema}.{table};"
            ));
        }
        let duet = DuetProcess::start(&backend.url(db.name()), duet_args);
        let direct_session = connect(&db.direct_config()).await;
        let through_session = connect(&through(&backend, &duet, &db, "migration-test")).await;
        Scenario {
            pair: Pair {
                schema: schema.into(),
                table: "t".into(),
                control: "t_control".into(),
                control_renames: vec![],
            },
            backend,
            db,
            duet,
            direct_session,
            through_session,
            v: "label".into(),
            n: "amount".into(),
            rows,
            rounds: 0,
        }
    }

    /// The direct client.
    pub fn direct(&self) -> &Client {
        &self.direct_session.client
    }

    /// A direct session in an open transaction that has updated row 1 of the migrated table
    /// (without changing it): it holds the table's ROW EXCLUSIVE lock, which a migration's DDL
    /// (the safety net's `CREATE TRIGGER`, the flip) waits for, until it rolls back or is
    /// dropped.
    pub async fn hold_table(&self) -> Session {
        let writer = connect(&self.db.direct_config()).await;
        writer
            .client
            .batch_execute(&format!(
                "BEGIN; UPDATE {} SET {n} = {n} WHERE id = 1",
                self.pair.migrated(),
                n = self.n
            ))
            .await
            .expect("a writer holding the table");
        writer
    }

    /// The client through duet.
    pub fn through(&self) -> &Client {
        &self.through_session.client
    }

    /// psql's target through duet.
    pub fn psql_through(&self) -> Target {
        let target = self.duet.target(&self.backend.user, self.db.name());
        match &self.backend.password {
            Some(password) => target.with_password(password),
            None => target,
        }
    }

    /// psql's target on the server directly.
    pub fn psql_direct(&self) -> Target {
        let target = Target::tcp(
            &self.backend.host,
            self.backend.port,
            &self.backend.user,
            self.db.name(),
        );
        match &self.backend.password {
            Some(password) => target.with_password(password),
            None => target,
        }
    }

    /// A libpq conninfo through duet.
    pub fn dsn_through(&self) -> String {
        writes::conninfo(
            "127.0.0.1",
            self.duet.port(),
            &self.backend.user,
            self.db.name(),
            self.backend.password.as_deref(),
        )
    }

    /// A libpq conninfo on the server directly.
    pub fn dsn_direct(&self) -> String {
        writes::conninfo(
            &self.backend.host,
            self.backend.port,
            &self.backend.user,
            self.db.name(),
            self.backend.password.as_deref(),
        )
    }

    /// One round of every write class through duet — simple protocol (one multi-statement Query
    /// from tokio-postgres, and psql's one Query per statement), extended protocol (tokio-postgres
    /// prepared statements, psycopg) — each compared with the same writes on the control table.
    pub async fn round(&mut self) {
        self.rounds += 1;
        let k = self.rounds;
        // ids: a fresh range per round and protocol; touched rows are pre-populated ones.
        let base = |proto: i64| 1_000_000 + k * 1_000 + proto * 200;
        let touch = |proto: i64| ((k * 10 + proto * 2) % (self.rows - 2)) + 1;
        let (v, n) = (self.v.clone(), self.n.clone());
        writes::simple_both(
            &self.pair,
            self.through(),
            self.direct(),
            &writes::simple_round(base(0), touch(0), &v, &n),
        )
        .await;
        writes::extended_both(
            &self.pair,
            self.through(),
            self.direct(),
            &writes::extended_round(base(1), touch(1), &v, &n),
        )
        .await;
        let (through, direct) = (self.psql_through(), self.psql_direct());
        let pair = self.pair.clone();
        let script = writes::simple_round(base(2), touch(2), &v, &n);
        tokio::task::spawn_blocking(move || writes::psql_both(&pair, &through, &direct, &script))
            .await
            .expect("psql round");
        let (pair, dsn_through, dsn_direct) =
            (self.pair.clone(), self.dsn_through(), self.dsn_direct());
        let (b, t) = (base(3), touch(3));
        tokio::task::spawn_blocking(move || {
            writes::psycopg_both(&pair, &dsn_through, &dsn_direct, b, t, &v, &n, false)
        })
        .await
        .expect("psycopg round");
    }

    /// Writes duet cannot rewrite (MERGE, extended-protocol COPY FROM, COPY … FREEZE) through
    /// duet and on the control table: told the same, mirrored by the safety net.
    pub async fn unrewritable(&mut self) {
        self.rounds += 1;
        let k = self.rounds;
        let v = self.v.clone();
        writes::unrewritable_both(
            &self.pair,
            self.through(),
            self.direct(),
            1_000_000 + k * 1_000 + 900,
            &v,
        )
        .await;
        let (pair, dsn_through, dsn_direct) =
            (self.pair.clone(), self.dsn_through(), self.dsn_direct());
        let n = self.n.clone();
        let (b, t) = (1_000_000 + k * 1_000, k % (self.rows - 2) + 1);
        tokio::task::spawn_blocking(move || {
            writes::psycopg_both(&pair, &dsn_through, &dsn_direct, b, t, &v, &n, true)
        })
        .await
        .expect("psycopg unrewritable writes");
    }

    /// The migrated table holds exactly the control table's rows.
    pub async fn assert_same_rows(&self) {
        let control_v = self.pair.on_control(&self.v);
        let control_n = self.pair.on_control(&self.n);
        writes::assert_same_rows(
            &self.pair,
            self.direct(),
            &format!("id, {}, {}", self.v, self.n),
            &format!("id, {control_v}, {control_n}"),
        )
        .await;
    }
}
