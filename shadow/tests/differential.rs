//! The differential harness: migration histories are applied to the real PostgreSQL with populated
//! tables, and for every statement what the server did is compared with what `duet check` says
//! about the same statement (in the spirit of eugene's `trace`).
//!
//! Per statement, for every relation that existed before the statement's transaction began:
//!
//! - **locks**: `pg_locks` read from a second session while the statement's transaction is held
//!   open (the locks it added to those already held);
//! - **rewrite**: its `relfilenode` changed;
//! - **scan**: the rows read (`seq_tup_read + idx_tup_fetch`) reach the rows it held when the file
//!   started (a full read; the few index lookups of a foreign-key check are not a scan).
//!
//! A **false "safe"** — duet claims no rewrite, no scan, or a lock that conflicts with less than
//! the measured one (or none) — fails the test. Over-cautious verdicts are counted and printed.
//! Statements that cannot run in a transaction block (CONCURRENTLY, VACUUM) run in autocommit:
//! rewrites and scans are measured through the cumulative statistics (flushed with
//! `pg_stat_force_next_flush()`), their locks by `engine_facts.rs`'s concurrent cases.
//!
//! Histories: the bundled `tests/data/differential/*` projects (real-world shaped, written for
//! this harness: golang-migrate, dbmate and Flyway layouts, with seed data applied after the
//! migration of the same name) and every case of `fact_cases` as a two-file history.
//! Each runs in a database of its own; without a server the test skips loudly, or fails when
//! `DUET_REQUIRE_DATABASE=1`.

mod fact_cases;
mod migrate_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use duet_shadow::check::{self, CheckConfig, LockMode, SourceFile, StatementReport};
use migrate_support::TestDb;
use tokio_postgres::{Client, NoTls};

/// One migration file of a history.
struct File {
    source: SourceFile,
    /// Runs in one transaction (the runner's default, unless a marker or convention says not).
    in_transaction: bool,
    /// Applied to the server but not measured (a fact case's setup).
    measured: bool,
    /// SQL run after the file is applied (not checked by duet): the project's seed data.
    seed: Option<String>,
}

/// One history: files in runner order, the session TimeZone and what duet is told about it.
struct History {
    name: String,
    files: Vec<File>,
    time_zone: Option<String>,
    config: CheckConfig,
}

/// What the server did for one statement, on relations that existed before its transaction.
#[derive(Debug, Default)]
struct Measured {
    /// Strongest lock taken per relation (tables, partitioned tables, views, materialized views).
    locks: BTreeMap<String, LockMode>,
    /// Whether the locks were observed (not for statements run outside a transaction block).
    locks_measured: bool,
    rewritten: BTreeSet<String>,
    scanned: BTreeSet<String>,
}

/// Agreement counts over all compared statements.
#[derive(Debug, Default)]
struct Tally {
    statements: usize,
    unknown: usize,
    lock_exact: usize,
    lock_stronger: usize,
    lock_false_safe: usize,
    rewrite_agree: usize,
    rewrite_over: usize,
    rewrite_false_safe: usize,
    scan_agree: usize,
    scan_over: usize,
    scan_false_safe: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.statements += o.statements;
        self.unknown += o.unknown;
        self.lock_exact += o.lock_exact;
        self.lock_stronger += o.lock_stronger;
        self.lock_false_safe += o.lock_false_safe;
        self.rewrite_agree += o.rewrite_agree;
        self.rewrite_over += o.rewrite_over;
        self.rewrite_false_safe += o.rewrite_false_safe;
        self.scan_agree += o.scan_agree;
        self.scan_over += o.scan_over;
        self.scan_false_safe += o.scan_false_safe;
    }

    fn line(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {} | {} / {} / {} | {} / {} / {} | {} / {} / {} |",
            self.statements,
            self.unknown,
            self.lock_exact,
            self.lock_stronger,
            self.lock_false_safe,
            self.rewrite_agree,
            self.rewrite_over,
            self.rewrite_false_safe,
            self.scan_agree,
            self.scan_over,
            self.scan_false_safe
        )
    }
}

