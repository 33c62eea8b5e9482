//! Side by side on one machine: direct to PostgreSQL, through duet, through PgBouncer.
//!
//! A proxy's cost only means something next to the same workload run directly and through the
//! incumbent (PgBouncer, session mode) against the same server in the same run. Each scenario runs
//! its targets back to back, `repeat` times, rotating their order every round, so drift on a shared
//! machine hits all of them alike; each cell reports the median run and the spread of its runs, and
//! duet against PgBouncer is judged on the runs paired by round (adjacent in time): a difference
//! counts only when every pair agrees on it. Whatever is missing is started here (a throwaway
//! cluster unless a URL is given, a duet proxy, a PgBouncer) and stopped at the end. A target that
//! cannot start is reported as such; the others still run.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::backend::Backend;
use crate::cluster::{Cluster, ClusterError, ClusterOptions};
use crate::duet_process::{DuetProxy, DuetProxyOptions};
use crate::load::{init_tables, run_load, LoadError, LoadOptions};
use crate::pgbench_driver::run_pgbench;
use crate::pgbouncer::{PgBouncer, PgBouncerOptions};
pub use crate::pooling::Pooling;
use crate::pooling::{pool_config_file, POOLED_PASSWORD};
use crate::report::Report;
use crate::scratch::ScratchDir;
use crate::workload::{Protocol, Workload};

/// Which client runs the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Driver {
    /// duet-bench's own tokio-postgres driver.
    Builtin,
    /// The real pgbench binary.
    Pgbench,
}

/// Where the clients connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Straight to PostgreSQL.
    Direct,
    /// Through a duet proxy.
    Duet,
    /// Through PgBouncer in session mode.
    Pgbouncer,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Duet => "duet",
            Target::Pgbouncer => "pgbouncer",
        }
    }
}

/// One row group of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// The workload.
    pub workload: Workload,
    /// The protocol.
    pub protocol: Protocol,
    /// Concurrent clients.
    pub clients: u32,
    /// What the issue measured for PgBouncer here, for context.
    pub reference: Option<String>,
}

impl Scenario {
    /// "select-only prepared, 16 clients".
    pub fn title(&self) -> String {
        format!(
            "{} {}, {} client{}",
            self.workload.name(),
            self.protocol.name(),
            self.clients,
            if self.clients == 1 { "" } else { "s" }
        )
    }
}

/// The scenarios behind the issue's reference numbers for PgBouncer.
pub fn reference_scenarios() -> Vec<Scenario> {
    let scenario = |workload, protocol, clients, reference: &str| Scenario {
        workload,
        protocol,
        clients,
        reference: Some(reference.to_string()),
    };
    vec![
        scenario(
            Workload::SelectOnly,
            Protocol::Prepared,
            16,
            "PgBouncer 0.62× direct",
        ),
        scenario(
            Workload::SelectOnly,
            Protocol::Simple,
            16,
            "PgBouncer 0.65× direct",
        ),
        scenario(
            Workload::ReadWrite,
            Protocol::Prepared,
            8,
            "PgBouncer 0.78× direct",
        ),
        scenario(
            Workload::SelectOnly,
            Protocol::Prepared,
            1,
            "PgBouncer +58 µs per query",
        ),
    ]
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// An existing server; `None` = start a throwaway cluster.
    pub url: Option<String>,
    /// (Re)create the pgbench tables on an existing server (always done on a throwaway one).
    pub init: bool,
    /// pgbench scale for table creation.
    pub scale: u32,
    /// The `duet` executable.
    pub duet_bin: Option<PathBuf>,
    /// The `pgbouncer` executable (`None` = PATH or /usr/sbin/pgbouncer).
    pub pgbouncer_bin: Option<PathBuf>,
    /// The `pgbench` executable for the pgbench driver (`None` = PATH or server binaries).
    pub pgbench_bin: Option<PathBuf>,
    /// Which client drives the load.
    pub driver: Driver,
    /// Measured window per cell.
    pub duration: Duration,
    /// Warm-up per cell.
    pub warmup: Duration,
    /// Rows of the comparison.
    pub scenarios: Vec<Scenario>,
    /// Columns of the comparison, in order; `Direct` is the baseline for ratios.
    pub targets: Vec<Target>,
    /// Rounds per scenario (at least 1); every round runs every target once, in rotated order.
    pub repeat: u32,
    /// How duet and PgBouncer pool: `Session` (a server connection per client) or
    /// `Transaction { size }` (this many server connections shared by all clients).
    pub pooling: Pooling,
}

