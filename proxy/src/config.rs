//! duet's settings: the TOML file (`config/duet.toml`) merged with command-line flags (flags win).
//!
//! Every error names the field it is about (`[proxy] listen`, `--backend`, ...) and says what to do,
//! because a proxy that refuses to start must tell the operator why in one line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backend_tls::BackendTls;
use crate::backend_url::BackendUrl;
use crate::duration::parse_duration;
use crate::socket_access::{self, SocketAccess};

mod pool;

pub use pool::{PoolConfig, PoolDatabase, PoolMode, PoolUser};

/// Default client-facing listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6432";
/// Default directory of the clients' unix socket (PgBouncer's default too).
pub const DEFAULT_UNIX_SOCKET_DIR: &str = "/tmp";
/// Default time allowed for opening a backend connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default budget of a graceful shutdown started by a signal.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of session worker threads: half the CPUs, at least one (so one on 2 cores).
///
/// Each worker is one event loop (see [`crate::workers`]). Fewer loops means more sessions per
/// loop, so each `epoll_wait` wake-up serves more of them: on 2 shared cores with pgbench at 8 and
/// 16 clients, one worker cost ~20% less proxy CPU per transaction than two (0.8 instead of 1.4–2
/// context switches per transaction) at the same throughput, because the database and its clients
/// need the cores too. Half the CPUs keeps that margin on bigger machines while still spreading
/// load; raise it when the proxy has cores of its own.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 256))
}

/// The validated settings the proxy runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Client-facing listen address.
    pub listen: SocketAddr,
    /// The clients' unix socket, `<dir>/.s.PGSQL.<listen port>`.
    pub unix_socket: UnixSocket,
    /// The unix socket's mode and group (`[proxy] unix_socket_mode`, `unix_socket_group`).
    pub unix_socket_access: SocketAccess,
    /// Where sessions are forwarded, plus duet's own control credentials and the TLS parameters
    /// (libpq's `sslmode`, `sslrootcert`, `sslcert`/`sslkey`, `sslnegotiation`, `sslsni`).
    pub backend: BackendUrl,
    /// TLS to the backend, its files loaded (`None`: plain, as `sslmode=disable` or a unix socket
    /// says). Loaded here rather than when the proxy binds so that a missing or broken file is
    /// reported against the setting that named it.
    pub backend_tls: Option<BackendTls>,
    /// Path of the admin socket.
    pub admin_socket: PathBuf,
    /// TLS certificate and key for client connections, if TLS is offered.
    pub tls: Option<TlsFiles>,
    /// Address of the Prometheus endpoint, if enabled.
    pub metrics_listen: Option<SocketAddr>,
    /// Time allowed for opening a backend connection.
    pub connect_timeout: Duration,
    /// Budget of a graceful shutdown triggered by SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// Number of session worker threads (each one event loop).
    pub workers: usize,
    /// How online migrations are driven (`[migration]`).
    pub migration: MigrationConfig,
    /// `[pool]`: session or transaction pooling.
    pub pool: PoolConfig,
}

/// Whether duet also listens on a unix socket, as PostgreSQL and PgBouncer do (`[proxy]
/// unix_socket_dir`, `--unix-socket-dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixSocket {
    /// Not at all (the setting is an empty string).
    Off,
    /// In [`DEFAULT_UNIX_SOCKET_DIR`], nobody having asked: a socket that cannot be opened there
    /// is logged as a warning and duet serves over TCP alone.
    Default(PathBuf),
    /// In the directory the operator set: a socket that cannot be opened stops the start.
    Dir(PathBuf),
}

impl UnixSocket {
    /// The directory, if duet listens on one.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            UnixSocket::Off => None,
            UnixSocket::Default(dir) | UnixSocket::Dir(dir) => Some(dir),
        }
    }

    /// The socket's path for a listen port: PostgreSQL's name, so clients find it from a host
    /// (the directory) and a port alone.
    pub fn path(&self, port: u16) -> Option<PathBuf> {
        self.dir().map(|dir| dir.join(format!(".s.PGSQL.{port}")))
    }
}

