//! The clients' latency as a throttle signal: the copier and the verifier hold back while the
//! application's statements are slower than a factor of what they were before the migration.
//!
//! `shadow` knows nothing of client sessions. The proxy measures every client statement and
//! hands the latest window in through [`ClientLatency`]; the decision ([`LatencyGate`]) is pure,
//! takes the time as an argument, and is shared by the copier and the verifier of one migration
//! through a [`LatencyThrottle`], which also keeps what `status` shows ([`LatencyView`]).
//!
//! The rules, in the order they apply:
//!
//! 1. a factor of 0 turns the signal off;
//! 2. a window with fewer than [`MIN_STATEMENTS`] client statements is too thin to judge (a p99
//!    of a handful of statements is their slowest one): the work goes on;
//! 3. without a baseline (none was measured when the migration started, e.g. the proxy was idle
//!    then), the work rests for one whole window and takes the clients' p99 in it as the
//!    baseline: a window without the work's load;
//!    when the gate is told the work's migration dual-writes ([`LatencyGate::measuring_dual_writes`]),
//!    it also rests one whole window before the first piece with a baseline known and keeps the
//!    clients' p99 in it as what the dual-writes alone cost them (a baseline measured by rule 3
//!    is that window already): `status` shows it, and says when it leaves the work no room
//!    under the limit (the work then goes at the progress guarantee, and only a higher factor
//!    gives it more);
//! 4. the limit is `max(factor × baseline, floor)`: the floor keeps a baseline of a few
//!    microseconds (an idle proxy, trivial queries) from holding the work back at every chunk;
//! 5. the work waits while the window's p99 is above the limit, re-reading it every
//!    [`LATENCY_RECHECK`];
//! 6. progress is guaranteed: the signal never keeps the work from its next piece (a copy
//!    chunk, a verified range) for longer than `max_pause` after the last one ended, its own
//!    rests included; then one piece runs anyway. A migration whose clients stay slow for reasons
//!    of their own still finishes, at one piece per `max_pause`;
//! 7. between holds the work keeps a *pace*: after each piece it rests that many times as long as
//!    the piece took, at most `max_pause` (the operator's `nice_ratio` rests still apply; the
//!    longer rest wins). A
//!    breach of the limit raises the pace (to [`FIRST_PACE`], then doubling, up to
//!    [`MAX_PACE`]) at most once per window; a whole window with the clients' p99 below
//!    [`EASE_BELOW`] of the limit eases it (×[`EASE_FACTOR`], to none). Holding alone would
//!    alternate between the work at full speed and no work, and the clients' p99 over a whole
//!    copy would be that of the full-speed stretches; the pace finds the share of the machine
//!    the work can have while the clients stay within the limit.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Fewer client statements than this in a window are too few to judge: the work goes on.
pub const MIN_STATEMENTS: u64 = 20;

/// How often a held copier or verifier reads the window again.
pub const LATENCY_RECHECK: Duration = Duration::from_millis(100);

/// The pace the first breach of the limit sets.
pub const FIRST_PACE: f64 = 2.0;
/// The highest pace: the work still runs at least 1/(1 + MAX_PACE) of the time between holds.
pub const MAX_PACE: f64 = 50.0;
/// The pace eases while the clients' p99 is below this fraction of the limit.
pub const EASE_BELOW: f64 = 0.75;
/// How much it eases each window.
pub const EASE_FACTOR: f64 = 0.7;
/// A pace eased below this is none.
const MIN_PACE: f64 = 0.25;

/// A gap between two checks longer than this means the work was doing something else (paused
/// by the operator, another throttle, between the copy and the verification): a stretch of
/// waiting that was under way then starts over.
const STALE_CHECK: Duration = Duration::from_secs(2);

/// The clients' statement latency over a recent window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySample {
    /// 99th percentile of the client statements that completed in the window.
    pub p99: Duration,
    /// How many completed.
    pub statements: u64,
    /// The window's length.
    pub window: Duration,
}

/// Where the throttle reads the clients' latency. The proxy implements it (its own clients, and
/// in a fleet the other members' as their heartbeats report them); duet's own control
/// connections are never part of it.
pub trait ClientLatency: Send + Sync {
    /// The client statements of the last short window (about a second).
    fn recent(&self) -> LatencySample;
}

/// How far the clients' latency may rise before the work waits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyLimit {
    /// Wait while the clients' p99 is above this many times the baseline (0: the signal is off).
    pub max_factor: f64,
    /// The limit is never below this.
    pub floor: Duration,
    /// Longest wait the signal imposes between two pieces of work (its holds and its rests
    /// together): then one piece runs anyway.
    pub max_pause: Duration,
}

impl Default for LatencyLimit {
    fn default() -> Self {
        LatencyLimit {
            max_factor: 1.5,
            floor: Duration::from_millis(2),
            max_pause: Duration::from_secs(2),
        }
    }
}

