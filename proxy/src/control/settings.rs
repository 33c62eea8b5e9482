//! The operator's run settings of one migration: automatic cutover, the copier's chunk time and
//! throttles, and whether the copy is paused.
//!
//! They start from `migrate --auto-cutover` and the `[migration]` defaults and change with
//! `duet admin set`, `pause-copy` and `resume-copy`. They are stored in `duet.migrations.settings`
//! before they take effect, so a duet that is restarted keeps what the operator chose: a copy
//! paused because the primary was struggling stays paused, and a migration started with
//! `--auto-cutover` still flips on its own once ready.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{MigrationConfig, Throttles};
use crate::duration::{whole_micros, whole_millis};

/// Why a migration's stored settings cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoredSettingsError {
    /// The defaults could not be written as JSON (never expected: plain numbers).
    #[error("internal error: {0}")]
    Encode(#[source] serde_json::Error),
    /// The stored text is not JSON, or a field has the wrong type.
    #[error("unreadable settings: {0}")]
    Unreadable(#[source] serde_json::Error),
    /// The stored JSON is not an object.
    #[error("settings must be a JSON object, got {0}")]
    NotAnObject(String),
}

/// What the operator chose for one migration (as stored and as shown by `status`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Flip as soon as the migration is ready.
    pub auto_cutover: bool,
    /// The copier's target chunk time, in milliseconds.
    pub chunk_time_ms: u64,
    /// Pause the copy while a replica's replay lag is above this many milliseconds.
    pub max_replication_lag_ms: u64,
    /// Pause the copy while more client backends than this run a statement (null: no limit).
    pub max_active_backends: Option<u32>,
    /// While the application is busy, rest this many times as long as each copy chunk or
    /// verified range took.
    pub nice_ratio: f64,
    /// Hold the copy and the verification while the clients' p99 over the last second is above
    /// this many times the baseline (0: the clients' latency is not watched).
    pub max_latency_factor: f64,
    /// ...but never for a p99 at or below this many microseconds.
    pub latency_floor_us: u64,
    /// Longest the clients' latency keeps the work from its next piece (rests included), in
    /// milliseconds.
    pub latency_max_pause_ms: u64,
    /// The clients' p99 before the migration, in microseconds: measured over the seconds before
    /// `migrate`, or set by the operator (null: too little traffic then; the copier measures it
    /// once clients are busy, resting for a second).
    pub latency_baseline_us: Option<u64>,
    /// The operator paused the copy.
    pub copy_paused: bool,
}

/// A change to some of the settings (`None`: unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SettingsChange {
    /// See [`RunSettings::auto_cutover`].
    pub auto_cutover: Option<bool>,
    /// See [`RunSettings::chunk_time_ms`].
    pub chunk_time_ms: Option<u64>,
    /// See [`RunSettings::max_replication_lag_ms`].
    pub max_replication_lag_ms: Option<u64>,
    /// See [`RunSettings::max_active_backends`]; `Some(0)` removes the limit.
    pub max_active_backends: Option<u32>,
    /// See [`RunSettings::nice_ratio`].
    pub nice_ratio: Option<f64>,
    /// See [`RunSettings::max_latency_factor`].
    pub max_latency_factor: Option<f64>,
    /// See [`RunSettings::latency_floor_us`].
    pub latency_floor_us: Option<u64>,
    /// See [`RunSettings::latency_max_pause_ms`].
    pub latency_max_pause_ms: Option<u64>,
    /// See [`RunSettings::latency_baseline_us`]; `Some(0)` forgets it (measured again).
    pub latency_baseline_us: Option<u64>,
    /// See [`RunSettings::copy_paused`].
    pub copy_paused: Option<bool>,
}

impl RunSettings {
    /// A new migration's settings: the `[migration]` defaults and the migrate command's choice.
    pub fn initial(config: &MigrationConfig, auto_cutover: bool) -> Self {
        RunSettings {
            auto_cutover,
            chunk_time_ms: whole_millis(config.chunk_time),
            max_replication_lag_ms: whole_millis(config.throttles.max_replication_lag),
            max_active_backends: config.throttles.max_active_backends,
            nice_ratio: config.throttles.nice_ratio,
            max_latency_factor: config.throttles.max_latency_factor,
            latency_floor_us: whole_micros(config.throttles.latency_floor),
            latency_max_pause_ms: whole_millis(config.throttles.latency_max_pause),
            latency_baseline_us: None,
            copy_paused: false,
        }
    }

    /// The settings stored with a migration. Fields missing from the stored object (a migration
    /// recorded before they existed) keep the `[migration]` defaults.
    pub fn stored(config: &MigrationConfig, stored: &str) -> Result<Self, StoredSettingsError> {
        let mut value = serde_json::to_value(Self::initial(config, false))
            .map_err(StoredSettingsError::Encode)?;
        let stored: serde_json::Value =
            serde_json::from_str(stored).map_err(StoredSettingsError::Unreadable)?;
        let (Some(merged), Some(stored)) = (value.as_object_mut(), stored.as_object()) else {
            return Err(StoredSettingsError::NotAnObject(stored.to_string()));
        };
        for (key, field) in stored {
            merged.insert(key.clone(), field.clone());
        }
        serde_json::from_value(value).map_err(StoredSettingsError::Unreadable)
    }

