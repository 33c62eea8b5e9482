//! The `migrations` part of the `status` report.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use duet_shadow::migrate::copier::CopierState;
use duet_shadow::plan::PlanKind;
use serde::{Deserialize, Serialize};

use super::{FlipRecord, Migration, Phase, RunSettings};
use crate::context::ProxyContext;
use crate::fleet::store::{SelfReport, TableCounts};

/// A migration phase written as its stored name (`ready`, `flipped`, …), for `#[serde(with)]`.
pub mod phase_name {
    use duet_shadow::migrate::Phase;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `phase` as its name.
    pub fn serialize<S: Serializer>(phase: &Phase, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(phase.as_str())
    }

    /// Reads a phase from its name.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Phase, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A bypassing writer as shown by `status` (and as the driving member reports it to the fleet).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct BypassView {
    /// Backend pid.
    pub pid: i32,
    /// User.
    pub user: String,
    /// application_name.
    pub application_name: String,
    /// Client address (empty for unix sockets).
    pub client_addr: String,
    /// Seconds since it was last seen writing.
    pub seen_s_ago: f64,
}

/// One migration as shown by `status` (and read back by `duet admin`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MigrationStatus {
    /// Id.
    pub id: i64,
    /// `schema.name`.
    pub table: String,
    /// `in_place`, `shadow_column`, `shadow_table` or `rename`.
    pub strategy: PlanKind,
    /// The tables of a migration of several that flip together, in flip order (this one's
    /// included); absent for a migration of one table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<String>,
    /// The phase.
    #[serde(with = "phase_name")]
    pub phase: Phase,
    /// Why the migration stopped, if it did.
    pub error: Option<String>,
    /// Source rows covered by the copy.
    pub rows_done: Option<i64>,
    /// Estimated total rows.
    pub rows_total: Option<i64>,
    /// Copy rate of this run.
    pub rate_rows_per_s: Option<f64>,
    /// Estimated seconds left.
    pub eta_s: Option<f64>,
    /// What the copy is doing (`running`, `paused`, `waiting for …`, `done`), when copying.
    pub copy_state: Option<String>,
    /// Copy chunks whose plain insert met a concurrently dual-written key and were redone with
    /// `ON CONFLICT DO NOTHING` (this run of the copier).
    pub conflict_fallbacks: Option<u64>,
    /// Statements the proxy rewrote to dual-write.
    pub dual_writes: u64,
    /// Statements the proxy refused.
    pub refusals: u64,
    /// Transactions that wrote the table through duet without the rewrite's dual-write
    /// (`[migration] unrewritable_writes = "pass"`): the safety net mirrored them.
    pub unrewritten_writes: u64,
    /// Statements written for the old shape and translated.
    pub old_shape_statements: u64,
    /// Seconds since the last old-shape statement (null: none).
    pub old_shape_last_seen_s_ago: Option<f64>,
    /// Writers seen bypassing duet (an early warning: the safety net mirrors their writes), as
    /// the member driving the migration samples them.
    pub bypassing_writers: Vec<BypassView>,
    /// How the last cutover attempt ended.
    pub last_flip: Option<FlipRecord>,
    /// The clients'-latency throttle of the copy and the verification (on the member driving
    /// them, once either started): its state, why, and the figures it decided on.
    pub latency_throttle: Option<super::latency::ThrottleStatus>,
    /// The operator's run settings (automatic cutover, copier throttles, paused copy).
    pub settings: RunSettings,
    /// What every live member of the fleet counted for this table (this one included), as of
    /// their last heartbeats.
    pub fleet: FleetCounts,
}

/// A migration's counters summed over the fleet's members.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FleetCounts {
    /// Members that reported counts for the table.
    pub members: u32,
    /// Statements rewritten to dual-write.
    pub dual_writes: u64,
    /// Writes forwarded without their dual-write (mirrored by the safety net).
    pub unrewritten_writes: u64,
    /// Old-shape statements translated.
    pub old_shape_statements: u64,
    /// Seconds since the last one anywhere (null: none).
    pub old_shape_last_seen_s_ago: Option<f64>,
}

/// The status of every known migration.
pub fn report(ctx: &ProxyContext) -> Vec<MigrationStatus> {
    let members = ctx.fleet.members();
    ctx.migrations
        .all()
        .iter()
        .map(|m| one(m, &members))
        .collect()
}

/// This member's own sample of bypassing writers.
pub(crate) fn bypass_views(
    bypass: &std::collections::BTreeMap<i32, super::BypassWriter>,
) -> Vec<BypassView> {
    bypass
        .values()
        .map(|w| BypassView {
            pid: w.pid,
            user: w.user.clone(),
            application_name: w.application_name.clone(),
            client_addr: w.client_addr.clone(),
            seen_s_ago: w.last_seen.elapsed().as_secs_f64(),
        })
        .collect()
}

/// The bypassing writers another member (the driver) reported for `m`'s table, aged by its
/// heartbeat's age.
fn sampled_elsewhere(m: &Migration, members: &[crate::fleet::MemberView]) -> Vec<BypassView> {
    members
        .iter()
        .filter(|member| !member.is_self)
        .flat_map(|member| {
            let age = member.heartbeat_age_s;
            member
                .counters
                .get(m.table_label())
                .and_then(|c| c.get(BYPASS_KEY))
                .and_then(|list| serde_json::from_value::<Vec<BypassView>>(list.clone()).ok())
                .unwrap_or_default()
                .into_iter()
                .map(move |mut w| {
                    w.seen_s_ago += age;
                    w
                })
        })
        .collect()
}

