//! Proof: every fact the classifier claims is checked against the real PostgreSQL.
//!
//! For each case a populated schema is built, the statement runs inside a transaction on the real
//! server, and what the server did — locks (`pg_locks`), rewrite (`relfilenode` changed), scan
//! (`seq_tup_read`/`idx_tup_fetch` in `pg_stat_xact_user_tables`) — is compared with what
//! `duet check` says for the same statement replayed over the same setup. Then it rolls back.
//!
//! Comparison: for every relation that existed before the statement, the strongest observed lock
//! on a table must equal the claimed one (an unclaimed ACCESS SHARE, e.g. a view's base table, is
//! allowed: it blocks nothing); claimed index locks must be observed; rewrite and scan must match.
//!
//! The server comes from `DUET_TEST_DATABASE_URL` (default postgres@127.0.0.1:5432). Without a
//! server the test skips loudly, or fails when `DUET_REQUIRE_DATABASE=1`.

mod fact_cases;
mod migrate_support;

use std::collections::BTreeMap;

use duet_shadow::check::{self, CheckConfig, LockMode, SourceFile};
use fact_cases::{CASES, FIXTURE, TIME_ZONE_CASES, VERSIONED_CASES};
use migrate_support::TestDb;
use tokio_postgres::{Client, NoTls};

async fn connect(conninfo: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

#[derive(Debug, Default, PartialEq)]
struct Observed {
    tables: BTreeMap<String, LockMode>,
    indexes: BTreeMap<String, LockMode>,
    rewrite: bool,
    scan: bool,
}

async fn relations(
    c: &Client,
) -> Result<BTreeMap<u32, (String, u32, String)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT c.oid, c.relname::text, c.relfilenode, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ('public','other') AND c.relkind IN ('r','p','m','i','I','v','c')",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, u32>(0),
                (
                    r.get::<_, String>(1),
                    r.get::<_, u32>(2),
                    r.get::<_, String>(3),
                ),
            )
        })
        .collect())
}

async fn rows_read(c: &Client) -> Result<BTreeMap<u32, i64>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT relid, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, u32>(0), r.get::<_, i64>(1)))
        .collect())
}

/// Runs `stmt` in a transaction after the setup was committed, observes, rolls back. Since
/// PostgreSQL 15 the "xact" statistics show the backend's pending counters (which may include
/// earlier transactions), so the scan is the difference measured inside the transaction.
async fn observe(c: &Client, stmt: &str) -> Result<Observed, String> {
    let e = |e: tokio_postgres::Error| e.to_string();
    let before = relations(c).await.map_err(e)?;
    c.batch_execute("BEGIN").await.map_err(e)?;
    let read_before = rows_read(c).await.map_err(e)?;
    if let Err(err) = c.batch_execute(stmt).await {
        let _ = c.batch_execute("ROLLBACK").await;
        return Err(format!("statement failed: {err}"));
    }
    let locks = c
        .query(
            "SELECT l.relation, l.mode FROM pg_locks l
              WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted",
            &[],
        )
        .await
        .map_err(e)?;
    let read_after = rows_read(c).await.map_err(e)?;
    let after = relations(c).await.map_err(e)?;
    c.batch_execute("ROLLBACK").await.map_err(e)?;
    let mut obs = Observed::default();
    for row in locks {
        let oid: u32 = row.get(0);
        let Some(mode) = LockMode::from_pg_locks_name(row.get::<_, &str>(1)) else {
            continue;
        };
        let Some((name, _, kind)) = before.get(&oid) else {
            continue;
        }; // created by the statement
        let map = if kind == "i" || kind == "I" {
            &mut obs.indexes
        } else {
            &mut obs.tables
        };
        let e = map.entry(name.clone()).or_insert(mode);
        if mode > *e {
            *e = mode;
        }
    }
    for (oid, read) in &read_after {
        let delta = read - read_before.get(oid).copied().unwrap_or(0);
        if before.contains_key(oid) && delta > 0 {
            obs.scan = true;
        }
    }
    for (oid, (_, node, kind)) in &before {
        if matches!(kind.as_str(), "r" | "m") {
            if let Some((_, node2, _)) = after.get(oid) {
                if node2 != node {
                    obs.rewrite = true;
                }
            }
        }
    }
    Ok(obs)
}

