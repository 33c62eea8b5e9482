//! A throwaway PostgreSQL cluster: temporary data directory, free loopback port, gone on drop.
//!
//! Benchmarks, the `duet demo` quick start and tests need a server they fully control (its
//! `max_connections`, its `pg_hba.conf`) and that leaves nothing behind. `postgres` is started
//! directly as our child (not through `pg_ctl`) so that dropping the [`Cluster`] can always stop it:
//! SIGINT (fast shutdown), then SIGKILL if it does not exit in time, then the directory is removed.
//! The API is synchronous; async callers use `spawn_blocking`.

mod binaries;
mod os_user;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

pub use binaries::{candidate_dirs, find_server_binaries, PG_BIN_DIR_ENV};
pub use os_user::{server_user, OsUser};

use crate::net::{free_port, percent_encode, LOOPBACK};
use crate::probe;
use crate::process::{log_tail as read_log_tail, ManagedChild};
use crate::scratch::ScratchDir;

/// The superuser `initdb` creates.
pub const SUPERUSER: &str = "postgres";

/// How long the server may take to accept connections after it was started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of the server log quoted in startup errors.
const LOG_TAIL_LINES: usize = 20;
/// Attempts when the free port we picked was taken before the server could bind it.
const PORT_ATTEMPTS: usize = 3;

/// How to set up the cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `max_connections` of the server.
    pub max_connections: u32,
    /// Extra `pg_hba.conf` lines placed before the default trust lines (first match wins), e.g.
    /// `host all app 127.0.0.1/32 scram-sha-256`.
    pub hba: Vec<String>,
    /// Extra `postgresql.conf` settings (name, value); values are written as given, so quote strings
    /// (`("log_statement".into(), "'all'".into())`).
    pub settings: Vec<(String, String)>,
    /// Directory holding `initdb` and `postgres`; `None` = [`find_server_binaries`].
    pub bin_dir: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            max_connections: 100,
            hba: Vec::new(),
            settings: Vec::new(),
            bin_dir: None,
        }
    }
}

/// Why a cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No directory with both `initdb` and `postgres` was found.
    #[error(
        "no PostgreSQL server binaries (initdb and postgres) found; looked in: {tried}. \
         Install them (`apt-get install postgresql`) or set {PG_BIN_DIR_ENV} to the directory holding them"
    )]
    NoBinaries {
        /// The directories searched, comma-separated.
        tried: String,
    },
    /// We are root and there is no unprivileged account to run the server as.
    #[error("{0}")]
    NoServerUser(String),
    /// A filesystem or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `initdb` exited with an error.
    #[error("initdb failed ({status}):\n{output}")]
    Initdb {
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
    },
    /// The server did not come up.
    #[error("PostgreSQL did not start: {reason}\n--- server log (last lines) ---\n{log_tail}")]
    Startup {
        /// What went wrong.
        reason: String,
        /// The end of the server log.
        log_tail: String,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// A running throwaway PostgreSQL server. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct Cluster {
    server: ManagedChild,
    port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    // Declared after `server`: fields drop in declaration order, so the server is stopped
    // before its files are removed.
    scratch: Option<ScratchDir>,
}