/// Where a member's per-table heartbeat counters carry its bypass sample.
pub(crate) const BYPASS_KEY: &str = "bypassing_writers";

fn fleet_counts(m: &Migration, members: &[crate::fleet::MemberView], now_ms: u64) -> FleetCounts {
    let mut total = FleetCounts::default();
    let mut last_ms = 0;
    for member in members {
        let Some(counts) = member.counters.get(m.table_label()).and_then(|c| {
            serde_json::from_value::<crate::fleet::store::TableCounts>(c.clone()).ok()
        }) else {
            continue;
        };
        total.members += 1;
        total.dual_writes += counts.dual_writes;
        total.unrewritten_writes += counts.unrewritten_writes;
        total.old_shape_statements += counts.old_shape_statements;
        last_ms = last_ms.max(counts.old_shape_last_seen_ms);
    }
    total.old_shape_last_seen_s_ago =
        (last_ms > 0).then(|| now_ms.saturating_sub(last_ms) as f64 / 1000.0);
    total
}

fn one(m: &Migration, members: &[crate::fleet::MemberView]) -> MigrationStatus {
    let counters = &m.counters;
    let last_ms = counters.old_shape_last_seen_ms.load(Ordering::Relaxed);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let live = m.live();
    let progress = live.copy.as_ref().map(|c| c.progress());
    let copy_state = match (&live.note, &progress) {
        (Some(note), _) => Some(note.clone()),
        (None, Some(p)) => Some(copy_state_name(&p.state)),
        (None, None) => None,
    };
    MigrationStatus {
        id: m.id,
        table: m.table_label(),
        strategy: m.plan.kind,
        group: m.plan.group.iter().map(|t| t.to_string()).collect(),
        phase: live.phase,
        error: live.error.clone(),
        rows_done: progress.as_ref().map(|p| p.rows_done),
        rows_total: progress.as_ref().and_then(|p| p.rows_total),
        rate_rows_per_s: progress.as_ref().map(|p| p.rate_rows_per_sec),
        eta_s: progress
            .as_ref()
            .and_then(|p| p.eta)
            .map(|d| d.as_secs_f64()),
        copy_state,
        conflict_fallbacks: progress.as_ref().map(|p| p.conflict_fallbacks),
        dual_writes: counters.dual_writes.load(Ordering::Relaxed),
        refusals: counters.refusals.load(Ordering::Relaxed),
        unrewritten_writes: counters.unrewritten.load(Ordering::Relaxed),
        old_shape_statements: counters.old_shape_statements.load(Ordering::Relaxed),
        old_shape_last_seen_s_ago: (last_ms > 0)
            .then(|| now_ms.saturating_sub(last_ms) as f64 / 1000.0),
        bypassing_writers: if live.bypass.is_empty() {
            // Sampled by the driving member: reported with its heartbeat.
            sampled_elsewhere(m, members)
        } else {
            bypass_views(&live.bypass)
        },
        last_flip: live.last_flip.clone(),
        latency_throttle: live
            .latency
            .as_ref()
            .filter(|_| !live.phase.is_terminal())
            .map(|t| super::latency::ThrottleStatus::of(&t.view())),
        settings: live.settings,
        fleet: fleet_counts(m, members, now_ms),
    }
}

/// The copier's state as shown in `status`.
pub(crate) fn copy_state_name(state: &CopierState) -> String {
    match state {
        CopierState::Starting => "starting".to_owned(),
        CopierState::Running => "running".to_owned(),
        CopierState::Paused => "paused".to_owned(),
        CopierState::Throttled(reason) => format!("throttled: {reason}"),
        CopierState::Stopped => "stopped".to_owned(),
        CopierState::Done => "done".to_owned(),
        CopierState::Failed(error) => format!("failed: {error}"),
    }
}

/// What this member publishes about itself with every heartbeat (and before it answers a
/// barrier, so the asker reads counts as of now).
pub(crate) fn self_report(ctx: &ProxyContext) -> SelfReport {
    let mut counters = serde_json::Map::new();
    for m in ctx.migrations.all() {
        if m.phase().is_terminal() {
            continue;
        }
        let c = &m.counters;
        let counts = TableCounts {
            old_shape_statements: c.old_shape_statements.load(Ordering::Relaxed),
            old_shape_last_seen_ms: c.old_shape_last_seen_ms.load(Ordering::Relaxed),
            dual_writes: c.dual_writes.load(Ordering::Relaxed),
            unrewritten_writes: c.unrewritten.load(Ordering::Relaxed),
        };
        if let Ok(mut value) = serde_json::to_value(counts) {
            let sample = bypass_views(&m.live().bypass);
            if let (Some(object), false) = (value.as_object_mut(), sample.is_empty()) {
                if let Ok(list) = serde_json::to_value(sample) {
                    object.insert(BYPASS_KEY.to_owned(), list);
                }
            }
            counters.insert(m.table_label(), value);
        }
    }
    if let Ok(latency) = serde_json::to_value(super::latency::member_report(ctx)) {
        counters.insert(super::latency::MEMBER_KEY.to_owned(), latency);
    }
    SelfReport {
        listen: ctx.config.listen.to_string(),
        admin_socket: ctx.config.admin_socket.display().to_string(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        route_epoch: i64::try_from(ctx.routes.epoch()).unwrap_or(i64::MAX),
        sessions: i32::try_from(ctx.sessions.len()).unwrap_or(i32::MAX),
        counters: serde_json::Value::Object(counters),
    }
}
