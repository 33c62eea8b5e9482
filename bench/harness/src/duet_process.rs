//! A `duet proxy` process in front of a server, driven only through duet's public contract: the
//! binary's flags, SQL on its listen port, and `duet admin … --format json`.
//!
//! Used by `duet-bench compare` / `connections` and by `duet demo` (which passes its own
//! executable). Readiness = a startup packet answered on the listen port *and* an admin `status`
//! that succeeds; stopping = admin `shutdown`, then SIGTERM (the same graceful path), then SIGKILL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use serde_json::Value;

use crate::backend::Backend;
use crate::launch::{io_error, LaunchError};
use crate::net::{free_port, LOOPBACK};
use crate::probe::{probe, Probe};
use crate::process::{log_tail, resident_kib, ManagedChild};
use crate::scratch::ScratchDir;

/// How long duet may take to listen and answer `status`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts when the port we picked was taken before duet could bind it.
const PORT_ATTEMPTS: usize = 3;

/// How to run the proxy.
#[derive(Debug, Clone)]
pub struct DuetProxyOptions {
    /// The `duet` executable.
    pub duet_bin: PathBuf,
    /// `--backend`: where sessions go, and duet's own control login.
    pub backend_url: String,
    /// Extra flags for `duet proxy`.
    pub extra_args: Vec<String>,
}

/// A running duet proxy; dropping it stops it and removes its files.
#[derive(Debug)]
pub struct DuetProxy {
    process: ManagedChild,
    port: u16,
    backend: Backend,
    duet_bin: PathBuf,
    admin_socket: PathBuf,
    log_path: PathBuf,
    _scratch: ScratchDir,
}

/// The default `duet` binary for `duet-bench`: the one next to the running executable (cargo puts
/// both in the same target directory).
pub fn duet_next_to_current_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    // Integration tests run from target/<profile>/deps; the binaries are one level up.
    [dir.join("duet"), dir.parent()?.join("duet")]
        .into_iter()
        .find(|p| p.is_file())
}

impl DuetProxy {
    /// Starts `duet proxy` on a free loopback port with a private admin socket.
    pub fn start(opts: &DuetProxyOptions) -> Result<DuetProxy, LaunchError> {
        if !opts.duet_bin.is_file() {
            return Err(LaunchError::NotFound {
                program: "duet",
                path: opts.duet_bin.clone(),
                hint: "build it (`cargo build -p duet-proxy`) or pass --duet-bin".into(),
            });
        }
        let backend =
            Backend::parse(&opts.backend_url).map_err(|message| LaunchError::Command {
                program: "duet",
                message,
            })?;
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            match Self::start_once(opts, backend.clone()) {
                Ok(proxy) => return Ok(proxy),
                Err(err) => {
                    let retry = matches!(&err, LaunchError::NotReady { log_tail, .. }
                        if log_tail.contains("in use"));
                    last = Some(err);
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| LaunchError::Command {
            program: "duet",
            message: "no start attempt was made".into(),
        }))
    }

