//! `duet-bench`: the command line of duet's load benchmark. A thin shell over the `duet_bench`
//! library: parse flags, run, print, map the outcome to an exit code (0 ok, 1 failures seen,
//! 2 usage or runtime error).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use duet_bench::compare::{
    reference_scenarios, run_compare, CompareOptions, Driver, Pooling, Target,
};
use duet_bench::connections::{run_connections, ConnectionsOptions};
use duet_bench::duet_process::duet_next_to_current_exe;
use duet_bench::duration_arg::parse_duration;
use duet_bench::load::{init_tables, run_load, LoadOptions};
use duet_bench::migrate::{run_migrate, MigrateOptions};
use duet_bench::workload::{Protocol, Workload};

/// duet's load benchmark: pgbench's workloads over tokio-postgres, with hdrhistogram latency.
#[derive(Debug, Parser)]
#[command(name = "duet-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one workload against one URL (a server, duet, or any proxy).
    Run(RunArgs),
    /// Direct vs duet vs PgBouncer on this machine, same server, same run.
    Compare(CompareArgs),
    /// Hold N client connections open through duet; report its memory and that all worked.
    Connections(ConnectionsArgs),
    /// An int → bigint primary-key migration through duet under load: throughput timeline,
    /// latency per phase, the flip's stall, errors, copier and dual-write costs.
    Migrate(MigrateArgs),
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// An existing server to use (default: a throwaway cluster started for the run). The table
    /// public.duet_bench_migrate is (re)created there.
    #[arg(long)]
    url: Option<String>,
    /// Rows in the table (default 1000000; 200000 with --quick).
    #[arg(long)]
    rows: Option<i64>,
    /// Smaller defaults: 200000 rows, 3 s windows.
    #[arg(long)]
    quick: bool,
    /// Client connections through duet.
    #[arg(long, default_value_t = 16)]
    clients: u32,
    /// Measured window before the migration and after it completes (default 10s; 3s with --quick).
    #[arg(long, value_parser = parse_duration)]
    window: Option<Duration>,
    /// Longest wait for the migration to reach ready.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    ready_timeout: Duration,
    /// The measured migration's `nice_ratio` (0: the copier and verifier never rest; default:
    /// duet's `[migration] nice_ratio`).
    #[arg(long)]
    nice_ratio: Option<f64>,
    /// The measured migration's `max_latency_factor` (0: the copier and verifier do not watch
    /// the clients' latency; default: duet's `[migration] max_latency_factor`).
    #[arg(long)]
    max_latency_factor: Option<f64>,
    /// The measured migration's target chunk time (default: duet's `[migration] chunk_time`).
    #[arg(long, value_parser = parse_duration)]
    chunk_time: Option<Duration>,
    /// The measured migration's `latency_max_pause`: the longest the clients' latency keeps the
    /// copier from its next chunk (default: duet's `[migration] latency_max_pause`).
    #[arg(long, value_parser = parse_duration)]
    latency_max_pause: Option<Duration>,
    /// Keep the measured migration's copy paused this long after it starts (dual-writes on, no
    /// copier): the report's `latency_copy_held_us` is what the dual-writes alone cost.
    #[arg(long, value_parser = parse_duration)]
    copy_held_for: Option<Duration>,
    /// The duet binary (default: next to duet-bench in the same target directory).
    #[arg(long)]
    duet_bin: Option<PathBuf>,
    /// duet processes in front of the server, acting as one fleet: clients are spread over
    /// them, the flip holds them all.
    #[arg(long, default_value_t = 1)]
    proxies: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    /// An existing server to use (default: a throwaway cluster started for the run).
    #[arg(long)]
    url: Option<String>,
    /// (Re)create the pgbench tables on --url's server (always done on a throwaway cluster).
    #[arg(long)]
    init: bool,
    /// pgbench scale for the tables.
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// The duet binary (default: next to duet-bench in the same target directory).
    #[arg(long)]
    duet_bin: Option<PathBuf>,
    /// The pgbouncer binary (default: PATH, then /usr/sbin/pgbouncer).
    #[arg(long)]
    pgbouncer_bin: Option<PathBuf>,
    /// The pgbench binary for --driver pgbench (default: PATH, then the server binaries).
    #[arg(long)]
    pgbench_bin: Option<PathBuf>,
    /// Which client drives the load.
    #[arg(long, value_enum, default_value_t = Driver::Builtin)]
    driver: Driver,
    /// Measured window per cell.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up per cell.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Targets to compare (comma-separated); direct is the baseline for ratios.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Target::Direct, Target::Duet, Target::Pgbouncer])]
    targets: Vec<Target>,
    /// Rounds per scenario: each runs every target once, the order rotated each round; cells
    /// report the median run and the spread, and duet vs PgBouncer is decided only when every
    /// round agrees.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// How duet and PgBouncer pool server connections: `session` (one per client) or
    /// `transaction` (--pool-size connections shared by all clients, one transaction at a time).
    #[arg(long, value_enum, default_value_t = PoolModeArg::Session)]
    pool_mode: PoolModeArg,
    /// Server connections per pool in transaction mode.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pool_size: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// `--pool-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PoolModeArg {
    /// One server connection per client.
    Session,
    /// Server connections shared per transaction.
    Transaction,
}