/// The outcome of one target in one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellResult {
    /// Where the clients connected.
    pub target: Target,
    /// The median run by tps (absent when no run succeeded).
    pub report: Option<Report>,
    /// Why there is no report (the first failed run's error).
    pub error: Option<String>,
    /// tps of every run, by round (`None` for a round whose run failed).
    pub tps_runs: Vec<Option<f64>>,
    /// (max − min) / median of the successful runs' tps: the noise of this cell.
    pub tps_spread: Option<f64>,
    /// tps / direct tps.
    pub tps_ratio_to_direct: Option<f64>,
    /// Mean transaction latency minus direct's, µs.
    pub added_latency_us_mean: Option<f64>,
    /// Median transaction latency minus direct's, µs.
    pub added_latency_us_p50: Option<i64>,
}

/// One scenario's row group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: Scenario,
    /// One cell per target.
    pub cells: Vec<CellResult>,
    /// duet against PgBouncer, when both ran.
    pub duet_vs_pgbouncer: Option<Verdict>,
}

/// duet's throughput against PgBouncer's in one scenario, judged on runs paired by round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Median duet tps / median PgBouncer tps.
    pub tps_ratio: f64,
    /// The smallest and largest duet/PgBouncer tps ratio of one round.
    pub paired_min: f64,
    /// See `paired_min`.
    pub paired_max: f64,
    /// Rounds in which both ran.
    pub pairs: usize,
    /// "faster" (every pair above 1), "slower" (every pair below 1) or "within noise".
    pub decision: &'static str,
}

impl Verdict {
    /// Pairs the two cells' runs by round; `None` without a round in which both ran.
    pub fn of(duet: &CellResult, bouncer: &CellResult) -> Option<Verdict> {
        let ratios: Vec<f64> = duet
            .tps_runs
            .iter()
            .zip(&bouncer.tps_runs)
            .filter_map(|(d, b)| match (d, b) {
                (Some(d), Some(b)) if *b > 0.0 => Some(d / b),
                _ => None,
            })
            .collect();
        let median_ratio = match (&duet.report, &bouncer.report) {
            (Some(d), Some(b)) if b.tps > 0.0 => d.tps / b.tps,
            _ => return None,
        };
        let paired_min = ratios.iter().copied().reduce(f64::min)?;
        let paired_max = ratios.iter().copied().reduce(f64::max)?;
        let decision = if ratios.len() < 2 {
            "within noise"
        } else if paired_min > 1.0 {
            "faster"
        } else if paired_max < 1.0 {
            "slower"
        } else {
            "within noise"
        };
        Some(Verdict {
            tps_ratio: median_ratio,
            paired_min,
            paired_max,
            pairs: ratios.len(),
            decision,
        })
    }
}

/// The cell of `target` from its runs (one per round): the median run's report, every run's tps,
/// and the spread.
pub fn cell_of(target: Target, runs: Vec<Result<Report, String>>) -> CellResult {
    let tps_runs: Vec<Option<f64>> = runs
        .iter()
        .map(|r| r.as_ref().ok().map(|report| report.tps))
        .collect();
    let error = runs.iter().find_map(|r| r.as_ref().err().cloned());
    let mut reports: Vec<Report> = runs.into_iter().filter_map(Result::ok).collect();
    reports.sort_by(|a, b| a.tps.total_cmp(&b.tps));
    let (spread, report) = match (reports.first(), reports.last()) {
        (Some(low), Some(high)) => {
            let median = reports[reports.len() / 2].clone();
            let spread = (median.tps > 0.0).then(|| (high.tps - low.tps) / median.tps);
            (spread, Some(median))
        }
        _ => (None, None),
    };
    CellResult {
        target,
        report,
        error,
        tps_runs,
        tps_spread: spread,
        tps_ratio_to_direct: None,
        added_latency_us_mean: None,
        added_latency_us_p50: None,
    }
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Which client drove the load.
    pub driver: Driver,
    /// Measured window per cell, seconds.
    pub duration_secs: f64,
    /// Warm-up per cell, seconds.
    pub warmup_secs: f64,
    /// Rounds per scenario.
    pub repeat: u32,
    /// CPUs visible to this process.
    pub cpus: usize,
    /// "throwaway cluster (PostgreSQL in a temp dir)" or the server's redacted URL.
    pub server: String,
    /// The row groups.
    pub scenarios: Vec<ScenarioResult>,
}

