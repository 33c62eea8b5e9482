//! Guarded control connections: DDL that can never queue behind a long transaction and stall
//! the application (which would queue behind the DDL's lock request).
//!
//! `lock_timeout` (at most half the server's `deadlock_timeout`: [`capped_lock_timeout_sql`]) and
//! `statement_timeout` are set when the connection is made; a step that loses
//! the lock race (55P03), a serialization failure (40001) or a deadlock (40P01) is retried a
//! bounded number of times with exponential backoff and jitter. Anything else fails at once.

use std::hash::BuildHasher;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::migrate::error::{DbContext, MigrateError};
use crate::migrate::phase::Phase;
use crate::migrate::state;

/// Timeouts and retry policy of a control connection.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// `lock_timeout` of every statement (default 1 s; at most half the server's
    /// `deadlock_timeout`).
    pub lock_timeout: Duration,
    /// `statement_timeout` (default 60 s).
    pub statement_timeout: Duration,
    /// Attempts per step, including the first (default 5).
    pub max_attempts: u32,
    /// First backoff (default 50 ms); doubles per attempt, with jitter.
    pub base_backoff: Duration,
    /// Backoff cap (default 2 s).
    pub max_backoff: Duration,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            lock_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(60),
            max_attempts: 5,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// The phase change recorded by a step, committed in the step's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseStep {
    /// Migration id.
    pub migration_id: i64,
    /// Expected current phase.
    pub from: Phase,
    /// New phase.
    pub to: Phase,
}

/// A control connection with timeouts set.
pub struct GuardedConnection {
    client: Client,
    config: GuardConfig,
}

/// Whether a server error is worth retrying (lock not available, serialization failure,
/// deadlock).
pub fn is_retryable(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|c| {
        *c == SqlState::LOCK_NOT_AVAILABLE
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// Exponential backoff for attempt `attempt` (1-based), capped, with "equal jitter": half fixed,
/// half random, so retrying controllers do not stay in lock-step.
pub fn backoff_with_jitter(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(max);
    let half = capped / 2;
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_nanos(random % jitter_nanos)
}

/// Runs `body` (statements on `client`) inside one READ COMMITTED transaction with a short
/// `lock_timeout`, so a data step (copy chunk, repair) waits on the application for at most that
/// long and gives up first; commits on success, rolls back on failure (the original error is the
/// one returned). `what` names the step in errors.
pub(crate) async fn in_short_transaction<T>(
    client: &Client,
    lock_timeout: Duration,
    what: &str,
    body: impl std::future::Future<Output = Result<T, MigrateError>>,
) -> Result<T, MigrateError> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = '{}ms'",
            millis(lock_timeout)
        ))
        .await
        .ctx(format!("starting {what}"))?;
    match body.await {
        Ok(value) => {
            client
                .batch_execute("COMMIT")
                .await
                .ctx(format!("committing {what}"))?;
            Ok(value)
        }
        Err(e) => {
            // The connection may be broken; the original error is the one that matters.
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Runs `attempt` until it succeeds, fails with a non-retryable error, or has been tried
/// `max_attempts` times, sleeping [`backoff_with_jitter`] between tries; `retried` counts the
/// retries.
pub(crate) async fn retry_retryable<T, F, Fut>(
    max_attempts: u32,
    retried: &mut u32,
    mut attempt: F,
) -> Result<T, MigrateError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MigrateError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(MigrateError::Db { source, .. })
                if is_retryable(&source) && tries < max_attempts =>
            {
                *retried += 1;
                tokio::time::sleep(backoff_with_jitter(
                    tries,
                    Duration::from_millis(20),
                    Duration::from_secs(1),
                ))
                .await;
            }
            done => return done,
        }
    }
}

fn millis(d: Duration) -> u128 {
    d.as_millis().max(1)
}