async fn connect(url: &str) -> Result<Client, String> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(client)
}

fn pg(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// User relations: oid → (name, relfilenode, relkind).
async fn relations(c: &Client) -> Result<BTreeMap<u32, (String, u32, String)>, String> {
    let rows = c
        .query(
            "SELECT c.oid, c.relname::text, c.relfilenode, c.relkind::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
                AND n.nspname NOT LIKE 'pg_temp%'",
            &[],
        )
        .await
        .map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect())
}

/// Rows read per table by this backend's open transaction.
async fn rows_read_in_transaction(c: &Client) -> Result<BTreeMap<u32, i64>, String> {
    let rows = c
        .query(
            "SELECT relid, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables",
            &[],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Rows read per table, as flushed to the cumulative statistics.
async fn rows_read_flushed(c: &Client) -> Result<BTreeMap<u32, i64>, String> {
    c.batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .map_err(pg)?;
    let rows = c
        .query(
            "SELECT relid, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables",
            &[],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Granted relation locks of `pid`: (oid, mode).
async fn locks_of(c: &Client, pid: i32) -> Result<BTreeSet<(u32, String)>, String> {
    let rows = c
        .query(
            "SELECT relation, mode FROM pg_locks WHERE pid = $1 AND locktype = 'relation' AND granted",
            &[&pid],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Runs `sql` on `runner` inside its open transaction and measures it.
async fn measure_in_transaction(
    runner: &Client,
    watcher: &Client,
    pid: i32,
    sql: &str,
    existing: &BTreeMap<u32, (String, u32, String)>,
    counts: &BTreeMap<u32, i64>,
) -> Result<Measured, String> {
    let rel_before = relations(runner).await?;
    let read_before = rows_read_in_transaction(runner).await?;
    let locks_before = locks_of(watcher, pid).await?;
    runner.batch_execute(sql).await.map_err(pg)?;
    let locks_after = locks_of(watcher, pid).await?;
    let read_after = rows_read_in_transaction(runner).await?;
    let rel_after = relations(runner).await?;
    let mut m = Measured {
        locks_measured: true,
        ..Measured::default()
    };
    for (oid, mode) in locks_after.difference(&locks_before) {
        let Some((name, _, kind)) = existing.get(oid) else {
            continue;
        };
        let (true, Some(mode)) = (
            matches!(kind.as_str(), "r" | "p" | "v" | "m"),
            LockMode::from_pg_locks_name(mode),
        ) else {
            continue;
        };
        let e = m.locks.entry(name.clone()).or_insert(mode);
        if mode > *e {
            *e = mode;
        }
    }
    judge_storage(
        &mut m,
        existing,
        &rel_before,
        &rel_after,
        counts,
        &read_before,
        &read_after,
    );
    Ok(m)
}

/// Runs `sql` in autocommit (it cannot run in a transaction block) and measures rewrite and scan.
async fn measure_autocommit(
    runner: &Client,
    watcher: &Client,
    sql: &str,
    existing: &BTreeMap<u32, (String, u32, String)>,
    counts: &BTreeMap<u32, i64>,
) -> Result<Measured, String> {
    // The flush happens before the server answers, so the watcher sees it next.
    runner
        .batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .map_err(pg)?;
    let read_before = rows_read_flushed(watcher).await?;
    let rel_before = relations(watcher).await?;
    runner.batch_execute(sql).await.map_err(pg)?;
    runner
        .batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .map_err(pg)?;
    let read_after = rows_read_flushed(watcher).await?;
    let rel_after = relations(watcher).await?;
    let mut m = Measured::default();
    judge_storage(
        &mut m,
        existing,
        &rel_before,
        &rel_after,
        counts,
        &read_before,
        &read_after,
    );
    Ok(m)
}

fn judge_storage(
    m: &mut Measured,
    existing: &BTreeMap<u32, (String, u32, String)>,
    rel_before: &BTreeMap<u32, (String, u32, String)>,
    rel_after: &BTreeMap<u32, (String, u32, String)>,
    counts: &BTreeMap<u32, i64>,
    read_before: &BTreeMap<u32, i64>,
    read_after: &BTreeMap<u32, i64>,
) {
    for (oid, (name, _, kind)) in existing {
        if !matches!(kind.as_str(), "r" | "m") {
            continue;
        }
        if let (Some((_, n1, _)), Some((_, n2, _))) = (rel_before.get(oid), rel_after.get(oid)) {
            if n1 != n2 {
                m.rewritten.insert(name.clone());
            }
        }
        let rows = counts.get(oid).copied().unwrap_or(0);
        let read =
            read_after.get(oid).copied().unwrap_or(0) - read_before.get(oid).copied().unwrap_or(0);
        if rows > 0 && read >= rows {
            m.scanned.insert(name.clone());
        }
    }
}

/// Whether a claimed lock blocks at least everything the measured one blocks.
fn covers(claimed: Option<LockMode>, measured: LockMode) -> bool {
    let Some(c) = claimed else { return false };
    LockMode::ALL
        .iter()
        .all(|other| !measured.conflicts_with(*other) || c.conflicts_with(*other))
}

/// Compares one statement; returns its tally and the false-safe findings.
fn compare(s: &StatementReport, m: &Measured, existing: &BTreeSet<String>) -> (Tally, Vec<String>) {
    let mut t = Tally {
        statements: 1,
        ..Tally::default()
    };
    let mut bad = Vec::new();
    if s.kind == "unparsed" || s.facts.contains(&"opaque_code") {
        t.unknown = 1;
        return (t, bad);
    }
    let claimed: BTreeMap<String, LockMode> = s
        .locks
        .iter()
        .map(|(k, v)| (k.rsplit('.').next().unwrap_or(k).to_string(), *v))
        .collect();
    if m.locks_measured {
        let mut false_safe = false;
        let mut stronger = false;
        for (rel, mode) in &m.locks {
            if !covers(claimed.get(rel).copied(), *mode) {
                false_safe = true;
                bad.push(format!(
                    "lock on {rel}: server {mode}, duet {:?}",
                    claimed.get(rel)
                ));
            } else if claimed.get(rel) != Some(mode) {
                stronger = true;
            }
        }
        // A claim on a pre-existing relation the statement did not newly lock is over-cautious
        // too (or the lock was already held by an earlier statement of the transaction).
        stronger |= claimed
            .keys()
            .any(|r| existing.contains(r) && !m.locks.contains_key(r));
        if false_safe {
            t.lock_false_safe = 1;
        } else if stronger {
            t.lock_stronger = 1;
        } else {
            t.lock_exact = 1;
        }
    }
    match (!m.rewritten.is_empty(), s.rewrites_table) {
        (true, false) => {
            t.rewrite_false_safe = 1;
            bad.push(format!("rewrite of {:?} not claimed", m.rewritten));
        }
        (false, true) => t.rewrite_over = 1,
        _ => t.rewrite_agree = 1,
    }
    match (!m.scanned.is_empty(), s.scans_table) {
        (true, false) => {
            t.scan_false_safe = 1;
            bad.push(format!("scan of {:?} not claimed", m.scanned));
        }
        (false, true) => t.scan_over = 1,
        _ => t.scan_agree = 1,
    }
    (t, bad)
}

/// Applies a history and compares every measured statement; returns the tally and failures.
async fn run_history(url: &str, h: &History) -> Result<(Tally, Vec<String>), String> {
    let sources: Vec<SourceFile> = h.files.iter().map(|f| f.source.clone()).collect();
    let report = check::check_files(&sources, &h.config, check::schema::Schema::default())
        .map_err(|e| e.to_string())?;
    let runner = connect(url).await?;
    let watcher = connect(url).await?;
    if let Some(tz) = &h.time_zone {
        runner
            .batch_execute(&format!("SET TimeZone = '{tz}'"))
            .await
            .map_err(pg)?;
    }
    let pid: i32 = runner
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(pg)?
        .get(0);
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for file in &h.files {
        let stmts: Vec<&StatementReport> = report
            .statements
            .iter()
            .filter(|s| s.file == file.source.name)
            .collect();
        if !file.measured {
            runner
                .batch_execute(&file.source.text)
                .await
                .map_err(|e| format!("{}: setup {} failed: {}", h.name, file.source.name, pg(e)))?;
            continue;
        }
        let existing = relations(&watcher).await?;
        let counts = row_counts_exact(&watcher, &existing).await?;
        let existing_names: BTreeSet<String> = existing
            .values()
            .filter(|(_, _, kind)| matches!(kind.as_str(), "r" | "p" | "v" | "m"))
            .map(|(name, _, _)| name.clone())
            .collect();
        if file.in_transaction {
            runner.batch_execute("BEGIN").await.map_err(pg)?;
        }
        for s in &stmts {
            let where_ = format!("{} {}:{}", h.name, s.file, s.line);
            let measured = if file.in_transaction {
                measure_in_transaction(&runner, &watcher, pid, &s.sql, &existing, &counts).await
            } else {
                runner.batch_execute("BEGIN").await.map_err(pg)?;
                match measure_in_transaction(&runner, &watcher, pid, &s.sql, &existing, &counts)
                    .await
                {
                    Ok(m) => {
                        runner.batch_execute("COMMIT").await.map_err(pg)?;
                        Ok(m)
                    }
                    Err(e) if e.starts_with("25001") => {
                        runner.batch_execute("ROLLBACK").await.map_err(pg)?;
                        measure_autocommit(&runner, &watcher, &s.sql, &existing, &counts).await
                    }
                    Err(e) => Err(e),
                }
            };
            let m = measured.map_err(|e| format!("{where_}: the server rejected it: {e}"))?;
            let (t, bad) = compare(s, &m, &existing_names);
            tally.add(&t);
            if !bad.is_empty() {
                failures.push(format!(
                    "{where_} `{}`: {}",
                    first_line(&s.sql),
                    bad.join("; ")
                ));
            }
        }
        if file.in_transaction {
            runner.batch_execute("COMMIT").await.map_err(pg)?;
        }
        if let Some(seed) = &file.seed {
            runner.batch_execute(seed).await.map_err(|e| {
                format!(
                    "{}: seed after {} failed: {}",
                    h.name,
                    file.source.name,
                    pg(e)
                )
            })?;
        }
    }
    Ok((tally, failures))
}

/// Exact row counts of the user tables, read by the watcher before a file runs (and flushed, so
/// they never count as the runner's reads).
async fn row_counts_exact(
    c: &Client,
    rels: &BTreeMap<u32, (String, u32, String)>,
) -> Result<BTreeMap<u32, i64>, String> {
    let mut out = BTreeMap::new();
    for (oid, (_, _, kind)) in rels {
        if kind == "r" || kind == "m" {
            let name: String = c
                .query_one("SELECT $1::oid::regclass::text", &[oid])
                .await
                .map_err(pg)?
                .get(0);
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM ONLY {name}"), &[])
                .await
                .map(|r| r.get(0))
                .unwrap_or(0);
            out.insert(*oid, n);
        }
    }
    c.batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .map_err(pg)?;
    Ok(out)
}

fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or(sql)
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/differential")
}

/// A bundled project: its migrations in runner order, each with the seed of the same name.
fn project(dir: &Path) -> Result<History, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sources = check::read_sources(&[dir.join("migrations")]).map_err(|e| e.to_string())?;
    let config = CheckConfig::default();
    let files = sources
        .into_iter()
        .map(|source| {
            let base = Path::new(&source.name)
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            let seed = std::fs::read_to_string(dir.join("seed").join(base)).ok();
            let marker = check::markers::read_directives(&source.text).no_transaction_marker;
            File {
                in_transaction: config.assume_in_transaction
                    && marker.is_none()
                    && source.no_transaction.is_none(),
                measured: true,
                seed,
                source,
            }
        })
        .collect();
    Ok(History {
        name,
        files,
        time_zone: None,
        config,
    })
}

/// A fact case as a history: the fixture and setup committed, then the statement measured.
fn fact_history(time_zone: &str, fact: &str, setup: &str, stmt: &str, major: u32) -> History {
    let file = |name: &str, text: String, measured: bool| File {
        source: SourceFile {
            name: name.to_string(),
            text,
            no_transaction: None,
        },
        in_transaction: true,
        measured,
        seed: None,
    };
    History {
        name: format!("fact {fact}"),
        files: vec![
            file(
                "setup.sql",
                format!("{}\n{setup}", fact_cases::FIXTURE),
                false,
            ),
            file("change.sql", format!("{stmt};"), true),
        ],
        time_zone: Some(time_zone.to_string()),
        config: CheckConfig {
            engine_version: check::EngineVersion::major(major),
            session_time_zone_utc: time_zone == "UTC",
            ..CheckConfig::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duet_check_is_never_falsely_safe_on_the_real_server() {
    let Some(db) = TestDb::create("differential").await else {
        return;
    };
    let admin = db.connect().await;
    let major = admin
        .query_one("SHOW server_version_num", &[])
        .await
        .map(|r| r.get::<_, String>(0))
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(150000)
        / 10000;
    let url = db.url();
    let reset = "DROP SCHEMA IF EXISTS public CASCADE; DROP SCHEMA IF EXISTS other CASCADE; DROP TYPE IF EXISTS mood; CREATE SCHEMA public;";

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut total = Tally::default();

    let mut projects: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    projects.sort();
    assert!(
        !projects.is_empty(),
        "no bundled histories under {:?}",
        data_dir()
    );
    for dir in projects.iter().filter(|p| p.is_dir()) {
        admin.batch_execute(reset).await.expect("reset schema");
        let history = match project(dir) {
            Ok(h) => h,
            Err(e) => {
                failures.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        match run_history(&url, &history).await {
            Ok((t, f)) => {
                rows.push(t.line(&history.name));
                total.add(&t);
                failures.extend(f);
            }
            Err(e) => failures.push(e),
        }
    }

    let mut facts = Tally::default();
    let cases = fact_cases::CASES
        .iter()
        .map(|c| ("UTC", c.0, c.1, c.2))
        .chain(
            fact_cases::VERSIONED_CASES
                .iter()
                .filter(|c| major >= c.0)
                .map(|c| ("UTC", c.1, c.2, c.3)),
        )
        .chain(fact_cases::TIME_ZONE_CASES.iter().copied());
    for (tz, fact, setup, stmt) in cases {
        admin.batch_execute(reset).await.expect("reset schema");
        let history = fact_history(tz, fact, setup, stmt, major);
        match run_history(&url, &history).await {
            Ok((t, f)) => {
                facts.add(&t);
                failures.extend(f);
            }
            Err(e) => failures.push(e),
        }
    }
    rows.push(facts.line("facts.rs cases"));
    total.add(&facts);
    rows.push(total.line("**total**"));
    eprintln!(
        "differential against PostgreSQL {major}\n\
         | history | statements | unknown | locks exact / stronger / FALSE SAFE | rewrite agree / over / FALSE SAFE | scan agree / over / FALSE SAFE |\n\
         |---|---|---|---|---|---|\n{}",
        rows.join("\n")
    );
    drop(admin);
    db.drop_db().await;
    assert!(
        failures.is_empty(),
        "{} false \"safe\" verdicts (or histories that did not apply):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