impl LatencyLimit {
    /// Whether the signal is on.
    pub fn is_on(&self) -> bool {
        self.max_factor.is_finite() && self.max_factor > 0.0
    }

    /// The p99 above which the work waits, for `baseline`.
    pub fn limit_for(&self, baseline: Duration) -> Duration {
        let scaled = if self.is_on() {
            baseline.mul_f64(self.max_factor.min(1e6))
        } else {
            Duration::MAX
        };
        scaled.max(self.floor)
    }
}

/// What the latency signal is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyState {
    /// Off (factor 0), or not consulted yet.
    Off,
    /// Too few client statements in the window to judge: the work goes on.
    Idle,
    /// Resting for one window to measure the clients' baseline without the work's load.
    Measuring,
    /// The clients are within the limit: the work goes on.
    Clear,
    /// The clients are above the limit: the work waits.
    Holding,
    /// The clients are above the limit but the work waited `max_pause`: one piece runs anyway.
    Forced,
}

impl LatencyState {
    /// The state's name in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            LatencyState::Off => "off",
            LatencyState::Idle => "idle",
            LatencyState::Measuring => "measuring",
            LatencyState::Clear => "clear",
            LatencyState::Holding => "holding",
            LatencyState::Forced => "forced",
        }
    }
}

/// The signal as `status` shows it: the last decision and what it was based on.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyView {
    /// The last decision.
    pub state: LatencyState,
    /// The limit settings.
    pub limit: LatencyLimit,
    /// The clients' p99 before the work (measured or set), if known.
    pub baseline: Option<Duration>,
    /// The window the last decision read.
    pub sample: LatencySample,
    /// How long the current stretch of waiting has lasted (holding or measuring).
    pub waiting_for: Duration,
    /// Stretches of waiting on the clients' latency so far.
    pub holds: u64,
    /// Time spent waiting on the clients' latency so far (finished stretches and the current
    /// one).
    pub held: Duration,
    /// Pieces of work let through by the progress guarantee.
    pub forced: u64,
    /// After each piece the work rests this many times as long as it took (0: no rest of the
    /// signal's own).
    pub pace: f64,
    /// Why the last forced piece ran, when not the progress guarantee's `max_pause`.
    pub forced_why: Option<&'static str>,
    /// The clients' p99 with the migration's dual-writes on and the work resting (rule 3), once
    /// measured.
    pub dual_writes: Option<Duration>,
    /// The current measuring window is the one of `dual_writes`, not of the baseline.
    pub measuring_dual_writes: bool,
}

impl LatencyView {
    /// The p99 above which the work waits (none before a baseline is known).
    pub fn current_limit(&self) -> Option<Duration> {
        self.baseline.map(|b| self.limit.limit_for(b))
    }

    /// Why the signal is in its state, for people: `client p99 4.1 ms > 1.5 × baseline 2.5 ms`.
    pub fn reason(&self) -> String {
        let p99 = Millis(self.sample.p99);
        let n = self.sample.statements;
        match self.state {
            LatencyState::Off => "client latency not watched (max latency factor 0)".to_owned(),
            LatencyState::Idle => format!(
                "{n} client statement(s) in the last {}: too few to judge",
                Millis(self.sample.window)
            ),
            LatencyState::Measuring if self.measuring_dual_writes => format!(
                "measuring what the dual-writes alone cost the clients (their p99 while the work \
                 rests, {} so far)",
                Millis(self.waiting_for)
            ),
            LatencyState::Measuring => format!(
                "measuring the clients' baseline p99 without the migration's load ({} so far)",
                Millis(self.waiting_for)
            ),
            LatencyState::Clear | LatencyState::Holding | LatencyState::Forced => {
                let relation = if self.state == LatencyState::Clear {
                    "<="
                } else {
                    ">"
                };
                let bound = self.bound_text();
                let mut text = format!("client p99 {p99} {relation} {bound}");
                match self.state {
                    LatencyState::Holding => {
                        text.push_str(&format!(
                            ", waiting {} (one piece of work runs anyway {} after the last)",
                            Millis(self.waiting_for),
                            Millis(self.limit.max_pause)
                        ));
                    }
                    LatencyState::Forced => match self.forced_why {
                        Some(why) => text.push_str(&format!(": {why}")),
                        None => text.push_str(&format!(
                            ": no piece of work for {}, one runs anyway",
                            Millis(self.limit.max_pause)
                        )),
                    },
                    _ => {}
                }
                if self.pace > 0.0 {
                    text.push_str(&format!("; resting {:.1} × each piece's time", self.pace));
                }
                text.push_str(&self.dual_writes_text());
                text
            }
        }
    }

