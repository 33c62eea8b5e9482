//! DUAL-WRITE.md §5: a shadow-side DELETE loses the race with a concurrent copier insert and
//! leaves a ghost row; the rewriter's tombstone upsert does not. Orchestrated on the real server:
//! the copier inserts the row (uncommitted), the application deletes it, the copier commits.

mod rewrite_support;

use duet_shadow::rewrite::{rewrite, Protocol, Rewrite};
use rewrite_support::*;

const COPY_ROW_3: &str = "INSERT INTO app.t__duet (id, amount, note, created, r, u)
    SELECT id::bigint, amount::numeric, note, created, r, u FROM app.t WHERE id = 3
    ON CONFLICT (id) DO NOTHING";

/// Runs the race with `delete_sql` as the application's statement; returns the shadow's row 3
/// as `(exists, deleted)`.
fn race(db: &TestDb, delete_sql: &str, expect_wait: bool) -> Vec<Vec<Option<String>>> {
    let mut setup = db.connect();
    reset_shadow_table(&mut setup);
    setup.run("TRUNCATE app.t__duet");
    let mut copier = db.connect();
    copier.run("BEGIN ISOLATION LEVEL READ COMMITTED");
    copier.run(COPY_ROW_3);
    let app_sql = delete_sql.to_string();
    let mut app = db.connect();
    app.run("SET search_path = app");
    let pid = app.rows("SELECT pg_backend_pid()")[0][0]
        .clone()
        .expect("pid");
    let handle = std::thread::spawn(move || app.run(&app_sql));
    if expect_wait {
        // The tombstone upsert must wait for the copier's uncommitted row (ON CONFLICT
        // arbitration); wait until the server says so.
        loop {
            let waiting = setup.rows(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND wait_event_type = 'Lock'"
            ));
            if waiting == vec![vec![Some("1".to_string())]] {
                break;
            }
            std::thread::yield_now();
        }
    } else {
        // The naive DELETE does not wait: it finishes before the copier commits.
        while !handle.is_finished() {
            std::thread::yield_now();
        }
    }
    copier.run("COMMIT");
    handle.join().expect("application thread");
    setup.rows("SELECT __duet_deleted FROM app.t__duet WHERE id = 3")
}

#[test]
fn tombstones_beat_the_copier_where_a_shadow_delete_leaves_a_ghost() {
    let Some(db) = TestDb::create("ghost_row") else {
        return;
    };
    let naive = "WITH d AS (DELETE FROM t WHERE id = 3 RETURNING id)
                 DELETE FROM app.t__duet WHERE id IN (SELECT id FROM d)";
    assert_eq!(
        race(&db, naive, false),
        vec![vec![Some("f".to_string())]],
        "a shadow-side DELETE leaves a live ghost row"
    );
    let Ok(Rewrite::Changed { sql, .. }) = rewrite(
        "DELETE FROM t WHERE id = 3",
        &shadow_table_routes(),
        Protocol::Simple,
    ) else {
        panic!("expected a rewrite");
    };
    assert_eq!(
        race(&db, &sql, true),
        vec![vec![Some("t".to_string())]],
        "the tombstone upsert waits for the copier and marks the row deleted"
    );
}
