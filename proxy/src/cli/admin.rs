//! `duet admin`: talk to a running proxy over its admin socket.
//!
//! Exit codes: 0 done; 1 a pause that timed out (or was resumed before it completed); 2 the socket
//! could not be reached or the proxy refused the command (a refused cutover, a migration that
//! failed while `migrate --wait` watched it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use duet_shadow::migrate::Phase;

use crate::admin::client;
use crate::admin::protocol::{CopySettings, Request, Selector, DEFAULT_PAUSE_TIMEOUT};
use crate::admin::render;
use crate::admin::reply::{self, PauseReply, StartedReply, StatusReport};
use crate::duration::{parse_duration, whole_micros, whole_millis};

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
    /// Plan, record and start an online migration (expand, copy, verify; then `cutover`).
    Migrate {
        #[command(flatten)]
        source: MigrationSource,
        /// Cut over as soon as the migration is ready.
        #[arg(long)]
        auto_cutover: bool,
        /// Print progress until ready, completed or failed (exit 2 on failure).
        #[arg(long)]
        wait: bool,
    },
    /// Show the plan of a migration without running it.
    Plan {
        #[command(flatten)]
        source: MigrationSource,
    },
    /// Pause the copy after its current chunk.
    PauseCopy {
        #[command(flatten)]
        target: Target,
    },
    /// Resume a paused copy.
    ResumeCopy {
        #[command(flatten)]
        target: Target,
    },
    /// Run the step that stopped a migration (its expand, copy or verification) again, as a
    /// restart of duet would, without dropping a client. `status` shows the work going on, or
    /// the new error if it stops again.
    Retry {
        #[command(flatten)]
        target: Target,
    },
    /// Change a migration's run settings: `chunk-time=50ms`, `max-replication-lag=5s`,
    /// `max-active-backends=40` (0: no limit), `nice-ratio=1` (while the application is busy, rest
    /// that many times each chunk's time; 0: never), `max-latency-factor=1.5` (hold the copy while
    /// the clients' p99 is above that many times the baseline; 0: not watched),
    /// `latency-floor=2ms`, `latency-max-pause=2s`, `latency-baseline=3ms` (or `auto`: measure it
    /// again), `auto-cutover=on|off`. They are stored with the migration and survive a restart of
    /// duet.
    Set {
        /// SETTING=VALUE pairs.
        #[arg(value_name = "SETTING=VALUE", required = true)]
        settings: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Flip a ready migration to the new shape (clients are held at most the budget).
    Cutover {
        /// How long to wait for sessions to reach a transaction boundary [default: [migration] flip_budget].
        #[arg(long, value_name = "DURATION")]
        budget: Option<String>,
        /// Accepted for older scripts; nothing needs forcing: the safety net mirrors the writes of
        /// connections that bypass duet.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Abandon a migration before its cutover; drops the shadow.
    Abort {
        #[command(flatten)]
        target: Target,
    },
    /// Go back to the old shape after a cutover.
    Revert {
        /// Accepted for older scripts; nothing needs forcing: every write since the flip was
        /// mirrored into the old shape.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Finish a migration after its cutover: drop the old shape.
    Complete {
        /// Complete even though statements written for the old shape still arrive.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// What to migrate: a pgroll file or SQL.
#[derive(Debug, Clone, clap::Args)]
struct MigrationSource {
    /// A pgroll-format migration file (YAML or JSON), read here and sent to the proxy.
    #[arg(
        value_name = "FILE",
        conflicts_with = "sql",
        required_unless_present = "sql"
    )]
    file: Option<PathBuf>,
    /// SQL statements (`ALTER TABLE …`) instead of a file.
    #[arg(long, value_name = "SQL")]
    sql: Option<String>,
    /// Let a type change of one column without indexes or constraints use a shadow column
    /// (copies one column, not the table) although clients then see `c__duet` while it runs and
    /// the column ends up last, so positional INSERT and COPY change meaning.
    #[arg(long)]
    shadow_column: bool,
    /// Leave the integer columns of other tables that reference a widened key as they are (by
    /// default they are widened with it, in the same migration: a referencing column narrower
    /// than the key overflows when the key does). Leaving them copies fewer tables now; `plan`
    /// names each with the migration to run later.
    #[arg(long)]
    keep_referencing_types: bool,
}

impl MigrationSource {
    fn plan_input(&self) -> anyhow::Result<duet_shadow::plan::PlanInput> {
        match (&self.file, &self.sql) {
            (_, Some(sql)) => Ok(duet_shadow::plan::PlanInput::Sql {
                sql: sql.clone(),
                shadow_column: self.shadow_column,
            }),
            (Some(path), None) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
                Ok(duet_shadow::plan::PlanInput::Pgroll {
                    text,
                    file_name: path.display().to_string(),
                    shadow_column: self.shadow_column,
                })
            }
            (None, None) => anyhow::bail!("give a migration FILE or --sql SQL"),
        }
    }
}

/// Which migration (default: the only active one).
#[derive(Debug, Clone, clap::Args)]
struct Target {
    /// The table under migration (`schema.name` or `name`).
    #[arg(long, value_name = "TABLE", conflicts_with = "id")]
    table: Option<String>,
    /// The migration id.
    #[arg(long, value_name = "N")]
    id: Option<i64>,
}

impl Target {
    fn selector(&self) -> Selector {
        Selector {
            table: self.table.clone(),
            id: self.id,
        }
    }
}

/// How long migration commands may take: abort, revert and complete wait for locks and retries.
const MIGRATION_WAIT: Duration = Duration::from_secs(600);

fn copy_settings(pairs: &[String]) -> anyhow::Result<CopySettings> {
    let mut settings = CopySettings::default();
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("{pair:?}: write SETTING=VALUE, e.g. chunk-time=50ms")
        })?;
        match key.trim() {
            "chunk-time" | "chunk_time" => {
                let d = parse_duration(value.trim())
                    .map_err(|err| anyhow::anyhow!("chunk-time: {err}"))?;
                settings.chunk_time_ms = Some(d.as_millis() as u64);
            }
            "max-replication-lag" | "max_replication_lag" => {
                let d = parse_duration(value.trim())
                    .map_err(|err| anyhow::anyhow!("max-replication-lag: {err}"))?;
                settings.max_replication_lag_ms = Some(d.as_millis() as u64);
            }
            "max-active-backends" | "max_active_backends" => {
                let n = value.trim().parse::<u32>().map_err(|_| {
                    anyhow::anyhow!(
                        "max-active-backends: expected a number of backends (0 = no limit), got {value:?}"
                    )
                })?;
                settings.max_active_backends = Some(n);
            }
            "nice-ratio" | "nice_ratio" => {
                let ratio = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && (0.0..=100.0).contains(r))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "nice-ratio: expected a number from 0 (never rest) to 100, got {value:?}"
                        )
                    })?;
                settings.nice_ratio = Some(ratio);
            }
            "max-latency-factor" | "max_latency_factor" => {
                let factor = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| crate::config::valid_latency_factor(*f))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "max-latency-factor: expected 0 (client latency not watched) or a number from 1 to 1000, got {value:?}"
                        )
                    })?;
                settings.max_latency_factor = Some(factor);
            }
            "latency-floor" | "latency_floor" => {
                let d = parse_duration(value.trim())
                    .map_err(|err| anyhow::anyhow!("latency-floor: {err}"))?;
                settings.latency_floor_us = Some(whole_micros(d));
            }
            "latency-max-pause" | "latency_max_pause" => {
                let d = parse_duration(value.trim())
                    .ok()
                    .filter(|d| d.as_millis() > 0)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "latency-max-pause: expected a duration of at least 1ms, e.g. 2s, got {value:?}"
                        )
                    })?;
                settings.latency_max_pause_ms = Some(whole_millis(d));
            }
            "latency-baseline" | "latency_baseline" => {
                settings.latency_baseline_us = Some(match value.trim() {
                    "auto" => 0,
                    text => {
                        let d = parse_duration(text)
                            .ok()
                            .filter(|d| d.as_micros() > 0)
                            .ok_or_else(|| {
                                anyhow::anyhow!(
                                    "latency-baseline: expected a duration such as 3ms, or auto to measure it again, got {value:?}"
                                )
                            })?;
                        whole_micros(d)
                    }
                });
            }
            "auto-cutover" | "auto_cutover" => {
                settings.auto_cutover = Some(match value.trim() {
                    "on" | "true" | "yes" | "1" => true,
                    "off" | "false" | "no" | "0" => false,
                    other => anyhow::bail!("auto-cutover: expected on or off, got {other:?}"),
                });
            }
            other => anyhow::bail!(
                "unknown setting {other:?}; known: chunk-time, max-replication-lag, max-active-backends, nice-ratio, max-latency-factor, latency-floor, latency-max-pause, latency-baseline, auto-cutover"
            ),
        }
    }
    Ok(settings)
}