    /// What the dual-writes alone cost, when measured: `; before any copying, with the
    /// dual-writes on: p99 3.8 ms (1.52 × baseline)`, and what to do when that leaves the work
    /// no room under the limit.
    fn dual_writes_text(&self) -> String {
        let (Some(alone), Some(limit)) = (self.dual_writes, self.current_limit()) else {
            return String::new();
        };
        let mut text = format!(
            "; before any copying, with the dual-writes on: p99 {}",
            Millis(alone)
        );
        if let Some(baseline) = self.baseline.filter(|b| !b.is_zero()) {
            let factor = alone.as_secs_f64() / baseline.as_secs_f64();
            text.push_str(&format!(" ({factor:.2} × baseline)"));
            if alone > limit {
                text.push_str(&format!(
                    ", above the limit: the work goes at the progress guarantee; a max latency \
                     factor above {factor:.2} gives it room"
                ));
            }
        }
        text
    }

    /// `1.5 × baseline 2.5 ms`, or `the floor 2.0 ms` when the floor is the higher bound.
    fn bound_text(&self) -> String {
        let Some(baseline) = self.baseline else {
            return format!("the floor {}", Millis(self.limit.floor));
        };
        let scaled = baseline.mul_f64(self.limit.max_factor.clamp(0.0, 1e6));
        if scaled >= self.limit.floor {
            format!("{} × baseline {}", self.limit.max_factor, Millis(baseline))
        } else {
            format!(
                "the floor {} ({} × baseline {} is lower)",
                Millis(self.limit.floor),
                self.limit.max_factor,
                Millis(baseline)
            )
        }
    }
}

/// A duration in milliseconds for people: `0.25 ms`, `4.1 ms`, `140 ms`.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1000.0;
        if ms < 1.0 {
            write!(f, "{ms:.2} ms")
        } else if ms < 100.0 {
            write!(f, "{ms:.1} ms")
        } else {
            write!(f, "{ms:.0} ms")
        }
    }
}

/// What the work does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatencyVerdict {
    /// Run the next piece of work.
    Go,
    /// Wait [`LATENCY_RECHECK`] and ask again; the reason, for status.
    Wait(String),
}

/// The decision, with its state between calls. Pure: the caller passes the time and the window.
#[derive(Debug, Clone)]
pub struct LatencyGate {
    limit: LatencyLimit,
    baseline: Option<Duration>,
    state: LatencyState,
    sample: LatencySample,
    /// When the current stretch of waiting (holding or measuring) began.
    waiting_since: Option<Instant>,
    last_check: Option<Instant>,
    /// Since when the work has been kept from a piece: the end of the last one, or when it
    /// came back from elsewhere (what the progress guarantee counts from).
    idle_since: Option<Instant>,
    /// When the rest prescribed after the last piece ends.
    rest_until: Option<Instant>,
    holds: u64,
    held_before: Duration,
    forced: u64,
    forced_why: Option<&'static str>,
    pace: f64,
    last_raise: Option<Instant>,
    last_ease: Option<Instant>,
    dual_writes: DualWriteCost,
}

/// Rule 3's second measurement: what the migration's dual-writes alone cost the clients.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DualWriteCost {
    /// Not measured (the gated work adds no dual-writes, or nobody asked).
    NotWanted,
    /// To be measured before the first piece.
    Wanted,
    /// The current measuring window is this one.
    Measuring,
    /// The clients' p99 in that window.
    Measured(Duration),
}

impl DualWriteCost {
    fn measured(self) -> Option<Duration> {
        match self {
            DualWriteCost::Measured(p99) => Some(p99),
            _ => None,
        }
    }
}

impl LatencyGate {
    /// A gate with `limit` and the baseline measured before the migration (`None`: measure it
    /// when the clients are busy enough).
    pub fn new(limit: LatencyLimit, baseline: Option<Duration>) -> Self {
        LatencyGate {
            limit,
            baseline,
            state: LatencyState::Off,
            sample: LatencySample::default(),
            waiting_since: None,
            last_check: None,
            idle_since: None,
            rest_until: None,
            holds: 0,
            held_before: Duration::ZERO,
            forced: 0,
            forced_why: None,
            pace: 0.0,
            last_raise: None,
            last_ease: None,
            dual_writes: DualWriteCost::NotWanted,
        }
    }

    /// The gated work belongs to a migration whose dual-writes are on: measure what they alone
    /// cost the clients before its first piece (rule 3).
    pub fn measuring_dual_writes(mut self) -> Self {
        self.dual_writes = DualWriteCost::Wanted;
        self
    }

    /// A piece of work that took `took` ended at `now`: how long to rest before the next one
    /// (rule 7; at most `max_pause`, so the rest never breaks the progress guarantee).
    pub fn rest_after(&mut self, now: Instant, took: Duration) -> Duration {
        let rest = if self.pace > 0.0 {
            took.mul_f64(self.pace).min(self.limit.max_pause)
        } else {
            Duration::ZERO
        };
        self.idle_since = Some(now);
        self.rest_until = Some(now + rest);
        rest
    }

    fn drop_pace(&mut self) {
        self.pace = 0.0;
        self.last_raise = None;
        self.last_ease = None;
    }

