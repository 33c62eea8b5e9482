//! Waiting for transactions older than dual-writes.
//!
//! A transaction that began before the proxy started rewriting writes may still write the table
//! without touching the shadow, and its snapshot may not see rows the copier relies on; the copier
//! must start only after every such transaction has ended (as `CREATE INDEX CONCURRENTLY` waits for
//! old snapshots). Capture a [`DualWriteMark`] right after enabling dual-writes; a transaction is
//! "older" when it started before the mark's time, or holds an xid below the mark's snapshot xmax.
//! Only transactions of the table's own database count: no other database can write it, and a
//! long transaction elsewhere on the server must not hold the copy back.
//!
//! A role that is neither a superuser nor a member of `pg_read_all_stats` (duet's role on a managed
//! server, as the tables' owner) sees other roles' sessions in `pg_stat_activity` without their
//! transaction start. Such a session in a transaction still holds its virtual transaction id in
//! `pg_locks`, which every role sees: the mark records those ids, and a session counts as older
//! while it still runs the transaction it was in at the mark (as `CREATE INDEX CONCURRENTLY`
//! waits for virtual transaction ids).

use std::time::{Duration, Instant};

use tokio_postgres::GenericClient;

use crate::migrate::error::{DbContext, MigrateError};

/// The moment dual-writes were enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DualWriteMark {
    /// `clock_timestamp()` then (text form, `timestamptz`).
    pub at: String,
    /// `pg_snapshot_xmax(pg_current_snapshot())` then: every xid below it had started.
    pub xmax: i64,
    /// The virtual transaction ids then of the database's client sessions in a transaction whose
    /// start duet's role may not see (other roles' sessions, without `pg_read_all_stats`).
    pub hidden: Vec<String>,
}

/// A transaction that holds the copier back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// Backend pid (None for a prepared transaction).
    pub pid: Option<i32>,
    /// Prepared transaction's gid.
    pub gid: Option<String>,
    /// Transaction start (or prepare time).
    pub since: Option<String>,
    /// Backend state (`idle in transaction`, …).
    pub state: Option<String>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// Start of the last query.
    pub query: Option<String>,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.pid, &self.gid) {
            (Some(pid), _) => write!(f, "pid {pid}")?,
            (None, Some(gid)) => write!(f, "prepared transaction {gid:?}")?,
            (None, None) => write!(f, "unknown transaction")?,
        }
        if let Some(s) = &self.since {
            write!(f, " since {s}")?;
        }
        if let Some(s) = &self.state {
            write!(f, " ({s})")?;
        }
        if let Some(a) = self.application_name.as_deref().filter(|a| !a.is_empty()) {
            write!(f, " app {a:?}")?;
        }
        if let Some(q) = &self.query {
            write!(f, ": {q}")?;
        }
        Ok(())
    }
}

/// Capture the mark (call right after dual-writes are enabled).
pub async fn mark_dual_writes_enabled(
    client: &impl GenericClient,
) -> Result<DualWriteMark, MigrateError> {
    let row = client
        .query_one(
            "SELECT clock_timestamp()::text, pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
                    array(SELECT l.virtualxid
                            FROM pg_catalog.pg_locks l
                            JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
                           WHERE l.locktype = 'virtualxid' AND l.granted
                             AND l.virtualxid IS NOT NULL
                             AND a.pid <> pg_catalog.pg_backend_pid()
                             AND a.datname = pg_catalog.current_database()
                             -- a client session (autovacuum has no role) whose start is hidden
                             AND a.usesysid IS NOT NULL AND a.xact_start IS NULL)",
            &[],
        )
        .await
        .ctx("capturing the dual-write mark")?;
    Ok(DualWriteMark {
        at: row.get(0),
        xmax: row.get(1),
        hidden: row.get(2),
    })
}

/// The transactions older than `mark` that are still running (the caller's own excluded).
pub async fn old_transactions(
    client: &impl GenericClient,
    mark: &DualWriteMark,
) -> Result<Vec<Blocker>, MigrateError> {
    let rows = client
        .query(
            "WITH old_xids AS (
                 SELECT (x::text::bigint % 4294967296) AS xid32
                 FROM pg_snapshot_xip(pg_current_snapshot()) x
                 WHERE x::text::bigint < $2)
             SELECT a.pid, NULL::text, a.xact_start::text, a.state, a.application_name,
                    left(a.query, 200)
             FROM pg_stat_activity a
             WHERE a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
               AND a.datname = current_database()
               AND (a.xact_start < $1::text::timestamptz
                    OR a.backend_xid::text::bigint IN (SELECT xid32 FROM old_xids))
             UNION ALL
             SELECT a.pid, NULL, NULL,
                    'in a transaction since before dual-writes; its details are hidden from duet''s role (grant it pg_read_all_stats to see them)',
                    a.application_name, NULL
             FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'virtualxid' AND l.granted AND l.virtualxid = ANY($3::text[])
             UNION ALL
             SELECT NULL, p.gid, p.prepared::text, 'prepared', NULL, NULL
             FROM pg_prepared_xacts p
             WHERE p.database = current_database()
               AND (p.prepared < $1::text::timestamptz
                OR p.transaction::text::bigint IN (SELECT xid32 FROM old_xids))
             ORDER BY 3",
            &[&mark.at, &mark.xmax, &mark.hidden],
        )
        .await
        .ctx("listing transactions older than dual-writes")?;
    Ok(rows
        .iter()
        .map(|r| Blocker {
            pid: r.get(0),
            gid: r.get(1),
            since: r.get(2),
            state: r.get(3),
            application_name: r.get(4),
            query: r.get(5),
        })
        .collect())
}

/// Wait until no transaction older than `mark` is running, polling every `poll`; after `timeout`
/// fail with the blockers.
pub async fn wait_for_old_transactions(
    client: &impl GenericClient,
    mark: &DualWriteMark,
    timeout: Duration,
    poll: Duration,
) -> Result<(), MigrateError> {
    let started = Instant::now();
    loop {
        let blockers = old_transactions(client, mark).await?;
        if blockers.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(MigrateError::OldTransactions {
                waited: started.elapsed(),
                blockers,
            });
        }
        tokio::time::sleep(poll).await;
    }
}
