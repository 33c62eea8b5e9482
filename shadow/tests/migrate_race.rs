//! THE race: application writes dual-written in the conventions' CTE/tombstone form while the
//! copier runs; afterwards verification finds no difference and every committed write is there.
//! Plus the negative control: a plain DELETE on the shadow leaves a ghost, which verification finds
//! and repair removes.

mod migrate_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duet_shadow::migrate::copier::{Copier, CopierConfig, CopyOutcome};
use duet_shadow::migrate::old_transactions::{mark_dual_writes_enabled, wait_for_old_transactions};
use duet_shadow::migrate::repair::{repair, RepairConfig};
use duet_shadow::migrate::sweep::sweep_tombstones;
use duet_shadow::migrate::throttle::ThrottleConfig;
use duet_shadow::migrate::verify::{verify, VerifyConfig};
use migrate_support::{difference_count, populate, shadow_migration, TestDb};

const WRITERS: i64 = 8;
const INITIAL_ROWS: i64 = 20_000;
const KEY_SPACE: i64 = 24_000;

/// Dual-write forms of shadow/docs/online-migrations.md (conventions) for `t` → `t__duet` with `"id"::bigint`.
const UPSERT_TAIL: &str = "INSERT INTO \"public\".\"t__duet\" AS s (\"id\", \"v\", \"note\", \"__duet_deleted\")
     SELECT \"id\"::bigint, \"v\", \"note\", false FROM __duet_m ORDER BY \"id\"
     ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\", \"note\" = EXCLUDED.\"note\", \"__duet_deleted\" = false";

fn dual_insert() -> String {
    format!(
        "WITH __duet_m AS (INSERT INTO \"public\".\"t\" (\"id\", \"v\", \"note\") VALUES ($1, $2, $3)
           RETURNING \"t\".\"id\", \"t\".\"v\", \"t\".\"note\") {UPSERT_TAIL}"
    )
}

fn dual_update() -> String {
    format!(
        "WITH __duet_m AS (UPDATE \"public\".\"t\" SET \"v\" = \"v\" + 1, \"note\" = $2 WHERE \"id\" = $1
           RETURNING \"t\".\"id\", \"t\".\"v\", \"t\".\"note\") {UPSERT_TAIL}"
    )
}

fn dual_delete_tombstone() -> &'static str {
    "WITH __duet_m AS (DELETE FROM \"public\".\"t\" WHERE \"id\" = $1 RETURNING \"t\".\"id\")
     INSERT INTO \"public\".\"t__duet\" AS s (\"id\", \"__duet_deleted\")
     SELECT \"id\"::bigint, true FROM __duet_m ORDER BY \"id\"
     ON CONFLICT (\"id\") DO UPDATE SET \"__duet_deleted\" = true"
}

/// The forbidden form: a DELETE on the shadow (loses the race with the copier).
fn dual_delete_plain() -> &'static str {
    "WITH __duet_m AS (DELETE FROM \"public\".\"t\" WHERE \"id\" = $1 RETURNING \"t\".\"id\")
     DELETE FROM \"public\".\"t__duet\" WHERE \"id\" IN (SELECT \"id\"::bigint FROM __duet_m)"
}

/// Tiny deterministic PRNG (xorshift) so each writer's sequence is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Model = HashMap<i32, Option<(i32, String)>>;

/// Where a writer picks its keys.
#[derive(Clone)]
enum Keys {
    /// Anywhere in its share of the key space.
    Anywhere,
    /// In the copier's next chunk: among the next [`AHEAD`] keys past this watermark (anywhere
    /// once the copier is past the initial rows), one transaction every [`AHEAD_PAUSE`], so that
    /// a chunk's range is often still clean when the copier probes it and then written while the
    /// copier inserts it.
    AheadOf(Arc<AtomicI64>),
}

/// How far ahead of the copier's watermark a [`Keys::AheadOf`] writer writes: one chunk.
const AHEAD: i64 = 300;
/// Pause of a [`Keys::AheadOf`] writer between transactions.
const AHEAD_PAUSE: Duration = Duration::from_millis(30);