/// Settings of the migration controller (`[migration]` in the config file; no flags).
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationConfig {
    /// How long a cutover (and every other route change) may wait for sessions to reach a
    /// transaction boundary before it gives up and releases them (default 2 s).
    pub flip_budget: Duration,
    /// `lock_timeout` of the flip's transaction, which runs while clients are held (default 1 s).
    pub flip_lock_timeout: Duration,
    /// `lock_timeout` of every other DDL step (expand, prepare, complete, abort; default 2 s).
    pub ddl_lock_timeout: Duration,
    /// Attempts per DDL step that loses its lock race, including the first (default 5).
    pub ddl_attempts: u32,
    /// Target duration of one copy chunk; the chunk size adapts towards it (default 100 ms).
    pub chunk_time: Duration,
    /// `complete` of a rename is refused while statements written for the old names arrived
    /// within this window (default 60 s).
    pub old_shape_window: Duration,
    /// Attempts of an automatic cutover (`migrate --auto-cutover`) before it leaves the migration
    /// `ready` for the operator (default 5).
    pub auto_cutover_attempts: u32,
    /// Verify/repair rounds before the controller gives up on a shadow that keeps differing
    /// (default 5).
    pub verify_rounds: u32,
    /// When the copier pauses between chunks.
    pub throttles: Throttles,
    /// What happens to a write on a migrating table that duet cannot dual-write (default
    /// pass: the safety net mirrors it).
    pub unrewritable_writes: UnrewritableWrites,
}

/// What duet does with a write on a table under migration that it cannot rewrite into a
/// dual-write (`[migration] unrewritable_writes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnrewritableWrites {
    /// Refuse it (SQLSTATE 0A000, with what to use instead), for operators who want every write
    /// on the fast path.
    Refuse,
    /// Forward it unchanged and count it: PostgreSQL's safety net (a trigger duet installs on
    /// the table for the migration, `duet_shadow::rewrite::net`) mirrors it in the writer's own
    /// transaction, as it does for writers that do not go through duet.
    #[default]
    Pass,
}

/// The copier's throttle thresholds (`duet admin set` changes them while a copy runs). A signal
/// that cannot be read counts as exceeded: the copier waits and `status` says why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttles {
    /// Pause while a replica's replay lag (`pg_stat_replication.replay_lag`) is above this
    /// (default 10 s).
    pub max_replication_lag: Duration,
    /// Pause while more client backends than this are running a statement (default: no limit).
    pub max_active_backends: Option<u32>,
    /// While client backends are running statements, rest this many times as long as each copy
    /// chunk or verified range took before the next one (default 1; 0: never rest).
    pub nice_ratio: f64,
    /// Hold the copier and the verifier while the clients' p99 over the last second is above
    /// this many times their p99 before the migration (default 1.5; 0: not watched).
    pub max_latency_factor: f64,
    /// ...but never for a p99 at or below this (default 2 ms), so that a baseline of a few
    /// microseconds does not hold the work at every chunk.
    pub latency_floor: Duration,
    /// Longest the clients' latency keeps the copier or verifier from its next piece of work
    /// after the last one (its rests included): then one runs anyway, so the migration finishes
    /// (default 2 s).
    pub latency_max_pause: Duration,
}

impl Default for Throttles {
    fn default() -> Self {
        let latency = duet_shadow::migrate::latency::LatencyLimit::default();
        Throttles {
            max_replication_lag: Duration::from_secs(10),
            max_active_backends: None,
            nice_ratio: 1.0,
            max_latency_factor: latency.max_factor,
            latency_floor: latency.floor,
            latency_max_pause: latency.max_pause,
        }
    }
}

