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
use crate::config::Config;
use crate::context::ProxyContext;
use crate::metrics_http;
use crate::shutdown::Phase;
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
    Restore(#[from] crate::migration::resume::RestoreError),
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
    admin: AdminServer,
    metrics: Option<TcpListener>,
    workers: SessionWorkers,
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
        // Before any client is accepted: a table under migration must have its routes.
        crate::migration::resume::restore(&ctx).await?;
        let count = ctx.config.workers;
        let workers = SessionWorkers::start(count, &ctx)
            .map_err(|cause| StartError::Workers { count, cause })?;
        Ok(Proxy {
            ctx,
            listener,
            admin,
            metrics,
            workers,
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
            admin,
            metrics,
            mut workers,
        } = self;
        tracing::info!("listening on {}", ctx.config.listen);
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

        let draining = ctx.shutdown.reached(Phase::Draining);
        tokio::pin!(draining);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => {
                        workers.dispatch(stream, addr);
                    }
                    Err(err) => {
                        // Typically EMFILE under a connection storm: back off briefly, keep serving.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                _ = &mut draining => break,
            }
        }
        drop(listener);
        ctx.shutdown.reached(Phase::Done).await;
        // Migrations stop where they are; their stored state lets the next start resume them.
        ctx.migrations.stop_all();
        workers.stop().await;
        signal_task.abort();
        admin_task.abort();
        if let Some(task) = metrics_task {
            task.abort();
        }
        let _ = admin_task.await;
        drop(admin);
        tracing::info!("shut down");
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