    fn start_once(opts: &DuetProxyOptions, backend: Backend) -> Result<DuetProxy, LaunchError> {
        let scratch = ScratchDir::create("proxy").map_err(io_error("creating a temp dir"))?;
        let port = free_port().map_err(io_error("finding a free port"))?;
        let admin_socket = scratch.path().join("admin.sock");
        let log_path = scratch.path().join("duet.log");
        let log = std::fs::File::create(&log_path).map_err(io_error("creating the duet log"))?;
        let log_err = log
            .try_clone()
            .map_err(io_error("duplicating a file handle"))?;
        let child = Command::new(&opts.duet_bin)
            .arg("proxy")
            .arg("--listen")
            .arg(format!("{LOOPBACK}:{port}"))
            .arg("--backend")
            .arg(&opts.backend_url)
            .arg("--admin-socket")
            .arg(&admin_socket)
            .args(&opts.extra_args)
            // A private working directory: no stray config/duet.toml is picked up.
            .current_dir(scratch.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Own process group: a terminal's Ctrl-C reaches the caller, which stops its clients
            // first and then duet, in order.
            .process_group(0)
            .spawn()
            .map_err(io_error(format!("starting {}", opts.duet_bin.display())))?;
        let mut proxy = DuetProxy {
            process: ManagedChild::new(child, libc::SIGTERM, Duration::from_secs(15)),
            port,
            backend,
            duet_bin: opts.duet_bin.clone(),
            admin_socket,
            log_path,
            _scratch: scratch,
        };
        proxy.wait_ready()?;
        Ok(proxy)
    }

    /// The port duet listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The backend's login, pointed at duet.
    pub fn url(&self) -> String {
        self.backend.url_at(LOOPBACK, self.port)
    }

    /// Another login/database through duet.
    pub fn url_for(&self, user: &str, password: Option<&str>, db: &str) -> String {
        Backend {
            host: LOOPBACK.into(),
            port: self.port,
            user: user.into(),
            password: password.map(str::to_owned),
            dbname: db.into(),
        }
        .url()
    }

    /// The admin socket path.
    pub fn admin_socket(&self) -> &Path {
        &self.admin_socket
    }

    /// duet's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// duet's resident memory in KiB (VmRSS).
    pub fn resident_kib(&self) -> Option<u64> {
        resident_kib(self.pid()?)
    }

    /// The end of duet's log (stderr).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// Runs `duet admin --socket S <args…> --format json`; returns the exit code and parsed reply.
    pub fn admin(&self, args: &[&str]) -> Result<(i32, Value), LaunchError> {
        let output = Command::new(&self.duet_bin)
            .arg("admin")
            .arg("--socket")
            .arg(&self.admin_socket)
            .args(args)
            .args(["--format", "json"])
            .stdin(Stdio::null())
            .output()
            .map_err(io_error("running duet admin"))?;
        let code = output.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&output.stdout);
        match serde_json::from_str::<Value>(stdout.trim()) {
            Ok(value) => Ok((code, value)),
            Err(_) => Err(LaunchError::Command {
                program: "duet",
                message: format!(
                    "`duet admin {}` exited {code} without a JSON reply: {}{}",
                    args.join(" "),
                    stdout.trim(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            }),
        }
    }

    /// `duet admin status` as JSON (see the contract for its shape).
    pub fn status(&self) -> Result<Value, LaunchError> {
        match self.admin(&["status"])? {
            (0, value) => Ok(value),
            (code, value) => Err(LaunchError::Command {
                program: "duet",
                message: format!("`duet admin status` exited {code}: {value}"),
            }),
        }
    }

    /// Graceful stop: admin `shutdown --timeout T`, then wait for the process to exit (falling back
    /// to SIGTERM and SIGKILL). Returns the shutdown reply when the admin command answered.
    pub fn shutdown(mut self, timeout: Duration) -> Result<Value, LaunchError> {
        let budget = format!("{}ms", timeout.as_millis());
        let reply = self.admin(&["shutdown", "--timeout", &budget]);
        let exited = self.process.wait_exit(timeout + Duration::from_secs(5));
        self.process.stop();
        let reply = reply?;
        if !exited {
            return Err(LaunchError::Command {
                program: "duet",
                message: format!("did not exit after `shutdown` within {budget} (killed)"),
            });
        }
        Ok(reply.1)
    }

    fn wait_ready(&mut self) -> Result<(), LaunchError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut listening = false;
        loop {
            if let Some(status) = self.process.exited() {
                return Err(self.not_ready(format!("duet exited ({status})")));
            }
            let reason = if !listening {
                match probe(addr, &self.backend.user) {
                    Probe::Ready => {
                        listening = true;
                        continue;
                    }
                    Probe::NotReady(reason) => format!("no answer on {addr}: {reason}"),
                }
            } else if !self.admin_socket.exists() {
                format!("no admin socket at {}", self.admin_socket.display())
            } else {
                match self.status() {
                    Ok(_) => return Ok(()),
                    Err(err) => err.to_string(),
                }
            };
            if Instant::now() >= deadline {
                return Err(self.not_ready(reason));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_ready(&self, reason: String) -> LaunchError {
        LaunchError::NotReady {
            program: "duet",
            reason,
            log_tail: self.log_tail(20),
        }
    }
}