#[derive(Debug, clap::Args)]
struct ConnectionsArgs {
    /// Client connections to hold open at once.
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Transaction mode with this many pooled server connections (default: session mode, one
    /// server connection per client).
    #[arg(long)]
    pool_size: Option<u32>,
    /// The duet binary (default: next to duet-bench in the same target directory).
    #[arg(long)]
    duet_bin: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// libpq-style URL, e.g. postgres://postgres@127.0.0.1:5432/postgres
    #[arg(long, env = "DUET_BENCH_URL")]
    url: String,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Measured window (500ms, 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured run before the window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// pgbench script to run.
    #[arg(long, value_enum, default_value_t = Workload::SelectOnly)]
    workload: Workload,
    /// simple = one Query message with literal values; prepared = extended protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Prepared)]
    protocol: Protocol,
    /// Scale of the pgbench tables for --init (100000 accounts per unit). Without --init the scale
    /// is read from the tables, like pgbench does.
    #[arg(long)]
    scale: Option<u32>,
    /// (Re)create the pgbench tables first.
    #[arg(long)]
    init: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run(args),
        Command::Compare(args) => compare(args),
        Command::Connections(args) => connections(args),
        Command::Migrate(args) => migrate(args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("duet-bench: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let opts = LoadOptions {
        url: args.url.clone(),
        clients: args.clients,
        duration: args.duration,
        warmup: args.warmup,
        workload: args.workload,
        protocol: args.protocol,
        scale: None,
    };
    let report = rt.block_on(async {
        if args.init {
            let scale = args.scale.unwrap_or(1);
            eprintln!("creating pgbench tables at scale {scale}…");
            init_tables(&args.url, scale).await?;
        } else if args.scale.is_some() {
            eprintln!(
                "note: --scale only applies with --init; using the scale of the existing tables"
            );
        }
        anyhow::Ok(run_load(&opts).await?)
    })?;
    match args.format {
        Format::Human => print!("{}", report.human()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress(line: String) {
    eprintln!("· {line}");
}

fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let opts = CompareOptions {
        url: args.url,
        init: args.init,
        scale: args.scale,
        duet_bin: args.duet_bin,
        pgbouncer_bin: args.pgbouncer_bin,
        pgbench_bin: args.pgbench_bin,
        driver: args.driver,
        duration: args.duration,
        warmup: args.warmup,
        scenarios: reference_scenarios(),
        targets: args.targets,
        repeat: args.repeat,
        pooling: match args.pool_mode {
            PoolModeArg::Session => Pooling::Session,
            PoolModeArg::Transaction => Pooling::Transaction {
                size: args.pool_size,
            },
        },
    };
    let comparison = run_compare(&opts, &rt, &mut progress)?;
    match args.format {
        Format::Human => print!("{}", comparison.human()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&comparison)?),
    }
    let incomplete = comparison
        .scenarios
        .iter()
        .flat_map(|s| &s.cells)
        .any(|c| c.report.is_none() || c.report.as_ref().is_some_and(|r| r.failures > 0));
    Ok(if incomplete {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn connections(args: ConnectionsArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let duet_bin = args
        .duet_bin
        .or_else(duet_next_to_current_exe)
        .ok_or_else(|| anyhow::anyhow!("no duet binary next to duet-bench: build it (`cargo build -p duet-proxy`) or pass --duet-bin"))?;
    let report = run_connections(
        &ConnectionsOptions {
            count: args.count,
            duet_bin,
            pool_size: args.pool_size,
        },
        &rt,
        &mut progress,
    )?;
    match args.format {
        Format::Human => print!("{}", report.human()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let duet_bin = args
        .duet_bin
        .or_else(duet_next_to_current_exe)
        .ok_or_else(|| anyhow::anyhow!("no duet binary next to duet-bench: build it (`cargo build -p duet-proxy`) or pass --duet-bin"))?;
    let opts = MigrateOptions {
        url: args.url,
        rows: args
            .rows
            .unwrap_or(if args.quick { 200_000 } else { 1_000_000 }),
        clients: args.clients,
        window: args
            .window
            .unwrap_or(Duration::from_secs(if args.quick { 3 } else { 10 })),
        duet_bin,
        ready_timeout: args.ready_timeout,
        nice_ratio: args.nice_ratio,
        max_latency_factor: args.max_latency_factor,
        chunk_time: args.chunk_time,
        latency_max_pause: args.latency_max_pause,
        copy_held_for: args.copy_held_for,
        proxies: args.proxies,
    };
    let report = run_migrate(&opts, &rt, &mut progress)?;
    match args.format {
        Format::Human => print!("{}", report.human()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(
        if report.client_errors > 0 || report.migration_error.is_some() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}
