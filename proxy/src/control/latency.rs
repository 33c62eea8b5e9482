//! The clients' latency as the copier's and the verifier's throttle signal: what this proxy (and
//! in a fleet, every member) measured, handed to [`duet_shadow::migrate::latency`] through its
//! [`ClientLatency`] trait, and the baseline taken when a migration starts.
//!
//! Each member measures its own client sessions (request → ReadyForQuery, the `status` latency;
//! duet's own control connections never pass through a session) and reports its last second and
//! its last ten seconds with every heartbeat. The member driving a migration compares the
//! highest p99 of any member whose heartbeat is fresh and which had enough statements to judge,
//! with the same figure taken when the migration started: with load balanced across the fleet,
//! each member's clients are a fair sample; with one slow member, that member holds the copy.

use std::sync::{Arc, Weak};
use std::time::Duration;

use duet_shadow::migrate::latency::{ClientLatency, LatencySample, LatencyView, MIN_STATEMENTS};
use serde::{Deserialize, Serialize};

use crate::context::ProxyContext;
use crate::metrics::RecentLatency;

/// The window the throttle judges: the clients' last second.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(1);
/// The window the baseline is taken over when a migration starts: the last ten seconds.
pub const BASELINE_WINDOW: Duration = Duration::from_secs(10);
/// Other members' reports older than this (a member that stopped heartbeating) are ignored.
const FRESH_REPORT: f64 = 3.0;
/// Where a member's heartbeat carries its [`MemberLatency`] (a key no `schema.table` label can
/// be: it has no dot).
pub(crate) const MEMBER_KEY: &str = "client_latency";

/// What a member reports about its clients' latency with its heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberLatency {
    /// Its last second ([`THROTTLE_WINDOW`]).
    pub recent: RecentLatency,
    /// Its last ten seconds ([`BASELINE_WINDOW`]).
    pub long: RecentLatency,
}

/// This member's report.
pub(crate) fn member_report(ctx: &ProxyContext) -> MemberLatency {
    MemberLatency {
        recent: ctx.metrics.recent_latency(THROTTLE_WINDOW),
        long: ctx.metrics.recent_latency(BASELINE_WINDOW),
    }
}

/// Every member's window (`long`: the baseline window, else the throttle window): this one's
/// measured now, the others' as their fresh heartbeats reported them.
fn fleet_windows(ctx: &ProxyContext, long: bool) -> Vec<RecentLatency> {
    let own = if long {
        ctx.metrics.recent_latency(BASELINE_WINDOW)
    } else {
        ctx.metrics.recent_latency(THROTTLE_WINDOW)
    };
    let mut windows = vec![own];
    for member in ctx.fleet.members() {
        if member.is_self || member.heartbeat_age_s > FRESH_REPORT {
            continue;
        }
        let Some(report) = member
            .counters
            .get(MEMBER_KEY)
            .and_then(|v| serde_json::from_value::<MemberLatency>(v.clone()).ok())
        else {
            continue;
        };
        windows.push(if long { report.long } else { report.recent });
    }
    windows
}

/// The fleet's figure: the highest p99 among the members with enough statements to judge (the
/// highest of all when none has), and every member's statements.
fn combine(windows: &[RecentLatency]) -> (Duration, u64) {
    let statements = windows.iter().map(|w| w.count).sum();
    let judged = windows
        .iter()
        .filter(|w| w.count >= MIN_STATEMENTS)
        .map(|w| w.p99)
        .max();
    let p99 = judged.unwrap_or_else(|| windows.iter().map(|w| w.p99).max().unwrap_or(0));
    (Duration::from_micros(p99), statements)
}

/// The baseline when a migration starts: the fleet's p99 over the last ten seconds, or `None`
/// when there were too few client statements to judge (the copier then measures it itself).
pub(crate) fn baseline_now(ctx: &ProxyContext) -> Option<Duration> {
    let (p99, statements) = combine(&fleet_windows(ctx, true));
    (statements >= MIN_STATEMENTS && !p99.is_zero()).then_some(p99)
}

/// The throttle's source: the fleet's last second.
#[derive(Debug)]
pub(crate) struct FleetLatency {
    // Weak: the context owns the migrations, whose throttles own this.
    ctx: Weak<ProxyContext>,
}

impl FleetLatency {
    pub(crate) fn new(ctx: &Arc<ProxyContext>) -> Self {
        FleetLatency {
            ctx: Arc::downgrade(ctx),
        }
    }
}

impl ClientLatency for FleetLatency {
    fn recent(&self) -> LatencySample {
        let Some(ctx) = self.ctx.upgrade() else {
            return LatencySample::default();
        };
        let (p99, statements) = combine(&fleet_windows(&ctx, false));
        LatencySample {
            p99,
            statements,
            window: THROTTLE_WINDOW,
        }
    }
}

