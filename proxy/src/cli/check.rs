//! `duet check`. Not built yet.

use std::process::ExitCode;

/// Options of `duet check`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `duet check`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("duet check is not built yet")
}