    /// A breach: raise the pace, at most once per window (the window still holds the breach
    /// for up to its length after the work stopped).
    fn raise_pace(&mut self, now: Instant, window: Duration) {
        if self
            .last_raise
            .is_some_and(|at| now.saturating_duration_since(at) < window)
        {
            return;
        }
        self.pace = if self.pace < FIRST_PACE {
            FIRST_PACE
        } else {
            (self.pace * 2.0).min(MAX_PACE)
        };
        self.last_raise = Some(now);
    }

    /// Room to spare: ease the pace once per window, and not within a window of a raise.
    fn ease_pace(&mut self, now: Instant, window: Duration) {
        let recent =
            |at: Option<Instant>| at.is_some_and(|at| now.saturating_duration_since(at) < window);
        if self.pace == 0.0 || recent(self.last_raise) || recent(self.last_ease) {
            return;
        }
        self.pace *= EASE_FACTOR;
        if self.pace < MIN_PACE {
            self.pace = 0.0;
        }
        self.last_ease = Some(now);
    }

    /// New limit settings (from the next decision on).
    pub fn set_limit(&mut self, limit: LatencyLimit) {
        self.limit = limit;
    }

    /// Replaces the baseline (an operator's; `None`: measure it again).
    pub fn set_baseline(&mut self, baseline: Option<Duration>) {
        self.baseline = baseline;
        if self.state == LatencyState::Measuring {
            self.end_wait(None);
        }
    }

    /// The baseline in use.
    pub fn baseline(&self) -> Option<Duration> {
        self.baseline
    }

    /// Decides at `now` on the window `sample`.
    pub fn decide(&mut self, now: Instant, sample: LatencySample) -> LatencyVerdict {
        let due_back = self.last_check.max(self.rest_until);
        if due_back.is_some_and(|due| now.saturating_duration_since(due) > STALE_CHECK) {
            // The work was elsewhere meanwhile (paused, held by another throttle, between the
            // copy and the verification): that time was no wait on the clients.
            self.end_wait(self.last_check);
            self.idle_since = None;
        }
        self.last_check = Some(now);
        let idle_since = *self.idle_since.get_or_insert(now);
        self.sample = sample;
        if !self.limit.is_on() {
            self.end_wait(Some(now));
            self.drop_pace();
            self.state = LatencyState::Off;
            return LatencyVerdict::Go;
        }
        if sample.statements < MIN_STATEMENTS {
            self.end_wait(Some(now));
            self.drop_pace();
            self.state = LatencyState::Idle;
            return LatencyVerdict::Go;
        }
        let Some(baseline) = self.baseline else {
            return self.measure(now, sample);
        };
        if matches!(
            self.dual_writes,
            DualWriteCost::Wanted | DualWriteCost::Measuring
        ) {
            return self.measure(now, sample);
        }
        let limit = self.limit.limit_for(baseline);
        if sample.p99 <= limit {
            if sample.p99 <= limit.mul_f64(EASE_BELOW) {
                self.ease_pace(now, sample.window);
            }
            self.end_wait(Some(now));
            self.state = LatencyState::Clear;
            return LatencyVerdict::Go;
        }
        self.raise_pace(now, sample.window);
        if now.saturating_duration_since(idle_since) >= self.limit.max_pause {
            // The progress guarantee: one piece now; a new stretch after it.
            self.let_through(now, None);
            return LatencyVerdict::Go;
        }
        if self.state != LatencyState::Holding || self.waiting_since.is_none() {
            self.end_wait(Some(now));
            self.waiting_since = Some(now);
            self.holds += 1;
            self.state = LatencyState::Holding;
        }
        LatencyVerdict::Wait(self.view_at(now).reason())
    }

    /// Lets one piece run although the clients are above the limit (counted as forced): the
    /// progress guarantee (`why` None), or a caller that must not wait longer (`why` says so).
    pub fn let_through(&mut self, now: Instant, why: Option<&'static str>) {
        self.end_wait(Some(now));
        self.idle_since = Some(now);
        self.forced += 1;
        self.forced_why = why;
        self.state = LatencyState::Forced;
    }

    /// Rule 3: rest one whole window, then take its p99 as the baseline.
    fn measure(&mut self, now: Instant, sample: LatencySample) -> LatencyVerdict {
        match self.waiting_since {
            Some(since) if self.state == LatencyState::Measuring => {
                // The window must lie wholly within the rest (one recheck of slack for the
                // window's own granularity).
                if now.saturating_duration_since(since) >= sample.window + LATENCY_RECHECK {
                    self.end_wait(Some(now));
                    if self.baseline.is_none() {
                        // The migration's dual-writes are on already: the window of the
                        // baseline is also the one of their cost.
                        self.baseline = Some(sample.p99);
                    }
                    if self.dual_writes != DualWriteCost::NotWanted {
                        self.dual_writes = DualWriteCost::Measured(sample.p99);
                    }
                    return self.decide(now, sample);
                }
            }
            _ => {
                self.end_wait(Some(now));
                self.waiting_since = Some(now);
                self.state = LatencyState::Measuring;
                if self.baseline.is_some() && self.dual_writes == DualWriteCost::Wanted {
                    self.dual_writes = DualWriteCost::Measuring;
                }
            }
        }
        LatencyVerdict::Wait(self.view_at(now).reason())
    }