struct Claim {
    facts: Vec<&'static str>,
    tables: BTreeMap<String, LockMode>,
    indexes: BTreeMap<String, LockMode>,
    rewrite: bool,
    scan: bool,
}

fn claim(setup: &str, stmt: &str, major: u32, utc: bool) -> Result<Claim, String> {
    // The setup is committed before the statement, as on the server.
    let config = CheckConfig {
        assume_in_transaction: false,
        engine_version: check::EngineVersion::major(major),
        session_time_zone_utc: utc,
        ..CheckConfig::default()
    };
    let files = vec![
        SourceFile {
            name: "setup.sql".into(),
            text: format!("{FIXTURE}\n{setup}"),
            no_transaction: None,
        },
        SourceFile {
            name: "change.sql".into(),
            text: format!("{stmt};"),
            no_transaction: None,
        },
    ];
    let report = check::check_files(&files, &config, check::schema::Schema::default())
        .map_err(|e| e.to_string())?;
    let s = report.statements.last().ok_or("no statement")?;
    let mut tables = BTreeMap::new();
    let mut indexes = BTreeMap::new();
    for (rel, mode) in &s.locks {
        let name = rel.rsplit('.').next().unwrap_or(rel).to_string();
        if name.ends_with("_idx")
            || name.ends_with("_idx2")
            || name.ends_with("_pkey")
            || name.ends_with("_key")
            || name.ends_with("_uidx")
        {
            indexes.insert(name, *mode);
        } else {
            tables.insert(name, *mode);
        }
    }
    Ok(Claim {
        facts: s.facts.clone(),
        tables,
        indexes,
        rewrite: s.rewrites_table,
        scan: s.scans_table,
    })
}