impl Throttles {
    /// The copier's form of these thresholds.
    pub fn copier_config(&self) -> duet_shadow::migrate::throttle::ThrottleConfig {
        use duet_shadow::migrate::throttle::{Signal, Threshold, ThrottleConfig};
        let mut thresholds = vec![Threshold {
            signal: Signal::ReplicationReplayLagSeconds,
            max: self.max_replication_lag.as_secs_f64(),
        }];
        if let Some(max) = self.max_active_backends {
            thresholds.push(Threshold {
                signal: Signal::ActiveBackends,
                max: f64::from(max),
            });
        }
        ThrottleConfig {
            thresholds,
            nice_ratio: self.nice_ratio,
            ..ThrottleConfig::default()
        }
    }

    /// The client-latency signal's limit.
    pub fn latency_limit(&self) -> duet_shadow::migrate::latency::LatencyLimit {
        duet_shadow::migrate::latency::LatencyLimit {
            max_factor: self.max_latency_factor,
            floor: self.latency_floor,
            max_pause: self.latency_max_pause,
        }
    }
}

/// Whether `factor` is a valid `max_latency_factor`: 0 (not watched) or from 1 to 1000.
pub fn valid_latency_factor(factor: f64) -> bool {
    factor == 0.0 || (factor.is_finite() && (1.0..=1000.0).contains(&factor))
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            flip_budget: Duration::from_secs(2),
            flip_lock_timeout: Duration::from_secs(1),
            ddl_lock_timeout: Duration::from_secs(2),
            ddl_attempts: 5,
            chunk_time: Duration::from_millis(100),
            old_shape_window: Duration::from_secs(60),
            auto_cutover_attempts: 5,
            verify_rounds: 5,
            throttles: Throttles::default(),
            unrewritable_writes: UnrewritableWrites::Pass,
        }
    }
}