    /// Ends a stretch of waiting (at `at`, or without counting it when `None`).
    fn end_wait(&mut self, at: Option<Instant>) {
        if let Some(since) = self.waiting_since.take() {
            if self.state == LatencyState::Holding {
                if let Some(at) = at {
                    self.held_before += at.saturating_duration_since(since);
                }
            }
        }
    }

    /// What status shows, as of `now`.
    pub fn view_at(&self, now: Instant) -> LatencyView {
        let waiting_for = self
            .waiting_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        let current_hold = if self.state == LatencyState::Holding {
            waiting_for
        } else {
            Duration::ZERO
        };
        LatencyView {
            state: self.state,
            limit: self.limit,
            baseline: self.baseline,
            sample: self.sample,
            waiting_for,
            holds: self.holds,
            held: self.held_before + current_hold,
            forced: self.forced,
            pace: self.pace,
            forced_why: self.forced_why,
            dual_writes: self.dual_writes.measured(),
            measuring_dual_writes: self.state == LatencyState::Measuring
                && self.dual_writes == DualWriteCost::Measuring,
        }
    }
}

/// One migration's latency signal, shared by its copier and its verifier (and read by
/// `status`): a [`LatencyGate`] over a [`ClientLatency`] source.
pub struct LatencyThrottle {
    source: Arc<dyn ClientLatency>,
    gate: Mutex<LatencyGate>,
}

impl fmt::Debug for LatencyThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyThrottle")
            .field("gate", &*self.gate())
            .finish_non_exhaustive()
    }
}

impl LatencyThrottle {
    /// A signal reading `source`, decided by `gate` (its limit, its baseline, and whether it
    /// measures what a migration's dual-writes cost: [`LatencyGate::measuring_dual_writes`]).
    pub fn new(source: Arc<dyn ClientLatency>, gate: LatencyGate) -> Arc<Self> {
        Arc::new(LatencyThrottle {
            source,
            gate: Mutex::new(gate),
        })
    }

    fn gate(&self) -> MutexGuard<'_, LatencyGate> {
        // A poisoned lock only means another thread panicked mid-decision over plain values.
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the window and decides.
    pub fn check(&self) -> LatencyVerdict {
        let sample = self.source.recent();
        self.gate().decide(Instant::now(), sample)
    }

    /// A piece of work that took `took` just ended: how long to rest (see
    /// [`LatencyGate::rest_after`]).
    pub fn rest_after(&self, took: Duration) -> Duration {
        self.gate().rest_after(Instant::now(), took)
    }

    /// Waits until the signal lets the next piece of work run, but at most `budget`: then the
    /// piece runs anyway, counted as forced with `why` as the reason (the verifier's form of
    /// [`LatencyThrottle::check`]). Returns how long it waited.
    pub async fn wait_for_go_within(&self, budget: Duration, why: &'static str) -> Duration {
        let started = Instant::now();
        loop {
            if self.check() == LatencyVerdict::Go {
                return started.elapsed();
            }
            let waited = started.elapsed();
            if waited >= budget {
                self.gate().let_through(Instant::now(), Some(why));
                return waited;
            }
            tokio::time::sleep(LATENCY_RECHECK.min(budget - waited)).await;
        }
    }

    /// The longest wait the signal imposes between two pieces (its `max_pause`).
    pub fn max_pause(&self) -> Duration {
        self.gate().limit.max_pause
    }

    /// New limit settings.
    pub fn set_limit(&self, limit: LatencyLimit) {
        self.gate().set_limit(limit);
    }

    /// Replaces the baseline (`None`: measure it again).
    pub fn set_baseline(&self, baseline: Option<Duration>) {
        self.gate().set_baseline(baseline);
    }

    /// What status shows.
    pub fn view(&self) -> LatencyView {
        self.gate().view_at(Instant::now())
    }
}

/// A handle on a [`LatencyThrottle`] for the copier's and the verifier's settings: compared by
/// identity.
#[derive(Debug, Clone)]
pub struct LatencyHandle(pub Arc<LatencyThrottle>);