/// The statement that sets `lock_timeout` to `lock_timeout`, but never to more than half the
/// server's `deadlock_timeout` (`local`: for the current transaction only).
///
/// DDL that locks two tables (a foreign key's, a swap's) can form a cycle with a writer that
/// straight on PostgreSQL holds a lock of one table and waits for the other, which duet holds.
/// The server aborts whichever of the two runs its deadlock check first, `deadlock_timeout` after
/// it began to wait — the writer, which began first, unless duet's own wait gives up sooner. With
/// this cap it does: duet's step fails with 55P03 and is retried, and the writer goes on.
pub fn capped_lock_timeout_sql(lock_timeout: Duration, local: bool) -> String {
    format!(
        "SELECT pg_catalog.set_config('lock_timeout', greatest(1, least({}::bigint,
           (SELECT s.setting::bigint / 2 FROM pg_catalog.pg_settings s
             WHERE s.name = 'deadlock_timeout')))::text || 'ms', {local})",
        millis(lock_timeout)
    )
}

impl GuardedConnection {
    /// Connect (libpq-style connection string) and set the timeouts.
    pub async fn connect(conn: &str, config: GuardConfig) -> Result<Self, MigrateError> {
        let (client, connection) = tokio_postgres::connect(conn, NoTls)
            .await
            .ctx("connecting the control connection")?;
        tokio::spawn(connection);
        Self::from_client(client, config).await
    }

    /// Wrap an existing connection and set the timeouts on it.
    pub async fn from_client(client: Client, config: GuardConfig) -> Result<Self, MigrateError> {
        client
            .batch_execute(&format!(
                "{}; SET statement_timeout = '{}ms'; SET application_name = 'duet-control'",
                capped_lock_timeout_sql(config.lock_timeout, false),
                millis(config.statement_timeout)
            ))
            .await
            .ctx("setting the control connection's timeouts")?;
        Ok(GuardedConnection { client, config })
    }

    /// The underlying client (timeouts already set).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Mutable access, e.g. to open transactions.
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Run `sql` (one or more statements) in one transaction, together with the phase change it
    /// records, retrying retryable failures. Returns the number of attempts made.
    pub async fn run_step(
        &mut self,
        what: &str,
        sql: &str,
        step: Option<&PhaseStep>,
    ) -> Result<u32, MigrateError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_step(what, sql, step).await {
                Ok(()) => return Ok(attempt),
                Err(StepError::Retryable(source)) => {
                    if attempt >= self.config.max_attempts {
                        return Err(MigrateError::RetriesExhausted {
                            context: what.to_string(),
                            attempts: attempt,
                            source,
                        });
                    }
                    tokio::time::sleep(backoff_with_jitter(
                        attempt,
                        self.config.base_backoff,
                        self.config.max_backoff,
                    ))
                    .await;
                }
                Err(StepError::Fatal(e)) => return Err(e),
            }
        }
    }

    async fn try_step(
        &mut self,
        what: &str,
        sql: &str,
        step: Option<&PhaseStep>,
    ) -> Result<(), StepError> {
        let tx = self
            .client
            .transaction()
            .await
            .map_err(StepError::classify(what))?;
        tx.batch_execute(sql)
            .await
            .map_err(StepError::classify(what))?;
        if let Some(step) = step {
            state::transition(
                &tx,
                step.migration_id,
                step.from,
                step.to,
                None,
                &serde_json::json!({ "step": what }),
            )
            .await
            .map_err(|err| match err {
                // The row is shared with every member of the fleet (their settings, errors and
                // the announcement trigger's NOTIFY): a lock another one holds a moment too long
                // is retried like the step's own, with the step, in a new transaction.
                MigrateError::Db { source, .. } if is_retryable(&source) => {
                    StepError::Retryable(source)
                }
                other => StepError::Fatal(other),
            })?;
        }
        tx.commit().await.map_err(StepError::classify(what))
    }
}

enum StepError {
    Retryable(tokio_postgres::Error),
    Fatal(MigrateError),
}

impl StepError {
    fn classify(what: &str) -> impl Fn(tokio_postgres::Error) -> StepError + '_ {
        move |e| {
            if is_retryable(&e) {
                StepError::Retryable(e)
            } else {
                StepError::Fatal(MigrateError::Db {
                    context: what.to_string(),
                    source: e,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(10);
        let max = Duration::from_millis(100);
        for attempt in 1..20 {
            let d = backoff_with_jitter(attempt, base, max);
            assert!(d <= max);
            let floor = base.saturating_mul(1 << (attempt - 1).min(16)).min(max) / 2;
            assert!(d >= floor);
        }
    }
}
