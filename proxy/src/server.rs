//! A running proxy: the client listener, the admin socket, the metrics endpoint and the signal
//! handlers, tied together until shutdown completes.
//!
//! These run on the caller's runtime (the control runtime); client sessions run on the
//! [`SessionWorkers`] threads, one event loop per thread (see [`crate::workers`] for why).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::admin::server::{AdminServer, BindError};
use crate::backend_url::{BackendAddr, SslMode};
use crate::client_stream::ClientSocket;
use crate::config::{Config, UnixSocket};
use crate::context::ProxyContext;
use crate::metrics_http;
use crate::shutdown::ShutdownPhase;
use crate::socket_access::{self, SocketAccess};
use crate::socket_file::{SocketFile, SocketFileError};
use crate::tls::{self, TlsError};
use crate::workers::SessionWorkers;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The client listener could not be bound.
    #[error("cannot listen on {addr} (--listen): {cause}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The clients' unix socket could not be opened in the directory the operator set.
    #[error(
        "cannot listen on the unix socket (--unix-socket-dir): {cause}; choose another directory, or \"\" for none"
    )]
    UnixSocket {
        /// What went wrong, with the path.
        cause: SocketFileError,
    },
    /// The unix socket could not be given the group the operator set.
    #[error(
        "cannot give {path} the group {group:?} (--unix-socket-group): {cause}; duet's user must belong to that group"
    )]
    SocketGroup {
        /// The socket file.
        path: std::path::PathBuf,
        /// The group's name.
        group: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The metrics listener could not be bound.
    #[error("cannot listen on {addr} (--metrics-listen): {cause}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The admin socket could not be opened.
    #[error(transparent)]
    Admin(#[from] BindError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Unfinished migrations could not be restored.
    #[error(transparent)]
    Restore(#[from] crate::control::resume::RestoreError),
    /// The session worker threads could not be started.
    #[error("cannot start {count} session worker threads (--workers): {cause}")]
    Workers {
        /// How many were asked for.
        count: usize,
        /// The I/O error.
        cause: std::io::Error,
    },
}

/// A proxy whose sockets are bound, ready to [`Proxy::run`].
#[derive(Debug)]
pub struct Proxy {
    ctx: Arc<ProxyContext>,
    listener: TcpListener,
    /// The clients' unix socket, if duet listens on one.
    local: Option<SocketFile>,
    admin: AdminServer,
    metrics: Option<TcpListener>,
    workers: SessionWorkers,
    /// Moves the recent-latency window on (see [`crate::metrics::RECENT_SLOT`]).
    latency_ticker: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Loads TLS and binds every socket, so that all startup errors surface before serving.
    pub async fn bind(mut config: Config) -> Result<Self, StartError> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|cause| StartError::Listen {
                    addr: config.listen,
                    cause,
                })?;
        // Port 0 means "any": report the real one everywhere.
        if let Ok(addr) = listener.local_addr() {
            config.listen = addr;
        }
        let local = bind_unix_socket(
            &config.unix_socket,
            &config.unix_socket_access,
            config.listen.port(),
        )?;
        if local.is_none() {
            // Not listening there after all (the default directory's socket was taken): status
            // must not name it.
            config.unix_socket = UnixSocket::Off;
        }
        let metrics = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|cause| StartError::Metrics { addr, cause })?,
            ),
            None => None,
        };
        let admin = AdminServer::bind(&config.admin_socket)?;
        let ctx = Arc::new(ProxyContext::new(config, tls));
        // One look at the backend, so that a TLS setting that cannot work is reported now rather
        // than at the first client's login. In the background: a backend that is down (or slow to
        // answer) must not delay or prevent the start.
        tokio::spawn(check_backend(ctx.clone()));
        // Before any client is accepted: a table under migration must have its routes.
        crate::control::resume::restore(&ctx).await?;
        let count = ctx.config.workers;
        let workers = SessionWorkers::start(count, &ctx)
            .map_err(|cause| StartError::Workers { count, cause })?;
        // Before any client is accepted, so the window sees every statement.
        let latency_ticker = tokio::spawn(tick_recent_latency(ctx.clone()));
        Ok(Proxy {
            ctx,
            listener,
            local,
            admin,
            metrics,
            workers,
            latency_ticker,
        })
    }

    /// The client-facing address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.ctx.config.listen
    }

    /// The shared state (for embedding and tests).
    pub fn context(&self) -> &Arc<ProxyContext> {
        &self.ctx
    }

    /// Serves until a shutdown (signal or admin command) has completed.
    pub async fn run(self) {
        let Proxy {
            ctx,
            listener,
            local,
            admin,
            metrics,
            mut workers,
            latency_ticker,
        } = self;
        tracing::info!("listening on {}", ctx.config.listen);
        if let Some(local) = &local {
            tracing::info!("listening on unix socket {}", local.path().display());
        }
        tracing::debug!(workers = workers.len(), "session worker threads started");
        tracing::info!("admin socket at {}", admin.path().display());
        tracing::info!(backend = %ctx.backend_addr, "forwarding to the backend");

        let admin = Arc::new(admin);
        let admin_task = tokio::spawn({
            let (admin, ctx) = (admin.clone(), ctx.clone());
            async move { admin.serve(ctx).await }
        });
        let metrics_task = metrics.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("metrics at http://{addr}/metrics, status page at http://{addr}/");
            }
            tokio::spawn(metrics_http::serve(listener, ctx.clone()))
        });
        let signal_task = tokio::spawn(watch_signals(ctx.clone()));

        let draining = ctx.shutdown.reached(ShutdownPhase::Draining);
        tokio::pin!(draining);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => workers.dispatch(ClientSocket::Tcp(stream, addr)),
                    Err(err) => accept_failed(err).await,
                },
                accepted = accept_local(local.as_ref()) => match accepted {
                    Ok(stream) => workers.dispatch(ClientSocket::Local(stream)),
                    Err(err) => accept_failed(err).await,
                },
                _ = &mut draining => break,
            }
        }
        drop(listener);
        // Removes the socket's file: a client looking for duet there finds nothing, as after
        // PostgreSQL stops.
        drop(local);
        ctx.shutdown.reached(ShutdownPhase::Done).await;
        // Migrations stop where they are; their stored state lets the next start resume them.
        ctx.migrations.stop_all();
        // Leaving closes the member connection: its driver locks go to the next member at once.
        ctx.fleet.leave();
        workers.stop().await;
        signal_task.abort();
        latency_ticker.abort();
        admin_task.abort();
        if let Some(task) = metrics_task {
            task.abort();
        }
        let _ = admin_task.await;
        drop(admin);
        tracing::info!("shut down");
    }
}

