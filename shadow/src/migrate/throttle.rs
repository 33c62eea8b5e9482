//! Throttle signals for the copier: replication lag and load, each with a threshold. A signal
//! that cannot be read counts as exceeded (fail closed): the copier pauses and says why.

use std::time::{Duration, Instant};

use tokio_postgres::GenericClient;

/// How long a reading of the signals stands before the copier or the verifier reads them again.
/// Each reading is a few queries (a catalog scan of `pg_stat_activity` among them) that cost
/// milliseconds on a busy server: read before every chunk, they were half the work of a 10 ms
/// chunk. Replication lag and the number of busy backends do not change meaningfully faster.
pub const SIGNAL_MAX_AGE: Duration = Duration::from_millis(250);

/// Why a signal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The query failed.
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
    /// The query returned NULL.
    #[error("the signal query returned NULL")]
    Null,
}

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
    pub async fn read(&self, client: &impl GenericClient) -> Result<f64, SignalError> {
        let row = client.query_one(self.sql(), &[]).await?;
        row.try_get::<_, Option<f64>>(0)?.ok_or(SignalError::Null)
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

/// The rest for a piece that took `took`: `nice_ratio × took` while the application is busy.
fn nice_rest(busy: bool, nice_ratio: f64, took: Duration) -> Duration {
    if busy {
        took.mul_f64(nice_ratio.min(100.0))
    } else {
        Duration::ZERO
    }
}

/// Whether other client backends are running statements (an unreadable answer is yes: fail
/// closed). Works inside a transaction too (see [`SignalReadings::rest_after`]).
async fn application_busy(client: &impl GenericClient) -> bool {
    match client
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
    {
        Ok(()) => Signal::ActiveBackends
            .read(client)
            .await
            .map_or(true, |active| active > 0.0),
        Err(_) => true,
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

/// The signals as last read, so that pieces of work shorter than [`SIGNAL_MAX_AGE`] do not pay a
/// reading each (see there). A change of the settings reads again at once.
#[derive(Debug, Default)]
pub struct SignalReadings {
    /// The thresholds' verdict, for these settings, read at that time.
    reason: Option<(Instant, ThrottleConfig, Option<String>)>,
    /// Whether other client backends were busy, read at that time.
    busy: Option<(Instant, bool)>,
}

impl SignalReadings {
    /// [`throttle_reason`], read again when the last reading is older than [`SIGNAL_MAX_AGE`]
    /// or was for other settings. A reading that throttles is always read again: the caller
    /// rechecks only after its own wait.
    pub async fn reason(
        &mut self,
        client: &impl GenericClient,
        config: &ThrottleConfig,
    ) -> Option<String> {
        if let Some((at, for_config, None)) = &self.reason {
            if at.elapsed() < SIGNAL_MAX_AGE && for_config == config {
                return None;
            }
        }
        let reason = throttle_reason(client, config).await;
        self.reason = Some((Instant::now(), config.clone(), reason.clone()));
        reason
    }

    /// How long to rest after a piece of work (a copy chunk, a verified range) that took
    /// `took`: `nice_ratio × took` (see [`ThrottleConfig::nice_ratio`]) while other client
    /// backends are running statements, nothing while none are. Whether they are is read again
    /// only when the last reading is older than [`SIGNAL_MAX_AGE`]. Works inside a transaction
    /// too (the statistics snapshot is cleared first, since `pg_stat_activity` would otherwise
    /// stay as the transaction first saw it). A signal that cannot be read rests (fail closed).
    pub async fn rest_after(
        &mut self,
        client: &impl GenericClient,
        nice_ratio: f64,
        took: Duration,
    ) -> Duration {
        if nice_ratio <= 0.0 || !nice_ratio.is_finite() {
            return Duration::ZERO;
        }
        let busy = match self.busy {
            Some((at, busy)) if at.elapsed() < SIGNAL_MAX_AGE => busy,
            _ => {
                let busy = application_busy(client).await;
                self.busy = Some((Instant::now(), busy));
                busy
            }
        };
        nice_rest(busy, nice_ratio, took)
    }
}
