//! The proxy's side of the admin socket.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::protocol::{
    Reply, Request, DEFAULT_PAUSE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, MAX_REQUEST_LINE,
};
use crate::context::ProxyContext;
use crate::gate::PauseOutcome;
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
    listener: UnixListener,
    path: PathBuf,
}

impl AdminServer {
    /// Binds the socket: a stale file from a dead duet is replaced; a live one is an error.
    /// The socket is made private to its owner (0600).
    pub fn bind(path: &Path) -> Result<Self, BindError> {
        let io_error = |cause| BindError::Io {
            path: path.to_owned(),
            cause,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(BindError::NotASocket(path.to_owned()))
            }
            Ok(_) => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(BindError::InUse(path.to_owned()));
                }
                std::fs::remove_file(path).map_err(io_error)?;
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error(err)),
        }
        let listener = UnixListener::bind(path).map_err(io_error)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_error)?;
        Ok(AdminServer {
            listener,
            path: path.to_owned(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves admin connections until the task is dropped.
    pub async fn serve(&self, ctx: Arc<ProxyContext>) {
        loop {
            match self.listener.accept().await {
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

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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
                    "malformed request ({err}): send one JSON object per line, e.g. {{\"command\": \"status\"}}; commands: status, pause, resume, shutdown, migrate, plan, pause_copy, resume_copy, set, cutover, abort, revert, complete"
                ));
                if send(&mut write, &reply).await.is_err() {
                    return;
                }
                continue;
            }
        };
        tracing::debug!(?request, "admin request");
        let reply = match request {
            Request::Status => to_reply(&status::report(&ctx, true)),
            Request::Pause { timeout_ms } => {
                let timeout = timeout_ms
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_PAUSE_TIMEOUT);
                pause_reply(ctx.gate.pause(&ctx.sessions, timeout).await)
            }
            Request::Resume => {
                ctx.gate.resume();
                tracing::info!("resumed");
                Reply::ok(json!({"paused": false}))
            }
            Request::Shutdown { timeout_ms } => {
                let budget = timeout_ms
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
                let reply =
                    Reply::ok(json!({"shutting_down": true, "sessions": ctx.sessions.len()}));
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

/// The migration commands (see [`crate::migration`]).
async fn migration_command(ctx: &Arc<ProxyContext>, request: Request) -> Reply {
    use crate::migration::error::CommandError;
    use crate::migration::{self, flip};
    // What the operator asked for does not apply as it stands (an unknown migration, a plan the
    // catalog refuses, a setting out of range): a refusal.
    let selected = |target: &super::protocol::Selector| {
        ctx.migrations.select(target).map_err(CommandError::Refused)
    };
    let outcome: Result<serde_json::Value, CommandError> = match request {
        Request::Plan {
            input,
            keep_referencing_types,
        } => match plan(ctx, &input, keep_referencing_types).await {
            Ok(plans) => plans_reply(&plans).map_err(CommandError::Failed),
            Err(e) => Err(CommandError::Refused(e)),
        },
        Request::Migrate {
            input,
            auto_cutover,
            keep_referencing_types,
        } => match plan(ctx, &input, keep_referencing_types).await {
            Ok(plans) => start_all(ctx, plans, auto_cutover)
                .await
                .map_err(CommandError::Refused),
            Err(e) => Err(CommandError::Refused(e)),
        },
        Request::PauseCopy { target } => match selected(&target) {
            Ok(m) => change_settings(ctx, &m, copy_paused(true))
                .await
                .map(|_| json!({"id": m.id, "copy_state": "paused"}))
                .map_err(CommandError::Refused),
            Err(e) => Err(e),
        },
        Request::ResumeCopy { target } => match selected(&target) {
            Ok(m) => change_settings(ctx, &m, copy_paused(false))
                .await
                .map(|_| json!({"id": m.id, "copy_state": "running"}))
                .map_err(CommandError::Refused),
            Err(e) => Err(e),
        },
        Request::Set { settings, target } => match selected(&target) {
            Ok(m) => {
                let change = migration::settings::SettingsChange {
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
                change_settings(ctx, &m, change)
                    .await
                    .map_err(CommandError::Refused)
            }
            Err(e) => Err(e),
        },
        Request::Cutover {
            budget_ms, target, ..
        } => match selected(&target) {
            Ok(m) => {
                let budget = budget_ms
                    .map(Duration::from_millis)
                    .unwrap_or(ctx.config.migration.flip_budget);
                flip::cutover(ctx, &m, budget).await
            }
            Err(e) => Err(e),
        },
        Request::Abort { target } => match selected(&target) {
            Ok(m) => flip::abort(ctx, &m).await,
            Err(e) => Err(e),
        },
        Request::Revert { target, .. } => match selected(&target) {
            Ok(m) => flip::revert(ctx, &m).await,
            Err(e) => Err(e),
        },
        Request::Complete { force, target } => match selected(&target) {
            Ok(m) => flip::complete(ctx, &m, force).await,
            Err(e) => Err(e),
        },
        Request::Status | Request::Pause { .. } | Request::Resume | Request::Shutdown { .. } => {
            Err(CommandError::Failed(
                "internal error: not a migration command".to_owned(),
            ))
        }
    };
    match outcome {
        Ok(value) => Reply::ok(value),
        Err(e) => Reply::error(e.to_string()).retryable(e.is_retryable()),
    }
}

/// Stores and applies a settings change; the reply is the migration's settings now in force.
async fn change_settings(
    ctx: &Arc<ProxyContext>,
    m: &Arc<crate::migration::Migration>,
    change: crate::migration::settings::SettingsChange,
) -> Result<serde_json::Value, String> {
    let settings = crate::migration::settings::change(ctx, m, change).await?;
    let mut reply = serde_json::to_value(settings).map_err(|e| e.to_string())?;
    if let Some(fields) = reply.as_object_mut() {
        fields.insert("id".to_owned(), json!(m.id));
    }
    Ok(reply)
}

fn copy_paused(paused: bool) -> crate::migration::settings::SettingsChange {
    crate::migration::settings::SettingsChange {
        copy_paused: Some(paused),
        ..Default::default()
    }
}

/// Plans `input` against the backend's catalog (nothing recorded).
async fn plan(
    ctx: &ProxyContext,
    input: &shadow::plan::PlanInput,
    keep_referencing_types: bool,
) -> Result<Vec<shadow::plan::Plan>, String> {
    let client = crate::migration::control::connect(ctx).await?;
    let options = shadow::plan::GroupOptions {
        keep_referencing_types,
    };
    shadow::plan::plan_group(&client, input, options)
        .await
        .map_err(|e| e.to_string())
}

/// The reply to `plan`: the plan of a migration of one table, or `{"group": tables, "plans":
/// [plan, …]}` in flip order for a migration of several.
fn plans_reply(plans: &[shadow::plan::Plan]) -> Result<serde_json::Value, String> {
    match plans {
        [one] => serde_json::to_value(one).map_err(|e| e.to_string()),
        several => Ok(json!({
            "group": several.iter().map(|p| p.table.to_string()).collect::<Vec<_>>(),
            "plans": serde_json::to_value(several).map_err(|e| e.to_string())?,
        })),
    }
}

/// Starts the migration of every planned table (in flip order). A migration of several tables
/// is cut over as one (`cutover` once every table is ready), so `auto_cutover` is refused for
/// it; when one cannot be started, those started before it are aborted.
async fn start_all(
    ctx: &Arc<ProxyContext>,
    plans: Vec<shadow::plan::Plan>,
    auto_cutover: bool,
) -> Result<serde_json::Value, String> {
    use crate::migration;
    if plans.len() > 1 && auto_cutover {
        return Err(format!(
            "--auto-cutover is not available for a migration of several tables ({}): start it without, and run `duet admin cutover` once `status` shows every table ready — the tables flip together",
            plans
                .iter()
                .map(|p| p.table.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut started: Vec<Arc<migration::Migration>> = Vec::new();
    for plan in plans {
        match migration::start(ctx, plan, auto_cutover).await {
            Ok(m) => started.push(m),
            Err(e) => {
                for m in &started {
                    if let Err(undo) = migration::flip::abort(ctx, m).await {
                        tracing::warn!(migration = m.id, %undo, "cannot abort a migration started with one that failed to start");
                    }
                }
                return Err(format!(
                    "{e}{}",
                    if started.is_empty() {
                        String::new()
                    } else {
                        " (the tables started before it were aborted)".to_owned()
                    }
                ));
            }
        }
    }
    let describe = |m: &migration::Migration| {
        json!({
            "id": m.id,
            "table": m.table_label(),
            "strategy": m.plan.kind.as_str(),
            "phase": m.phase().as_str(),
            "reason": m.plan.reason,
            "warnings": m.plan.warnings,
        })
    };
    let Some(first) = started.first() else {
        return Err("nothing to migrate: the input plans no table".to_owned());
    };
    let mut reply = describe(first);
    if started.len() > 1 {
        if let Some(fields) = reply.as_object_mut() {
            fields.insert(
                "migrations".to_owned(),
                started.iter().map(|m| describe(m)).collect(),
            );
        }
    }
    Ok(reply)
}

fn pause_reply(outcome: PauseOutcome) -> Reply {
    match outcome {
        PauseOutcome::Paused { waited } => {
            tracing::info!(waited_ms = waited.as_millis() as u64, "paused");
            Reply::ok(json!({"paused": true, "waited_ms": waited.as_millis() as u64}))
        }
        PauseOutcome::TimedOut { waited, blocking } => {
            tracing::warn!(
                blocking = blocking.len(),
                "pause timed out and was released"
            );
            Reply::ok(json!({
                "paused": false,
                "reason": "timeout",
                "waited_ms": waited.as_millis() as u64,
                "blocking_sessions": blocking,
            }))
        }
        PauseOutcome::Resumed { waited } => Reply::ok(json!({
            "paused": false,
            "reason": "resumed",
            "waited_ms": waited.as_millis() as u64,
        })),
    }
}

fn to_reply<T: serde::Serialize>(value: &T) -> Reply {
    match serde_json::to_value(value) {
        Ok(value) => Reply::ok(value),
        Err(err) => Reply::error(format!("internal error rendering the reply: {err}")),
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.flush().await
}
