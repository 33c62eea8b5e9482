//! `duet demo`. Not built yet.

use std::process::ExitCode;

/// Options of `duet demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `duet demo`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("duet demo is not built yet")
}
