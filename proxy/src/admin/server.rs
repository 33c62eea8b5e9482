//! The proxy's side of the admin socket.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{
    Reply, Request, Selector, DEFAULT_PAUSE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, MAX_REQUEST_LINE,
};
use super::reply::{
    CopyStateReply, PauseReply, PhaseReply, PlanReply, ResumeReply, SettingsReply, ShutdownReply,
    StartedMigration, StartedReply,
};
use crate::context::ProxyContext;
use crate::control::commands::{self, SettingsError};
use crate::control::connection::{self, ControlError};
use crate::control::error::{CommandError, MigrationError};
use crate::control::settings::SettingsChange;
use crate::control::{flip, Migration};
use crate::gate::PauseOutcome;
use crate::socket_file::{SocketFile, SocketFileError};
use crate::status;

/// Why the admin socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another duet answers on this socket.
    #[error(
        "admin socket {0} belongs to a running duet: stop it or choose another --admin-socket"
    )]
    InUse(PathBuf),
    /// Something other than a socket is in the way.
    #[error(
        "admin socket {0} exists and is not a socket: remove it or choose another --admin-socket"
    )]
    NotASocket(PathBuf),
    /// Binding or setting permissions failed.
    #[error("cannot open admin socket {path}: {cause}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        cause: io::Error,
    },
}

/// A bound admin socket; the file is removed when this is dropped.
#[derive(Debug)]
pub struct AdminServer {
    socket: SocketFile,
}

impl AdminServer {
    /// Binds the socket: a stale file from a dead duet is replaced; a live one is an error.
    /// The socket is made private to its owner (0600).
    pub fn bind(path: &Path) -> Result<Self, BindError> {
        let socket = SocketFile::bind(path, 0o600).map_err(|err| match err {
            SocketFileError::InUse(path) => BindError::InUse(path),
            SocketFileError::NotASocket(path) => BindError::NotASocket(path),
            SocketFileError::Io { path, cause } => BindError::Io { path, cause },
        })?;
        Ok(AdminServer { socket })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        self.socket.path()
    }

    /// Serves admin connections until the task is dropped.
    pub async fn serve(&self, ctx: Arc<ProxyContext>) {
        loop {
            match self.socket.listener().accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(handle_connection(ctx.clone(), stream));
                }
                Err(err) => {
                    tracing::warn!(%err, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn handle_connection(ctx: Arc<ProxyContext>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_REQUEST_LINE as u64 + 1);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) => return,
        }
        if line.len() > MAX_REQUEST_LINE {
            let reply = Reply::error(format!("request longer than {MAX_REQUEST_LINE} bytes"));
            let _ = send(&mut write, &reply).await;
            return;
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let request = match serde_json::from_slice::<Request>(&line) {
            Ok(request) => request,
            Err(err) => {
                let reply = Reply::error(format!(
                    "malformed request ({err}): send one JSON object per line, e.g. {{\"command\": \"status\"}}; commands: status, pause, resume, shutdown, migrate, plan, pause_copy, resume_copy, retry, set, cutover, abort, revert, complete"
                ));
                if send(&mut write, &reply).await.is_err() {
                    return;
                }
                continue;
            }
        };
        tracing::debug!(?request, "admin request");
        let reply = match request {
            Request::Status => Reply::with(&status::report(&ctx, true)),
            Request::Pause { timeout_ms } => {
                let timeout = timeout_ms
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_PAUSE_TIMEOUT);
                pause_reply(ctx.gate.pause(&ctx.sessions, timeout).await)
            }
            Request::Resume => {
                ctx.gate.resume();
                tracing::info!("resumed");
                Reply::with(&ResumeReply { paused: false })
            }
            Request::Shutdown { timeout_ms } => {
                let budget = timeout_ms
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
                let reply = Reply::with(&ShutdownReply {
                    shutting_down: true,
                    sessions: ctx.sessions.len(),
                });
                // The reply goes out before the shutdown starts, so the caller always gets it.
                let sent = send(&mut write, &reply).await;
                ctx.shutdown.begin(ctx.sessions.clone(), budget);
                if sent.is_err() {
                    return;
                }
                continue;
            }
            other => migration_command(&ctx, other).await,
        };
        if send(&mut write, &reply).await.is_err() {
            return;
        }
    }
}

/// The migration commands (see [`crate::control`]).
async fn migration_command(ctx: &Arc<ProxyContext>, request: Request) -> Reply {
    match run_migration_command(ctx, request).await {
        Ok(reply) => reply,
        Err(e) => Reply::error(e.to_string()).retryable(e.is_retryable()),
    }
}