/// Why the comparison could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The throwaway cluster did not start.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The server URL is unusable.
    #[error("{0}")]
    Url(String),
    /// The pgbench tables could not be created.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Runs every scenario against every target. `progress` receives one line per step.
pub fn run_compare(
    opts: &CompareOptions,
    rt: &tokio::runtime::Runtime,
    progress: &mut dyn FnMut(String),
) -> Result<Comparison, CompareError> {
    let max_clients = opts.scenarios.iter().map(|s| s.clients).max().unwrap_or(1);
    let (_cluster, backend_url, server) = match &opts.url {
        Some(url) => (None, url.clone(), crate::load::redact(url)),
        None => {
            progress("starting a throwaway PostgreSQL cluster".into());
            let cluster = Cluster::start(ClusterOptions {
                // direct + duet + PgBouncer's pooled server connections, with headroom.
                max_connections: max_clients * 3 + 20,
                ..ClusterOptions::default()
            })?;
            let url = cluster.url("postgres", None, "postgres");
            let server = format!("throwaway cluster on port {}", cluster.port());
            (Some(cluster), url, server)
        }
    };
    let backend = Backend::parse(&backend_url).map_err(CompareError::Url)?;
    if opts.url.is_none() || opts.init {
        progress(format!("creating pgbench tables at scale {}", opts.scale));
        rt.block_on(init_tables(&backend_url, opts.scale))?;
    }

    let bouncer: Option<Result<PgBouncer, String>> =
        opts.targets.contains(&Target::Pgbouncer).then(|| {
            let (pool_mode, pool_size) = match opts.pooling {
                Pooling::Session => ("session", max_clients),
                Pooling::Transaction { size } => ("transaction", size),
            };
            progress(format!("starting PgBouncer ({pool_mode} mode)"));
            PgBouncer::start(&PgBouncerOptions {
                backend: backend.clone(),
                pool_size,
                bin: opts.pgbouncer_bin.clone(),
                pool_mode,
            })
            .map_err(|err| err.to_string())
        });
    // Transaction mode: a config file with the pool and the one user clients log in as.
    let pool_config: Option<Result<(ScratchDir, PathBuf), String>> = match opts.pooling {
        Pooling::Session => None,
        Pooling::Transaction { size } => Some(pool_config_file(&backend, size)),
    };
    let duet: Option<Result<DuetProxy, String>> = opts.targets.contains(&Target::Duet).then(|| {
        progress("starting duet".into());
        let duet_bin = opts
            .duet_bin
            .clone()
            .or_else(crate::duet_process::duet_next_to_current_exe)
            .unwrap_or_else(|| PathBuf::from("duet"));
        let extra_args = match (opts.pooling, &pool_config) {
            (Pooling::Transaction { .. }, Some(Ok((_, path)))) => {
                vec!["--config".to_owned(), path.display().to_string()]
            }
            (Pooling::Transaction { .. }, Some(Err(err))) => return Err(err.clone()),
            _ => Vec::new(),
        };
        DuetProxy::start(&DuetProxyOptions {
            duet_bin,
            backend_url: backend_url.clone(),
            extra_args,
        })
        .map_err(|err| err.to_string())
    });
    // In transaction mode duet's clients log in to duet (with the server's password if it has
    // one): the URL carries it.
    let duet_url = |duet: &DuetProxy| match opts.pooling {
        Pooling::Session => duet.url(),
        Pooling::Transaction { .. } => duet.url_for(
            &backend.user,
            Some(backend.password.as_deref().unwrap_or(POOLED_PASSWORD)),
            &backend.dbname,
        ),
    };

    let rounds = opts.repeat.max(1) as usize;
    let mut scenarios = Vec::new();
    for scenario in &opts.scenarios {
        let mut runs: Vec<Vec<Result<Report, String>>> = vec![Vec::new(); opts.targets.len()];
        for round in 0..rounds {
            // Rotate the order each round: no target always runs first, or right after another.
            for k in 0..opts.targets.len() {
                let index = (k + round) % opts.targets.len();
                let target = opts.targets[index];
                let url = match target {
                    Target::Direct => Ok(backend.url()),
                    Target::Duet => target_url(&duet, duet_url, "duet"),
                    Target::Pgbouncer => target_url(&bouncer, PgBouncer::url, "pgbouncer"),
                };
                let outcome = url.and_then(|url| {
                    progress(format!(
                        "{}: {} (round {}/{rounds}) …",
                        scenario.title(),
                        target.name(),
                        round + 1
                    ));
                    let load = LoadOptions {
                        url,
                        clients: scenario.clients,
                        duration: opts.duration,
                        warmup: opts.warmup,
                        workload: scenario.workload,
                        protocol: scenario.protocol,
                        scale: None,
                    };
                    match opts.driver {
                        Driver::Builtin => rt.block_on(run_load(&load)).map_err(|e| e.to_string()),
                        Driver::Pgbench => run_pgbench(&load, opts.pgbench_bin.as_deref())
                            .map_err(|e| e.to_string()),
                    }
                });
                runs[index].push(outcome);
            }
        }
        let mut cells: Vec<CellResult> = opts
            .targets
            .iter()
            .zip(runs)
            .map(|(&target, runs)| cell_of(target, runs))
            .collect();
        relate_to_direct(&mut cells);
        let find = |t: Target| cells.iter().find(|c| c.target == t);
        let duet_vs_pgbouncer = match (find(Target::Duet), find(Target::Pgbouncer)) {
            (Some(d), Some(b)) => Verdict::of(d, b),
            _ => None,
        };
        scenarios.push(ScenarioResult {
            scenario: scenario.clone(),
            cells,
            duet_vs_pgbouncer,
        });
    }
    if let Some(Ok(duet)) = duet {
        progress("stopping duet".into());
        let _ = duet.shutdown(Duration::from_secs(5));
    }
    Ok(Comparison {
        driver: opts.driver,
        duration_secs: opts.duration.as_secs_f64(),
        warmup_secs: opts.warmup.as_secs_f64(),
        repeat: opts.repeat.max(1),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        server,
        scenarios,
    })
}

