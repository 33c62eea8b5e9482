//! The shadow-column backfill against the real PostgreSQL: it fills the column in chunks while
//! concurrent dual-writes change rows, resumes from its checkpoint, and verify_column / repair
//! find and fix rows that differ.

mod migrate_support;

use duet_shadow::ident::QualifiedName;
use duet_shadow::migrate::backfill::{backfill, repair_column, verify_column};
use duet_shadow::migrate::copier::{CopierConfig, CopyOutcome};
use duet_shadow::migrate::state;
use duet_shadow::migrate::verify::VerifyConfig;
use duet_shadow::plan::BackfillSpec;
use migrate_support::TestDb;
use std::time::Duration;

fn spec() -> BackfillSpec {
    BackfillSpec {
        table: QualifiedName::new("public", "acc"),
        key: vec!["id".into()],
        column: "amount__duet".into(),
        expr: "(\"amount\" * 10)::bigint".into(),
    }
}

#[tokio::test]
async fn backfill_with_concurrent_dual_writes_resume_verify_and_repair() {
    let Some(db) = TestDb::create("backfill").await else {
        return;
    };
    let mut client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE acc (id int PRIMARY KEY, amount int, amount__duet bigint);
             INSERT INTO acc SELECT g, g, NULL FROM generate_series(1, 2000) g; ANALYZE acc;",
        )
        .await
        .expect("setup");
    state::ensure_schema(&mut client).await.expect("schema");
    let id = state::create_migration(
        &client,
        "\"public\".\"acc\"",
        "shadow_column",
        &serde_json::json!({}),
    )
    .await
    .expect("migration");

    // Dual-writes as the proxy would issue them, racing the backfill: every change of the source
    // sets the shadow column in the same statement.
    let writer = db.connect().await;
    let writes = tokio::spawn(async move {
        for round in 0..200i32 {
            let k = (round * 37) % 2000 + 1;
            writer
                .execute(
                    "UPDATE acc SET amount = amount + 1, amount__duet = ((amount + 1) * 10)::bigint WHERE id = $1",
                    &[&k],
                )
                .await
                .expect("dual-write");
            writer
                .execute(
                    "INSERT INTO acc VALUES ($1, $1, ($1 * 10)::bigint) ON CONFLICT (id) DO NOTHING",
                    &[&(5000 + round)],
                )
                .await
                .expect("dual-write insert");
        }
    });
    let config = CopierConfig {
        initial_chunk_rows: 50,
        max_chunk_rows: 200,
        target_chunk_time: Duration::from_millis(5),
        ..CopierConfig::default()
    };
    let (runner, control) = backfill(db.connect().await, &spec(), id, config.clone())
        .await
        .expect("backfill");
    assert_eq!(runner.run().await.expect("run"), CopyOutcome::Done);
    assert!(control.progress().chunks > 1, "{:?}", control.progress());
    writes.await.expect("writer");

    let report = verify_column(&mut client, &spec(), &VerifyConfig::with_chunk_rows(300))
        .await
        .expect("verify");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.rows, 2200);

    // A second run resumes from the committed checkpoint: nothing left to do.
    let (again, _) = backfill(db.connect().await, &spec(), id, config)
        .await
        .expect("backfill again");
    assert_eq!(again.run().await.expect("run again"), CopyOutcome::Done);

    // Damage some rows behind duet's back; verification finds them, repair fixes them.
    client
        .batch_execute("UPDATE acc SET amount__duet = -1 WHERE id % 97 = 0")
        .await
        .expect("damage");
    let report = verify_column(&mut client, &spec(), &VerifyConfig::with_chunk_rows(300))
        .await
        .expect("verify");
    let bad: i64 = report.mismatches.iter().map(|(_, n)| n).sum();
    assert_eq!(bad, 20 + 2); // ids 97..1940 and 5044, 5141
    let fixed = repair_column(
        &client,
        &spec(),
        &report.mismatches,
        Duration::from_millis(100),
        5,
    )
    .await
    .expect("repair");
    assert_eq!(fixed, 22);
    assert!(
        verify_column(&mut client, &spec(), &VerifyConfig::with_chunk_rows(300))
            .await
            .expect("verify")
            .is_clean()
    );
    drop(client);
    db.drop_db().await;
}
