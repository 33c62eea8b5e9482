//! `duet-bench`: the command line of duet's load benchmark. A thin shell over the `duet_bench`
//! library: parse flags, run, print, map the outcome to an exit code (0 ok, 1 failures seen,
//! 2 usage or runtime error).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use duet_bench::duration_arg::parse_duration;
use duet_bench::load::{init_tables, run_load, LoadOptions};
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