/// PEM files for client-facing TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Settings given on the command line; each one overrides the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--unix-socket-dir` (empty: none)
    pub unix_socket_dir: Option<PathBuf>,
    /// `--unix-socket-mode`
    pub unix_socket_mode: Option<String>,
    /// `--unix-socket-group`
    pub unix_socket_group: Option<String>,
    /// `--backend`
    pub backend: Option<String>,
    /// `--admin-socket`
    pub admin_socket: Option<PathBuf>,
    /// `--tls-cert`
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`
    pub tls_key: Option<PathBuf>,
    /// `--metrics-listen`
    pub metrics_listen: Option<String>,
    /// `--shutdown-timeout`
    pub shutdown_timeout: Option<String>,
    /// `--connect-timeout`
    pub connect_timeout: Option<String>,
    /// `--workers`
    pub workers: Option<usize>,
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown/mistyped fields.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said (names the field and line).
        message: String,
    },
    /// A field has an invalid value.
    #[error("{field}: {message}")]
    Field {
        /// The field, as `[table] key` or `--flag`.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The unix socket's mode and group from their settings (each with the name of where it came
/// from); the group is looked up now, so a misspelt one stops the start.
fn unix_socket_access(
    (mode_field, mode): (&'static str, Option<String>),
    (group_field, group): (&'static str, Option<String>),
) -> Result<SocketAccess, ConfigError> {
    let mode = match mode {
        None => socket_access::DEFAULT_MODE,
        Some(text) => socket_access::parse_mode(&text)
            .map_err(|err| field_error(mode_field, err.to_string()))?,
    };
    let group = match group.filter(|name| !name.is_empty()) {
        None => None,
        Some(name) => Some(socket_access::resolve_group(&name).map_err(|err| {
            field_error(
                group_field,
                format!("{err}: name a group duet's user belongs to, or leave it unset"),
            )
        })?),
    };
    Ok(SocketAccess { mode, group })
}

fn field_error(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field,
        message: message.into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    proxy: ProxyTable,
    #[serde(default)]
    admin: AdminTable,
    #[serde(default)]
    tls: TlsTable,
    #[serde(default)]
    metrics: MetricsTable,
    /// Owned by `duet check`; tolerated, not interpreted here.
    #[serde(default)]
    #[allow(dead_code)]
    check: Option<toml::Value>,
    #[serde(default)]
    migration: MigrationTable,
    #[serde(default)]
    pool: pool::PoolTable,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationTable {
    flip_budget: Option<String>,
    flip_lock_timeout: Option<String>,
    ddl_lock_timeout: Option<String>,
    ddl_attempts: Option<u32>,
    chunk_time: Option<String>,
    old_shape_window: Option<String>,
    auto_cutover_attempts: Option<u32>,
    verify_rounds: Option<u32>,
    max_replication_lag: Option<String>,
    max_active_backends: Option<u32>,
    nice_ratio: Option<f64>,
    max_latency_factor: Option<f64>,
    latency_floor: Option<String>,
    latency_max_pause: Option<String>,
    unrewritable_writes: Option<String>,
}

fn migration_settings(table: MigrationTable) -> Result<MigrationConfig, ConfigError> {
    let d = MigrationConfig::default();
    let attempts = |field: &'static str, value: Option<u32>, default: u32| match value {
        None => Ok(default),
        Some(0) => Err(field_error(field, "must be at least 1")),
        Some(n) => Ok(n),
    };
    Ok(MigrationConfig {
        flip_budget: duration_setting(
            ("[migration] flip_budget", table.flip_budget),
            d.flip_budget,
        )?,
        flip_lock_timeout: duration_setting(
            ("[migration] flip_lock_timeout", table.flip_lock_timeout),
            d.flip_lock_timeout,
        )?,
        ddl_lock_timeout: duration_setting(
            ("[migration] ddl_lock_timeout", table.ddl_lock_timeout),
            d.ddl_lock_timeout,
        )?,
        ddl_attempts: attempts(
            "[migration] ddl_attempts",
            table.ddl_attempts,
            d.ddl_attempts,
        )?,
        chunk_time: duration_setting(("[migration] chunk_time", table.chunk_time), d.chunk_time)?,
        old_shape_window: duration_setting(
            ("[migration] old_shape_window", table.old_shape_window),
            d.old_shape_window,
        )?,
        auto_cutover_attempts: attempts(
            "[migration] auto_cutover_attempts",
            table.auto_cutover_attempts,
            d.auto_cutover_attempts,
        )?,
        verify_rounds: attempts(
            "[migration] verify_rounds",
            table.verify_rounds,
            d.verify_rounds,
        )?,
        throttles: Throttles {
            max_replication_lag: duration_setting(
                ("[migration] max_replication_lag", table.max_replication_lag),
                d.throttles.max_replication_lag,
            )?,
            max_active_backends: match table.max_active_backends {
                Some(0) => {
                    return Err(field_error(
                        "[migration] max_active_backends",
                        "must be at least 1 (leave it out for no limit)",
                    ))
                }
                other => other,
            },
            nice_ratio: match table.nice_ratio {
                None => d.throttles.nice_ratio,
                Some(r) if r.is_finite() && (0.0..=100.0).contains(&r) => r,
                Some(_) => {
                    return Err(field_error(
                        "[migration] nice_ratio",
                        "must be a number from 0 (never rest) to 100",
                    ))
                }
            },
            max_latency_factor: match table.max_latency_factor {
                None => d.throttles.max_latency_factor,
                Some(f) if valid_latency_factor(f) => f,
                Some(_) => {
                    return Err(field_error(
                        "[migration] max_latency_factor",
                        "must be 0 (client latency not watched) or a number from 1 to 1000",
                    ))
                }
            },
            latency_floor: duration_setting(
                ("[migration] latency_floor", table.latency_floor),
                d.throttles.latency_floor,
            )?,
            latency_max_pause: match duration_setting(
                ("[migration] latency_max_pause", table.latency_max_pause),
                d.throttles.latency_max_pause,
            )? {
                pause if pause.is_zero() => {
                    return Err(field_error(
                        "[migration] latency_max_pause",
                        "must be longer than 0 (use max_latency_factor = 0 to stop watching the clients' latency)",
                    ))
                }
                pause => pause,
            },
        },
        unrewritable_writes: match table.unrewritable_writes.as_deref() {
            Some("refuse") => UnrewritableWrites::Refuse,
            None | Some("pass") => UnrewritableWrites::Pass,
            Some(other) => {
                return Err(field_error(
                    "[migration] unrewritable_writes",
                    format!("expected \"refuse\" or \"pass\", got {other:?}"),
                ))
            }
        },
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyTable {
    listen: Option<String>,
    unix_socket_dir: Option<PathBuf>,
    unix_socket_mode: Option<String>,
    unix_socket_group: Option<String>,
    backend: Option<String>,
    connect_timeout: Option<String>,
    shutdown_timeout: Option<String>,
    workers: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminTable {
    socket: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsTable {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsTable {
    listen: Option<String>,
}

/// The config file used when `--config` is not given: `config/duet.toml` if it exists.
pub fn default_config_path() -> Option<PathBuf> {
    let path = PathBuf::from("config/duet.toml");
    path.is_file().then_some(path)
}

/// Reads the file (if any), applies the overrides and validates the result.
pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
    let file = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
                path: path.to_owned(),
                cause,
            })?;
            parse_file(path, &text)?
        }
        None => FileConfig::default(),
    };
    merge(file, overrides)
}

/// Parses config text (exposed for tests and for `duet` tools that want to validate a file).
pub fn from_str(text: &str, overrides: Overrides) -> Result<Config, ConfigError> {
    merge(parse_file(Path::new("<config>"), text)?, overrides)
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|err| ConfigError::Parse {
        path: path.to_owned(),
        message: err.to_string().trim().replace('\n', " "),
    })
}

fn merge(file: FileConfig, flags: Overrides) -> Result<Config, ConfigError> {
    // Each setting: the flag if given, else the file; the error names where the value came from.
    let (listen_field, listen) = pick(
        "--listen",
        flags.listen,
        "[proxy] listen",
        file.proxy.listen,
    );
    let listen = listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen.parse().map_err(|_| {
        field_error(
            listen_field,
            format!("{listen:?} is not an IP:PORT address (e.g. 127.0.0.1:6432)"),
        )
    })?;

    let unix_socket = match flags.unix_socket_dir.or(file.proxy.unix_socket_dir) {
        None => UnixSocket::Default(PathBuf::from(DEFAULT_UNIX_SOCKET_DIR)),
        Some(dir) if dir.as_os_str().is_empty() => UnixSocket::Off,
        Some(dir) => UnixSocket::Dir(dir),
    };
    let unix_socket_access = unix_socket_access(
        pick(
            "--unix-socket-mode",
            flags.unix_socket_mode,
            "[proxy] unix_socket_mode",
            file.proxy.unix_socket_mode,
        ),
        pick(
            "--unix-socket-group",
            flags.unix_socket_group,
            "[proxy] unix_socket_group",
            file.proxy.unix_socket_group,
        ),
    )?;

    let (backend_field, backend) = pick(
        "--backend",
        flags.backend,
        "[proxy] backend",
        file.proxy.backend,
    );
    let backend = backend.ok_or_else(|| {
        field_error(
            "--backend",
            "no backend given: pass --backend postgres://USER@HOST:PORT/DB or set [proxy] backend",
        )
    })?;
    let backend =
        BackendUrl::parse(&backend).map_err(|err| field_error(backend_field, err.to_string()))?;
    let backend_tls = BackendTls::load(&backend.ssl, &backend.addr)
        .map_err(|err| field_error(backend_field, err.to_string()))?;

    let connect_timeout = duration_setting(
        pick(
            "--connect-timeout",
            flags.connect_timeout,
            "[proxy] connect_timeout",
            file.proxy.connect_timeout,
        ),
        DEFAULT_CONNECT_TIMEOUT,
    )?;
    let shutdown_timeout = duration_setting(
        pick(
            "--shutdown-timeout",
            flags.shutdown_timeout,
            "[proxy] shutdown_timeout",
            file.proxy.shutdown_timeout,
        ),
        DEFAULT_SHUTDOWN_TIMEOUT,
    )?;

    let workers = flags
        .workers
        .or(file.proxy.workers)
        .unwrap_or_else(default_workers);
    if !(1..=256).contains(&workers) {
        return Err(field_error(
            "[proxy] workers",
            format!("{workers} is out of range: use 1 to 256 worker threads"),
        ));
    }

    let admin_socket = flags
        .admin_socket
        .or(file.admin.socket)
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/duet-{}.sock", listen.port())));

    let cert = flags.tls_cert.or(file.tls.cert);
    let key = flags.tls_key.or(file.tls.key);
    let tls =
        match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(field_error(
                    "--tls-key",
                    "a TLS certificate was given without its key: set --tls-key (or [tls] key) too",
                ))
            }
            (None, Some(_)) => return Err(field_error(
                "--tls-cert",
                "a TLS key was given without its certificate: set --tls-cert (or [tls] cert) too",
            )),
        };

    let (metrics_field, metrics) = pick(
        "--metrics-listen",
        flags.metrics_listen,
        "[metrics] listen",
        file.metrics.listen,
    );
    let metrics_listen = metrics
        .map(|text| {
            text.parse::<SocketAddr>().map_err(|_| {
                field_error(
                    metrics_field,
                    format!("{text:?} is not an IP:PORT address (e.g. 127.0.0.1:9187)"),
                )
            })
        })
        .transpose()?;

    let migration = migration_settings(file.migration)?;
    let pool = pool::pool_settings(file.pool)?;

    Ok(Config {
        migration,
        pool,
        listen,
        unix_socket,
        unix_socket_access,
        backend,
        backend_tls,
        admin_socket,
        tls,
        metrics_listen,
        connect_timeout,
        shutdown_timeout,
        workers,
    })
}

fn pick(
    flag: &'static str,
    flag_value: Option<String>,
    file_field: &'static str,
    file_value: Option<String>,
) -> (&'static str, Option<String>) {
    match flag_value {
        Some(value) => (flag, Some(value)),
        None => (file_field, file_value),
    }
}

fn duration_setting(
    (field, value): (&'static str, Option<String>),
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => parse_duration(&text).map_err(|err| field_error(field, err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [proxy]
        listen = "127.0.0.1:7000"
        backend = "postgres://duet:pw@127.0.0.1:5432/postgres"
        connect_timeout = "2s"
        workers = 3

        [admin]
        socket = "/tmp/x.sock"

        [check]
        anything = "goes"

        [migration]
        flip_budget = "3s"
        ddl_attempts = 7
    "#;

    #[test]
    fn reads_the_file_and_tolerates_other_tables() {
        let config = from_str(FILE, Overrides::default()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
        assert_eq!(config.workers, 3);
        assert_eq!(config.admin_socket, PathBuf::from("/tmp/x.sock"));
        assert!(config.tls.is_none());
        assert_eq!(config.migration.flip_budget, Duration::from_secs(3));
        assert_eq!(config.migration.ddl_attempts, 7);
        assert_eq!(config.migration.flip_lock_timeout, Duration::from_secs(1));
    }

    #[test]
    fn the_unix_socket_is_in_tmp_unless_set_elsewhere_or_off() {
        let config = from_str(FILE, Overrides::default()).unwrap();
        assert_eq!(
            config.unix_socket,
            UnixSocket::Default(PathBuf::from("/tmp"))
        );
        assert_eq!(
            config.unix_socket.path(7000),
            Some(PathBuf::from("/tmp/.s.PGSQL.7000"))
        );
        let file = format!("{FILE}\n").replace(
            "workers = 3",
            "workers = 3\n        unix_socket_dir = \"/run/duet\"",
        );
        let config = from_str(&file, Overrides::default()).unwrap();
        assert_eq!(
            config.unix_socket,
            UnixSocket::Dir(PathBuf::from("/run/duet"))
        );
        let off = Overrides {
            unix_socket_dir: Some(PathBuf::new()),
            ..Overrides::default()
        };
        let config = from_str(&file, off).unwrap();
        assert_eq!(
            config.unix_socket,
            UnixSocket::Off,
            "the flag wins, and empty is off"
        );
        assert_eq!(config.unix_socket.path(7000), None);
    }

    #[test]
    fn the_unix_socket_mode_and_group_are_checked_when_read() {
        let config = from_str(FILE, Overrides::default()).unwrap();
        assert_eq!(config.unix_socket_access, SocketAccess::default());
        let file = FILE.replace(
            "workers = 3",
            "workers = 3\n        unix_socket_mode = \"0770\"\n        unix_socket_group = \"root\"",
        );
        let config = from_str(&file, Overrides::default()).unwrap();
        assert_eq!(config.unix_socket_access.mode, 0o770);
        assert_eq!(config.unix_socket_access.group.map(|g| g.gid), Some(0));
        let bad_mode = Overrides {
            unix_socket_mode: Some("0999".into()),
            ..Overrides::default()
        };
        let err = from_str(&file, bad_mode).unwrap_err().to_string();
        assert!(
            err.contains("--unix-socket-mode") && err.contains("octal"),
            "{err}"
        );
        let file = FILE.replace(
            "workers = 3",
            "workers = 3\n        unix_socket_group = \"no-such-group-duet\"",
        );
        let err = from_str(&file, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[proxy] unix_socket_group") && err.contains("no group named"),
            "{err}"
        );
    }

    /// The commented `[migration]` example in config/duet.toml documents every field and parses.
    #[test]
    fn the_documented_migration_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/duet.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("\n[migration]\n").expect("a [migration] table");
        let end = text[start..]
            .find("\n# [check]")
            .map_or(text.len(), |e| start + e);
        let mut example = String::from("[proxy]\nbackend = \"postgres://u@h/d\"\n[migration]\n");
        for line in text[start..end].lines() {
            if let Some(setting) = line.strip_prefix("# ").filter(|l| l.contains(" = ")) {
                example.push_str(setting);
                example.push('\n');
            }
        }
        for field in [
            "flip_budget",
            "flip_lock_timeout",
            "ddl_lock_timeout",
            "ddl_attempts",
            "chunk_time",
            "old_shape_window",
            "auto_cutover_attempts",
            "verify_rounds",
            "max_replication_lag",
            "max_active_backends",
            "nice_ratio",
            "max_latency_factor",
            "latency_floor",
            "latency_max_pause",
            "unrewritable_writes",
        ] {
            assert!(example.contains(field), "{field} is not documented");
        }
        let config = from_str(&example, Overrides::default()).expect("the example parses");
        // Every value shown is the default, except the load limit (none by default).
        let mut expected = MigrationConfig::default();
        expected.throttles.max_active_backends = Some(40);
        assert_eq!(config.migration, expected);
        assert_eq!(
            config.migration.throttles.copier_config().thresholds.len(),
            2,
            "replication lag and active backends"
        );
    }

    #[test]
    fn migration_settings_are_checked() {
        let base = "[proxy]\nbackend = \"postgres://u@h/d\"\n[migration]\n";
        let err = from_str(
            &format!("{base}chunk_time = \"fast\""),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("[migration] chunk_time"),
            "{err}"
        );
        let err = from_str(
            &format!("{base}max_active_backends = 0"),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("leave it out for no limit"),
            "{err}"
        );
        let err = from_str(
            &format!("{base}unrewritable_writes = \"ignore\""),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"refuse\" or \"pass\""), "{err}");
        for bad in [
            "max_latency_factor = 0.5",
            "max_latency_factor = -1",
            "latency_max_pause = \"0s\"",
        ] {
            let err = from_str(&format!("{base}{bad}"), Overrides::default()).unwrap_err();
            let field = bad.split(' ').next().unwrap_or_default();
            assert!(err.to_string().contains(field), "{bad}: {err}");
        }
        let latency = from_str(
            &format!("{base}max_latency_factor = 0\nlatency_floor = \"500us\"\nlatency_max_pause = \"10s\""),
            Overrides::default(),
        )
        .expect("latency settings")
        .migration
        .throttles
        .latency_limit();
        assert!(!latency.is_on());
        assert_eq!(latency.floor, Duration::from_micros(500));
        assert_eq!(latency.max_pause, Duration::from_secs(10));
        let refusing = from_str(
            &format!("{base}unrewritable_writes = \"refuse\""),
            Overrides::default(),
        )
        .expect("refuse is a policy");
        assert_eq!(
            refusing.migration.unrewritable_writes,
            UnrewritableWrites::Refuse
        );
        let err = from_str(&format!("{base}chunk_rows = 5"), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("chunk_rows"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:7001".into()),
            connect_timeout: Some("500ms".into()),
            admin_socket: Some("/tmp/y.sock".into()),
            ..Overrides::default()
        };
        let config = from_str(FILE, overrides).unwrap();
        assert_eq!(config.listen.port(), 7001);
        assert_eq!(config.connect_timeout, Duration::from_millis(500));
        assert_eq!(config.admin_socket, PathBuf::from("/tmp/y.sock"));
        assert_eq!(config.backend.user, "duet");
    }

    #[test]
    fn defaults_without_a_file() {
        let overrides = Overrides {
            backend: Some("postgres://postgres@127.0.0.1:5432/postgres".into()),
            ..Overrides::default()
        };
        let config = from_str("", overrides).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.admin_socket, PathBuf::from("/tmp/duet-6432.sock"));
        assert_eq!(config.workers, default_workers());
    }

    #[test]
    fn errors_name_the_field() {
        let err = from_str(
            "[proxy]\nlisten = \"nowhere\"\nbackend = \"postgres://u@h/d\"",
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("[proxy] listen:"), "{err}");

        let overrides = Overrides {
            connect_timeout: Some("5".into()),
            ..Overrides::default()
        };
        let err = from_str(FILE, overrides).unwrap_err();
        assert!(err.to_string().starts_with("--connect-timeout:"), "{err}");

        let err = from_str("", Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("--backend"), "{err}");

        let err = from_str("[proxy]\nlisten_addr = \"x\"", Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");

        let err = from_str(
            "[tls]\ncert = \"c.pem\"\n[proxy]\nbackend = \"postgres://u@h/d\"",
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("--tls-key"), "{err}");
    }

    #[test]
    fn backend_tls_is_loaded_with_the_configuration() {
        let backend = |url: &str| {
            from_str(
                &format!("[proxy]\nbackend = \"{url}\""),
                Overrides::default(),
            )
        };
        let plain = backend("postgres://u@h/d").unwrap();
        assert!(plain.backend_tls.is_none());
        let require = backend("postgres://u@h/d?sslmode=require").unwrap();
        let tls = require
            .backend_tls
            .expect("TLS settings for sslmode=require");
        assert_eq!(tls.mode, crate::backend_url::SslMode::Require);
        assert!(
            tls.describe().contains("not verified"),
            "{}",
            tls.describe()
        );
        // libpq never uses TLS over a unix socket.
        let unix = backend("postgres://u@:5432/d?host=/run/pg&sslmode=require").unwrap();
        assert!(unix.backend_tls.is_none());

        let err = backend("postgres://u@h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("[proxy] backend: sslrootcert /nonexistent/ca.pem: cannot be read"),
            "{err}"
        );
        let overrides = Overrides {
            backend: Some(
                "postgres://u@h/d?sslmode=require&sslcert=/no/c.pem&sslkey=/no/k.pem".into(),
            ),
            ..Overrides::default()
        };
        let err = from_str("", overrides).unwrap_err();
        assert!(
            err.to_string().starts_with("--backend: sslcert /no/c.pem"),
            "{err}"
        );
        let err = backend("postgres://u@h/d?sslmode=verify-ca").unwrap_err();
        assert!(err.to_string().contains("needs sslrootcert"), "{err}");
    }
}