impl Cluster {
    /// Initialises a new data directory and starts the server, returning once it accepts
    /// connections.
    pub fn start(opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        let bin_dir = match &opts.bin_dir {
            Some(dir) if binaries::holds_server_binaries(dir) => dir.clone(),
            Some(dir) => {
                return Err(ClusterError::NoBinaries {
                    tried: dir.display().to_string(),
                })
            }
            None => find_server_binaries().ok_or_else(|| ClusterError::NoBinaries {
                tried: candidate_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?,
        };
        let run_as = server_user().map_err(ClusterError::NoServerUser)?;
        let scratch =
            ScratchDir::create("pg").map_err(io_error("creating a temporary directory"))?;
        os_user::give_to(scratch.path(), run_as).map_err(io_error(
            "handing the temporary directory to the postgres user",
        ))?;
        let data_dir = scratch.path().join("data");
        init_data_dir(&bin_dir, &data_dir, scratch.path(), run_as)?;
        write_hba(&data_dir, &opts.hba)?;
        let log_path = data_dir.join("postgres.log");

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port().map_err(io_error("finding a free port"))?;
            write_settings(&data_dir, scratch.path(), port, &opts)?;
            let child = spawn_postgres(&bin_dir, &data_dir, scratch.path(), &log_path, run_as)?;
            let mut cluster = Cluster {
                server: ManagedChild::new(child, libc::SIGINT, SHUTDOWN_TIMEOUT),
                port,
                data_dir: data_dir.clone(),
                log_path: log_path.clone(),
                scratch: None,
            };
            match cluster.wait_ready() {
                Ok(()) => {
                    cluster.scratch = Some(scratch);
                    return Ok(cluster);
                }
                Err(err) => {
                    cluster.server.stop();
                    let port_taken = log_tail(&log_path).contains("could not bind");
                    last_error = Some(err);
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| ClusterError::Startup {
            reason: "no attempt was made".into(),
            log_tail: String::new(),
        }))
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host the server listens on: `127.0.0.1`.
    pub fn host(&self) -> &str {
        LOOPBACK
    }

    /// `postgres://user[:password]@127.0.0.1:port/db`, components percent-encoded.
    pub fn url(&self, user: &str, password: Option<&str>, db: &str) -> String {
        let mut url = format!("postgres://{}", percent_encode(user));
        if let Some(password) = password {
            let _ = write!(url, ":{}", percent_encode(password));
        }
        let _ = write!(url, "@{}:{}/{}", LOOPBACK, self.port, percent_encode(db));
        url
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.data_dir.parent().unwrap_or(&self.data_dir)
    }

    /// The server's log file (inside the data directory).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The postmaster's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// Stops the server (fast shutdown) and removes its files.
    pub fn stop(mut self) {
        self.server.stop();
    }

    fn wait_ready(&mut self) -> Result<(), ClusterError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.server.exited() {
                return Err(ClusterError::Startup {
                    reason: format!("the postgres process exited ({status})"),
                    log_tail: log_tail(&self.log_path),
                });
            }
            let reason = match probe::probe(addr, SUPERUSER) {
                probe::Probe::Ready => return Ok(()),
                probe::Probe::NotReady(reason) => reason,
            };
            if Instant::now() >= deadline {
                return Err(ClusterError::Startup {
                    reason: format!(
                        "not accepting connections on {addr} after {}s (last: {reason})",
                        STARTUP_TIMEOUT.as_secs()
                    ),
                    log_tail: log_tail(&self.log_path),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn init_data_dir(
    bin_dir: &Path,
    data_dir: &Path,
    work_dir: &Path,
    run_as: Option<OsUser>,
) -> Result<(), ClusterError> {
    let mut cmd = Command::new(bin_dir.join("initdb"));
    cmd.arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .current_dir(work_dir)
        .env_remove("PGDATA")
        .stdin(Stdio::null());
    as_user(&mut cmd, run_as);
    let output = cmd.output().map_err(io_error(format!(
        "running {}",
        bin_dir.join("initdb").display()
    )))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ClusterError::Initdb {
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

/// Writes pg_hba.conf: the caller's lines first, then trust for local and loopback connections.
/// Truncating the existing file keeps its owner (the server user).
fn write_hba(data_dir: &Path, extra: &[String]) -> Result<(), ClusterError> {
    let mut hba = String::from("# written by duet_bench::cluster\n");
    for line in extra {
        hba.push_str(line);
        hba.push('\n');
    }
    hba.push_str("local all all trust\n");
    hba.push_str("host all all 127.0.0.1/32 trust\n");
    hba.push_str("host all all ::1/128 trust\n");
    std::fs::write(data_dir.join("pg_hba.conf"), hba).map_err(io_error("writing pg_hba.conf"))
}

/// Writes the settings into `postgresql.auto.conf`, which PostgreSQL reads after postgresql.conf.
fn write_settings(
    data_dir: &Path,
    socket_dir: &Path,
    port: u16,
    opts: &ClusterOptions,
) -> Result<(), ClusterError> {
    let mut conf = String::from("# written by duet_bench::cluster\n");
    let _ = writeln!(conf, "listen_addresses = '{LOOPBACK}'");
    let _ = writeln!(conf, "port = {port}");
    let _ = writeln!(
        conf,
        "unix_socket_directories = '{}'",
        socket_dir.display().to_string().replace('\'', "''")
    );
    let _ = writeln!(conf, "max_connections = {}", opts.max_connections);
    for (name, value) in &opts.settings {
        let _ = writeln!(conf, "{name} = {value}");
    }
    std::fs::write(data_dir.join("postgresql.auto.conf"), conf)
        .map_err(io_error("writing postgresql.auto.conf"))
}

fn spawn_postgres(
    bin_dir: &Path,
    data_dir: &Path,
    work_dir: &Path,
    log_path: &Path,
    run_as: Option<OsUser>,
) -> Result<Child, ClusterError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(io_error(format!("opening {}", log_path.display())))?;
    let log_err = log
        .try_clone()
        .map_err(io_error("duplicating the log file handle"))?;
    let mut cmd = Command::new(bin_dir.join("postgres"));
    cmd.arg("-D")
        .arg(data_dir)
        .current_dir(work_dir)
        .env_remove("PGDATA")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Own process group: a Ctrl-C in the terminal reaches us, and we stop the server in order.
        .process_group(0);
    as_user(&mut cmd, run_as);
    cmd.spawn().map_err(io_error(format!(
        "starting {}",
        bin_dir.join("postgres").display()
    )))
}

fn as_user(cmd: &mut Command, run_as: Option<OsUser>) {
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
}

/// The last lines of the server log.
fn log_tail(path: &Path) -> String {
    read_log_tail(path, LOG_TAIL_LINES)
}