/// A writer owning keys `id % WRITERS == w`: inserts absent keys, updates or deletes present
/// ones, sometimes two statements in one transaction, sometimes rolled back. Returns the model of
/// what it committed and how many statements failed.
async fn writer(db_url: String, w: i64, stop: Arc<AtomicBool>, min_ops: u32) -> (Model, u32, u32) {
    writer_on(db_url, w, stop, min_ops, Keys::Anywhere).await
}

async fn writer_on(
    db_url: String,
    w: i64,
    stop: Arc<AtomicBool>,
    min_ops: u32,
    keys: Keys,
) -> (Model, u32, u32) {
    let (client, conn) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
        .await
        .expect("writer connect");
    tokio::spawn(conn);
    let mut client = client;
    let insert = client
        .prepare(&dual_insert())
        .await
        .expect("prepare insert");
    let update = client
        .prepare(&dual_update())
        .await
        .expect("prepare update");
    let delete = client
        .prepare(dual_delete_tombstone())
        .await
        .expect("prepare delete");
    let owned: Vec<i32> = (1..=KEY_SPACE)
        .filter(|k| k % WRITERS == w)
        .map(|k| i32::try_from(k).expect("key"))
        .collect();
    let mut model: Model = owned
        .iter()
        .map(|&k| {
            let row = (i64::from(k) <= INITIAL_ROWS).then(|| (k, format!("n{k}")));
            (k, row)
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::try_from(w + 1).expect("w"));
    let mut ops = 0u32;
    let mut failures = 0u32;
    while ops < min_ops || !stop.load(Ordering::Relaxed) {
        let statements = 1 + rng.below(2);
        let rollback = rng.below(10) == 0;
        let tx = client.transaction().await.expect("begin");
        let mut staged: Model = HashMap::new();
        let mut failed = false;
        for _ in 0..statements {
            let k = match &keys {
                Keys::AheadOf(watermark) => {
                    let from = watermark.load(Ordering::Relaxed);
                    let first = owned.partition_point(|&k| i64::from(k) <= from);
                    let span = (AHEAD / WRITERS) as usize;
                    if first + span <= owned.len() {
                        owned[first + usize::try_from(rng.below(span as u64)).expect("idx")]
                    } else {
                        owned[usize::try_from(rng.below(owned.len() as u64)).expect("idx")]
                    }
                }
                Keys::Anywhere => {
                    owned[usize::try_from(rng.below(owned.len() as u64)).expect("idx")]
                }
            };
            let current = staged.get(&k).cloned().unwrap_or_else(|| model[&k].clone());
            let note = format!("w{w}o{ops}");
            let result = match &current {
                None => {
                    let v = i32::try_from(rng.below(1000)).expect("v");
                    let r = tx.execute(&insert, &[&k, &v, &note]).await;
                    staged.insert(k, Some((v, note.clone())));
                    r
                }
                Some((v, _)) if rng.below(10) < 6 => {
                    let r = tx.execute(&update, &[&k, &note]).await;
                    staged.insert(k, Some((v + 1, note.clone())));
                    r
                }
                Some(_) => {
                    let r = tx.execute(&delete, &[&k]).await;
                    staged.insert(k, None);
                    r
                }
            };
            match result {
                Ok(1) => {}
                Ok(n) => panic!("writer {w}: statement on key {k} touched {n} rows"),
                Err(e) => {
                    eprintln!("writer {w}: {e}");
                    failures += 1;
                    failed = true;
                    break;
                }
            }
        }
        if failed || rollback {
            tx.rollback().await.expect("rollback");
        } else {
            tx.commit().await.expect("commit");
            model.extend(staged);
        }
        ops += 1;
        if matches!(keys, Keys::AheadOf(_)) {
            tokio::time::sleep(AHEAD_PAUSE).await;
        }
        if ops % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
    (model, ops, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copier_and_eight_dual_writers_race_to_zero_differences() {
    let Some(db) = TestDb::create("race").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, INITIAL_ROWS).await;
    let (id, target) = shadow_migration(&mut c).await;

    // "Enable dual-writes": from here every writer uses the rewritten forms.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(db.url(), w, stop.clone(), 300)))
        .collect();
    let mark = mark_dual_writes_enabled(&c).await.expect("mark");
    wait_for_old_transactions(
        &c,
        &mark,
        Duration::from_secs(30),
        Duration::from_millis(20),
    )
    .await
    .expect("old transactions end");

    // Small chunks so the copy overlaps many writer transactions.
    let config = CopierConfig {
        initial_chunk_rows: 200,
        min_chunk_rows: 50,
        max_chunk_rows: 400,
        target_chunk_time: Duration::from_millis(20),
        throttle: ThrottleConfig {
            thresholds: vec![],
            recheck_interval: Duration::from_millis(50),
            ..ThrottleConfig::default()
        },
        ..CopierConfig::default()
    };
    let (copier, control) = Copier::new(db.connect().await, target.clone(), id, config);
    assert_eq!(copier.run().await.expect("copy"), CopyOutcome::Done);
    // Keep writing a little after the copy, then stop; sweep while writers still run.
    let swept_during = sweep_tombstones(&c, &target, id, 100).await.expect("sweep");
    // Online repair while writers still run: damage three shadow rows, find them, re-copy.
    c.batch_execute("UPDATE t__duet SET v = -1 WHERE id IN (3, 10003, 19003)")
        .await
        .expect("inject damage");
    let damaged = verify(&mut c, &target, &VerifyConfig::with_chunk_rows(2_000))
        .await
        .expect("verify under load");
    let repaired = repair(&c, &target, &damaged.mismatches, &RepairConfig::default())
        .await
        .expect("repair under load");
    stop.store(true, Ordering::Relaxed);
    let mut total_ops = 0;
    let mut models = Vec::new();
    for handle in writers {
        let (model, ops, failures) = handle.await.expect("writer");
        assert_eq!(
            failures, 0,
            "no application statement may fail because of the copier"
        );
        total_ops += ops;
        models.push(model);
    }
    let progress = control.progress();
    eprintln!(
        "race: {total_ops} writer transactions, copier {} rows scanned / {} inserted in {} chunks, {} retries, {} plain chunks redone with ON CONFLICT; {swept_during} tombstones swept; online repair of {} ranges: {repaired:?}",
        progress.rows_done, progress.rows_copied, progress.chunks, progress.retries, progress.conflict_fallbacks,
        damaged.mismatches.len()
    );
    assert!(total_ops >= 8 * 300);
    assert!(
        progress.rows_copied < progress.rows_done,
        "dual-writes reached some keys before the copier did (the two really overlapped)"
    );

    let report = verify(&mut c, &target, &VerifyConfig::with_chunk_rows(3_000))
        .await
        .expect("verify");
    assert!(report.is_clean(), "differences: {:?}", report.mismatches);
    assert_eq!(difference_count(&c).await, 0);

    // Every writer's committed writes are present, in the source and in the shadow.
    let read = |sql: &'static str| {
        let c = &c;
        async move {
            c.query(sql, &[])
                .await
                .expect("read rows")
                .into_iter()
                .map(|r| {
                    (
                        r.get::<_, i64>(0),
                        (r.get::<_, i32>(1), r.get::<_, String>(2)),
                    )
                })
                .collect::<HashMap<i64, (i32, String)>>()
        }
    };
    let source = read("SELECT id::bigint, v, note FROM t").await;
    let shadow_rows = read("SELECT id, v, note FROM t__duet WHERE NOT __duet_deleted").await;
    let mut checked = 0;
    for model in &models {
        for (k, expected) in model {
            let key = i64::from(*k);
            assert_eq!(source.get(&key), expected.as_ref(), "source key {k}");
            assert_eq!(shadow_rows.get(&key), expected.as_ref(), "shadow key {k}");
            checked += 1;
        }
    }
    assert_eq!(checked, KEY_SPACE);
    // After the copy is done every tombstone is sweepable, and the result is still exact.
    sweep_tombstones(&c, &target, id, 500)
        .await
        .expect("final sweep");
    let tombstones: i64 = c
        .query_one("SELECT count(*) FROM t__duet WHERE __duet_deleted", &[])
        .await
        .expect("n")
        .get(0);
    assert_eq!(tombstones, 0);
    assert!(verify(&mut c, &target, &VerifyConfig::default())
        .await
        .expect("verify")
        .is_clean());
    drop(c);
    db.drop_db().await;
}

/// Adversarial for the copier's plain inserts: every writer writes just ahead of the copier's
/// watermark, so chunks keep meeting keys that were dual-written after their probe (or are held
/// uncommitted): those chunks fail with a unique violation and are redone with `ON CONFLICT DO
/// NOTHING`. Every committed write must still be in the source and the shadow, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dual_writes_just_ahead_of_the_copier_lose_nothing() {
    let Some(db) = TestDb::create("race_ahead").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, INITIAL_ROWS).await;
    let (id, target) = shadow_migration(&mut c).await;
    let config = CopierConfig {
        initial_chunk_rows: AHEAD as u32,
        min_chunk_rows: AHEAD as u32,
        max_chunk_rows: AHEAD as u32,
        throttle: ThrottleConfig {
            thresholds: vec![],
            recheck_interval: Duration::from_millis(50),
            ..ThrottleConfig::default()
        },
        ..CopierConfig::default()
    };
    let (copier, control) = Copier::new(db.connect().await, target.clone(), id, config);
    let watermark = Arc::new(AtomicI64::new(0));
    let follow = {
        let (mut rx, watermark) = (control.subscribe(), watermark.clone());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let key = rx.borrow().last_key.clone();
                if let Some(k) = key.and_then(|k| k.0.first().and_then(|v| v.parse().ok())) {
                    watermark.store(k, Ordering::Relaxed);
                }
            }
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let keys = Keys::AheadOf(watermark.clone());
            tokio::spawn(writer_on(db.url(), w, stop.clone(), 0, keys))
        })
        .collect();
    let mark = mark_dual_writes_enabled(&c).await.expect("mark");
    wait_for_old_transactions(
        &c,
        &mark,
        Duration::from_secs(30),
        Duration::from_millis(20),
    )
    .await
    .expect("old transactions end");
    assert_eq!(copier.run().await.expect("copy"), CopyOutcome::Done);
    stop.store(true, Ordering::Relaxed);
    let mut models = Vec::new();
    let mut total_ops = 0;
    for handle in writers {
        let (model, ops, failures) = handle.await.expect("writer");
        assert_eq!(
            failures, 0,
            "no application statement may fail because of the copier"
        );
        total_ops += ops;
        models.push(model);
    }
    follow.abort();
    let progress = control.progress();
    eprintln!(
        "race ahead: {total_ops} writer transactions, copier {} rows scanned / {} inserted in {} chunks, {} retries, {} plain chunks redone with ON CONFLICT",
        progress.rows_done, progress.rows_copied, progress.chunks, progress.retries,
        progress.conflict_fallbacks
    );
    sweep_tombstones(&c, &target, id, 500).await.expect("sweep");
    assert!(
        verify(&mut c, &target, &VerifyConfig::with_chunk_rows(3_000))
            .await
            .expect("verify")
            .is_clean()
    );
    assert_eq!(difference_count(&c).await, 0);
    let shadow_rows: HashMap<i64, (i32, String)> = c
        .query(
            "SELECT id, v, note FROM t__duet WHERE NOT __duet_deleted",
            &[],
        )
        .await
        .expect("shadow rows")
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    for model in &models {
        for (k, expected) in model {
            assert_eq!(
                shadow_rows.get(&i64::from(*k)),
                expected.as_ref(),
                "shadow key {k}"
            );
        }
    }
    drop(c);
    db.drop_db().await;
}

