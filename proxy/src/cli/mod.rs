//! The `duet` command line: one file per subcommand.
//!
//! Exit codes (everywhere): 0 ok, 1 refused or findings, 2 usage or runtime error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod admin;
pub mod check;
pub mod demo;
pub mod proxy;

/// duet: an online schema-change proxy for PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "duet", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy: forward client sessions to the backend.
    Proxy(proxy::Args),
    /// Talk to a running proxy over its admin socket: status, pause/resume, shutdown, and online
    /// migrations (migrate, plan, cutover, abort, revert, complete, copy throttles).
    Admin(admin::Args),
    /// Start a throwaway PostgreSQL, put duet in front of it, run a short load and report.
    Demo(demo::Args),
    /// Classify schema changes in migration files: locks, rewrites, scans, expand/contract.
    Check(check::Args),
}

/// Parses the command line, runs the subcommand and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Proxy(args) => proxy::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Check(args) => check::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("duet: error: {err:#}");
            if err.downcast_ref::<admin::RunAgain>().is_some() {
                ExitCode::from(admin::RUN_AGAIN_EXIT_CODE)
            } else {
                ExitCode::from(2)
            }
        }
    }
}
