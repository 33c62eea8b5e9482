//! The `pgbench` driver: the same workloads run by the real pgbench binary.
//!
//! The built-in driver could flatter or penalise a proxy through its own client code; pgbench is
//! the tool PgBouncer's and everyone's numbers are quoted with. It runs with a per-transaction log
//! (`-l`), from which the latency percentiles are computed (pgbench itself prints only the
//! average); its summary gives transactions, failures and tps. Clients that pgbench aborts on an
//! error are counted as failures, with pgbench's message.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::launch::{io_error, LaunchError};
use crate::load::LoadOptions;
use crate::report::{new_latency_histogram, top_errors, LatencySummary, Report};
use crate::scratch::ScratchDir;
use crate::workload::{Protocol, Workload};

/// What pgbench's summary said.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PgbenchSummary {
    /// "number of transactions actually processed".
    pub transactions: u64,
    /// "number of failed transactions" (0 when the line is absent, as before PostgreSQL 15).
    pub failed: u64,
    /// "tps = … (without initial connection time)".
    pub tps: f64,
    /// "duration: N s".
    pub duration_secs: f64,
}

/// Parses pgbench's summary output; `None` when it has no tps line (pgbench did not run).
pub fn parse_summary(stdout: &str) -> Option<PgbenchSummary> {
    let mut summary = PgbenchSummary::default();
    let mut saw_tps = false;
    for line in stdout.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("number of transactions actually processed:") {
            summary.transactions = first_number(rest)? as u64;
        } else if let Some(rest) = line.strip_prefix("number of failed transactions:") {
            summary.failed = first_number(rest)? as u64;
        } else if let Some(rest) = line.strip_prefix("duration:") {
            summary.duration_secs = first_number(rest)?;
        } else if let Some(rest) = line.strip_prefix("tps =") {
            if !saw_tps || rest.contains("without initial connection time") {
                summary.tps = first_number(rest)?;
                saw_tps = true;
            }
        }
    }
    saw_tps.then_some(summary)
}

fn first_number(text: &str) -> Option<f64> {
    // "26462/26462" (with -t) or "0 (0.000%)": the first token is the number.
    let token = text.split_whitespace().next()?;
    token.split('/').next()?.parse().ok()
}

/// Adds the latencies (µs) of a pgbench per-transaction log to `histogram`; returns how many lines
/// were not successful transactions (failed or skipped).
pub fn add_log_latencies(log: &str, histogram: &mut Histogram<u64>) -> u64 {
    let mut unsuccessful = 0;
    for line in log.lines() {
        // client_id transaction_no time script_no time_epoch time_us [...]
        match line.split_whitespace().nth(2).map(str::parse::<u64>) {
            Some(Ok(micros)) => histogram.saturating_record(micros.max(1)),
            Some(Err(_)) => unsuccessful += 1,
            None => {}
        }
    }
    unsuccessful
}

/// pgbench's messages about clients it aborted ("client 3 script 0 aborted in command 4 …").
pub fn aborted_client_errors(stderr: &str) -> HashMap<String, u64> {
    let mut errors = HashMap::new();
    let mut lines = stderr.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.contains(" aborted in command ") {
            continue;
        }
        // The server's message follows the colon, sometimes on the next line.
        let message = match line.split_once("): ").or_else(|| line.split_once(": ")) {
            Some((_, msg)) if !msg.trim().is_empty() => msg.trim().to_string(),
            _ => lines
                .peek()
                .map(|l| l.trim().to_string())
                .unwrap_or_default(),
        };
        *errors
            .entry(format!("pgbench aborted a client: {message}"))
            .or_default() += 1;
    }
    errors
}

/// The pgbench binary: PATH, else the server binary directory.
pub fn find_pgbench() -> Option<PathBuf> {
    crate::pgbouncer::find_on_path("pgbench").or_else(|| {
        crate::cluster::find_server_binaries()
            .map(|dir| dir.join("pgbench"))
            .filter(|p| p.is_file())
    })
}

/// Runs `opts` with pgbench (a warm-up run first, if any) and reports like the built-in driver.
pub fn run_pgbench(opts: &LoadOptions, pgbench: Option<&Path>) -> Result<Report, LaunchError> {
    let bin = match pgbench {
        Some(path) => path.to_path_buf(),
        None => find_pgbench().ok_or_else(|| LaunchError::NotFound {
            program: "pgbench",
            path: PathBuf::from("pgbench"),
            hint: "install it (`apt-get install postgresql-contrib` or postgresql-client) or use --driver builtin".into(),
        })?,
    };
    if opts.warmup >= Duration::from_millis(500) {
        run_once(&bin, opts, whole_seconds(opts.warmup), None)?;
    }
    let logs = ScratchDir::create("pgbench").map_err(io_error("creating a temp dir"))?;
    let (summary, stderr) = run_once(&bin, opts, whole_seconds(opts.duration), Some(logs.path()))?;

    let mut histogram = new_latency_histogram();
    let entries = std::fs::read_dir(logs.path()).map_err(io_error("reading pgbench logs"))?;
    for entry in entries.filter_map(Result::ok) {
        let text =
            std::fs::read_to_string(entry.path()).map_err(io_error("reading a pgbench log"))?;
        add_log_latencies(&text, &mut histogram);
    }
    let aborted = aborted_client_errors(&stderr);
    let aborted_count: u64 = aborted.values().sum();
    let mut errors = aborted;
    if summary.failed > 0 {
        errors.insert(
            "failed transactions (see pgbench's output)".into(),
            summary.failed,
        );
    }
    Ok(Report {
        driver: "pgbench".into(),
        workload: opts.workload,
        protocol: opts.protocol,
        clients: opts.clients,
        duration_secs: summary.duration_secs,
        transactions: summary.transactions,
        failures: summary.failed + aborted_count,
        tps: summary.tps,
        latency_us: LatencySummary::from_histogram(&histogram),
        errors: top_errors(errors, 10),
    })
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs_f64().ceil().max(1.0) as u64
}