/// Orchestrated: a copier chunk has inserted key 50 (uncommitted) when the application deletes it.
/// With a plain shadow DELETE the row survives as a ghost; with the tombstone upsert it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_shadow_delete_leaves_a_ghost_that_verify_finds_and_repair_removes() {
    let Some(db) = TestDb::create("ghost").await else {
        return;
    };
    let mut c = db.connect().await;
    populate(&c, 1_000).await;
    let (_id, target) = shadow_migration(&mut c).await;
    let chunk_sql = "INSERT INTO t__duet (id, v, note) SELECT id::bigint, v, note FROM t
                     WHERE id > $1 AND id <= $2 ORDER BY id ON CONFLICT (id) DO NOTHING";

    // Plain DELETE: the app's statement snapshot cannot see the copier's row.
    let mut copier = db.connect().await;
    let chunk = copier.transaction().await.expect("chunk");
    chunk
        .execute(chunk_sql, &[&0i32, &100i32])
        .await
        .expect("chunk insert");
    let app = db.connect().await;
    let n = app
        .execute(dual_delete_plain(), &[&50i32])
        .await
        .expect("plain delete");
    assert_eq!(n, 0, "the shadow DELETE saw nothing to delete");
    chunk.commit().await.expect("chunk commit");
    let ghost: i64 = c
        .query_one(
            "SELECT count(*) FROM t__duet WHERE id = 50 AND NOT __duet_deleted",
            &[],
        )
        .await
        .expect("ghost")
        .get(0);
    assert_eq!(ghost, 1, "ghost row: deleted in t, alive in the shadow");

    // Tombstone form under the same interleaving: waits for the chunk, then wins.
    let chunk = copier.transaction().await.expect("chunk 2");
    chunk
        .execute(chunk_sql, &[&100i32, &200i32])
        .await
        .expect("chunk insert");
    let url = db.url();
    let tombstone = tokio::spawn(async move {
        let (app2, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("app2");
        tokio::spawn(conn);
        app2.execute(dual_delete_tombstone(), &[&150i32])
            .await
            .expect("tombstone delete")
    });
    // Commit the chunk only once the application's upsert is waiting on it.
    loop {
        let waiting: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH __duet_m AS (DELETE%'",
                &[],
            )
            .await
            .expect("waiting")
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    chunk.commit().await.expect("chunk 2 commit");
    assert_eq!(
        tombstone.await.expect("join"),
        1,
        "one tombstone per deleted row"
    );
    let alive: i64 = c
        .query_one(
            "SELECT count(*) FROM t__duet WHERE id = 150 AND NOT __duet_deleted",
            &[],
        )
        .await
        .expect("alive")
        .get(0);
    assert_eq!(alive, 0, "no ghost with tombstones");

    // Finish the copy by hand, inject more damage, then verify → repair → verify.
    copier
        .execute(chunk_sql, &[&200i32, &1000i32])
        .await
        .expect("rest");
    c.batch_execute(
        "UPDATE t__duet SET v = -1 WHERE id = 700;            -- stale value
         DELETE FROM t__duet WHERE id = 900;                  -- missing row
         UPDATE t__duet SET __duet_deleted = true WHERE id = 901; -- wrongly tombstoned",
    )
    .await
    .expect("inject");
    let before = verify(&mut c, &target, &VerifyConfig::with_chunk_rows(100))
        .await
        .expect("verify");
    let bad: Vec<String> = before
        .mismatches
        .iter()
        .map(|m| m.range.to_string())
        .collect();
    assert_eq!(bad.len(), 3, "ranges with 50, 700 and 900/901: {bad:?}");
    let fixed = repair(
        &copier,
        &target,
        &before.mismatches,
        &RepairConfig::default(),
    )
    .await
    .expect("repair");
    assert_eq!(fixed.tombstoned, 1, "the ghost is tombstoned");
    let after = verify(&mut c, &target, &VerifyConfig::with_chunk_rows(100))
        .await
        .expect("re-verify");
    assert!(after.is_clean(), "{after:?}");
    assert_eq!(difference_count(&c).await, 0);
    drop((c, copier, app));
    db.drop_db().await;
}
