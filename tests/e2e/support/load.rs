//! Clients writing and reading continuously through duet while a migration runs.
//!
//! Each transaction makes the same write to the migrated table and to a plain control table, so
//! at the end the two must hold the same rows; every failed statement is counted and kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_postgres::types::Type;
use tokio_postgres::Config;

use super::pg_client::connect;

/// What the clients did.
#[derive(Debug, Default, Clone)]
pub struct LoadStats {
    /// Transactions committed.
    pub committed: u64,
    /// Reads done.
    pub reads: u64,
    /// Failed statements (each with its error).
    pub failures: Vec<String>,
}

/// A running load; [`Load::stop`] ends it and returns the totals.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<LoadStats>>,
}

impl Load {
    /// Starts `clients` tasks, each connected through `config`, writing `table` and `control`
    /// (qualified) in one transaction, ids of `1..=rows` updated and their own ids inserted and
    /// deleted (ids from `first_new_id + client * 1_000_000`).
    pub fn start(
        config: Config,
        table: &str,
        control: &str,
        clients: usize,
        rows: i64,
        first_new_id: i64,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|client| {
                let config = config.clone();
                let stop = stop.clone();
                let (table, control) = (table.to_string(), control.to_string());
                let own = first_new_id + client as i64 * 1_000_000;
                tokio::spawn(async move {
                    run_client(config, table, control, rows, own, client as u64, stop).await
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stops the clients after their current transaction and sums what they did.
    pub async fn stop(self) -> LoadStats {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = LoadStats::default();
        for task in self.tasks {
            let stats = task.await.expect("a load client panicked");
            total.committed += stats.committed;
            total.reads += stats.reads;
            total.failures.extend(stats.failures);
        }
        total
    }
}

/// A small deterministic generator (xorshift) per client.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn run_client(
    config: Config,
    table: String,
    control: String,
    rows: i64,
    own: i64,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> LoadStats {
    let mut stats = LoadStats::default();
    let session = connect(&config).await;
    let client = &session.client;
    let prepare = |sql: String, types: &'static [Type]| async move {
        client
            .prepare_typed(&sql, types)
            .await
            .unwrap_or_else(|err| panic!("preparing {sql}: {}", super::database::describe(&err)))
    };
    let ints: &[Type] = &[Type::INT8, Type::INT8];
    let mut statements = Vec::new();
    for t in [&table, &control] {
        statements.push((
            prepare(
                format!("INSERT INTO {t} (id, label, amount) VALUES ($1, 'new ' || $1::text, $2)"),
                ints,
            )
            .await,
            prepare(
                format!("UPDATE {t} SET amount = amount + $2 WHERE id = $1"),
                ints,
            )
            .await,
            prepare(
                format!("DELETE FROM {t} WHERE id = $1 AND amount >= $2"),
                ints,
            )
            .await,
        ));
    }
    let read = prepare(
        format!("SELECT label, amount::int8 FROM {table} WHERE id = $1"),
        &[Type::INT8],
    )
    .await;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ (seed + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut inserted: Vec<i64> = Vec::new();
    let mut next_id = own;
    while !stop.load(Ordering::SeqCst) {
        let roll = next(&mut state) % 10;
        let (id, amount, which) = match roll {
            0..=2 => {
                next_id += 1;
                (next_id, (next(&mut state) % 100) as i64, 0)
            }
            3 if !inserted.is_empty() => {
                let i = (next(&mut state) as usize) % inserted.len();
                (inserted.swap_remove(i), i64::MIN, 2)
            }
            _ => ((next(&mut state) % rows as u64) as i64 + 1, 1, 1),
        };
        let outcome: Result<(), tokio_postgres::Error> = async {
            client.batch_execute("BEGIN").await?;
            for (insert, update, delete) in &statements {
                let statement = match which {
                    0 => insert,
                    1 => update,
                    _ => delete,
                };
                client.execute(statement, &[&id, &amount]).await?;
            }
            client.batch_execute("COMMIT").await?;
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => {
                stats.committed += 1;
                if which == 0 {
                    inserted.push(id);
                }
            }
            Err(err) => {
                stats.failures.push(format!(
                    "write of id {id}: {}",
                    super::database::describe(&err)
                ));
                // Leave the transaction (if any) so the session stays usable; a lost
                // connection ends this client.
                if client.batch_execute("ROLLBACK").await.is_err() {
                    break;
                }
            }
        }
        let key = (next(&mut state) % rows as u64) as i64 + 1;
        match client.query_opt(&read, &[&key]).await {
            Ok(_) => stats.reads += 1,
            Err(err) => stats.failures.push(format!(
                "read of id {key}: {}",
                super::database::describe(&err)
            )),
        }
    }
    stats
}
