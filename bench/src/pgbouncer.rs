//! A PgBouncer in front of a server, for side-by-side runs.
//!
//! PgBouncer is the reference point for "what does a proxy cost": run in session mode (the mode
//! duet implements), on its own loopback port, with a generated ini and auth file in a temporary
//! directory. It refuses to run as root, so as root it runs as the `postgres` account.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use crate::backend::Backend;
use crate::cluster::{server_user, OsUser};
use crate::launch::{io_error, LaunchError};
use crate::net::{free_port, LOOPBACK};
use crate::probe::{probe, Probe};
use crate::process::{log_tail, ManagedChild};
use crate::scratch::ScratchDir;

/// Where Debian installs PgBouncer.
pub const DEFAULT_PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// How to run PgBouncer.
#[derive(Debug, Clone)]
pub struct PgBouncerOptions {
    /// The server behind it; its user (and password, if any) goes into the auth file.
    pub backend: Backend,
    /// Server connections per (user, database) pool: at least the number of clients of the
    /// largest run, so session mode never queues.
    pub pool_size: u32,
    /// The binary; `None` = `pgbouncer` on PATH, else [`DEFAULT_PGBOUNCER`].
    pub bin: Option<PathBuf>,
    /// `pool_mode`: `session` or `transaction`.
    pub pool_mode: &'static str,
}

/// A running PgBouncer; dropping it stops it and removes its files.
#[derive(Debug)]
pub struct PgBouncer {
    process: ManagedChild,
    port: u16,
    backend: Backend,
    log_path: PathBuf,
    _scratch: ScratchDir,
}

