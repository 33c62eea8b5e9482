//! Side by side on one machine: direct to PostgreSQL, through duet, through PgBouncer.
//!
//! A proxy's cost only means something next to the same workload run directly and through the
//! incumbent (PgBouncer, session mode) against the same server in the same run. Each scenario runs
//! its targets back to back, so drift on a shared machine hits all of them alike. Whatever is
//! missing is started here (a throwaway cluster unless a URL is given, a duet proxy, a PgBouncer)
//! and stopped at the end. A target that cannot start is reported as such; the others still run.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::backend::Backend;
use crate::cluster::{Cluster, ClusterError, ClusterOptions};
use crate::duet_proxy::{DuetProxy, DuetProxyOptions};
use crate::load::{init_tables, run_load, LoadError, LoadOptions};
use crate::pgbench_driver::run_pgbench;
use crate::pgbouncer::{PgBouncer, PgBouncerOptions};
use crate::report::Report;
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
}

/// The outcome of one target in one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellResult {
    /// Where the clients connected.
    pub target: Target,
    /// What was measured (absent when the run failed).
    pub report: Option<Report>,
    /// Why there is no report.
    pub error: Option<String>,
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
            progress("starting PgBouncer (session mode)".into());
            PgBouncer::start(&PgBouncerOptions {
                backend: backend.clone(),
                pool_size: max_clients,
                bin: opts.pgbouncer_bin.clone(),
            })
            .map_err(|err| err.to_string())
        });
    let duet: Option<Result<DuetProxy, String>> = opts.targets.contains(&Target::Duet).then(|| {
        progress("starting duet".into());
        let duet_bin = opts
            .duet_bin
            .clone()
            .or_else(crate::duet_proxy::duet_next_to_current_exe)
            .unwrap_or_else(|| PathBuf::from("duet"));
        DuetProxy::start(&DuetProxyOptions {
            duet_bin,
            backend_url: backend_url.clone(),
            extra_args: Vec::new(),
        })
        .map_err(|err| err.to_string())
    });

    let mut scenarios = Vec::new();
    for scenario in &opts.scenarios {
        let mut cells = Vec::new();
        for &target in &opts.targets {
            let url = match target {
                Target::Direct => Ok(backend.url()),
                Target::Duet => target_url(&duet, DuetProxy::url, "duet"),
                Target::Pgbouncer => target_url(&bouncer, PgBouncer::url, "pgbouncer"),
            };
            let outcome = url.and_then(|url| {
                progress(format!("{}: {} …", scenario.title(), target.name()));
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
                    Driver::Pgbench => {
                        run_pgbench(&load, opts.pgbench_bin.as_deref()).map_err(|e| e.to_string())
                    }
                }
            });
            cells.push(match outcome {
                Ok(report) => CellResult {
                    target,
                    report: Some(report),
                    error: None,
                    tps_ratio_to_direct: None,
                    added_latency_us_mean: None,
                    added_latency_us_p50: None,
                },
                Err(error) => CellResult {
                    target,
                    report: None,
                    error: Some(error),
                    tps_ratio_to_direct: None,
                    added_latency_us_mean: None,
                    added_latency_us_p50: None,
                },
            });
        }
        relate_to_direct(&mut cells);
        scenarios.push(ScenarioResult {
            scenario: scenario.clone(),
            cells,
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
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        server,
        scenarios,
    })
}

fn target_url<T>(
    launched: &Option<Result<T, String>>,
    url: fn(&T) -> String,
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
            "duet-bench compare — driver {}, {:.0}s per cell after {:.0}s warm-up, {}, {} CPU(s)",
            match self.driver {
                Driver::Builtin => "builtin",
                Driver::Pgbench => "pgbench",
            },
            self.duration_secs,
            self.warmup_secs,
            self.server,
            self.cpus
        );
        let _ = writeln!(
            out,
            "{:<36} {:<10} {:>10} {:>8} {:>8} {:>8} {:>10} {:>16}",
            "scenario",
            "target",
            "tps",
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
                            "{:<36} {:<10} {:>10.1} {:>8} {:>8} {:>8} {:>10} {:>16}",
                            title,
                            cell.target.name(),
                            r.tps,
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
            if let Some(reference) = &row.scenario.reference {
                let _ = writeln!(out, "{:<36} (issue's reference: {reference})", "");
            }
        }
        let _ = writeln!(
            out,
            "added µs = transaction latency minus direct's, median and mean (at 1 client: the proxy's cost per round trip)"
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
        CellResult {
            target,
            error: report
                .is_none()
                .then(|| "duet did not start: boom\nlog".to_string()),
            report,
            tps_ratio_to_direct: None,
            added_latency_us_mean: None,
            added_latency_us_p50: None,
        }
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
            cpus: 2,
            server: "throwaway cluster on port 1".into(),
            scenarios: vec![ScenarioResult {
                scenario: reference_scenarios().remove(0),
                cells,
            }],
        }
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
