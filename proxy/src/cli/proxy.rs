//! `duet proxy`: run the proxy in the foreground until SIGTERM/SIGINT or `duet admin shutdown`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::{self, Overrides};
use crate::rlimit;
use crate::server::Proxy;

/// Options of `duet proxy` (each overrides the same setting in the config file).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file [default: config/duet.toml if it exists].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Client-facing address [default: 127.0.0.1:6432].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory of the clients' unix socket, .s.PGSQL.PORT as PostgreSQL names it ("" for none)
    /// [default: /tmp].
    #[arg(long, value_name = "DIR")]
    unix_socket_dir: Option<String>,
    /// File mode of the unix socket, in octal [default: 0777, PostgreSQL's].
    #[arg(long, value_name = "MODE")]
    unix_socket_mode: Option<String>,
    /// Group the unix socket belongs to (duet's user must be in it) [default: duet's own].
    #[arg(long, value_name = "GROUP")]
    unix_socket_group: Option<String>,
    /// Backend URL: postgres://USER[:PASSWORD]@HOST:PORT/DB[?sslmode=…&sslrootcert=…] (libpq's TLS
    /// parameters; HOST may be a unix-socket directory).
    #[arg(long, value_name = "URL")]
    backend: Option<String>,
    /// Admin socket path [default: /tmp/duet-PORT.sock, PORT being the listen port].
    #[arg(long, value_name = "PATH")]
    admin_socket: Option<PathBuf>,
    /// TLS certificate chain (PEM) offered to clients that ask for TLS.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics on http://ADDR/metrics and the status page on http://ADDR/.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Budget of a graceful shutdown on SIGTERM/SIGINT [default: 30s].
    #[arg(long, value_name = "DURATION")]
    shutdown_timeout: Option<String>,
    /// Time allowed to open a backend connection [default: 5s].
    #[arg(long, value_name = "DURATION")]
    connect_timeout: Option<String>,
    /// Session worker threads, one event loop each [default: half the CPUs, at least 1].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

/// Runs `duet proxy`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_tracing();
    let path = args.config.clone().or_else(config::default_config_path);
    let overrides = Overrides {
        listen: args.listen,
        // A String rather than a PathBuf: clap refuses an empty path, and "" means none.
        unix_socket_dir: args.unix_socket_dir.map(PathBuf::from),
        unix_socket_mode: args.unix_socket_mode,
        unix_socket_group: args.unix_socket_group,
        backend: args.backend,
        admin_socket: args.admin_socket,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        metrics_listen: args.metrics_listen,
        shutdown_timeout: args.shutdown_timeout,
        connect_timeout: args.connect_timeout,
        workers: args.workers,
    };
    let config = config::load(path.as_deref(), overrides)?;
    match rlimit::raise_nofile_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(err) => tracing::warn!(%err, "could not raise the open-file limit"),
    }
    // The control runtime (listener, admin socket, metrics, signals) needs one thread; sessions get
    // their own threads (`config.workers`), started by `Proxy::bind`.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let outcome = runtime.block_on(async move {
        let proxy = Proxy::bind(config).await?;
        proxy.run().await;
        Ok(ExitCode::SUCCESS)
    });
    // Everything is closed by now; do not wait for idle blocking-pool threads.
    runtime.shutdown_timeout(Duration::from_millis(100));
    outcome
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DUET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // Reporting a failed log write would go to stderr with eprintln!, which panics when stderr
        // is a closed pipe — and would kill the task that was logging (say, the shutdown).
        .log_internal_errors(false)
        .try_init();
}