/// Carries out one migration command; its reply, or why it was not carried out.
async fn run_migration_command(
    ctx: &Arc<ProxyContext>,
    request: Request,
) -> Result<Reply, CommandError> {
    // What the operator asked for does not apply as it stands (an unknown migration, a plan the
    // catalog refuses, a setting out of range): a refusal.
    let selected = |target: &Selector| {
        ctx.migrations
            .select(target)
            .map_err(CommandError::refused_because)
    };
    Ok(match request {
        Request::Plan {
            input,
            keep_referencing_types,
        } => {
            let plans = plan(ctx, &input, keep_referencing_types)
                .await
                .map_err(CommandError::refused_because)?;
            plans_reply(plans)
        }
        Request::Migrate {
            input,
            auto_cutover,
            keep_referencing_types,
        } => {
            let plans = plan(ctx, &input, keep_referencing_types)
                .await
                .map_err(CommandError::refused_because)?;
            let started = start_all(ctx, plans, auto_cutover)
                .await
                .map_err(CommandError::refused_because)?;
            Reply::with(&started)
        }
        Request::PauseCopy { target } => {
            let m = selected(&target)?;
            change_settings(ctx, &m, copy_paused(true))
                .await
                .map_err(CommandError::refused_because)?;
            Reply::with(&CopyStateReply {
                id: m.id,
                copy_state: "paused".to_owned(),
            })
        }
        Request::ResumeCopy { target } => {
            let m = selected(&target)?;
            change_settings(ctx, &m, copy_paused(false))
                .await
                .map_err(CommandError::refused_because)?;
            Reply::with(&CopyStateReply {
                id: m.id,
                copy_state: "running".to_owned(),
            })
        }
        Request::Retry { target } => {
            let m = selected(&target)?;
            let phase = commands::retry(ctx, &m)
                .await
                .map_err(CommandError::refused_because)?;
            Reply::with(&PhaseReply::of(m.id, phase))
        }
        Request::Set { settings, target } => {
            let m = selected(&target)?;
            let change = SettingsChange {
                auto_cutover: settings.auto_cutover,
                chunk_time_ms: settings.chunk_time_ms,
                max_replication_lag_ms: settings.max_replication_lag_ms,
                max_active_backends: settings.max_active_backends,
                nice_ratio: settings.nice_ratio,
                max_latency_factor: settings.max_latency_factor,
                latency_floor_us: settings.latency_floor_us,
                latency_max_pause_ms: settings.latency_max_pause_ms,
                latency_baseline_us: settings.latency_baseline_us,
                copy_paused: None,
            };
            Reply::with(
                &change_settings(ctx, &m, change)
                    .await
                    .map_err(CommandError::refused_because)?,
            )
        }
        Request::Cutover {
            budget_ms, target, ..
        } => {
            let m = selected(&target)?;
            let budget = budget_ms
                .map(Duration::from_millis)
                .unwrap_or(ctx.config.migration.flip_budget);
            Reply::with(&flip::cutover(ctx, &m, budget).await?)
        }
        Request::Abort { target } => Reply::with(&flip::abort(ctx, &selected(&target)?).await?),
        Request::Revert { target, .. } => {
            Reply::with(&flip::revert(ctx, &selected(&target)?).await?)
        }
        Request::Complete { force, target } => {
            Reply::with(&flip::complete(ctx, &selected(&target)?, force).await?)
        }
        Request::Status | Request::Pause { .. } | Request::Resume | Request::Shutdown { .. } => {
            Reply::error("internal error: not a migration command")
        }
    })
}

/// Stores and applies a settings change; the reply is the migration's settings now in force.
async fn change_settings(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    change: SettingsChange,
) -> Result<SettingsReply, SettingsError> {
    let settings = commands::change_settings(ctx, m, change).await?;
    Ok(SettingsReply { id: m.id, settings })
}

fn copy_paused(paused: bool) -> SettingsChange {
    SettingsChange {
        copy_paused: Some(paused),
        ..Default::default()
    }
}

