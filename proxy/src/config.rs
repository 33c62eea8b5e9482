//! duet's settings: the TOML file (`config/duet.toml`) merged with command-line flags (flags win).
//!
//! Every error names the field it is about (`[proxy] listen`, `--backend`, ...) and says what to do,
//! because a proxy that refuses to start must tell the operator why in one line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backend_url::BackendUrl;
use crate::duration::parse_duration;

/// Default client-facing listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6432";
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
    /// Where sessions are forwarded, plus duet's own control credentials.
    pub backend: BackendUrl,
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
    /// Owned by the migration engine; tolerated, not interpreted here.
    #[serde(default)]
    #[allow(dead_code)]
    migration: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyTable {
    listen: Option<String>,
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

    Ok(Config {
        listen,
        backend,
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
        chunk_rows = 1000
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
}