/// The latency throttle as `status` shows it (the member driving the migration).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThrottleStatus {
    /// `off`, `idle` (too few client statements to judge), `measuring` (resting to take the
    /// baseline), `clear`, `holding` (the copy or verification waits) or `forced` (the progress
    /// guarantee let one piece through).
    pub state: String,
    /// Why, for people: `client p99 4.1 ms > 1.5 × baseline 2.5 ms, waiting 0.8 s …`.
    pub reason: String,
    /// The clients' p99 in the window last read, in microseconds.
    pub p99_us: u64,
    /// Client statements in that window.
    pub statements: u64,
    /// The window's length, in milliseconds.
    pub window_ms: u64,
    /// The clients' p99 before the migration, in microseconds (null: not known yet).
    pub baseline_us: Option<u64>,
    /// The p99 above which the work waits, in microseconds (null: no baseline yet).
    pub limit_us: Option<u64>,
    /// The clients' p99 with the migration's dual-writes on and the copier resting, in
    /// microseconds: what the dual-writes alone cost them (null: not measured yet). Above
    /// `limit_us`, the copier can only go at the progress guarantee.
    #[serde(default)]
    pub dual_writes_us: Option<u64>,
    /// Stretches of waiting on the clients' latency so far.
    pub holds: u64,
    /// Seconds spent waiting on it so far.
    pub held_s: f64,
    /// Pieces of work let through by the progress guarantee.
    pub forced: u64,
    /// After each piece the work rests this many times as long as it took, for the clients'
    /// sake (0: none; the operator's nice ratio applies besides).
    pub pace: f64,
}

impl ThrottleStatus {
    /// The status form of `view`.
    pub fn of(view: &LatencyView) -> Self {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        ThrottleStatus {
            state: view.state.as_str().to_owned(),
            reason: view.reason(),
            p99_us: micros(view.sample.p99),
            statements: view.sample.statements,
            window_ms: u64::try_from(view.sample.window.as_millis()).unwrap_or(u64::MAX),
            baseline_us: view.baseline.map(micros),
            limit_us: view.current_limit().map(micros),
            dual_writes_us: view.dual_writes.map(micros),
            holds: view.holds,
            held_s: view.held.as_secs_f64(),
            forced: view.forced,
            pace: view.pace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::MemberView;

    fn window(count: u64, p99: u64) -> RecentLatency {
        RecentLatency {
            window_ms: 1000,
            count,
            p50: p99 / 2,
            p99,
            max: p99 * 2,
        }
    }

    fn member(id: &str, is_self: bool, age_s: f64, report: Option<MemberLatency>) -> MemberView {
        let mut counters = serde_json::json!({"public.t": {"dual_writes": 1}});
        if let Some(report) = report {
            counters[MEMBER_KEY] = serde_json::to_value(report).unwrap_or_default();
        }
        MemberView {
            id: id.to_owned(),
            is_self,
            listen: String::new(),
            admin_socket: String::new(),
            version: String::new(),
            pid: 0,
            started_at: String::new(),
            heartbeat_age_s: age_s,
            route_epoch: 0,
            sessions: 0,
            counters,
        }
    }

    #[test]
    fn the_driver_reads_every_fresh_members_heartbeat_and_its_own_window() {
        use std::time::Instant;
        let overrides = crate::config::Overrides {
            backend: Some("postgres://postgres@127.0.0.1:5432/postgres".into()),
            ..Default::default()
        };
        let config = crate::config::from_str("", overrides).expect("config");
        let ctx = Arc::new(ProxyContext::new(config, None));
        // This member: 300 statements of about 1 ms in the last second.
        for i in 0..300u64 {
            ctx.metrics
                .record_latency(i as usize, Duration::from_micros(1000 + i));
        }
        ctx.metrics.tick_recent_at(Instant::now());
        let report = |count, p99| MemberLatency {
            recent: window(count, p99),
            long: window(count * 10, p99 / 2),
        };
        ctx.fleet.set_members(vec![
            member("me", true, 0.0, Some(report(999, 99_000))),
            member("busy", false, 0.5, Some(report(400, 4_000))),
            member("stale", false, 30.0, Some(report(400, 90_000))),
            member("old-version", false, 0.5, None),
        ]);
        let sample = FleetLatency::new(&ctx).recent();
        // Its own window, not its own (stale) heartbeat; the fresh member; not the stale one.
        assert_eq!(sample.statements, 300 + 400);
        assert_eq!(sample.p99, Duration::from_micros(4_000));
        assert_eq!(sample.window, THROTTLE_WINDOW);
        assert_eq!(baseline_now(&ctx), Some(Duration::from_micros(2_000)));
        let own = member_report(&ctx);
        assert_eq!(own.recent.count, 300);
        assert!((1290..=1310).contains(&own.recent.p99), "{own:?}");
    }

    #[test]
    fn the_fleet_figure_is_the_worst_member_with_enough_statements() {
        let (p99, n) = combine(&[window(500, 2000), window(400, 3500), window(3, 90_000)]);
        assert_eq!(
            p99,
            Duration::from_micros(3500),
            "a thin member is not judged"
        );
        assert_eq!(n, 903);
        // Nobody alone has enough: the highest of all, over everyone's statements.
        let (p99, n) = combine(&[window(10, 2000), window(15, 3000)]);
        assert_eq!((p99, n), (Duration::from_micros(3000), 25));
        assert_eq!(combine(&[]), (Duration::ZERO, 0));
    }
}
