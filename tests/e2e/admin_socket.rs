//! The operator's side: `duet admin` and the admin socket.
//!
//! status reports what is really going on (sessions with their backend pids and states, counters
//! that move with traffic); the socket is private (0600) and survives any input; shutdown honours
//! its budget and exits 0; SIGTERM does the same; a stale socket is replaced, a live one refused;
//! bad flags exit 2 naming the field.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;

use crate::support::duet_process::{through, DUET_BIN};
use crate::support::pg_client::{backend_pid, bounded, connect};
use crate::support::tools::{run, Output};
use crate::support::{backend_or_skip, wait_for_async, DuetProcess, TempDir, TestDatabase};

const LIMIT: Duration = Duration::from_secs(30);

fn number(value: &Value, pointer: &str) -> f64 {
    value
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("status has no number at {pointer}: {value:#}"))
}

fn session_by_app<'a>(status: &'a Value, app: &str) -> &'a Value {
    status["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("status.sessions is not an array: {status:#}"))
        .iter()
        .find(|session| session["application_name"] == app)
        .unwrap_or_else(|| panic!("no session with application_name {app:?} in {status:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_sessions_and_moving_counters() {
    let Some(backend) = backend_or_skip("status_reports_sessions_and_moving_counters") else {
        return;
    };
    let db = TestDatabase::create(&backend, "admin_status");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let idle = connect(&through(&backend, &duet, &db, "e2e-idle")).await;
    let in_tx = connect(&through(&backend, &duet, &db, "e2e-in-tx")).await;
    let busy = connect(&through(&backend, &duet, &db, "e2e-busy")).await;
    let aborted = connect(&through(&backend, &duet, &db, "e2e-aborted")).await;
    let idle_pid = backend_pid(&idle.client).await;
    let aborted_pid = backend_pid(&aborted.client).await;
    aborted.client.batch_execute("BEGIN").await.expect("BEGIN");
    assert!(aborted.client.batch_execute("SELECT 1/0").await.is_err());
    let in_tx_pid = backend_pid(&in_tx.client).await;
    let busy_pid = backend_pid(&busy.client).await;
    in_tx
        .client
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("BEGIN");
    // Kept alive (shared with the task) so that it is still connected when its query ends.
    let busy_client = std::sync::Arc::new(busy.client);
    let sleeper = std::sync::Arc::clone(&busy_client);
    let busy_query = tokio::spawn(async move { sleeper.simple_query("SELECT pg_sleep(2)").await });

    let status = wait_for_async(
        "4 clients and an active session in status",
        LIMIT,
        || async {
            let status = duet.status_async().await;
            let ready = status.pointer("/clients/current") == Some(&Value::from(4))
                && status["sessions"].as_array().is_some_and(|s| s.len() == 4)
                && status["sessions"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|x| x["application_name"] == "e2e-busy" && x["state"] == "active")
                });
            ready.then_some(status)
        },
    )
    .await;

    assert_eq!(status["listen"], duet.listen().to_string());
    assert_eq!(status["backend"], backend.address());
    assert_eq!(status["paused"], false);
    assert!(number(&status, "/uptime_secs") > 0.0);
    assert!(number(&status, "/clients/total") >= 4.0);
    assert!(number(&status, "/backend_connections/current") >= 4.0);
    assert!(number(&status, "/backend_connections/total") >= 4.0);
    for (app, pid, state) in [
        ("e2e-idle", idle_pid, "idle"),
        ("e2e-in-tx", in_tx_pid, "idle in transaction"),
        ("e2e-busy", busy_pid, "active"),
        ("e2e-aborted", aborted_pid, "idle in transaction (aborted)"),
    ] {
        let session = session_by_app(&status, app);
        assert_eq!(session["backend_pid"], pid, "{app}: {session:#}");
        assert_eq!(session["state"], state, "{app}: {session:#}");
        assert_eq!(session["user"], backend.user.as_str(), "{app}");
        assert_eq!(session["database"], db.name(), "{app}");
        assert!(session["id"].is_u64(), "{app}: session id {session:#}");
        assert!(
            session["client_addr"]
                .as_str()
                .is_some_and(|addr| addr.starts_with("127.0.0.1:")),
            "{app}: client_addr {session:#}"
        );
        assert!(
            session["state_secs"]
                .as_f64()
                .is_some_and(|secs| secs >= 0.0),
            "{app}: {session:#}"
        );
    }
    let ids: std::collections::HashSet<_> = status["sessions"]
        .as_array()
        .map(|sessions| sessions.iter().map(|s| s["id"].to_string()).collect())
        .unwrap_or_default();
    assert_eq!(ids.len(), 4, "session ids must be distinct");

    // Counters move with traffic: 20 statements → statements, latency count and bytes grow.
    let before = duet.status_async().await;
    for n in 0..10i32 {
        idle.client
            .query_one("SELECT $1::int", &[&n])
            .await
            .expect("extended query");
        idle.client
            .simple_query("SELECT 1")
            .await
            .expect("simple query");
    }
    let after = duet.status_async().await;
    assert!(
        number(&after, "/statements") >= number(&before, "/statements") + 20.0,
        "statements did not grow by 20: {} → {}",
        before["statements"],
        after["statements"]
    );
    assert!(number(&after, "/latency_us/count") >= number(&before, "/latency_us/count") + 20.0);
    assert!(number(&after, "/bytes/client_to_server") > number(&before, "/bytes/client_to_server"));
    assert!(number(&after, "/bytes/server_to_client") > number(&before, "/bytes/server_to_client"));
    let (p50, p99, p999, max) = (
        number(&after, "/latency_us/p50"),
        number(&after, "/latency_us/p99"),
        number(&after, "/latency_us/p999"),
        number(&after, "/latency_us/max"),
    );
    assert!(
        p50 > 0.0 && p50 <= p99 && p99 <= p999 && p999 <= max,
        "latency percentiles: {after:#}"
    );

    // A client that leaves is no longer counted.
    bounded("busy query", LIMIT, busy_query)
        .await
        .expect("task")
        .expect("pg_sleep");
    drop(idle);
    drop(aborted);
    wait_for_async("clients.current to drop to 2", LIMIT, || async {
        (duet.status_async().await.pointer("/clients/current") == Some(&Value::from(2)))
            .then_some(())
    })
    .await;

    // The human format answers too.
    let human = duet.admin_async(&["status"]).await;
    assert_eq!(human.code, Some(0), "{}", human.stderr);
    assert!(!human.stdout.trim().is_empty());
    in_tx.client.batch_execute("COMMIT").await.expect("COMMIT");
}

#[test]
fn admin_socket_is_private_and_survives_bad_input() {
    let Some(backend) = backend_or_skip("admin_socket_is_private_and_survives_bad_input") else {
        return;
    };
    let db = TestDatabase::create(&backend, "admin_input");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);

    let mode = std::fs::metadata(duet.socket())
        .expect("socket metadata")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "admin socket mode is {:o}",
        mode & 0o777
    );

    let replies = duet.admin_raw(&[
        "this is not json",
        "{\"command\": \"no-such-command\"}",
        "{\"command\": \"pause\", \"timeout_ms\": \"soon\"}",
        "{}",
        "[1, 2, 3]",
        "{\"command\": \"status\"}",
        "{\"command\": \"resume\"}",
    ]);
    for (index, reply) in replies.iter().enumerate().take(5) {
        let reply: Value = serde_json::from_str(reply)
            .unwrap_or_else(|err| panic!("reply {index} is not JSON ({err}): {reply}"));
        assert_eq!(
            reply["ok"], false,
            "malformed request {index} must be refused: {reply}"
        );
        assert!(
            reply["error"]
                .as_str()
                .is_some_and(|error| !error.is_empty()),
            "a refusal must say why: {reply}"
        );
    }
    let status: Value = serde_json::from_str(&replies[5]).expect("status reply is JSON");
    assert_eq!(status["ok"], true, "{status}");
    assert!(
        status.pointer("/result/clients/current").is_some(),
        "{status}"
    );
    let resume: Value = serde_json::from_str(&replies[6]).expect("resume reply is JSON");
    assert_eq!(resume["ok"], true, "resume when not paused is ok: {resume}");
    assert_eq!(
        resume.pointer("/result/paused"),
        Some(&Value::Bool(false)),
        "{resume}"
    );

    // Invalid UTF-8 and a 1 MB line: refused or the connection dropped, never a crash.
    for garbage in [vec![0xff, 0xfe, 0x00, 0x80, b'\n'], vec![b'x'; 1 << 20]] {
        use std::io::{Read, Write};
        let mut stream =
            std::os::unix::net::UnixStream::connect(duet.socket()).expect("connect admin socket");
        stream.set_read_timeout(Some(LIMIT)).expect("timeout");
        let _ = stream.write_all(&garbage);
        let _ = stream.write_all(b"\n");
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        if let Some(line) = reply.lines().next() {
            let parsed: Value =
                serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
            assert_eq!(parsed["ok"], false, "{parsed}");
        }
    }

    // Random bytes (seeded) over 50 admin connections: whatever comes back is a JSON refusal.
    let mut rng = crate::support::wire::SeededRng::new(0xad_0123);
    for _ in 0..50 {
        use std::io::{Read, Write};
        let len = 1 + rng.below(2000) as usize;
        let noise = rng.bytes(len);
        let mut stream =
            std::os::unix::net::UnixStream::connect(duet.socket()).expect("connect admin socket");
        stream.set_read_timeout(Some(LIMIT)).expect("timeout");
        let _ = stream.write_all(&noise);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        for line in String::from_utf8_lossy(&reply).lines() {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("reply to random bytes is not JSON ({err}): {line}"));
            assert_eq!(parsed["ok"], false, "random bytes were accepted: {parsed}");
        }
    }

    // Still serving SQL and admin.
    let mut target = duet.target(&backend.user, db.name());
    if let Some(password) = &backend.password {
        target = target.with_password(password);
    }
    let out = crate::support::tools::psql(&target, &["-At", "-c", "SELECT 'still serving'"], None);
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), "still serving");
    assert_eq!(duet.status()["paused"], false);

    // The CLI's own errors: no such socket → exit 2 with a message.
    let missing = duet.dir().join("no-such.sock");
    let mut cli = std::process::Command::new(DUET_BIN);
    cli.arg("admin").arg("--socket").arg(&missing).arg("status");
    let out: Output = run(cli, None, LIMIT);
    assert_eq!(
        out.code(),
        Some(2),
        "admin on a missing socket: {}",
        out.stderr
    );
    assert!(
        !out.stderr.trim().is_empty(),
        "admin on a missing socket must say why"
    );

    // An unknown admin command: exit 2 with a message, the proxy unaffected.
    let unknown = duet.admin(&["frobnicate"]);
    assert_eq!(unknown.code, Some(2), "unknown admin command: {unknown:?}");
    assert!(
        !unknown.stderr.trim().is_empty(),
        "an unknown command must say why"
    );
    assert_eq!(duet.status()["paused"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_budget_closes_idle_clients_and_exits_0() {
    let Some(backend) = backend_or_skip("shutdown_with_budget_closes_idle_clients_and_exits_0")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "admin_shutdown");
    let mut duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let idle = connect(&through(&backend, &duet, &db, "e2e-idle")).await;
    idle.client
        .simple_query("SELECT 1")
        .await
        .expect("query before shutdown");
    // A second session is in the middle of a statement when the shutdown starts.
    let busy = connect(&through(&backend, &duet, &db, "e2e-busy")).await;
    let busy_pid = backend_pid(&busy.client).await;
    let busy_client = busy.client;
    let busy_query = tokio::spawn(async move {
        busy_client
            .simple_query("SELECT pg_sleep(1), 'finished'")
            .await
    });
    wait_for_async("both clients counted, one active", LIMIT, || async {
        let status = duet.status_async().await;
        let active = status["sessions"].as_array().is_some_and(|sessions| {
            sessions
                .iter()
                .any(|s| s["backend_pid"] == busy_pid && s["state"] == "active")
        });
        (status.pointer("/clients/current") == Some(&Value::from(2)) && active).then_some(())
    })
    .await;

    let reply = duet
        .admin_async(&["shutdown", "--timeout", "6s", "--format", "json"])
        .await;
    assert_eq!(reply.code, Some(0), "shutdown: {reply:?}");
    let reply = reply.json();
    assert_eq!(reply["shutting_down"], true, "{reply}");
    assert_eq!(reply["sessions"], 2, "{reply}");

    // Sessions may finish within the budget: the running statement gets its result.
    let finished = bounded("the statement running at shutdown", LIMIT, busy_query)
        .await
        .expect("busy task")
        .expect("a statement in flight at shutdown must complete within the budget");
    assert!(
        finished.iter().any(|message| matches!(
            message,
            tokio_postgres::SimpleQueryMessage::Row(row) if row.get(1) == Some("finished")
        )),
        "no result row for the statement in flight"
    );

    // The idle client is closed at the end of the budget with FATAL 57P01.
    let ended = bounded("the idle client to be closed", LIMIT, idle.ended)
        .await
        .expect("connection task");
    let error = ended.expect("the connection must end with duet's FATAL, not a silent close");
    let db_error = error
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {error:?}"));
    assert_eq!(db_error.code().code(), "57P01", "{db_error:?}");
    assert_eq!(db_error.severity(), "FATAL");
    assert!(
        db_error.message().contains("duet is shutting down"),
        "{}",
        db_error.message()
    );
    assert!(idle.client.simple_query("SELECT 1").await.is_err());

    let status = duet.wait_exit(LIMIT);
    assert_eq!(status.code(), Some(0), "duet after shutdown: {status}");
    assert!(
        std::net::TcpStream::connect(duet.listen()).is_err(),
        "duet still accepts connections after it exited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_shut_down_gracefully() {
    let Some(backend) = backend_or_skip("sigterm_and_sigint_shut_down_gracefully") else {
        return;
    };
    let db = TestDatabase::create(&backend, "admin_signals");
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let mut duet = DuetProcess::start(&backend.url(db.name()), &["--shutdown-timeout", "1s"]);
        let idle = connect(&through(&backend, &duet, &db, "e2e-idle")).await;
        idle.client
            .simple_query("SELECT 1")
            .await
            .expect("query before the signal");
        duet.signal(signal);
        let ended = bounded("the idle client to be closed", LIMIT, idle.ended)
            .await
            .expect("connection task");
        let code = ended.and_then(|err| err.code().map(|code| code.code().to_string()));
        assert_eq!(
            code.as_deref(),
            Some("57P01"),
            "the client must get FATAL 57P01 on {name}"
        );
        let status = duet.wait_exit(LIMIT);
        assert_eq!(status.code(), Some(0), "duet after {name}: {status}");
    }
}

#[test]
fn stale_socket_is_replaced_and_live_socket_refused() {
    let Some(backend) = backend_or_skip("stale_socket_is_replaced_and_live_socket_refused") else {
        return;
    };
    let db = TestDatabase::create(&backend, "admin_socket_file");
    let mut duet = DuetProcess::start(&backend.url(db.name()), &[]);

    // A second duet on the same (live) socket must refuse to start, exit 2.
    let mut second = std::process::Command::new(DUET_BIN);
    second.args([
        "proxy",
        "--listen",
        &format!("127.0.0.1:{}", crate::support::free_port()),
    ]);
    second.arg("--backend").arg(backend.url(db.name()));
    second.arg("--admin-socket").arg(duet.socket());
    second.current_dir(duet.dir().path());
    let out = run(second, None, LIMIT);
    assert_eq!(
        out.code(),
        Some(2),
        "a second duet on a live admin socket must exit 2:\n{}",
        out.stderr
    );
    assert_eq!(
        duet.status()["paused"],
        false,
        "the first duet's socket must still answer"
    );

    // After a crash (SIGKILL) the socket file stays behind; a new duet replaces it.
    duet.kill();
    assert!(
        duet.socket().exists(),
        "expected a stale socket file after SIGKILL"
    );
    duet.restart();
    assert_eq!(duet.status()["clients"]["current"], 0);
    assert_eq!(duet.starts(), 2);
}

#[test]
fn bad_flags_exit_2_naming_the_field() {
    let dir = TempDir::new("flags");
    let socket = dir.join("duet.sock");
    let socket = socket.to_str().expect("utf-8");
    let port = format!("127.0.0.1:{}", crate::support::free_port());
    let backend = "postgres://postgres@127.0.0.1:5432/postgres";
    for (args, field) in [
        (
            vec!["--listen", "not-an-address", "--backend", backend],
            "listen",
        ),
        (
            vec![
                "--listen",
                &port,
                "--backend",
                backend,
                "--shutdown-timeout",
                "forever",
            ],
            "shutdown",
        ),
        (
            vec!["--listen", &port, "--backend", "mysql://nope"],
            "backend",
        ),
        (
            vec![
                "--listen",
                &port,
                "--backend",
                backend,
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            "tls",
        ),
    ] {
        let mut command = std::process::Command::new(DUET_BIN);
        command
            .arg("proxy")
            .args(&args)
            .arg("--admin-socket")
            .arg(socket)
            .current_dir(dir.path());
        let out = run(command, None, LIMIT);
        assert_eq!(
            out.code(),
            Some(2),
            "duet proxy {args:?} must exit 2:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.to_lowercase().contains(field),
            "duet proxy {args:?}: the message must name {field:?}:\n{}",
            out.stderr
        );
    }
}
