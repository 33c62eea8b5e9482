//! The real `duet proxy` as a child process, and its admin CLI.
//!
//! The guard spawns the binary cargo built for this test (`CARGO_BIN_EXE_duet`) on a free port
//! with its admin socket in a temp dir, waits until it accepts connections, and captures its
//! stderr to a file that is printed when the test fails. Drop kills it.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::database::TestDatabase;
use super::environment::Backend;
use super::temp_dir::TempDir;
use super::tools::Target;

/// The path of the binary under test.
pub const DUET_BIN: &str = env!("CARGO_BIN_EXE_duet");

/// A running `duet proxy`.
#[derive(Debug)]
pub struct DuetProcess {
    child: Option<Child>,
    listen: SocketAddr,
    socket: PathBuf,
    stderr_path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    starts: u32,
    dir: TempDir,
}

/// What one `duet admin` invocation returned.
#[derive(Debug, Clone)]
pub struct AdminOutput {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl AdminOutput {
    /// Stdout parsed as JSON; panics with both streams when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|err| {
            panic!(
                "duet admin printed no JSON ({err}); exit {:?}\nstdout: {}\nstderr: {}",
                self.code, self.stdout, self.stderr
            )
        })
    }
}

impl DuetProcess {
    /// Starts `duet proxy --listen 127.0.0.1:<free> --backend <backend_url> --admin-socket
    /// <tmp>/duet.sock <extra…>` and waits until it accepts connections.
    pub fn start(backend_url: &str, extra: &[&str]) -> DuetProcess {
        DuetProcess::start_with_env(backend_url, extra, &[])
    }

    /// [`DuetProcess::start`] with extra environment variables for duet (e.g. `SSL_CERT_FILE`,
    /// where `sslrootcert=system` finds its roots).
    pub fn start_with_env(backend_url: &str, extra: &[&str], env: &[(&str, &str)]) -> DuetProcess {
        let dir = TempDir::new("duet");
        let listen: SocketAddr = format!("127.0.0.1:{}", super::free_port())
            .parse()
            .expect("a valid socket address");
        let socket = dir.join("duet.sock");
        let mut args: Vec<String> = vec![
            "proxy".into(),
            "--listen".into(),
            listen.to_string(),
            "--backend".into(),
            backend_url.into(),
            "--admin-socket".into(),
            socket.display().to_string(),
        ];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let mut process = DuetProcess::new(dir, args, listen, socket);
        process.env = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        process.spawn();
        process
    }

    /// Starts `duet <args…>` with `dir` as its working directory (where it looks for
    /// `config/duet.toml`), expecting it to listen on `listen` with its admin socket at `socket`
    /// (for tests that configure duet through a file rather than flags).
    pub fn start_in(
        dir: TempDir,
        args: Vec<String>,
        listen: SocketAddr,
        socket: PathBuf,
    ) -> DuetProcess {
        let mut process = DuetProcess::new(dir, args, listen, socket);
        process.spawn();
        process
    }

