//! One database per test, dropped when the test ends — also when it fails.
//!
//! Tests run in parallel against one server; a database of their own keeps their tables, rows and
//! notifications apart, and the drop guard keeps the server clean after a panic.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::environment::Backend;

/// A database created for one test; `Drop` drops it (`WITH (FORCE)`: sessions left over by a
/// failed test must not keep it alive).
#[derive(Debug)]
pub struct TestDatabase {
    backend: Backend,
    name: String,
}

impl TestDatabase {
    /// Creates a fresh database named after `label`, the process id and a counter.
    pub fn create(backend: &Backend, label: &str) -> TestDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let name = format!(
            "duet_test_{label}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        TestDatabase::create_exact(backend, name)
    }

    /// Creates a database with exactly this name (spaces, quotes and any Unicode allowed); the
    /// caller makes it unique.
    pub fn create_exact(backend: &Backend, name: String) -> TestDatabase {
        let maintenance = backend.direct_config(&backend.maintenance_db);
        // Two calls: DROP/CREATE DATABASE cannot share a (implicit) transaction.
        run_sql(
            &maintenance,
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_identifier(&name)
            ),
        )
        .and_then(|()| {
            run_sql(
                &maintenance,
                &format!("CREATE DATABASE {}", quote_identifier(&name)),
            )
        })
        .unwrap_or_else(|err| panic!("creating test database {name}: {err}"));
        TestDatabase {
            backend: backend.clone(),
            name,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A libpq URL for this database on the server (what duet gets as `--backend`).
    pub fn url(&self) -> String {
        self.backend.url(&self.name)
    }

    /// A configuration for this database as the server's user at `host:port`: through a proxy
    /// in front of the server.
    pub fn config_at(&self, host: &str, port: u16) -> tokio_postgres::Config {
        self.backend.config_at(host, port, &self.name)
    }

    /// A direct (not through duet) configuration for this database.
    pub fn direct_config(&self) -> tokio_postgres::Config {
        self.backend.direct_config(&self.name)
    }

    /// Runs `sql` (simple protocol, may hold several statements) directly on this database.
    pub fn execute(&self, sql: &str) {
        run_sql(&self.direct_config(), sql)
            .unwrap_or_else(|err| panic!("running {sql:?} on {}: {err}", self.name));
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let maintenance = self.backend.direct_config(&self.backend.maintenance_db);
        if let Err(err) = run_sql(
            &maintenance,
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_identifier(&self.name)
            ),
        ) {
            eprintln!("warning: could not drop test database {}: {err}", self.name);
        }
    }
}

/// Runs `sql` on a fresh connection from a thread of its own (usable from sync code, from async
/// tests and from `Drop`), returning the error text instead of panicking.
pub fn run_sql(config: &tokio_postgres::Config, sql: &str) -> Result<(), String> {
    let config = config.clone();
    let sql = sql.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| format!("building a runtime: {err}"))?;
        runtime.block_on(async move {
            let (client, connection) = tokio::time::timeout(
                Duration::from_secs(15),
                config.connect(tokio_postgres::NoTls),
            )
            .await
            .map_err(|_| "connecting timed out after 15s".to_string())?
            .map_err(|err| describe(&err))?;
            let driver = tokio::spawn(connection);
            let outcome = client
                .batch_execute(&sql)
                .await
                .map_err(|err| describe(&err));
            drop(client);
            let _ = driver.await;
            outcome
        })
    })
    .join()
    .map_err(|_| "the SQL thread panicked".to_string())?
}

/// An error's full text: tokio-postgres's Display hides the server's message behind "db error".
pub fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(inner) = source {
                text.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            text
        }
    }
}

/// `name` as a quoted SQL identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