impl PartialEq for LatencyHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn busy(p99_ms: f64) -> LatencySample {
        LatencySample {
            p99: Duration::from_secs_f64(p99_ms / 1000.0),
            statements: 1000,
            window: Duration::from_secs(1),
        }
    }

    fn limit() -> LatencyLimit {
        LatencyLimit {
            max_factor: 1.5,
            floor: ms(1),
            max_pause: Duration::from_secs(2),
        }
    }

    #[test]
    fn the_limit_is_the_factor_times_the_baseline_but_never_below_the_floor() {
        let l = limit();
        assert_eq!(l.limit_for(ms(10)), ms(15));
        assert_eq!(l.limit_for(Duration::from_micros(20)), ms(1), "the floor");
        let off = LatencyLimit {
            max_factor: 0.0,
            ..l
        };
        assert!(!off.is_on());
        assert_eq!(off.limit_for(ms(10)), Duration::MAX);
    }

    #[test]
    fn goes_within_the_limit_and_waits_above_it_with_the_reason() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), Some(ms(2)));
        assert_eq!(gate.decide(t0, busy(2.9)), LatencyVerdict::Go);
        assert_eq!(gate.view_at(t0).state, LatencyState::Clear);
        assert_eq!(gate.decide(t0 + ms(100), busy(3.0)), LatencyVerdict::Go);
        let LatencyVerdict::Wait(reason) = gate.decide(t0 + ms(200), busy(4.1)) else {
            panic!("4.1 ms is above 1.5 × 2 ms");
        };
        assert!(
            reason.starts_with("client p99 4.1 ms > 1.5 × baseline 2.0 ms"),
            "{reason}"
        );
        let view = gate.view_at(t0 + ms(700));
        assert_eq!(view.state, LatencyState::Holding);
        assert_eq!(view.waiting_for, ms(500));
        assert_eq!(view.current_limit(), Some(ms(3)));
        // The clients recover: the work resumes and the stretch is counted.
        assert_eq!(gate.decide(t0 + ms(900), busy(2.5)), LatencyVerdict::Go);
        let view = gate.view_at(t0 + ms(900));
        assert_eq!(view.state, LatencyState::Clear);
        assert_eq!((view.holds, view.held, view.forced), (1, ms(700), 0));
        assert!(
            view.reason().starts_with("client p99 2.5 ms <="),
            "{view:?}"
        );
    }

    #[test]
    fn a_tiny_baseline_is_held_to_the_floor_not_to_its_factor() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), Some(Duration::from_micros(30)));
        // 0.5 ms is 16 × the baseline but below the 1 ms floor.
        assert_eq!(gate.decide(t0, busy(0.5)), LatencyVerdict::Go);
        let LatencyVerdict::Wait(reason) = gate.decide(t0 + ms(100), busy(1.5)) else {
            panic!("1.5 ms is above the floor");
        };
        assert!(
            reason.starts_with(
                "client p99 1.5 ms > the floor 1.0 ms (1.5 × baseline 0.03 ms is lower)"
            ),
            "{reason}"
        );
    }

    #[test]
    fn the_progress_guarantee_lets_one_piece_through_per_max_pause() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), Some(ms(2)));
        // The clients stay at 10 ms for 30 s. The work asks every 100 ms while held; a piece
        // takes 100 ms and is followed by the rest the gate prescribes.
        let (mut t, mut starts, mut ends) = (0u64, Vec::new(), Vec::new());
        while t < 30_000 {
            if gate.decide(t0 + ms(t), busy(10.0)) == LatencyVerdict::Go {
                starts.push(t);
                t += 100;
                ends.push(t);
                t += gate.rest_after(t0 + ms(t), ms(100)).as_millis() as u64;
            } else {
                t += 100;
            }
        }
        assert_eq!(starts[0], 2000, "the first piece after max_pause");
        // Every later piece starts exactly max_pause after the previous one ended, however
        // high the pace (its rest is capped by max_pause too).
        let gaps: Vec<u64> = starts[1..]
            .iter()
            .zip(&ends)
            .map(|(start, end)| start - end)
            .collect();
        assert!(gaps.iter().all(|&g| g == 2000), "{gaps:?}");
        let view = gate.view_at(t0 + ms(t));
        assert_eq!(view.forced as usize, starts.len());
        assert_eq!(view.pace, MAX_PACE);
        assert!(view.holds >= 1);
    }

    #[test]
    fn breaches_raise_the_pace_once_per_window_and_room_eases_it() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), Some(ms(2)));
        let at = |n: u64| t0 + ms(n);
        assert_eq!(gate.decide(at(0), busy(2.0)), LatencyVerdict::Go);
        assert_eq!(
            gate.rest_after(at(0), ms(100)),
            Duration::ZERO,
            "no pace yet"
        );
        // A breach: the pace jumps to the first step; the breach stays in the window for a
        // while, which raises nothing more.
        assert!(matches!(
            gate.decide(at(100), busy(5.0)),
            LatencyVerdict::Wait(_)
        ));
        assert_eq!(gate.view_at(at(100)).pace, FIRST_PACE);
        assert!(matches!(
            gate.decide(at(900), busy(5.0)),
            LatencyVerdict::Wait(_)
        ));
        assert_eq!(gate.view_at(at(900)).pace, FIRST_PACE);
        // Still breaching a window later: doubled.
        assert!(matches!(
            gate.decide(at(1100), busy(5.0)),
            LatencyVerdict::Wait(_)
        ));
        assert_eq!(gate.view_at(at(1100)).pace, 2.0 * FIRST_PACE);
        assert_eq!(gate.rest_after(at(1100), ms(100)), ms(400));
        // Within the limit but not well below it: the pace stays.
        assert_eq!(gate.decide(at(2200), busy(2.9)), LatencyVerdict::Go);
        assert_eq!(gate.view_at(at(2200)).pace, 2.0 * FIRST_PACE);
        // Well below: eased once per window.
        assert_eq!(gate.decide(at(2300), busy(2.0)), LatencyVerdict::Go);
        assert_eq!(gate.view_at(at(2300)).pace, 2.0 * FIRST_PACE * EASE_FACTOR);
        assert_eq!(gate.decide(at(2400), busy(2.0)), LatencyVerdict::Go);
        assert_eq!(gate.view_at(at(2400)).pace, 2.0 * FIRST_PACE * EASE_FACTOR);
        let mut t = 2400;
        while gate.view_at(at(t)).pace > 0.0 {
            t += 1000;
            assert_eq!(gate.decide(at(t), busy(2.0)), LatencyVerdict::Go);
        }
        assert!(
            t <= 2400 + 8 * 1000,
            "eases to nothing within a few windows"
        );
        assert!(gate
            .view_at(at(t))
            .reason()
            .starts_with("client p99 2.0 ms <= "));
        // The pace never passes its cap, and an idle window drops it.
        for step in 0..20u64 {
            let _ = gate.decide(at(t + 1000 * (step + 1)), busy(50.0));
        }
        assert_eq!(gate.view_at(at(t + 20_000)).pace, MAX_PACE);
        let idle = LatencySample {
            statements: 0,
            ..busy(0.0)
        };
        assert_eq!(gate.decide(at(t + 20_100), idle), LatencyVerdict::Go);
        assert_eq!(gate.view_at(at(t + 20_100)).pace, 0.0);
    }

    #[test]
    fn a_window_with_few_statements_is_not_judged() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), Some(ms(2)));
        let thin = LatencySample {
            statements: MIN_STATEMENTS - 1,
            ..busy(500.0)
        };
        assert_eq!(gate.decide(t0, thin), LatencyVerdict::Go);
        let view = gate.view_at(t0);
        assert_eq!(view.state, LatencyState::Idle);
        assert!(view.reason().contains("too few to judge"), "{view:?}");
    }

    #[test]
    fn without_a_baseline_the_work_rests_one_window_to_measure_it() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), None);
        // Idle: nothing to measure, nothing to protect.
        let idle = LatencySample {
            statements: 0,
            ..busy(0.0)
        };
        assert_eq!(gate.decide(t0, idle), LatencyVerdict::Go);
        assert_eq!(gate.baseline(), None);
        // Clients arrive: the work rests a whole window (1 s plus a recheck) first.
        assert!(matches!(
            gate.decide(t0 + ms(100), busy(9.0)),
            LatencyVerdict::Wait(_)
        ));
        assert_eq!(gate.view_at(t0 + ms(100)).state, LatencyState::Measuring);
        assert!(matches!(
            gate.decide(t0 + ms(1100), busy(3.0)),
            LatencyVerdict::Wait(_)
        ));
        assert_eq!(gate.decide(t0 + ms(1200), busy(3.0)), LatencyVerdict::Go);
        assert_eq!(gate.baseline(), Some(ms(3)));
        // From now on it is judged against 1.5 × 3 ms, and measuring was no hold.
        assert!(matches!(
            gate.decide(t0 + ms(1300), busy(4.6)),
            LatencyVerdict::Wait(_)
        ));
        assert_eq!(gate.view_at(t0 + ms(1300)).holds, 1);
        assert_eq!(gate.view_at(t0 + ms(1300)).held, Duration::ZERO);
    }

    #[test]
    fn a_migration_s_gate_measures_what_the_dual_writes_alone_cost_before_the_first_piece() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), Some(ms(2))).measuring_dual_writes();
        // The baseline is known; the work still rests one window first.
        let first = gate.decide(t0, busy(3.5));
        let LatencyVerdict::Wait(reason) = first else {
            panic!("the first piece waits for the measurement: {first:?}");
        };
        assert!(
            reason.contains("what the dual-writes alone cost"),
            "{reason}"
        );
        assert_eq!(gate.view_at(t0).state, LatencyState::Measuring);
        assert!(matches!(
            gate.decide(t0 + ms(1000), busy(3.5)),
            LatencyVerdict::Wait(_)
        ));
        // The window is over: 3.5 ms is what the dual-writes cost, above the limit of 3 ms.
        let verdict = gate.decide(t0 + ms(1200), busy(3.5));
        let LatencyVerdict::Wait(reason) = verdict else {
            panic!("above the limit: {verdict:?}");
        };
        let view = gate.view_at(t0 + ms(1200));
        assert_eq!(view.dual_writes, Some(ms(3) + Duration::from_micros(500)));
        assert_eq!(view.held, Duration::ZERO, "measuring is no hold");
        assert!(
            reason.contains(
                "before any copying, with the dual-writes on: p99 3.5 ms (1.75 × baseline), above \
                 the limit"
            ) && reason.contains("a max latency factor above 1.75"),
            "{reason}"
        );
        // Within the limit the reason still says what they cost, without advice.
        assert_eq!(gate.decide(t0 + ms(1300), busy(2.5)), LatencyVerdict::Go);
        let reason = gate.view_at(t0 + ms(1300)).reason();
        assert!(
            reason.ends_with(
                "; before any copying, with the dual-writes on: p99 3.5 ms (1.75 × baseline), \
                 above the limit: the work goes at the progress guarantee; a max latency factor \
                 above 1.75 gives it room"
            ),
            "{reason}"
        );
        // Measured once: no more measuring windows.
        assert_eq!(gate.decide(t0 + ms(5000), busy(2.5)), LatencyVerdict::Go);
    }

    #[test]
    fn a_measured_baseline_is_also_what_the_dual_writes_cost() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), None).measuring_dual_writes();
        assert!(matches!(
            gate.decide(t0, busy(3.0)),
            LatencyVerdict::Wait(_)
        ));
        assert!(
            !gate.view_at(t0).measuring_dual_writes,
            "the baseline's window"
        );
        assert_eq!(gate.decide(t0 + ms(1200), busy(3.0)), LatencyVerdict::Go);
        let view = gate.view_at(t0 + ms(1200));
        assert_eq!(view.baseline, Some(ms(3)));
        assert_eq!(view.dual_writes, Some(ms(3)), "one window, not two");
        assert!(
            view.reason().ends_with(
                "; before any copying, with the dual-writes on: p99 3.0 ms (1.00 × baseline)"
            ),
            "{}",
            view.reason()
        );
    }

    #[test]
    fn a_gate_without_dual_writes_measures_nothing_more() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), Some(ms(2)));
        assert_eq!(gate.decide(t0, busy(2.5)), LatencyVerdict::Go);
        assert_eq!(gate.view_at(t0).dual_writes, None);
        assert!(!gate.view_at(t0).reason().contains("dual-writes"));
    }

    #[test]
    fn factor_zero_turns_the_signal_off_and_settings_apply_at_once() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), Some(ms(2)));
        assert!(matches!(
            gate.decide(t0, busy(10.0)),
            LatencyVerdict::Wait(_)
        ));
        gate.set_limit(LatencyLimit {
            max_factor: 0.0,
            ..limit()
        });
        assert_eq!(gate.decide(t0 + ms(100), busy(10.0)), LatencyVerdict::Go);
        assert_eq!(gate.view_at(t0 + ms(100)).state, LatencyState::Off);
        gate.set_limit(LatencyLimit {
            max_factor: 6.0,
            ..limit()
        });
        assert_eq!(gate.decide(t0 + ms(200), busy(10.0)), LatencyVerdict::Go);
        gate.set_baseline(Some(ms(1)));
        assert!(matches!(
            gate.decide(t0 + ms(300), busy(10.0)),
            LatencyVerdict::Wait(_)
        ));
    }

    #[test]
    fn a_long_gap_between_checks_starts_the_stretch_over() {
        let t0 = Instant::now();
        let mut gate = LatencyGate::new(limit(), Some(ms(2)));
        assert!(matches!(
            gate.decide(t0, busy(10.0)),
            LatencyVerdict::Wait(_)
        ));
        // The operator paused the copy for a minute: no forced piece right after the resume.
        let back = t0 + Duration::from_secs(60);
        assert!(matches!(
            gate.decide(back, busy(10.0)),
            LatencyVerdict::Wait(_)
        ));
        assert_eq!(gate.view_at(back).waiting_for, Duration::ZERO);
        assert_eq!(gate.view_at(back).forced, 0);
    }

    struct Fixed(LatencySample);

    impl ClientLatency for Fixed {
        fn recent(&self) -> LatencySample {
            self.0
        }
    }

    #[test]
    fn the_shared_throttle_reads_its_source() {
        let throttle = LatencyThrottle::new(
            Arc::new(Fixed(busy(10.0))),
            LatencyGate::new(limit(), Some(ms(2))),
        );
        assert!(matches!(throttle.check(), LatencyVerdict::Wait(_)));
        assert_eq!(throttle.view().state, LatencyState::Holding);
        throttle.set_baseline(Some(ms(20)));
        assert_eq!(throttle.check(), LatencyVerdict::Go);
        let handle = LatencyHandle(throttle.clone());
        assert_eq!(handle, LatencyHandle(throttle));
    }
}