fn target_url<T>(
    launched: &Option<Result<T, String>>,
    url: impl Fn(&T) -> String,
    name: &str,
) -> Result<String, String> {
    match launched {
        Some(Ok(process)) => Ok(url(process)),
        Some(Err(err)) => Err(format!("{name} did not start: {err}")),
        None => Err(format!("{name} was not started")),
    }
}

/// Fills in ratios and added latency against the direct cell.
pub fn relate_to_direct(cells: &mut [CellResult]) {
    let Some(direct) = cells
        .iter()
        .find(|c| c.target == Target::Direct)
        .and_then(|c| c.report.clone())
    else {
        return;
    };
    for cell in cells.iter_mut() {
        let Some(report) = &cell.report else { continue };
        if direct.tps > 0.0 {
            cell.tps_ratio_to_direct = Some(report.tps / direct.tps);
        }
        if report.latency_us.count > 0 && direct.latency_us.count > 0 {
            cell.added_latency_us_mean = Some(report.latency_us.mean - direct.latency_us.mean);
            cell.added_latency_us_p50 =
                Some(report.latency_us.p50 as i64 - direct.latency_us.p50 as i64);
        }
    }
}

impl Comparison {
    /// The table for humans.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "duet-bench compare — driver {}, {:.0}s per cell after {:.0}s warm-up, {} round{} (order rotated), {}, {} CPU(s)",
            match self.driver {
                Driver::Builtin => "builtin",
                Driver::Pgbench => "pgbench",
            },
            self.duration_secs,
            self.warmup_secs,
            self.repeat,
            if self.repeat == 1 { "" } else { "s" },
            self.server,
            self.cpus
        );
        let _ = writeln!(
            out,
            "{:<36} {:<10} {:>10} {:>7} {:>8} {:>8} {:>8} {:>10} {:>16}",
            "scenario",
            "target",
            "tps",
            "spread",
            "p50 µs",
            "p99 µs",
            "failed",
            "vs direct",
            "added µs p50/avg"
        );
        for row in &self.scenarios {
            let mut title = row.scenario.title();
            for cell in &row.cells {
                match &cell.report {
                    Some(r) => {
                        let _ = writeln!(
                            out,
                            "{:<36} {:<10} {:>10.1} {:>7} {:>8} {:>8} {:>8} {:>10} {:>16}",
                            title,
                            cell.target.name(),
                            r.tps,
                            cell.tps_spread
                                .map(|x| format!("±{:.0}%", x * 50.0))
                                .unwrap_or_else(|| "-".into()),
                            r.latency_us.p50,
                            r.latency_us.p99,
                            r.failures,
                            cell.tps_ratio_to_direct
                                .map(|x| format!("{x:.2}×"))
                                .unwrap_or_else(|| "-".into()),
                            match (
                                cell.target,
                                cell.added_latency_us_p50,
                                cell.added_latency_us_mean
                            ) {
                                (Target::Direct, _, _) => "-".to_string(),
                                (_, Some(p50), Some(mean)) => format!("{p50:+}/{mean:+.0}"),
                                _ => "-".to_string(),
                            }
                        );
                    }
                    None => {
                        let error = cell.error.as_deref().unwrap_or("no result");
                        let first_line = error.lines().next().unwrap_or(error);
                        let _ = writeln!(
                            out,
                            "{:<36} {:<10} failed: {}",
                            title,
                            cell.target.name(),
                            first_line
                        );
                    }
                }
                title.clear();
            }
            if let Some(v) = &row.duet_vs_pgbouncer {
                let _ = writeln!(
                    out,
                    "{:<36} duet / PgBouncer {:.2}× (rounds {:.2}–{:.2}×, {} paired): {}",
                    "", v.tps_ratio, v.paired_min, v.paired_max, v.pairs, v.decision
                );
            }
            if let Some(reference) = &row.scenario.reference {
                let _ = writeln!(out, "{:<36} (issue's reference: {reference})", "");
            }
        }
        let _ = writeln!(
            out,
            "tps = the median run's; spread = ±half of (max − min) / median over the rounds; added µs = transaction latency minus direct's, median and mean (at 1 client: the proxy's cost per round trip); duet / PgBouncer is decided only when every round agrees"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::LatencySummary;

    fn report(tps: f64, mean: f64, p50: u64) -> Report {
        Report {
            driver: "builtin".into(),
            workload: Workload::SelectOnly,
            protocol: Protocol::Prepared,
            clients: 1,
            duration_secs: 10.0,
            transactions: (tps * 10.0) as u64,
            failures: 0,
            tps,
            latency_us: LatencySummary {
                count: 10,
                mean,
                p50,
                p99: p50 * 2,
                p999: p50 * 3,
                max: p50 * 4,
            },
            errors: Vec::new(),
        }
    }

    fn cell(target: Target, report: Option<Report>) -> CellResult {
        cell_of(
            target,
            vec![report.ok_or_else(|| "duet did not start: boom\nlog".to_string())],
        )
    }

    fn comparison() -> Comparison {
        let mut cells = vec![
            cell(Target::Direct, Some(report(1000.0, 100.0, 90))),
            cell(Target::Duet, None),
            cell(Target::Pgbouncer, Some(report(620.0, 158.0, 150))),
        ];
        relate_to_direct(&mut cells);
        Comparison {
            driver: Driver::Builtin,
            duration_secs: 15.0,
            warmup_secs: 2.0,
            repeat: 1,
            cpus: 2,
            server: "throwaway cluster on port 1".into(),
            scenarios: vec![ScenarioResult {
                scenario: reference_scenarios().remove(0),
                cells,
                duet_vs_pgbouncer: None,
            }],
        }
    }

    fn runs(tps: &[f64]) -> Vec<Result<Report, String>> {
        tps.iter()
            .map(|&t| {
                if t > 0.0 {
                    Ok(report(t, 100.0, 90))
                } else {
                    Err("round failed".to_string())
                }
            })
            .collect()
    }

    #[test]
    fn a_cell_reports_its_median_run_and_spread() {
        let c = cell_of(Target::Duet, runs(&[900.0, 1100.0, 1000.0]));
        assert_eq!(c.report.as_ref().map(|r| r.tps), Some(1000.0));
        assert_eq!(c.tps_runs, [Some(900.0), Some(1100.0), Some(1000.0)]);
        assert!((c.tps_spread.expect("spread") - 0.2).abs() < 1e-9);
        assert_eq!(c.error, None);
        let failed = cell_of(Target::Duet, runs(&[0.0, 1000.0]));
        assert_eq!(failed.report.as_ref().map(|r| r.tps), Some(1000.0));
        assert_eq!(failed.error.as_deref(), Some("round failed"));
        assert_eq!(failed.tps_runs, [None, Some(1000.0)]);
    }

    #[test]
    fn duet_against_pgbouncer_is_decided_only_when_every_round_agrees() {
        let bouncer = cell_of(Target::Pgbouncer, runs(&[1000.0, 1000.0, 1000.0]));
        let faster = cell_of(Target::Duet, runs(&[1050.0, 1010.0, 1100.0]));
        let v = Verdict::of(&faster, &bouncer).expect("verdict");
        assert_eq!(v.decision, "faster");
        assert_eq!((v.pairs, v.paired_min, v.paired_max), (3, 1.01, 1.1));
        assert!((v.tps_ratio - 1.05).abs() < 1e-9);
        let mixed = cell_of(Target::Duet, runs(&[1050.0, 990.0, 1100.0]));
        assert_eq!(
            Verdict::of(&mixed, &bouncer).expect("verdict").decision,
            "within noise"
        );
        let slower = cell_of(Target::Duet, runs(&[900.0, 950.0, 990.0]));
        assert_eq!(
            Verdict::of(&slower, &bouncer).expect("verdict").decision,
            "slower"
        );
        // One round proves nothing; a failed round is left out of the pairs.
        let once = cell_of(Target::Duet, runs(&[1200.0]));
        assert_eq!(
            Verdict::of(&once, &bouncer).expect("verdict").decision,
            "within noise"
        );
        let gap = cell_of(Target::Duet, runs(&[0.0, 1100.0, 1100.0]));
        assert_eq!(Verdict::of(&gap, &bouncer).expect("verdict").pairs, 2);
    }

    #[test]
    fn ratios_and_added_latency_are_relative_to_direct() {
        let c = comparison();
        let cells = &c.scenarios[0].cells;
        assert_eq!(cells[0].tps_ratio_to_direct, Some(1.0));
        assert_eq!(cells[1].tps_ratio_to_direct, None);
        assert!((cells[2].tps_ratio_to_direct.expect("ratio") - 0.62).abs() < 1e-9);
        assert_eq!(cells[2].added_latency_us_mean, Some(58.0));
        assert_eq!(cells[2].added_latency_us_p50, Some(60));
    }

    #[test]
    fn table_shows_every_target_and_failures_by_their_first_line() {
        let text = comparison().human();
        assert!(text.contains("select-only prepared, 16 clients"), "{text}");
        assert!(text.contains("0.62×"), "{text}");
        assert!(text.contains("+60/+58"), "{text}");
        assert!(
            text.contains("duet       failed: duet did not start: boom"),
            "{text}"
        );
        assert!(!text.contains("\nlog"), "{text}");
        assert!(
            text.contains("issue's reference: PgBouncer 0.62× direct"),
            "{text}"
        );
    }

    #[test]
    fn json_carries_ratios_and_errors() {
        let json = serde_json::to_value(comparison()).expect("json");
        let cells = &json["scenarios"][0]["cells"];
        assert_eq!(cells[1]["target"], "duet");
        assert!(cells[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("boom")));
        assert_eq!(cells[2]["added_latency_us_mean"], 58.0);
    }

    #[test]
    fn reference_scenarios_match_the_issue() {
        let titles: Vec<String> = reference_scenarios().iter().map(Scenario::title).collect();
        assert_eq!(
            titles,
            [
                "select-only prepared, 16 clients",
                "select-only simple, 16 clients",
                "read-write prepared, 8 clients",
                "select-only prepared, 1 client"
            ]
        );
    }
}
