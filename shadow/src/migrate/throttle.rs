//! Throttle signals for the copier: replication lag and load, each with a threshold. A signal
//! that cannot be read counts as exceeded (fail closed): the copier pauses and says why.

use std::time::Duration;

use tokio_postgres::GenericClient;

/// Something the copier watches before each chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Largest `replay_lag` in `pg_stat_replication`, in seconds (0 without replicas).
    ReplicationReplayLagSeconds,
    /// Client backends currently running a statement, other than the copier.
    ActiveBackends,
    /// A custom query returning one `float8` (e.g. a monitoring view).
    Sql {
        /// Name used in reports.
        name: String,
        /// The query.
        sql: String,
    },
}

impl Signal {
    /// Name used in reports.
    pub fn name(&self) -> &str {
        match self {
            Signal::ReplicationReplayLagSeconds => "replication_replay_lag_seconds",
            Signal::ActiveBackends => "active_backends",
            Signal::Sql { name, .. } => name,
        }
    }

    fn sql(&self) -> &str {
        match self {
            Signal::ReplicationReplayLagSeconds => {
                "SELECT coalesce(extract(epoch FROM max(replay_lag)), 0)::float8 FROM pg_stat_replication"
            }
            Signal::ActiveBackends => {
                "SELECT count(*)::float8 FROM pg_stat_activity
                 WHERE state = 'active' AND backend_type = 'client backend'
                   AND pid <> pg_backend_pid()"
            }
            Signal::Sql { sql, .. } => sql,
        }
    }

    /// Read the current value.
    pub async fn read(&self, client: &impl GenericClient) -> Result<f64, String> {
        let row = client
            .query_one(self.sql(), &[])
            .await
            .map_err(|e| e.to_string())?;
        row.try_get::<_, Option<f64>>(0)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the signal query returned NULL".to_string())
    }
}

/// A signal and the value above which the copier waits.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What to read.
    pub signal: Signal,
    /// Pause while the value is above this.
    pub max: f64,
}

/// Throttle settings, changeable while the copier runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleConfig {
    /// Thresholds checked before every chunk.
    pub thresholds: Vec<Threshold>,
    /// How long to wait before re-reading signals while throttled.
    pub recheck_interval: Duration,
    /// While the application is busy (other client backends are running statements), rest this
    /// many times as long as each piece of work took before the next one (0: never rest). An idle
    /// database gets the work at full speed.
    pub nice_ratio: f64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            thresholds: vec![Threshold {
                signal: Signal::ReplicationReplayLagSeconds,
                max: 10.0,
            }],
            recheck_interval: Duration::from_secs(1),
            nice_ratio: 0.0,
        }
    }
}

/// How long to rest after a piece of work (a copy chunk, a verified range) that took `took`:
/// `nice_ratio × took` (see [`ThrottleConfig::nice_ratio`]) while other client backends are running statements, nothing while none
/// are. Works inside a transaction too (the statistics snapshot is cleared first, since
/// `pg_stat_activity` would otherwise stay as the transaction first saw it). A signal that cannot
/// be read rests (fail closed).
pub async fn rest_after(client: &impl GenericClient, nice_ratio: f64, took: Duration) -> Duration {
    if nice_ratio <= 0.0 || !nice_ratio.is_finite() {
        return Duration::ZERO;
    }
    let busy = match client
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
    {
        Ok(()) => Signal::ActiveBackends
            .read(client)
            .await
            .map_or(true, |active| active > 0.0),
        Err(_) => true,
    };
    if busy {
        took.mul_f64(nice_ratio.min(100.0))
    } else {
        Duration::ZERO
    }
}

/// Check every threshold; `Some(reason)` when the copier must wait.
pub async fn throttle_reason(
    client: &impl GenericClient,
    config: &ThrottleConfig,
) -> Option<String> {
    for t in &config.thresholds {
        match t.signal.read(client).await {
            Ok(v) if v > t.max => {
                return Some(format!("{} is {v} (threshold {})", t.signal.name(), t.max))
            }
            Ok(_) => {}
            Err(e) => {
                return Some(format!(
                    "{} cannot be read, failing closed: {e}",
                    t.signal.name()
                ))
            }
        }
    }
    None
}
