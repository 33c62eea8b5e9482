//! The report of `duet-bench migrate`: computed from every client statement's timestamp and
//! latency plus the phase marks the driver recorded, printed as text or JSON.

use std::fmt::Write as _;
use std::time::Instant;

use duet_proxy::control::latency::ThrottleStatus;
use serde::Serialize;

use crate::migrate::Driven;
use crate::report::{new_latency_histogram, ErrorCount, LatencySummary};

/// Goal: p99 latency of the statements in flight around the flip, in ms.
pub const GOAL_FLIP_P99_MS: f64 = 100.0;
/// Goal: longest statement in flight around the flip, in ms.
pub const GOAL_FLIP_MAX_MS: f64 = 500.0;
/// Goal: copier rows/s relative to one `INSERT … SELECT`.
pub const GOAL_COPY_RATIO: f64 = 0.8;
/// Goal: write throughput while dual-writing relative to before the migration.
pub const GOAL_WRITE_RATIO: f64 = 0.6;
/// Goal (issue 15): client p99 while copying at most this many times the p99 before.
pub const GOAL_COPY_P99_RATIO: f64 = 1.5;

/// One successful client statement.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was sent, µs after the run's start.
    pub start_us: u64,
    /// How long until its reply.
    pub latency_us: u64,
    /// A write (else a read).
    pub write: bool,
}

/// A moment of the run: a phase starts (or an event happens) at `at_us`.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseMark {
    /// µs after the run's start.
    pub at_us: u64,
    /// The phase or event.
    pub name: String,
}

impl PhaseMark {
    /// A mark named `name`, now.
    pub fn at(epoch: Instant, name: &str) -> PhaseMark {
        PhaseMark {
            at_us: epoch.elapsed().as_micros() as u64,
            name: name.into(),
        }
    }
}

/// One second of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    /// Seconds since the start.
    pub t: u64,
    /// The phase at the start of this second.
    pub phase: String,
    /// Statements completed (reads and writes).
    pub statements: u64,
    /// Writes completed.
    pub writes: u64,
}

/// A ratio against a goal.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Measured.
    pub value: Option<f64>,
    /// Wanted at least.
    pub goal: f64,
    /// value ≥ goal.
    pub met: bool,
}

impl Ratio {
    fn new(value: Option<f64>, goal: f64) -> Ratio {
        Ratio {
            value,
            goal,
            met: value.is_some_and(|v| v >= goal),
        }
    }
}

/// A latency ratio against a ceiling.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRatio {
    /// Measured.
    pub value: Option<f64>,
    /// Wanted at most.
    pub goal: f64,
    /// value ≤ goal.
    pub met: bool,
}

impl LatencyRatio {
    fn new(value: Option<f64>, goal: f64) -> LatencyRatio {
        LatencyRatio {
            value,
            goal,
            met: value.is_some_and(|v| v <= goal),
        }
    }
}

/// The flip as clients saw it.
#[derive(Debug, Clone, Serialize)]
pub struct FlipStall {
    /// The stall duet reported for the cutover (clients held), ms.
    pub duet_stall_ms: Option<u64>,
    /// Statements in flight during the cutover request.
    pub statements: u64,
    /// Their p99 latency, ms.
    pub p99_ms: f64,
    /// Their longest latency, ms.
    pub max_ms: f64,
    /// p99 ≤ 100 ms and max ≤ 500 ms.
    pub met: bool,
    /// Cutover attempts refused before it flipped.
    pub refusals: Vec<String>,
}

