//! Running the real client programs (psql, pgbench, python3) against duet or the server.
//!
//! Every run has an upper time limit after which the program is killed and the test fails: a
//! proxy that hangs a client must fail the suite, not stall it. Inherited `PG*` variables are
//! removed so the machine's environment cannot steer a test to another server.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where a client program connects: a libpq key/value connection string plus an optional password
/// (given through `PGPASSWORD`, as applications do).
#[derive(Debug, Clone)]
pub struct Target {
    /// `host=… port=… user=… dbname=…` plus any extra keys (sslmode, …).
    pub conninfo: String,
    /// Password for `PGPASSWORD`, if any.
    pub password: Option<String>,
}

impl Target {
    /// A target on `127.0.0.1`-style TCP.
    pub fn tcp(host: &str, port: u16, user: &str, db: &str) -> Target {
        Target {
            conninfo: format!("host={host} port={port} user={user} dbname={db} connect_timeout=10"),
            password: None,
        }
    }

    /// The same target with `key=value` appended to the connection string.
    pub fn with(&self, key_value: &str) -> Target {
        Target {
            conninfo: format!("{} {key_value}", self.conninfo),
            password: self.password.clone(),
        }
    }

    /// The same target with a password.
    pub fn with_password(&self, password: &str) -> Target {
        Target {
            conninfo: self.conninfo.clone(),
            password: Some(password.to_string()),
        }
    }
}

/// What a finished program left behind.
#[derive(Debug)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Output {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics with everything the program said unless it exited 0.
    pub fn assert_success(&self) -> &Output {
        assert!(
            self.status.success(),
            "{} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.status,
            truncate(&self.stdout_text(), 4000),
            self.stderr
        );
        self
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

/// A `Command` for `program` with the inherited libpq environment removed.
pub fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSERVICE",
        "PGSSLMODE",
        "PGOPTIONS",
        "PGAPPNAME",
        "PGCHANNELBINDING",
    ] {
        command.env_remove(var);
    }
    command.env("PGCONNECT_TIMEOUT", "10");
    command
}

/// Runs `command` to completion with `stdin` fed to it, killing it (and failing the test) after
/// `limit`.
pub fn run(mut command: Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    // Program and arguments only (Command's Debug would show PGPASSWORD), URLs redacted.
    let description = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| super::environment::redact_password(&part.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|err| {
        panic!("starting {description}: {err} (is it installed? see tests/README.md)")
    });
    let writer = stdin.map(|input| {
        let input = input.to_vec();
        let mut pipe = child.stdin.take().expect("stdin was piped");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    });
    let mut stdout_pipe = child.stdout.take().expect("stdout was piped");
    let mut stderr_pipe = child.stderr.take().expect("stderr was piped");
    let stdout_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut buffer);
        buffer
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = stderr_reader.join().unwrap_or_default();
                panic!(
                    "{description} did not finish within {limit:?}; killed it. stderr:\n{stderr}"
                );
            }
            Err(err) => panic!("waiting for {description}: {err}"),
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Output {
        command: description,
        status,
        stdout: stdout_reader.join().unwrap_or_default(),
        stderr: stderr_reader.join().unwrap_or_default(),
    }
}

/// `psql -X -v ON_ERROR_STOP=… -d <target> <args>`; the password travels as `PGPASSWORD`.
pub fn psql(target: &Target, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut command = command("psql");
    command.arg("-X").arg("-d").arg(&target.conninfo).args(args);
    if let Some(password) = &target.password {
        command.env("PGPASSWORD", password);
    }
    run(command, stdin, Duration::from_secs(120))
}

/// `pgbench <args> <target>`.
pub fn pgbench(target: &Target, args: &[&str]) -> Output {
    let mut command = command("pgbench");
    command.args(args).arg(&target.conninfo);
    if let Some(password) = &target.password {
        command.env("PGPASSWORD", password);
    }
    run(command, None, Duration::from_secs(180))
}

/// What pgbench reported at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgbenchSummary {
    /// "number of transactions actually processed".
    pub processed: u64,
    /// "number of failed transactions" (0 when the line is absent: pgbench before 15 had none).
    pub failed: u64,
}

/// Parses pgbench's summary; panics, quoting the output, when the processed count is missing.
pub fn parse_pgbench(output: &Output) -> PgbenchSummary {
    let text = output.stdout_text();
    let number_after = |prefix: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| {
                rest.trim()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|digits| digits.parse().ok())
            })
    };
    let processed =
        number_after("number of transactions actually processed:").unwrap_or_else(|| {
            panic!(
                "no 'transactions actually processed' in pgbench output:\n{text}\nstderr:\n{}",
                output.stderr
            )
        });
    PgbenchSummary {
        processed,
        failed: number_after("number of failed transactions:").unwrap_or(0),
    }
}

/// `python3 <script> <args>` with extra environment variables.
pub fn python(script: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = command("python3");
    command.arg(script).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    run(command, None, Duration::from_secs(180))
}
