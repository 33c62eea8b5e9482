//! 16 clients writing and reading through duet during the whole life of an int → bigint
//! primary-key migration (expand, copy, flip, complete): zero failed statements, and the migrated
//! table equals the control table every transaction also wrote.

use serde_json::json;

use crate::support::backend_or_skip;
use crate::support::duet_process::through;
use crate::support::load::Load;
use crate::support::migration::{assert_clean, column_type, migrate_sql, request, wait_phase};
use crate::support::scenario::Scenario;

const CLIENTS: usize = 16;
const ROWS: i64 = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_load_16_clients_through_copy_flip_and_complete() {
    let Some(backend) = backend_or_skip("migration_load_16_clients") else {
        return;
    };
    let s = Scenario::start(backend.clone(), "mig_load", "mld", "int", "int", ROWS).await;
    let config = through(&backend, &s.duet, &s.db, "load");
    let load = Load::start(config, "mld.t", "mld.t_control", CLIENTS, ROWS, 10_000_000);

    let id = migrate_sql(&s.duet, "ALTER TABLE mld.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&s.duet, id, "ready").await;
    // The flip drains in-flight transactions; under load a missed budget or lock is reported and
    // the operator retries.
    let mut refusals = Vec::new();
    for _ in 0..10 {
        let reply = request(&s.duet, json!({"command": "cutover", "budget_ms": 5000})).await;
        if reply.ok {
            break;
        }
        refusals.push(reply.error.clone());
        assert_eq!(
            crate::support::migration::migration(&s.duet, id).await["phase"],
            "ready"
        );
    }
    assert!(
        refusals.len() < 10,
        "the cutover never succeeded under load: {refusals:?}"
    );
    assert_eq!(column_type(s.direct(), "mld", "t", "id").await, "bigint");
    request(&s.duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    // Some more traffic on the new shape alone.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stats = load.stop().await;

    assert!(
        stats.failures.is_empty(),
        "{} failed client statements, first: {:?}",
        stats.failures.len(),
        stats.failures.iter().take(5).collect::<Vec<_>>()
    );
    assert!(stats.committed > 0 && stats.reads > 0, "{stats:?}");
    eprintln!(
        "load: {} transactions, {} reads, cutover refusals {refusals:?}",
        stats.committed, stats.reads
    );
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "mld", id, "completed").await;
}