/// Opens the clients' unix socket as `setting` says, with `access`'s mode and group. One in the
/// default directory that cannot be opened (another process's socket of the same port, a
/// directory duet may not write) is a warning: duet was not asked for it, and serves over TCP. A
/// group that cannot be given to the file stops the start wherever it is: it was asked for.
fn bind_unix_socket(
    setting: &UnixSocket,
    access: &SocketAccess,
    port: u16,
) -> Result<Option<SocketFile>, StartError> {
    let Some(path) = setting.path(port) else {
        return Ok(None);
    };
    let file = match SocketFile::bind(&path, access.mode) {
        Ok(file) => file,
        Err(cause) if matches!(setting, UnixSocket::Default(_)) => {
            tracing::warn!(
                "not listening on a unix socket: {cause} (set --unix-socket-dir to another \
                 directory, or \"\" to turn this off)"
            );
            return Ok(None);
        }
        Err(cause) => return Err(StartError::UnixSocket { cause }),
    };
    if let Some(group) = &access.group {
        socket_access::set_group(&path, group.gid).map_err(|cause| StartError::SocketGroup {
            path: path.clone(),
            group: group.name.clone(),
            cause,
        })?;
    }
    Ok(Some(file))
}

/// The next client of the unix socket; never, when there is none.
async fn accept_local(local: Option<&SocketFile>) -> std::io::Result<tokio::net::UnixStream> {
    match local {
        Some(local) => local.listener().accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// Typically EMFILE under a connection storm: back off briefly, keep serving.
async fn accept_failed(err: std::io::Error) {
    tracing::warn!(%err, "accept failed");
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Closes a slot of the recent-latency window every [`crate::metrics::RECENT_SLOT`], for the
/// proxy's lifetime.
async fn tick_recent_latency(ctx: Arc<ProxyContext>) {
    let mut tick = tokio::time::interval(crate::metrics::RECENT_SLOT);
    // A late tick closes a longer slot; the slots carry their own times.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        ctx.metrics.tick_recent();
    }
}

/// Opens one connection to the backend the way sessions do (TCP, and TLS as the sslmode says),
/// then closes it before any startup message, and logs what it found: how the link is secured,
/// or what is wrong with it. Never retries, never stops the proxy.
async fn check_backend(ctx: Arc<ProxyContext>) {
    let backend = &ctx.backend;
    let mode = ctx.config.backend.ssl.mode;
    if matches!(backend.addr, BackendAddr::Unix { .. }) && mode != SslMode::Disable {
        tracing::warn!(
            backend = %ctx.backend_addr,
            "sslmode={mode} has no effect over a unix socket: the link is not encrypted (as with libpq)"
        );
    }
    let attempt = backend.first_attempt();
    match backend.open(attempt, ctx.config.connect_timeout).await {
        Ok(mut stream) => {
            match (&backend.tls, stream.tls_version()) {
                (Some(tls), Some(version)) => tracing::info!(
                    backend = %ctx.backend_addr,
                    "backend reachable over TLS ({version}; {})",
                    tls.describe()
                ),
                (Some(tls), None) if tls.mode == SslMode::Allow => tracing::info!(
                    backend = %ctx.backend_addr,
                    "backend reachable without TLS (sslmode=allow: TLS only when the server refuses a plain session)"
                ),
                (Some(tls), None) => tracing::warn!(
                    backend = %ctx.backend_addr,
                    "backend reachable, but without TLS: it does not offer TLS and sslmode={} allows that",
                    tls.mode
                ),
                (None, _) => {
                    tracing::info!(backend = %ctx.backend_addr, "backend reachable (no TLS)")
                }
            }
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        }
        Err(err) if err.is_tls() => tracing::error!(
            backend = %ctx.backend_addr,
            "the backend was reached but TLS fails: {err}. Client logins fail until this is fixed"
        ),
        Err(err) => tracing::warn!(
            backend = %ctx.backend_addr,
            "cannot reach the backend now ({err}); serving anyway, sessions connect when it answers"
        ),
    }
}

async fn watch_signals(ctx: Arc<ProxyContext>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        _ => {
            tracing::warn!(
                "cannot install signal handlers; use `duet admin shutdown` to stop duet"
            );
            return;
        }
    };
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        if ctx
            .shutdown
            .begin(ctx.sessions.clone(), ctx.config.shutdown_timeout)
        {
            tracing::info!("{name} received: shutting down (again to close sessions now)");
        } else {
            tracing::info!("{name} received again: closing the remaining sessions now");
            ctx.shutdown.hurry();
        }
    }
}