/// Everything `duet-bench migrate` measured.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    /// Where the server was.
    pub server: String,
    /// Rows before the migration.
    pub rows: i64,
    /// Client connections through duet.
    pub clients: u32,
    /// The phases, as marked.
    pub phases: Vec<PhaseMark>,
    /// Throughput per second.
    pub timeline: Vec<Second>,
    /// Statement latency before the migration.
    pub latency_before_us: LatencySummary,
    /// Statement latency while the copy was held (`--copy-held-for`: dual-writes without the
    /// copier; from a second after the hold began, so the expand's own moment is left out).
    pub latency_copy_held_us: LatencySummary,
    /// Statement latency while copying (after the hold, if any).
    pub latency_during_copy_us: LatencySummary,
    /// Statement latency while verifying (dual-writing, the verifier running).
    pub latency_during_verify_us: LatencySummary,
    /// p99 while copying / p99 before the migration.
    pub copy_p99_ratio: LatencyRatio,
    /// Statement latency after complete.
    pub latency_after_us: LatencySummary,
    /// The flip's client-observed stall.
    pub flip: FlipStall,
    /// Failed client statements.
    pub client_errors: u64,
    /// The distinct errors, most frequent first.
    pub errors: Vec<ErrorCount>,
    /// One `INSERT … SELECT` of the rows into a plain table of the target shape, rows/s.
    pub reference_insert_select_rows_per_s: f64,
    /// The copier's rate, rows/s (copied rows over the copy phase; else status's rate).
    pub copier_rows_per_s: Option<f64>,
    /// copier / reference, both under the conditions of their own run: the copier under the
    /// client load, the reference on a quiet server (so this understates the copier).
    pub copier_ratio: Ratio,
    /// The copier's rate with no client load (its own rate as status reports it), rows/s.
    pub copier_alone_rows_per_s: Option<f64>,
    /// copier alone / reference: the like-for-like comparison.
    pub copier_alone_ratio: Ratio,
    /// Writes per second before the migration.
    pub writes_per_s_before: f64,
    /// Writes per second while dual-writing (copy start to cutover).
    pub writes_per_s_dual_writing: Option<f64>,
    /// dual-writing / before.
    pub write_ratio: Ratio,
    /// The migration's latency throttle as duet's status showed it last before ready.
    pub latency_throttle: Option<ThrottleStatus>,
    /// The throttle at each status poll while copying and verifying: seconds since the load
    /// started, state, pace, the clients' p99 in µs.
    pub throttle_timeline: Vec<(f64, String, f64, u64)>,
    /// Why the migration did not finish (then the report is partial).
    pub migration_error: Option<String>,
    /// The end of duet's log when the migration failed.
    pub duet_log_tail: Option<String>,
}

fn mark(marks: &[PhaseMark], name: &str) -> Option<u64> {
    marks.iter().find(|m| m.name == name).map(|m| m.at_us)
}

fn last_mark(marks: &[PhaseMark], name: &str) -> Option<u64> {
    marks.iter().rev().find(|m| m.name == name).map(|m| m.at_us)
}

/// The first mark after `at` (the end of the phase starting at `at`).
fn next_after(marks: &[PhaseMark], at: u64) -> Option<u64> {
    marks.iter().map(|m| m.at_us).filter(|&t| t > at).min()
}

fn summary<'a>(samples: impl Iterator<Item = &'a Sample>) -> LatencySummary {
    let mut histogram = new_latency_histogram();
    for s in samples {
        histogram.saturating_record(s.latency_us.max(1));
    }
    LatencySummary::from_histogram(&histogram)
}

fn writes_per_s(samples: &[Sample], from: u64, to: u64) -> Option<f64> {
    (to > from).then(|| {
        let n = samples
            .iter()
            .filter(|s| s.write && s.start_us >= from && s.start_us < to)
            .count();
        n as f64 / ((to - from) as f64 / 1e6)
    })
}

