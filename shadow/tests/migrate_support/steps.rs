//! Running a plan by hand in the controller's order, for the planner's database tests: steps one
//! by one or in one transaction, the copy (or backfill) to the end with its verification, and the
//! queries the tests read results with.

use duet_shadow::migrate::backfill::{backfill, verify_column};
use duet_shadow::migrate::copier::{Copier, CopierConfig, CopyOutcome};
use duet_shadow::migrate::state;
use duet_shadow::migrate::verify::{verify, VerifyConfig};
use duet_shadow::plan::{CopySpec, Plan, Step};
use tokio_postgres::Client;

use super::TestDb;

/// Guarded steps one by one (each in its own transaction unless CONCURRENTLY).
pub async fn run_each(client: &Client, steps: &[Step]) {
    for s in steps {
        client
            .batch_execute(&s.sql)
            .await
            .unwrap_or_else(|e| panic!("step {} failed: {e:?}", s.sql));
    }
}

/// Steps in one transaction (flip, revert).
pub async fn run_in_tx(client: &Client, steps: &[Step]) {
    client.batch_execute("BEGIN").await.expect("begin");
    for s in steps {
        assert!(
            !s.outside_transaction,
            "{} cannot run in a transaction",
            s.sql
        );
        if let Err(e) = client.batch_execute(&s.sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            panic!("step {} failed: {e:?}", s.sql);
        }
    }
    client.batch_execute("COMMIT").await.expect("commit");
}

/// The one text value `q` returns.
pub async fn text(client: &Client, q: &str) -> String {
    client
        .query_one(q, &[])
        .await
        .unwrap_or_else(|e| panic!("{q}: {e:?}"))
        .get(0)
}

/// The one bigint value `q` returns.
pub async fn number(client: &Client, q: &str) -> i64 {
    client
        .query_one(q, &[])
        .await
        .unwrap_or_else(|e| panic!("{q}: {e:?}"))
        .get(0)
}

/// Records `p` as a migration (the copier's progress is stored under its id).
pub async fn migration_id(client: &mut Client, p: &Plan) -> i64 {
    state::ensure_schema(client).await.expect("schema duet");
    state::create_migration(
        client,
        &p.table.sql(),
        p.kind.as_str(),
        &serde_json::to_value(p).expect("plan json"),
    )
    .await
    .expect("create migration")
}

/// Runs the copy (or backfill) of `p` to the end and checks that it verifies clean; returns the
/// rows a shadow column's verification compared.
pub async fn copy(db: &TestDb, client: &mut Client, p: &Plan, id: i64) -> Option<i64> {
    match p.copy.as_ref().expect("copy spec") {
        CopySpec::Table(target) => {
            let mut target = target.clone();
            target
                .refresh_shadow_types(&*client)
                .await
                .expect("shadow types");
            let (copier, _control) = Copier::new(
                db.connect().await,
                target.clone(),
                id,
                CopierConfig::default(),
            );
            assert_eq!(copier.run().await.expect("copy"), CopyOutcome::Done);
            let report = verify(client, &target, &VerifyConfig::default())
                .await
                .expect("verify");
            assert!(report.is_clean(), "{report:?}");
            None
        }
        CopySpec::Column(spec) => {
            let config = CopierConfig {
                initial_chunk_rows: 37,
                ..CopierConfig::default()
            };
            let (runner, _control) = backfill(db.connect().await, spec, id, config)
                .await
                .expect("backfill");
            assert_eq!(runner.run().await.expect("backfill run"), CopyOutcome::Done);
            let report = verify_column(client, spec, &VerifyConfig::with_chunk_rows(50))
                .await
                .expect("verify column");
            assert!(report.is_clean(), "{report:?}");
            Some(report.rows)
        }
    }
}

/// Expand, copy (and verify), prepare: `p` up to `ready`; returns the migration's id.
pub async fn up_to_ready(db: &TestDb, client: &mut Client, p: &Plan) -> i64 {
    let id = migration_id(client, p).await;
    run_each(client, &p.expand).await;
    copy(db, client, p, id).await;
    run_each(client, &p.prepare_flip).await;
    id
}

/// Names of duet's objects left in the database (relations, live columns, constraints).
pub async fn duet_leftovers(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE relname LIKE '%\\_\\_duet%' AND nspname NOT IN ('duet', 'pg_catalog')
             UNION ALL
             SELECT attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE attname LIKE '%\\_\\_duet%' AND NOT attisdropped AND nspname NOT IN ('duet', 'pg_catalog')
             UNION ALL
             SELECT conname::text FROM pg_constraint WHERE conname LIKE '%\\_\\_duet%'",
            &[],
        )
        .await
        .expect("leftovers")
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}