impl PgBouncer {
    /// Writes the config and starts PgBouncer; returns once it accepts connections.
    pub fn start(opts: &PgBouncerOptions) -> Result<PgBouncer, LaunchError> {
        let bin = match &opts.bin {
            Some(bin) => bin.clone(),
            None => find_on_path("pgbouncer").unwrap_or_else(|| PathBuf::from(DEFAULT_PGBOUNCER)),
        };
        if !bin.is_file() {
            return Err(LaunchError::NotFound {
                program: "pgbouncer",
                path: bin,
                hint: "install it (`apt-get install pgbouncer`) or pass --pgbouncer-bin".into(),
            });
        }
        let run_as = server_user().map_err(LaunchError::NoServerUser)?;
        let scratch = ScratchDir::create("pgbouncer").map_err(io_error("creating a temp dir"))?;
        give_to(scratch.path(), run_as)?;
        let port = free_port().map_err(io_error("finding a free port"))?;
        let ini_path = scratch.path().join("pgbouncer.ini");
        let auth_path = scratch.path().join("userlist.txt");
        std::fs::write(&auth_path, auth_file(&opts.backend))
            .map_err(io_error("writing the PgBouncer auth file"))?;
        std::fs::write(
            &ini_path,
            ini(
                &opts.backend,
                port,
                opts.pool_size,
                opts.pool_mode,
                &auth_path,
            ),
        )
        .map_err(io_error("writing pgbouncer.ini"))?;
        for path in [&ini_path, &auth_path] {
            give_to(path, run_as)?;
        }
        let log_path = scratch.path().join("pgbouncer.log");
        let log =
            std::fs::File::create(&log_path).map_err(io_error("creating the PgBouncer log"))?;
        let log_err = log
            .try_clone()
            .map_err(io_error("duplicating a file handle"))?;
        let mut cmd = Command::new(&bin);
        cmd.arg(&ini_path)
            .current_dir(scratch.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        if let Some(user) = run_as {
            cmd.uid(user.uid).gid(user.gid);
        }
        let child = cmd
            .spawn()
            .map_err(io_error(format!("starting {}", bin.display())))?;
        let mut bouncer = PgBouncer {
            // SIGTERM is PgBouncer's immediate shutdown (SIGINT would wait for clients).
            process: ManagedChild::new(child, libc::SIGTERM, Duration::from_secs(10)),
            port,
            backend: opts.backend.clone(),
            log_path,
            _scratch: scratch,
        };
        bouncer.wait_ready()?;
        Ok(bouncer)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The backend's login, pointed at PgBouncer.
    pub fn url(&self) -> String {
        self.backend.url_at(LOOPBACK, self.port)
    }

    fn wait_ready(&mut self) -> Result<(), LaunchError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.process.exited() {
                return Err(self.not_ready(format!("pgbouncer exited ({status})")));
            }
            let reason = match probe(addr, &self.backend.user) {
                Probe::Ready => return Ok(()),
                Probe::NotReady(reason) => reason,
            };
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!("no answer on {addr}: {reason}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_ready(&self, reason: String) -> LaunchError {
        LaunchError::NotReady {
            program: "pgbouncer",
            reason,
            log_tail: log_tail(&self.log_path, 20),
        }
    }
}

fn give_to(path: &Path, user: Option<OsUser>) -> Result<(), LaunchError> {
    match user {
        Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(io_error(format!("chown {}", path.display()))),
        None => Ok(()),
    }
}

/// The first `name` on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// pgbouncer.ini: every database forwarded to the backend, loopback only. (Debian 12's PgBouncer
/// is 1.18, which has no `max_prepared_statements`: in transaction mode its clients cannot use
/// named prepared statements, so only the simple and extended protocols compare there.)
fn ini(backend: &Backend, port: u16, pool_size: u32, pool_mode: &str, auth_file: &Path) -> String {
    let mut ini = String::new();
    let _ = writeln!(ini, "[databases]");
    let _ = writeln!(ini, "* = host={} port={}", backend.host, backend.port);
    let _ = writeln!(ini, "[pgbouncer]");
    let _ = writeln!(ini, "listen_addr = {LOOPBACK}");
    let _ = writeln!(ini, "listen_port = {port}");
    let _ = writeln!(ini, "unix_socket_dir =");
    let _ = writeln!(ini, "auth_type = trust");
    let _ = writeln!(ini, "auth_file = {}", auth_file.display());
    let _ = writeln!(ini, "pool_mode = {pool_mode}");
    let _ = writeln!(ini, "default_pool_size = {}", pool_size.max(1));
    let _ = writeln!(ini, "max_client_conn = {}", pool_size.max(1) + 100);
    let _ = writeln!(ini, "ignore_startup_parameters = extra_float_digits");
    let _ = writeln!(ini, "log_connections = 0");
    let _ = writeln!(ini, "log_disconnections = 0");
    ini
}

/// userlist.txt: the backend user, with its password when there is one (PgBouncer then logs in to
/// the server with it); clients are trusted, as on the throwaway server.
fn auth_file(backend: &Backend) -> String {
    let quote = |s: &str| s.replace('"', "\"\"");
    format!(
        "\"{}\" \"{}\"\n",
        quote(&backend.user),
        quote(backend.password.as_deref().unwrap_or(""))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> Backend {
        Backend::parse("postgres://app:pa\"ss@127.0.0.1:5999/db").expect("parse")
    }

    #[test]
    fn ini_is_session_mode_on_loopback_in_front_of_the_backend() {
        let text = ini(
            &backend(),
            7001,
            16,
            "session",
            Path::new("/tmp/x/userlist.txt"),
        );
        assert!(text.contains("* = host=127.0.0.1 port=5999"));
        assert!(text.contains("listen_port = 7001"));
        assert!(text.contains("pool_mode = session"));
        assert!(text.contains("default_pool_size = 16"));
        assert!(text.contains("auth_file = /tmp/x/userlist.txt"));
    }

    #[test]
    fn auth_file_quotes_like_pgbouncer() {
        assert_eq!(auth_file(&backend()), "\"app\" \"pa\"\"ss\"\n");
    }
}