/// Why `plan` or `migrate` could not plan its input.
#[derive(Debug, thiserror::Error)]
enum PlanCommandError {
    /// No control connection to read the catalog with.
    #[error(transparent)]
    Connect(#[from] ControlError),
    /// The planner refused the input.
    #[error(transparent)]
    Plan(#[from] duet_shadow::plan::PlanError),
}

/// Plans `input` against the backend's catalog (nothing recorded).
async fn plan(
    ctx: &ProxyContext,
    input: &duet_shadow::plan::PlanInput,
    keep_referencing_types: bool,
) -> Result<Vec<duet_shadow::plan::Plan>, PlanCommandError> {
    let client = connection::connect(ctx).await?;
    let options = duet_shadow::plan::GroupOptions {
        keep_referencing_types,
    };
    Ok(duet_shadow::plan::plan_group(&client, input, options).await?)
}

/// The reply to `plan`: the plan of a migration of one table, or `{"group": tables, "plans":
/// [plan, …]}` in flip order for a migration of several.
fn plans_reply(plans: Vec<duet_shadow::plan::Plan>) -> Reply {
    match <[_; 1]>::try_from(plans) {
        Ok([one]) => Reply::with(&PlanReply::One(Box::new(one))),
        Err(several) => Reply::with(&PlanReply::Group {
            group: several.iter().map(|p| p.table.to_string()).collect(),
            plans: several,
        }),
    }
}

/// Why `migrate` started nothing (the tables started before the failing one are aborted).
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// `--auto-cutover` for a migration of several tables.
    #[error("--auto-cutover is not available for a migration of several tables ({tables}): start it without, and run `duet admin cutover` once `status` shows every table ready — the tables flip together")]
    AutoCutoverOfGroup {
        /// The tables, comma-separated.
        tables: String,
    },
    /// A table's migration could not be started.
    #[error("{source}{}", if *.aborted_earlier { " (the tables started before it were aborted)" } else { "" })]
    Start {
        /// Why.
        #[source]
        source: MigrationError,
        /// Whether tables started before it were aborted.
        aborted_earlier: bool,
    },
    /// The input planned no table.
    #[error("nothing to migrate: the input plans no table")]
    Nothing,
}

/// Starts the migration of every planned table (in flip order). A migration of several tables
/// is cut over as one (`cutover` once every table is ready), so `auto_cutover` is refused for
/// it; when one cannot be started, those started before it are aborted.
async fn start_all(
    ctx: &Arc<ProxyContext>,
    plans: Vec<duet_shadow::plan::Plan>,
    auto_cutover: bool,
) -> Result<StartedReply, StartError> {
    if plans.len() > 1 && auto_cutover {
        return Err(StartError::AutoCutoverOfGroup {
            tables: plans
                .iter()
                .map(|p| p.table.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut started: Vec<Arc<Migration>> = Vec::new();
    for plan in plans {
        match commands::start(ctx, plan, auto_cutover).await {
            Ok(m) => started.push(m),
            Err(source) => {
                for m in &started {
                    if let Err(undo) = flip::abort(ctx, m).await {
                        tracing::warn!(migration = m.id, %undo, "cannot abort a migration started with one that failed to start");
                    }
                }
                return Err(StartError::Start {
                    source,
                    aborted_earlier: !started.is_empty(),
                });
            }
        }
    }
    let describe = |m: &Migration| StartedMigration {
        id: m.id,
        table: m.table_label(),
        strategy: m.plan.kind,
        phase: m.phase(),
        reason: m.plan.reason.clone(),
        warnings: m.plan.warnings.clone(),
    };
    let Some(first) = started.first() else {
        return Err(StartError::Nothing);
    };
    Ok(StartedReply {
        first: describe(first),
        migrations: if started.len() > 1 {
            started.iter().map(|m| describe(m)).collect()
        } else {
            Vec::new()
        },
    })
}

fn pause_reply(outcome: PauseOutcome) -> Reply {
    let waited_ms = |waited: Duration| u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
    match outcome {
        PauseOutcome::Paused { waited } => {
            tracing::info!(waited_ms = waited_ms(waited), "paused");
            Reply::with(&PauseReply {
                paused: true,
                reason: None,
                waited_ms: waited_ms(waited),
                blocking_sessions: None,
            })
        }
        PauseOutcome::TimedOut { waited, blocking } => {
            tracing::warn!(
                blocking = blocking.len(),
                "pause timed out and was released"
            );
            Reply::with(&PauseReply {
                paused: false,
                reason: Some("timeout".to_owned()),
                waited_ms: waited_ms(waited),
                blocking_sessions: Some(blocking),
            })
        }
        PauseOutcome::Resumed { waited } => Reply::with(&PauseReply {
            paused: false,
            reason: Some("resumed".to_owned()),
            waited_ms: waited_ms(waited),
            blocking_sessions: None,
        }),
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.flush().await
}