    /// The target chunk time.
    pub fn chunk_time(&self) -> Duration {
        Duration::from_millis(self.chunk_time_ms.max(1))
    }

    /// The copier's throttle thresholds.
    pub fn throttles(&self) -> Throttles {
        Throttles {
            max_replication_lag: Duration::from_millis(self.max_replication_lag_ms),
            max_active_backends: self.max_active_backends,
            nice_ratio: self.nice_ratio,
            max_latency_factor: self.max_latency_factor,
            latency_floor: Duration::from_micros(self.latency_floor_us),
            latency_max_pause: Duration::from_millis(self.latency_max_pause_ms.max(1)),
        }
    }

    /// The clients' p99 before the migration, when known.
    pub fn latency_baseline(&self) -> Option<Duration> {
        self.latency_baseline_us.map(Duration::from_micros)
    }

    pub(crate) fn with(mut self, change: &SettingsChange) -> Self {
        if let Some(on) = change.auto_cutover {
            self.auto_cutover = on;
        }
        if let Some(ms) = change.chunk_time_ms {
            self.chunk_time_ms = ms.max(1);
        }
        if let Some(ms) = change.max_replication_lag_ms {
            self.max_replication_lag_ms = ms;
        }
        if let Some(n) = change.max_active_backends {
            self.max_active_backends = (n > 0).then_some(n);
        }
        if let Some(ratio) = change.nice_ratio {
            self.nice_ratio = ratio;
        }
        if let Some(factor) = change.max_latency_factor {
            self.max_latency_factor = factor;
        }
        if let Some(us) = change.latency_floor_us {
            self.latency_floor_us = us;
        }
        if let Some(ms) = change.latency_max_pause_ms {
            self.latency_max_pause_ms = ms.max(1);
        }
        if let Some(us) = change.latency_baseline_us {
            self.latency_baseline_us = (us > 0).then_some(us);
        }
        if let Some(paused) = change.copy_paused {
            self.copy_paused = paused;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_settings_override_the_defaults_field_by_field() {
        let config = MigrationConfig::default();
        let stored = RunSettings::stored(&config, r#"{"chunk_time_ms": 30, "copy_paused": true}"#)
            .expect("readable");
        assert_eq!(stored.chunk_time_ms, 30);
        assert!(stored.copy_paused);
        assert!(!stored.auto_cutover);
        assert_eq!(
            stored.max_replication_lag_ms,
            whole_millis(config.throttles.max_replication_lag)
        );
        assert_eq!(
            RunSettings::stored(&config, "{}").expect("readable"),
            RunSettings::initial(&config, false)
        );
        assert_eq!(
            stored.max_latency_factor, 1.5,
            "recorded before the latency signal"
        );
        assert_eq!(stored.latency_baseline_us, None);
        assert!(RunSettings::stored(&config, "[1]").is_err());
        assert!(RunSettings::stored(&config, r#"{"chunk_time_ms": "fast"}"#).is_err());
    }

    #[test]
    fn a_change_touches_only_what_it_names_and_zero_backends_means_no_limit() {
        let start = RunSettings::initial(&MigrationConfig::default(), false);
        let changed = start.with(&SettingsChange {
            auto_cutover: Some(true),
            max_active_backends: Some(40),
            ..Default::default()
        });
        assert!(changed.auto_cutover);
        assert_eq!(changed.max_active_backends, Some(40));
        assert_eq!(changed.chunk_time_ms, start.chunk_time_ms);
        let unlimited = changed.with(&SettingsChange {
            max_active_backends: Some(0),
            chunk_time_ms: Some(0),
            ..Default::default()
        });
        assert_eq!(unlimited.max_active_backends, None);
        assert_eq!(unlimited.chunk_time_ms, 1);
    }

    #[test]
    fn latency_settings_change_and_a_zero_baseline_is_measured_again() {
        let start = RunSettings {
            latency_baseline_us: Some(2500),
            ..RunSettings::initial(&MigrationConfig::default(), false)
        };
        assert_eq!(start.latency_baseline(), Some(Duration::from_micros(2500)));
        let changed = start.with(&SettingsChange {
            max_latency_factor: Some(2.0),
            latency_floor_us: Some(500),
            latency_max_pause_ms: Some(0),
            ..Default::default()
        });
        let limit = changed.throttles().latency_limit();
        assert_eq!(limit.max_factor, 2.0);
        assert_eq!(limit.floor, Duration::from_micros(500));
        assert_eq!(limit.max_pause, Duration::from_millis(1), "never 0");
        assert_eq!(changed.latency_baseline_us, Some(2500), "untouched");
        let forgotten = changed.with(&SettingsChange {
            latency_baseline_us: Some(0),
            ..Default::default()
        });
        assert_eq!(forgotten.latency_baseline(), None);
        let set = forgotten.with(&SettingsChange {
            latency_baseline_us: Some(4000),
            ..Default::default()
        });
        assert_eq!(set.latency_baseline_us, Some(4000));
    }
}