impl MigrateReport {
    /// Computes the report.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        server: String,
        rows: i64,
        clients: u32,
        marks: &[PhaseMark],
        samples: &[Sample],
        errors: Vec<String>,
        driven: Driven,
        reference_rows_per_s: f64,
    ) -> MigrateReport {
        let end = last_mark(marks, "end").unwrap_or(0);
        let phase_at = |t: u64| {
            marks
                .iter()
                .rev()
                .find(|m| m.at_us <= t)
                .or(marks.first())
                .map(|m| m.name.clone())
                .unwrap_or_default()
        };
        let seconds = end / 1_000_000 + 1;
        let mut timeline: Vec<Second> = (0..seconds)
            .map(|t| Second {
                t,
                phase: phase_at(t * 1_000_000),
                statements: 0,
                writes: 0,
            })
            .collect();
        for s in samples {
            let done = (s.start_us + s.latency_us) / 1_000_000;
            if let Some(second) = timeline.get_mut(done as usize) {
                second.statements += 1;
                second.writes += u64::from(s.write);
            }
        }
        let migrate_at = mark(marks, "migrate").unwrap_or(end);
        // With a hold, the phases are polled only after it: "copying" is marked after the
        // copy resumed.
        let copy_from = mark(marks, "copying");
        let copy_to = copy_from.and_then(|t| next_after(marks, t));
        let completed = mark(marks, "completed");
        let in_range =
            |from: u64, to: u64| move |s: &&Sample| s.start_us >= from && s.start_us < to;
        let latency_before_us = summary(samples.iter().filter(in_range(0, migrate_at)));
        let latency_copy_held_us = match (mark(marks, "copy held"), mark(marks, "copy resumed")) {
            (Some(from), Some(to)) if to > from + 1_000_000 => {
                summary(samples.iter().filter(in_range(from + 1_000_000, to)))
            }
            _ => LatencySummary::default(),
        };
        let latency_during_copy_us = match (copy_from, copy_to) {
            (Some(from), Some(to)) => summary(samples.iter().filter(in_range(from, to))),
            _ => LatencySummary::default(),
        };
        let verify_from = mark(marks, "verifying");
        let latency_during_verify_us =
            match (verify_from, verify_from.and_then(|t| next_after(marks, t))) {
                (Some(from), Some(to)) => summary(samples.iter().filter(in_range(from, to))),
                _ => LatencySummary::default(),
            };
        let copy_p99_ratio = LatencyRatio::new(
            (latency_during_copy_us.count > 0 && latency_before_us.p99 > 0)
                .then(|| latency_during_copy_us.p99 as f64 / latency_before_us.p99 as f64),
            GOAL_COPY_P99_RATIO,
        );
        let latency_after_us = match completed {
            Some(from) => summary(samples.iter().filter(in_range(from, end))),
            None => LatencySummary::default(),
        };
        // Statements in flight at any moment of the successful cutover request.
        let cut_from = last_mark(marks, "cutover");
        let cut_to = mark(marks, "flipped");
        let in_flight: Vec<&Sample> = match (cut_from, cut_to) {
            (Some(from), Some(to)) => samples
                .iter()
                .filter(|s| s.start_us <= to && s.start_us + s.latency_us >= from)
                .collect(),
            _ => Vec::new(),
        };
        let stall = summary(in_flight.iter().copied());
        let (p99_ms, max_ms) = (stall.p99 as f64 / 1e3, stall.max as f64 / 1e3);
        let flip = FlipStall {
            duet_stall_ms: driven.stall_ms,
            statements: in_flight.len() as u64,
            p99_ms,
            max_ms,
            met: cut_to.is_some() && p99_ms <= GOAL_FLIP_P99_MS && max_ms <= GOAL_FLIP_MAX_MS,
            refusals: driven.cutover_refusals.clone(),
        };
        let copier_rows_per_s = match (driven.copied_rows, driven.copy_secs) {
            (Some(rows), Some(secs)) if secs > 0.5 => Some(rows as f64 / secs),
            _ => driven.status_rate_rows_per_s,
        };
        let writes_per_s_before = writes_per_s(samples, 0, migrate_at).unwrap_or(0.0);
        let writes_per_s_dual_writing =
            copy_from.and_then(|from| writes_per_s(samples, from, cut_from.unwrap_or(end)));
        let client_errors = errors.len() as u64;
        MigrateReport {
            server,
            rows,
            clients,
            phases: marks.to_vec(),
            timeline,
            latency_before_us,
            latency_copy_held_us,
            latency_during_copy_us,
            latency_during_verify_us,
            copy_p99_ratio,
            latency_after_us,
            flip,
            client_errors,
            errors: crate::report::top_errors(
                errors.into_iter().fold(
                    std::collections::HashMap::<String, u64>::new(),
                    |mut counts, e| {
                        *counts.entry(e).or_default() += 1;
                        counts
                    },
                ),
                10,
            ),
            reference_insert_select_rows_per_s: reference_rows_per_s,
            copier_rows_per_s,
            copier_alone_rows_per_s: driven.copier_alone_rows_per_s,
            copier_alone_ratio: Ratio::new(
                driven
                    .copier_alone_rows_per_s
                    .map(|c| c / reference_rows_per_s.max(1e-9)),
                GOAL_COPY_RATIO,
            ),
            copier_ratio: Ratio::new(
                copier_rows_per_s.map(|c| c / reference_rows_per_s.max(1e-9)),
                GOAL_COPY_RATIO,
            ),
            writes_per_s_before,
            writes_per_s_dual_writing,
            write_ratio: Ratio::new(
                writes_per_s_dual_writing.map(|w| w / writes_per_s_before.max(1e-9)),
                GOAL_WRITE_RATIO,
            ),
            latency_throttle: driven.latency_throttle,
            throttle_timeline: driven.throttle_timeline,
            migration_error: driven.migration_error,
            duet_log_tail: None,
        }
    }

    /// Multi-line readable rendering.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let ok = |met: bool| if met { "ok" } else { "MISSED" };
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        let ratio = |r: &Ratio| r.value.map_or("-".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            out,
            "duet-bench migrate: int → bigint primary key of {} rows under {} clients ({})",
            self.rows, self.clients, self.server
        );
        if let Some(error) = &self.migration_error {
            let _ = writeln!(out, "MIGRATION DID NOT FINISH: {error}");
        }
        let _ = writeln!(out, "\nthroughput per second (statements, writes):");
        for s in &self.timeline {
            let _ = writeln!(
                out,
                "  {:>4}s  {:<10} {:>7} {:>7}",
                s.t, s.phase, s.statements, s.writes
            );
        }
        let _ = writeln!(out, "\nphases:");
        for m in &self.phases {
            let _ = writeln!(out, "  {:>8.3}s  {}", m.at_us as f64 / 1e6, m.name);
        }
        let _ = writeln!(out, "\nlatency (ms)        p50      p99      max    count");
        for (name, l) in [
            ("before", &self.latency_before_us),
            ("copy held", &self.latency_copy_held_us),
            ("during copy", &self.latency_during_copy_us),
            ("during verify", &self.latency_during_verify_us),
            ("after", &self.latency_after_us),
        ] {
            let _ = writeln!(
                out,
                "  {name:<14} {:>8.2} {:>8.2} {:>8.2} {:>8}",
                l.p50 as f64 / 1e3,
                l.p99 as f64 / 1e3,
                l.max as f64 / 1e3,
                l.count
            );
        }
        let _ = writeln!(
            out,
            "p99 during the copy / before: {} (goal ≤ {GOAL_COPY_P99_RATIO}): {}",
            self.copy_p99_ratio
                .value
                .map_or("-".to_string(), |v| format!("{v:.2}")),
            ok(self.copy_p99_ratio.met)
        );
        if let Some(t) = &self.latency_throttle {
            let ms = |us: Option<u64>| {
                us.map_or("-".to_string(), |us| format!("{:.2} ms", us as f64 / 1e3))
            };
            let _ = writeln!(
                out,
                "duet's latency throttle: baseline {}, limit {}, dual-writes alone {}, {} hold(s), {:.1} s held, {} piece(s) forced through, pace {:.1}; last: {}: {}",
                ms(t.baseline_us),
                ms(t.limit_us),
                ms(t.dual_writes_us),
                t.holds,
                t.held_s,
                t.forced,
                t.pace,
                t.state,
                t.reason
            );
        }
        let _ = writeln!(
            out,
            "\nflip: {} statements in flight, p99 {:.1} ms (goal ≤ {GOAL_FLIP_P99_MS}), max {:.1} ms (goal ≤ {GOAL_FLIP_MAX_MS}), duet's stall {} ms, {} refused attempts: {}",
            self.flip.statements,
            self.flip.p99_ms,
            self.flip.max_ms,
            self.flip.duet_stall_ms.map_or("-".into(), |v| v.to_string()),
            self.flip.refusals.len(),
            ok(self.flip.met)
        );
        let _ = writeln!(
            out,
            "client errors: {} (goal 0): {}",
            self.client_errors,
            ok(self.client_errors == 0)
        );
        for e in &self.errors {
            let _ = writeln!(out, "  {:>6} × {}", e.count, e.message);
        }
        let _ = writeln!(
            out,
            "copier alone: {} rows/s vs INSERT … SELECT {:.0} rows/s = {} (goal ≥ {GOAL_COPY_RATIO}): {}",
            opt(self.copier_alone_rows_per_s),
            self.reference_insert_select_rows_per_s,
            ratio(&self.copier_alone_ratio),
            ok(self.copier_alone_ratio.met)
        );
        let _ = writeln!(
            out,
            "copier under the client load: {} rows/s = {} of the quiet INSERT … SELECT",
            opt(self.copier_rows_per_s),
            ratio(&self.copier_ratio),
        );
        let _ = writeln!(
            out,
            "writes/s while dual-writing {} vs {:.0} before = {} (goal ≥ {GOAL_WRITE_RATIO}): {}",
            opt(self.writes_per_s_dual_writing),
            self.writes_per_s_before,
            ratio(&self.write_ratio),
            ok(self.write_ratio.met)
        );
        if let Some(log) = &self.duet_log_tail {
            let _ = writeln!(out, "\n--- duet log (last lines) ---\n{log}");
        }
        out
    }
}