/// The pgbench command line for `opts` (without the log options).
pub fn pgbench_args(opts: &LoadOptions, seconds: u64) -> Vec<String> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .min(opts.clients)
        .max(1);
    let mut args = vec![
        "--no-vacuum".to_string(),
        format!("--client={}", opts.clients),
        format!("--jobs={threads}"),
        format!("--time={seconds}"),
        format!(
            "--protocol={}",
            match opts.protocol {
                Protocol::Simple => "simple",
                Protocol::Prepared => "prepared",
            }
        ),
    ];
    if opts.workload == Workload::SelectOnly {
        args.push("--select-only".into());
    }
    args
}

fn run_once(
    bin: &Path,
    opts: &LoadOptions,
    seconds: u64,
    log_dir: Option<&Path>,
) -> Result<(PgbenchSummary, String), LaunchError> {
    let mut cmd = Command::new(bin);
    cmd.args(pgbench_args(opts, seconds));
    if let Some(dir) = log_dir {
        cmd.arg("--log").arg(format!(
            "--log-prefix={}",
            dir.join("pgbench_log").display()
        ));
    }
    let output = cmd
        .arg(&opts.url)
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(format!("running {}", bin.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    match parse_summary(&stdout) {
        Some(summary) => Ok((summary, stderr)),
        // Every client aborted before a transaction completed, so pgbench printed no summary:
        // that is a run whose statements all failed, not a run that did not happen.
        None if !aborted_client_errors(&stderr).is_empty() => Ok((
            PgbenchSummary {
                duration_secs: seconds as f64,
                ..PgbenchSummary::default()
            },
            stderr,
        )),
        None => Err(LaunchError::Command {
            program: "pgbench",
            message: format!(
                "exited {} without results: {}",
                output.status,
                stderr
                    .trim()
                    .replace(&opts.url, &crate::load::redact(&opts.url))
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG15_OUTPUT: &str = "pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 1
query mode: prepared
number of clients: 2
number of threads: 2
maximum number of tries: 1
duration: 1 s
number of transactions actually processed: 26462
number of failed transactions: 0 (0.000%)
latency average = 0.075 ms
initial connection time = 11.196 ms
tps = 26610.218919 (without initial connection time)
";

    #[test]
    fn parses_the_pg15_summary() {
        let s = parse_summary(PG15_OUTPUT).expect("summary");
        assert_eq!(s.transactions, 26462);
        assert_eq!(s.failed, 0);
        assert_eq!(s.duration_secs, 1.0);
        assert!((s.tps - 26610.218919).abs() < 1e-6);
    }

    #[test]
    fn older_pgbench_with_two_tps_lines_uses_the_one_without_connections() {
        let old = "duration: 10 s\nnumber of transactions actually processed: 100\n\
                   tps = 9.5 (including connections establishing)\n\
                   tps = 10.0 (excluding connections establishing)\n";
        let s = parse_summary(old).expect("summary");
        assert_eq!(s.failed, 0);
        assert_eq!(s.tps, 9.5, "first line when neither says 'without'");
        assert!(parse_summary("pgbench: error: connection failed\n").is_none());
    }

    #[test]
    fn log_lines_become_latencies_and_failures_are_counted() {
        let mut h = new_latency_histogram();
        let log = "0 1 23338 0 1795486154 70537\n0 2 285 0 1795486154 70846\n\
                   1 1 failed 0 1795486154 70412\n1 2 skipped 0 1795486154 70500\n\n";
        assert_eq!(add_log_latencies(log, &mut h), 2);
        assert_eq!(h.len(), 2);
        assert_eq!(h.max(), h.highest_equivalent(23338));
        assert_eq!(h.min(), h.lowest_equivalent(285));
    }

    #[test]
    fn aborted_clients_are_reported_with_the_server_message() {
        let stderr = "pgbench: error: client 1 script 0 aborted in command 4 query 0: \
                      ERROR:  new row for relation \"pgbench_history\" violates check constraint\n\
                      pgbench: error: Run was aborted; the above results are incomplete.\n";
        let errors = aborted_client_errors(stderr);
        assert_eq!(errors.values().sum::<u64>(), 1);
        let message = errors.keys().next().expect("one message");
        assert!(message.contains("violates check constraint"), "{message}");
    }

    #[test]
    fn command_line_maps_workload_and_protocol() {
        let opts = LoadOptions {
            url: "postgres://x".into(),
            clients: 16,
            duration: Duration::from_secs(15),
            warmup: Duration::ZERO,
            workload: Workload::SelectOnly,
            protocol: Protocol::Simple,
            scale: None,
        };
        let args = pgbench_args(&opts, 15);
        assert!(args.contains(&"--select-only".to_string()));
        assert!(args.contains(&"--protocol=simple".to_string()));
        assert!(args.contains(&"--client=16".to_string()));
        assert!(args.contains(&"--time=15".to_string()));
    }
}