    fn new(dir: TempDir, args: Vec<String>, listen: SocketAddr, socket: PathBuf) -> DuetProcess {
        DuetProcess {
            child: None,
            listen,
            socket,
            stderr_path: dir.join("duet.stderr"),
            args,
            env: Vec::new(),
            starts: 0,
            dir,
        }
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .unwrap_or_else(|err| panic!("opening {}: {err}", self.stderr_path.display()));
        let log_out = log.try_clone().expect("cloning the log file handle");
        let mut command = Command::new(DUET_BIN);
        command
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log_out)
            .stderr(log);
        // duet's log filter is DUET_LOG; plain text (no ANSI colours) in the captured log.
        if std::env::var_os("DUET_LOG").is_none() {
            command.env("DUET_LOG", "info");
        }
        command.env("NO_COLOR", "1");
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("starting {DUET_BIN}: {err}"));
        self.child = Some(child);
        self.wait_until_ready();
    }

    /// The command line for messages, passwords redacted.
    fn shown_args(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|arg| super::environment::redact_password(arg))
            .collect()
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                panic!(
                    "duet exited during startup ({status}); args {:?}\n--- duet stderr ---\n{}",
                    self.shown_args(),
                    self.log()
                );
            }
            // duet binds its TCP listener before its admin socket, so an admin socket that
            // accepts means both are up. Probing over TCP instead would leave a client that duet
            // counts until it notices the probe hung up, and a test reading `clients.current`
            // right after startup would race it.
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "duet did not accept connections on {} (with its admin socket at {}) within 30s\n--- duet stderr ---\n{}",
                self.listen,
                self.socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The process id of the running duet.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("duet is running").id()
    }

    /// Resident memory of the duet process in KiB (VmRSS from /proc), if readable.
    pub fn resident_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The address duet listens on.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The port duet listens on.
    pub fn port(&self) -> u16 {
        self.listen.port()
    }

    /// The admin socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The temp dir duet runs in (its working directory).
    pub fn dir(&self) -> &TempDir {
        &self.dir
    }

    /// Everything duet wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// A tokio-postgres configuration that connects through duet as `user` to `db`.
    pub fn config(&self, user: &str, db: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port())
            .user(user)
            .dbname(db)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// [`DuetProcess::config`] as `backend`'s user, with its password when it has one: how a
    /// test's application connects through duet.
    pub fn config_as(&self, backend: &Backend, db: &str) -> tokio_postgres::Config {
        let mut config = self.config(&backend.user, db);
        if let Some(password) = &backend.password {
            config.password(password);
        }
        config
    }

    /// A psql/pgbench target through duet.
    pub fn target(&self, user: &str, db: &str) -> Target {
        Target::tcp("127.0.0.1", self.port(), user, db)
    }

    fn admin_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(DUET_BIN);
        command
            .arg("admin")
            .arg("--socket")
            .arg(&self.socket)
            .args(args);
        command
    }

    /// Runs `duet admin --socket <sock> <args…>`.
    pub fn admin(&self, args: &[&str]) -> AdminOutput {
        let output = super::tools::run(self.admin_command(args), None, Duration::from_secs(120));
        AdminOutput {
            code: output.code(),
            stdout: output.stdout_text(),
            stderr: output.stderr,
        }
    }

    /// [`DuetProcess::admin`] without blocking the async runtime (for commands that wait, like
    /// `pause`, while the test's clients keep running).
    pub async fn admin_async(&self, args: &[&str]) -> AdminOutput {
        let mut command = tokio::process::Command::from(self.admin_command(args));
        command.kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .unwrap_or_else(|_| panic!("duet admin {args:?} did not finish within 120s"))
            .unwrap_or_else(|err| panic!("running duet admin {args:?}: {err}"));
        AdminOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts `duet admin <args…>` on a task of its own and returns its handle: the test goes on
    /// (e.g. commits a transaction) while a `pause` waits.
    pub fn admin_spawn(&self, args: &[&str]) -> tokio::task::JoinHandle<AdminOutput> {
        let mut command = tokio::process::Command::from(self.admin_command(args));
        command.kill_on_drop(true);
        let what = format!("duet admin {args:?}");
        tokio::spawn(async move {
            let output = tokio::time::timeout(Duration::from_secs(120), command.output())
                .await
                .unwrap_or_else(|_| panic!("{what} did not finish within 120s"))
                .unwrap_or_else(|err| panic!("running {what}: {err}"));
            AdminOutput {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        })
    }

    /// `duet admin <args…> --format json`, asserting exit 0; returns the parsed reply.
    pub fn admin_json(&self, args: &[&str]) -> Value {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--format", "json"]);
        let output = self.admin(&full);
        assert_eq!(
            output.code,
            Some(0),
            "duet admin {full:?} failed\nstdout: {}\nstderr: {}\n--- duet log ---\n{}",
            output.stdout,
            output.stderr,
            self.log()
        );
        output.json()
    }

    /// `duet admin status --format json`.
    pub fn status(&self) -> Value {
        self.admin_json(&["status"])
    }

    /// Async `duet admin status --format json`.
    pub async fn status_async(&self) -> Value {
        let output = self.admin_async(&["status", "--format", "json"]).await;
        assert_eq!(
            output.code,
            Some(0),
            "duet admin status failed\nstdout: {}\nstderr: {}",
            output.stdout,
            output.stderr
        );
        output.json()
    }

    /// Writes `lines` raw to the admin socket over one connection and returns one reply line per
    /// request line.
    pub fn admin_raw(&self, lines: &[&str]) -> Vec<String> {
        let stream = UnixStream::connect(&self.socket)
            .unwrap_or_else(|err| panic!("connecting to {}: {err}", self.socket.display()));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("setting a read timeout");
        let mut writer = stream.try_clone().expect("cloning the admin stream");
        let mut reader = BufReader::new(stream);
        lines
            .iter()
            .map(|line| {
                writer
                    .write_all(format!("{line}\n").as_bytes())
                    .expect("writing to the admin socket");
                let mut reply = String::new();
                reader
                    .read_line(&mut reply)
                    .unwrap_or_else(|err| panic!("reading the reply to {line:?}: {err}"));
                assert!(
                    !reply.is_empty(),
                    "admin socket closed instead of answering {line:?}"
                );
                reply
            })
            .collect()
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("duet is running");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        // SAFETY: kill(2) on our own child's pid with a valid signal number has no memory effects.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// Waits for the process to exit on its own; panics (with its log) after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("duet was started");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for duet") {
                return status;
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
                panic!("duet did not exit within {limit:?}\n--- duet log ---\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts it again with the same arguments (same port, same socket path).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// How many times the process was spawned.
    pub fn starts(&self) -> u32 {
        self.starts
    }
}

impl Drop for DuetProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- duet log ({}; args {:?}) ---\n{}\n--- end of duet log ---",
                self.stderr_path.display(),
                self.shown_args(),
                self.log()
            );
        }
    }
}

/// A configuration that connects through `duet` to `db` as `backend`'s user and names itself
/// `app` (`application_name`), so that the session can be told apart in duet's status.
pub fn through(
    backend: &Backend,
    duet: &DuetProcess,
    db: &TestDatabase,
    app: &str,
) -> tokio_postgres::Config {
    let mut config = duet.config_as(backend, db.name());
    config.application_name(app);
    config
}
