//! `duet admin`: talk to a running proxy over its admin socket.
//!
//! Exit codes: 0 done; 1 a pause that timed out (or was resumed before it completed); 2 the socket
//! could not be reached or the proxy refused the command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::admin::client;
use crate::admin::protocol::{Request, DEFAULT_PAUSE_TIMEOUT};
use crate::admin::render;
use crate::duration::parse_duration;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Readable text.
    Human,
    /// The reply's result as one JSON object.
    Json,
}

/// Options of `duet admin`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The proxy's admin socket.
    #[arg(long, value_name = "PATH", env = "DUET_ADMIN_SOCKET")]
    socket: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "human", global = true)]
    format: Format,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Uptime, traffic, latency and the list of sessions.
    Status,
    /// Hold new transactions at their boundary and wait until every session is idle.
    Pause {
        /// Give up (and release the pause) after this long.
        #[arg(long, value_name = "DURATION", default_value = "10s")]
        timeout: String,
    },
    /// Release a pause.
    Resume,
    /// Stop accepting clients; close the remaining ones at the end of the budget; exit.
    Shutdown {
        /// Budget for sessions to finish.
        #[arg(long, value_name = "DURATION", default_value = "30s")]
        timeout: String,
    },
}

/// Runs `duet admin`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let millis = |text: &str| -> anyhow::Result<u64> {
        let duration = parse_duration(text).map_err(|err| anyhow::anyhow!("--timeout: {err}"))?;
        Ok(duration.as_millis() as u64)
    };
    let (name, request, wait) = match &args.command {
        AdminCommand::Status => ("status", Request::Status, Duration::from_secs(10)),
        AdminCommand::Pause { timeout } => {
            let ms = millis(timeout)?;
            let wait =
                Duration::from_millis(ms).max(DEFAULT_PAUSE_TIMEOUT) + Duration::from_secs(10);
            (
                "pause",
                Request::Pause {
                    timeout_ms: Some(ms),
                },
                wait,
            )
        }
        AdminCommand::Resume => ("resume", Request::Resume, Duration::from_secs(10)),
        AdminCommand::Shutdown { timeout } => (
            "shutdown",
            Request::Shutdown {
                timeout_ms: Some(millis(timeout)?),
            },
            Duration::from_secs(10),
        ),
    };
    let reply = client::request(&args.socket, &request, wait)?;
    if !reply.ok {
        let message = reply
            .error
            .unwrap_or_else(|| "the proxy refused the command".to_owned());
        anyhow::bail!("{name}: {message}");
    }
    let result = reply.result.unwrap_or(serde_json::Value::Null);
    match args.format {
        Format::Json => println!("{result}"),
        Format::Human => print!("{}", render::human(name, &result)),
    }
    let pause_failed = name == "pause" && result["paused"].as_bool() != Some(true);
    Ok(if pause_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