/// The request a command line asks for, its name and how long to wait for the reply.
fn build(args: &Args) -> anyhow::Result<(&'static str, Request, Duration)> {
    let millis = |text: &str| -> anyhow::Result<u64> {
        let duration = parse_duration(text).map_err(|err| anyhow::anyhow!("--timeout: {err}"))?;
        Ok(duration.as_millis() as u64)
    };
    Ok(match &args.command {
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
        AdminCommand::Migrate {
            source,
            auto_cutover,
            ..
        } => (
            "migrate",
            Request::Migrate {
                input: source.plan_input()?,
                auto_cutover: *auto_cutover,
                keep_referencing_types: source.keep_referencing_types,
            },
            MIGRATION_WAIT,
        ),
        AdminCommand::Plan { source } => (
            "plan",
            Request::Plan {
                input: source.plan_input()?,
                keep_referencing_types: source.keep_referencing_types,
            },
            MIGRATION_WAIT,
        ),
        AdminCommand::PauseCopy { target } => (
            "pause_copy",
            Request::PauseCopy {
                target: target.selector(),
            },
            Duration::from_secs(10),
        ),
        AdminCommand::ResumeCopy { target } => (
            "resume_copy",
            Request::ResumeCopy {
                target: target.selector(),
            },
            Duration::from_secs(10),
        ),
        AdminCommand::Retry { target } => (
            "retry",
            Request::Retry {
                target: target.selector(),
            },
            Duration::from_secs(10),
        ),
        AdminCommand::Set { settings, target } => (
            "set",
            Request::Set {
                settings: copy_settings(settings)?,
                target: target.selector(),
            },
            Duration::from_secs(10),
        ),
        AdminCommand::Cutover {
            budget,
            force,
            target,
        } => (
            "cutover",
            Request::Cutover {
                budget_ms: budget
                    .as_deref()
                    .map(|b| {
                        parse_duration(b)
                            .map(|d| d.as_millis() as u64)
                            .map_err(|err| anyhow::anyhow!("--budget: {err}"))
                    })
                    .transpose()?,
                force: *force,
                target: target.selector(),
            },
            MIGRATION_WAIT,
        ),
        AdminCommand::Abort { target } => (
            "abort",
            Request::Abort {
                target: target.selector(),
            },
            MIGRATION_WAIT,
        ),
        AdminCommand::Revert { force, target } => (
            "revert",
            Request::Revert {
                force: *force,
                target: target.selector(),
            },
            MIGRATION_WAIT,
        ),
        AdminCommand::Complete { force, target } => (
            "complete",
            Request::Complete {
                force: *force,
                target: target.selector(),
            },
            MIGRATION_WAIT,
        ),
    })
}