#[tokio::test(flavor = "current_thread")]
async fn engine_facts_hold_on_the_real_server() {
    let Some(db) = TestDb::create("engine_facts").await else {
        return;
    };
    let client = db.connect().await;
    let version_num: String = client
        .query_one("SHOW server_version_num", &[])
        .await
        .expect("server version")
        .get(0);
    let major = version_num.parse::<u32>().unwrap_or(150000) / 10000;
    eprintln!("proving facts against PostgreSQL {major}");
    let cases: Vec<(&str, &str, &str, &str)> = CASES
        .iter()
        .map(|c| ("UTC", c.0, c.1, c.2))
        .chain(
            VERSIONED_CASES
                .iter()
                .filter(|c| major >= c.0)
                .map(|c| ("UTC", c.1, c.2, c.3)),
        )
        .chain(TIME_ZONE_CASES.iter().copied())
        .collect();
    let mut failures = Vec::new();
    for (time_zone, fact, setup, stmt) in &cases {
        if let Err(err) = client
            .batch_execute(&format!("SET TimeZone = '{time_zone}'"))
            .await
        {
            failures.push(format!("{stmt}: SET TimeZone failed: {err}"));
            continue;
        }
        let reset = format!("DROP SCHEMA IF EXISTS public CASCADE; DROP SCHEMA IF EXISTS other CASCADE; DROP TYPE IF EXISTS mood; CREATE SCHEMA public; {FIXTURE} {setup}");
        if let Err(err) = client.batch_execute(&reset).await {
            failures.push(format!("{stmt}: setup failed: {err}"));
            continue;
        }
        let observed = match observe(&client, stmt).await {
            Ok(o) => o,
            Err(err) => {
                failures.push(format!("{stmt}: {err}"));
                continue;
            }
        };
        let claimed = match claim(setup, stmt, major, *time_zone == "UTC") {
            Ok(c) => c,
            Err(err) => {
                failures.push(format!("{stmt}: classifier failed: {err}"));
                continue;
            }
        };
        let mut diffs = Vec::new();
        if !claimed.facts.contains(fact) {
            diffs.push(format!(
                "classifier applied {:?}, expected {fact}",
                claimed.facts
            ));
        }
        let observed_tables: BTreeMap<_, _> = observed
            .tables
            .iter()
            .filter(|(name, mode)| {
                **mode != LockMode::AccessShare || claimed.tables.contains_key(*name)
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if observed_tables != claimed.tables {
            diffs.push(format!(
                "table locks: server {observed_tables:?}, claimed {:?}",
                claimed.tables
            ));
        }
        for (idx, mode) in &claimed.indexes {
            if observed.indexes.get(idx) != Some(mode) {
                diffs.push(format!(
                    "index {idx}: claimed {mode}, server {:?}",
                    observed.indexes.get(idx)
                ));
            }
        }
        if observed.rewrite != claimed.rewrite {
            diffs.push(format!(
                "rewrite: server {}, claimed {}",
                observed.rewrite, claimed.rewrite
            ));
        }
        if observed.scan != claimed.scan {
            diffs.push(format!(
                "scan: server {}, claimed {}",
                observed.scan, claimed.scan
            ));
        }
        if diffs.is_empty() {
            eprintln!("ok   {fact:<40} {stmt}");
        } else {
            failures.push(format!("{stmt} [{fact}]: {}", diffs.join("; ")));
        }
    }
    drop(client);
    db.drop_db().await;
    assert!(
        failures.is_empty(),
        "{} of {} facts disagree with PostgreSQL {major}:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// (fact, extra setup, statement that cannot run in a transaction block, blocker SQL run in a
/// second session so the statement waits while holding its locks)
const CONCURRENT_CASES: &[(&str, &str, &str, &str)] = &[
    ("create_index.concurrently", "", "CREATE INDEX CONCURRENTLY t_n_idx ON t (n)", "UPDATE t SET n = n WHERE id = 1"),
    ("drop_index.concurrently", "", "DROP INDEX CONCURRENTLY t_name_idx", "SELECT 1 FROM t LIMIT 1"),
    ("reindex.concurrently", "", "REINDEX INDEX CONCURRENTLY t_name_idx", "UPDATE t SET n = n WHERE id = 1"),
    (
        "detach_partition.concurrently",
        "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p1 PARTITION OF pt FOR VALUES FROM (0) TO (100000); INSERT INTO pt SELECT g, g FROM generate_series(1, 2000) g;",
        "ALTER TABLE pt DETACH PARTITION p1 CONCURRENTLY",
        // Holding the partition makes the first phase wait with the parent's lock granted.
        "LOCK TABLE p1 IN SHARE UPDATE EXCLUSIVE MODE",
    ),
];

/// CONCURRENTLY statements run outside a transaction block, so their locks are read from a third
/// session while a second one makes them wait (as CREATE INDEX CONCURRENTLY waits for writers).
/// Rewrite is checked by relfilenode; their scans are not measured here (other backends' row
/// counts are only visible after an asynchronous statistics flush).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_facts_hold_on_the_real_server() {
    let Some(db) = TestDb::create("concurrent_facts").await else {
        return;
    };
    let info = db.url();
    let mut failures = Vec::new();
    for (fact, setup, stmt, blocker_sql) in CONCURRENT_CASES {
        let runner = connect(&info).await.expect("connect");
        let blocker = connect(&info).await.expect("connect");
        let watcher = connect(&info).await.expect("connect");
        let reset = format!(
            "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public; {FIXTURE} {setup}"
        );
        runner.batch_execute(&reset).await.expect("setup");
        let before = relations(&watcher).await.expect("relations");
        let pid: i32 = runner
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get(0);
        blocker
            .batch_execute(&format!("BEGIN; {blocker_sql}"))
            .await
            .expect("blocker");
        let stmt_owned = stmt.to_string();
        let task =
            tokio::spawn(async move { runner.batch_execute(&stmt_owned).await.map(|_| runner) });
        let mut observed: BTreeMap<String, LockMode> = BTreeMap::new();
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let waiting: bool = watcher
                .query_one("SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1", &[&pid])
                .await
                .map(|r| r.get(0))
                .unwrap_or(false);
            if !waiting {
                continue;
            }
            let rows = watcher
                .query("SELECT relation, mode FROM pg_locks WHERE pid = $1 AND locktype = 'relation' AND granted", &[&pid])
                .await
                .expect("pg_locks");
            for row in rows {
                let oid: u32 = row.get(0);
                let (Some((name, _, _)), Some(mode)) = (
                    before.get(&oid),
                    LockMode::from_pg_locks_name(row.get::<_, &str>(1)),
                ) else {
                    continue;
                };
                let e = observed.entry(name.clone()).or_insert(mode);
                if mode > *e {
                    *e = mode;
                }
            }
            break;
        }
        blocker
            .batch_execute("COMMIT")
            .await
            .expect("release blocker");
        let done = task.await.expect("join");
        if let Err(err) = done {
            failures.push(format!("{stmt}: failed on the server: {err}"));
            continue;
        }
        let after = relations(&watcher).await.expect("relations");
        let rewrite = before.iter().any(|(oid, (_, node, kind))| {
            matches!(kind.as_str(), "r" | "m")
                && after.get(oid).is_some_and(|(_, n2, _)| n2 != node)
        });
        let config = CheckConfig {
            assume_in_transaction: false,
            ..CheckConfig::default()
        };
        let files = vec![
            SourceFile {
                name: "setup.sql".into(),
                text: format!("{FIXTURE}\n{setup}"),
                no_transaction: None,
            },
            SourceFile {
                name: "change.sql".into(),
                text: format!("{stmt};"),
                no_transaction: None,
            },
        ];
        let report =
            check::check_files(&files, &config, check::schema::Schema::default()).expect("check");
        let Some(s) = report.statements.last() else {
            failures.push(format!("{stmt}: no report"));
            continue;
        };
        let claimed: BTreeMap<String, LockMode> = s.locks.clone();
        let mut diffs = Vec::new();
        if !s.facts.contains(fact) {
            diffs.push(format!("classifier applied {:?}, expected {fact}", s.facts));
        }
        // While it waits, every lock it holds must be the claimed one (locks still being
        // acquired are not visible yet).
        if observed.is_empty()
            || observed
                .iter()
                .any(|(rel, mode)| claimed.get(rel) != Some(mode))
        {
            diffs.push(format!(
                "locks while waiting: server {observed:?}, claimed {claimed:?}"
            ));
        }
        if rewrite != s.rewrites_table {
            diffs.push(format!(
                "rewrite: server {rewrite}, claimed {}",
                s.rewrites_table
            ));
        }
        if diffs.is_empty() {
            eprintln!("ok   {fact:<40} {stmt}");
        } else {
            failures.push(format!("{stmt} [{fact}]: {}", diffs.join("; ")));
        }
    }
    db.drop_db().await;
    assert!(
        failures.is_empty(),
        "{} concurrent facts disagree with the server:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Facts measured on the server but not replayable as one statement on the populated fixture.
const NOT_REPLAYED: &[(&str, &str)] = &[
    (
        "add_column.not_null_without_default",
        "fails on any non-empty table, so there is nothing to measure",
    ),
    (
        "create_index.new_table",
        "the table is created in the same transaction: no other session can see it",
    ),
];

/// Every fact that claims to be measured (`probe-PG15`, for a version the server has) is proven
/// by a case above, so a new fact cannot skip its proof.
#[test]
fn every_measured_fact_has_a_proof() {
    let proven: Vec<&str> = CASES
        .iter()
        .map(|c| c.0)
        .chain(CONCURRENT_CASES.iter().map(|c| c.0))
        .chain(TIME_ZONE_CASES.iter().map(|c| c.1))
        .chain(VERSIONED_CASES.iter().map(|c| c.1))
        .chain(NOT_REPLAYED.iter().map(|c| c.0))
        .collect();
    let missing: Vec<&str> = check::facts::FACTS
        .iter()
        .filter(|f| f.evidence == "probe-PG15" && f.since.is_none_or(|v| v <= 15))
        .map(|f| f.id)
        .filter(|id| !proven.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "facts without a proof case: {missing:?}"
    );
}