/// Runs `duet admin`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (name, request, wait) = build(&args)?;
    let result = send(&args.socket, &request, wait)?;
    match args.format {
        Format::Json => println!("{result}"),
        Format::Human => print!("{}", render::human(name, &result)?),
    }
    if let AdminCommand::Migrate { wait: true, .. } = &args.command {
        // A migration of several tables: each table's, one after the other (they copy at once).
        let started: StartedReply = reply::result_of(name, &result)?;
        let ids: Vec<i64> = if started.migrations.is_empty() {
            vec![started.first.id]
        } else {
            started.migrations.iter().map(|m| m.id).collect()
        };
        for id in ids {
            wait_for_migration(&args.socket, id, args.format)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let pause_failed = name == "pause" && !reply::result_of::<PauseReply>(name, &result)?.paused;
    Ok(if pause_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A command the proxy did not carry out, that changed nothing and may succeed when simply run
/// again (a lock, a missed budget): `duet admin` exits with [`RUN_AGAIN_EXIT_CODE`].
#[derive(Debug, thiserror::Error)]
#[error("{0} (nothing changed: run the command again)")]
pub struct RunAgain(String);

/// The exit code of a command that may succeed when run again (EX_TEMPFAIL of sysexits.h).
pub const RUN_AGAIN_EXIT_CODE: u8 = 75;

/// Sends one request and returns its result; a refusal becomes an error naming the command and
/// carrying the proxy's message.
pub(crate) fn send(
    socket: &std::path::Path,
    request: &Request,
    wait: Duration,
) -> anyhow::Result<serde_json::Value> {
    let reply = client::request(socket, request, wait)?;
    if !reply.ok {
        let message = reply
            .error
            .unwrap_or_else(|| "the proxy refused the command".to_owned());
        if reply.retryable {
            return Err(RunAgain(format!("{}: {message}", request.name())).into());
        }
        anyhow::bail!("{}: {message}", request.name());
    }
    Ok(reply.result.unwrap_or(serde_json::Value::Null))
}

/// `migrate --wait`: polls `status` every 500 ms, printing the phase and progress when they
/// change, until migration `id` is ready, flipped, completed, aborted or reverted (exit 0) or
/// fails (an error).
pub(crate) fn wait_for_migration(
    socket: &std::path::Path,
    id: i64,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let mut last = String::new();
    loop {
        let status: StatusReport = reply::result_of(
            "status",
            &send(socket, &Request::Status, Duration::from_secs(10))?,
        )?;
        let migration = status
            .migrations
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| anyhow::anyhow!("migration {id} is no longer shown by status"))?;
        let line = render::migration_progress(&migration);
        if line != last {
            match format {
                Format::Json => println!("{}", serde_json::to_value(&migration)?),
                Format::Human => println!("{line}"),
            }
            last = line;
        }
        if let Some(error) = &migration.error {
            anyhow::bail!("migration {id} failed: {error}");
        }
        match migration.phase {
            Phase::Ready | Phase::Completed | Phase::Aborted | Phase::Reverted | Phase::Flipped => {
                return Ok(ExitCode::SUCCESS)
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn request(line: &[&str]) -> Request {
        let mut argv = vec!["duet-admin", "--socket", "/tmp/x.sock"];
        argv.extend_from_slice(line);
        let cli = Cli::try_parse_from(argv).expect("parses");
        build(&cli.args).expect("builds").1
    }

    #[test]
    fn migration_commands_build_the_documented_requests() {
        assert_eq!(
            serde_json::to_value(request(&[
                "cutover", "--budget", "3s", "--table", "public.t"
            ]))
            .unwrap(),
            serde_json::json!({"command": "cutover", "budget_ms": 3000, "force": false, "table": "public.t"})
        );
        assert_eq!(
            serde_json::to_value(request(&["set", "chunk-time=50ms", "--id", "4"])).unwrap(),
            serde_json::json!({"command": "set", "settings": {"chunk_time_ms": 50}, "id": 4})
        );
        assert_eq!(
            serde_json::to_value(request(&[
                "set",
                "auto-cutover=on",
                "max-active-backends=0"
            ]))
            .unwrap(),
            serde_json::json!({"command": "set",
                "settings": {"auto_cutover": true, "max_active_backends": 0}})
        );
        let cli = Cli::try_parse_from([
            "duet-admin",
            "--socket",
            "/tmp/x.sock",
            "set",
            "auto-cutover=soon",
        ])
        .expect("parses");
        let err = build(&cli.args).expect_err("not on or off");
        assert!(err.to_string().contains("expected on or off"), "{err}");
        assert_eq!(
            serde_json::to_value(request(&["complete", "--force"])).unwrap(),
            serde_json::json!({"command": "complete", "force": true})
        );
        assert_eq!(
            serde_json::to_value(request(&["migrate", "--sql", "ALTER TABLE t ADD c int"]))
                .unwrap(),
            serde_json::json!({"command": "migrate", "auto_cutover": false,
                "input": {"kind": "sql", "sql": "ALTER TABLE t ADD c int"}})
        );
        assert_eq!(
            serde_json::to_value(request(&["pause-copy"])).unwrap(),
            serde_json::json!({"command": "pause_copy"})
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn migrate_reads_the_file_client_side() {
        let path = std::env::temp_dir().join(format!("duet-admin-{}.yaml", std::process::id()));
        std::fs::write(&path, "operations: []\n").unwrap();
        let built = request(&["migrate", path.to_str().unwrap(), "--auto-cutover"]);
        let _ = std::fs::remove_file(&path);
        match built {
            Request::Migrate {
                input: duet_shadow::plan::PlanInput::Pgroll { text, .. },
                auto_cutover: true,
                keep_referencing_types: false,
            } => assert_eq!(text, "operations: []\n"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(copy_settings(&["speed=fast".to_owned()]).is_err());
        let throttles = copy_settings(&[
            "max-replication-lag=5s".to_owned(),
            "max-active-backends=0".to_owned(),
        ])
        .expect("throttle settings");
        assert_eq!(throttles.max_replication_lag_ms, Some(5000));
        assert_eq!(throttles.max_active_backends, Some(0));
        assert!(copy_settings(&["max-active-backends=many".to_owned()]).is_err());
        let latency = copy_settings(&[
            "max-latency-factor=2".to_owned(),
            "latency-floor=500us".to_owned(),
            "latency-max-pause=5s".to_owned(),
            "latency-baseline=3ms".to_owned(),
        ])
        .expect("latency settings");
        assert_eq!(latency.max_latency_factor, Some(2.0));
        assert_eq!(latency.latency_floor_us, Some(500));
        assert_eq!(latency.latency_max_pause_ms, Some(5000));
        assert_eq!(latency.latency_baseline_us, Some(3000));
        let again = copy_settings(&["latency-baseline=auto".to_owned()]).expect("auto");
        assert_eq!(again.latency_baseline_us, Some(0));
        for bad in [
            "max-latency-factor=0.5",
            "max-latency-factor=fast",
            "latency-max-pause=0s",
            "latency-baseline=0ms",
            "latency-floor=2",
        ] {
            assert!(copy_settings(&[bad.to_owned()]).is_err(), "{bad}");
        }
        assert!(copy_settings(&["max-latency-factor=0".to_owned()]).is_ok());
    }
}
