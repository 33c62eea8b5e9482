//! Clients on duet's unix socket: like PostgreSQL and PgBouncer, duet listens on
//! `<dir>/.s.PGSQL.<port>` besides its TCP address (`--unix-socket-dir`, `/tmp` by default), so
//! `psql -h <dir> -p <port>` and drivers configured with a socket directory reach it; and a
//! migration loses nothing its application writes over the socket.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::support::migration::{assert_clean, column_type, migrate_sql, request, wait_phase};
use crate::support::pg_client::connect;
use crate::support::scenario::Scenario;
use crate::support::tools::{command, psql, run, Target};
use crate::support::{backend_or_skip, free_port, Backend, DuetProcess, TempDir, TestDatabase};

/// duet's socket for clients in `dir` for `port`: PostgreSQL's name for it.
fn socket_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

/// psql to duet over the socket in `dir`.
fn local_target(backend: &Backend, dir: &Path, port: u16, db: &str) -> Target {
    let target = Target::tcp(dir.to_str().expect("utf-8 path"), port, &backend.user, db);
    match &backend.password {
        Some(password) => target.with_password(password),
        None => target,
    }
}

/// What `psql -c` prints for `sql`, failing the test if psql fails.
fn psql_prints(target: &Target, sql: &str) -> String {
    let out = psql(target, &["-X", "-A", "-t", "-c", sql], None);
    out.assert_success();
    out.stdout_text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_the_unix_socket_are_served_like_tcp_ones() {
    let test = "clients_of_the_unix_socket_are_served_like_tcp_ones";
    let Some(backend) = backend_or_skip(test) else {
        return;
    };
    let db = TestDatabase::create(&backend, "unix_socket_clients");
    let dir = TempDir::new("local");
    let dir_arg = dir.path().display().to_string();
    let mut duet = DuetProcess::start(&backend.url(db.name()), &["--unix-socket-dir", &dir_arg]);
    let path = socket_path(dir.path(), duet.port());
    let mode = std::fs::metadata(&path)
        .unwrap_or_else(|err| panic!("{}: {err}\n{}", path.display(), duet.log()))
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o777,
        "as PostgreSQL's unix_socket_permissions"
    );
    // The log says where (written once serving starts, just after the admin socket is up).
    let said = format!("listening on unix socket {}", path.display());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !duet.log().contains(&said) {
        assert!(std::time::Instant::now() < deadline, "{}", duet.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // psql prints the same over the socket as over TCP.
    let sql = "SELECT current_user, current_database(), 6 * 7";
    let local = psql_prints(
        &local_target(&backend, dir.path(), duet.port(), db.name()),
        sql,
    );
    let mut tcp = duet.target(&backend.user, db.name());
    if let Some(password) = &backend.password {
        tcp = tcp.with_password(password);
    }
    assert_eq!(local, psql_prints(&tcp, sql));
    assert!(local.ends_with("|42\n"), "{local}");

    // A driver over the socket: status shows it as PostgreSQL's logs do, `[local]`.
    // A host starting with `/` is a socket directory to tokio-postgres, as to libpq.
    let config = backend.config_at(
        dir.path().to_str().expect("utf-8 path"),
        duet.port(),
        db.name(),
    );
    let session = connect(&config).await;
    let row = session
        .client
        .query_one("SELECT $1::int + 1", &[&41i32])
        .await
        .expect("an extended-protocol query over the socket");
    assert_eq!(row.get::<_, i32>(0), 42);
    let status = duet.status_async().await;
    let peers: Vec<&str> = status["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["client_addr"].as_str())
        .collect();
    assert_eq!(peers, ["[local]"], "{status}");
    assert_eq!(
        status["unix_socket"],
        path.display().to_string(),
        "{status}"
    );
    let text = duet.admin(&["status"]);
    assert!(
        text.stdout
            .contains(&format!("unix socket   {}", path.display())),
        "{}",
        text.stdout
    );

    // A cancel request over the socket reaches the running statement.
    let cancel = session.client.cancel_token();
    let sleeper = tokio::spawn({
        let client = session.client;
        async move { client.simple_query("SELECT pg_sleep(30)").await.err() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel
        .cancel_query(NoTls)
        .await
        .expect("the cancel request over the socket");
    let err = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the statement ended after the cancel")
        .expect("the task")
        .expect("the statement was cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");

    // TLS is refused over the socket, as PostgreSQL refuses it there, and the client goes on
    // without it: 'N' to an SSLRequest.
    let mut raw = std::os::unix::net::UnixStream::connect(&path).expect("a raw connection");
    raw.write_all(&[0, 0, 0, 8, 4, 210, 22, 47])
        .expect("sending SSLRequest");
    let mut answer = [0u8; 1];
    raw.read_exact(&mut answer).expect("the answer");
    assert_eq!(&answer, b"N");
    drop(raw);

    // A clean stop removes the file, so nobody finds a dead socket there.
    duet.admin(&["shutdown"]);
    assert!(duet.wait_exit(Duration::from_secs(30)).success());
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn the_default_unix_socket_is_in_tmp_and_a_taken_one_is_skipped() {
    let test = "the_default_unix_socket_is_in_tmp_and_a_taken_one_is_skipped";
    let Some(backend) = backend_or_skip(test) else {
        return;
    };
    let db = TestDatabase::create(&backend, "unix_socket_default");

    // Nobody asked: /tmp, where PgBouncer puts its socket and libpq-based tools look with
    // `-h /tmp`.
    let mut duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let tmp = Path::new("/tmp");
    let path = socket_path(tmp, duet.port());
    assert!(path.exists(), "{}: {}", path.display(), duet.log());
    let local = psql_prints(
        &local_target(&backend, tmp, duet.port(), db.name()),
        "SELECT 'over /tmp'",
    );
    assert_eq!(local, "over /tmp\n");
    duet.admin(&["shutdown"]);
    assert!(duet.wait_exit(Duration::from_secs(30)).success());
    assert!(!path.exists(), "{} left behind", path.display());

    // Turned off: nothing listens there (a file may be left by a duet an earlier test killed),
    // and status names no socket.
    let duet = DuetProcess::start(&backend.url(db.name()), &["--unix-socket-dir", ""]);
    let path = socket_path(tmp, duet.port());
    assert!(
        std::os::unix::net::UnixStream::connect(&path).is_err(),
        "{}: {}",
        path.display(),
        duet.log()
    );
    assert_eq!(duet.status()["unix_socket"], "", "{}", duet.log());
    drop(duet);

    // The default socket taken by another process: duet serves over TCP and says why, and the
    // other process's socket is left alone.
    let port = free_port();
    let path = socket_path(tmp, port);
    if std::os::unix::net::UnixStream::connect(&path).is_err() {
        // A file left by a duet an earlier test killed: free ports come round again.
        let _ = std::fs::remove_file(&path);
    }
    let other = std::os::unix::net::UnixListener::bind(&path).expect("another process's socket");
    let dir = TempDir::new("default-taken");
    let admin = dir.join("duet.sock");
    let duet = DuetProcess::start_in(
        dir,
        vec![
            "proxy".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--backend".into(),
            backend.url(db.name()),
            "--admin-socket".into(),
            admin.display().to_string(),
        ],
        format!("127.0.0.1:{port}").parse().expect("address"),
        admin,
    );
    let mut tcp = duet.target(&backend.user, db.name());
    if let Some(password) = &backend.password {
        tcp = tcp.with_password(password);
    }
    assert_eq!(psql_prints(&tcp, "SELECT 1"), "1\n");
    assert_eq!(
        duet.status()["unix_socket"],
        "",
        "status names no socket it does not listen on"
    );
    assert!(
        duet.log().contains("not listening on a unix socket")
            && duet.log().contains("belongs to a running process"),
        "{}",
        duet.log()
    );
    drop(duet);
    assert!(path.exists(), "the other process's socket was removed");
    drop(other);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_unix_socket_dir_that_cannot_be_used_stops_the_start() {
    let dir = TempDir::new("local-taken");
    let port = free_port();
    let path = socket_path(dir.path(), port);
    let _other = std::os::unix::net::UnixListener::bind(&path).expect("another process's socket");
    let mut duet = command(crate::support::duet_process::DUET_BIN);
    duet.args([
        "proxy",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--backend",
        "postgres://postgres@127.0.0.1:1/postgres",
        "--admin-socket",
        &dir.join("duet.sock").display().to_string(),
        "--unix-socket-dir",
        &dir.path().display().to_string(),
    ]);
    let out = run(duet, None, Duration::from_secs(30));
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("{} belongs to a running process", path.display()))
            && out.stderr.contains("--unix-socket-dir"),
        "the error names the socket and the setting: {}",
        out.stderr
    );
    assert!(path.exists(), "the other process's socket was removed");
}

/// `--unix-socket-mode` and `--unix-socket-group` set who may reach the socket, as PostgreSQL's
/// `unix_socket_permissions` and `unix_socket_group`: the file has that mode and group, and a
/// client allowed by them is served. A group that does not exist stops the start, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unix_socket_takes_the_mode_and_group_it_is_given() {
    use std::os::unix::fs::MetadataExt;
    let test = "the_unix_socket_takes_the_mode_and_group_it_is_given";
    let Some(backend) = backend_or_skip(test) else {
        return;
    };
    let db = TestDatabase::create(&backend, "unix_socket_access");
    let dir = TempDir::new("local-access");
    let dir_arg = dir.path().display().to_string();
    // root may give the file any group: take one that is not its own (Debian's "daemon"), so the
    // test sees the change. Another user may give only its own groups.
    // SAFETY: geteuid cannot fail and touches no memory.
    let group = if unsafe { libc::geteuid() } == 0 {
        "daemon".to_owned()
    } else {
        let mut id = command("id");
        id.arg("-gn");
        run(id, None, Duration::from_secs(10))
            .stdout_text()
            .trim()
            .to_owned()
    };
    let mut getent = command("getent");
    getent.args(["group", &group]);
    let entry = run(getent, None, Duration::from_secs(10)).stdout_text();
    let gid: u32 = entry
        .split(':')
        .nth(2)
        .and_then(|gid| gid.trim().parse().ok())
        .unwrap_or_else(|| panic!("getent group {group}: {entry:?}"));
    let duet = DuetProcess::start(
        &backend.url(db.name()),
        &[
            "--unix-socket-dir",
            &dir_arg,
            "--unix-socket-mode",
            "0770",
            "--unix-socket-group",
            &group,
        ],
    );
    let path = socket_path(dir.path(), duet.port());
    let meta = std::fs::metadata(&path)
        .unwrap_or_else(|err| panic!("{}: {err}\n{}", path.display(), duet.log()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o770);
    assert_eq!(meta.gid(), gid, "the socket's group");
    let target = local_target(&backend, dir.path(), duet.port(), db.name());
    assert_eq!(psql_prints(&target, "SELECT 1").trim(), "1");

    let mut refused = command(crate::support::duet_process::DUET_BIN);
    refused.args([
        "proxy",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--backend",
        "postgres://postgres@127.0.0.1:1/postgres",
        "--admin-socket",
        &dir.join("refused.sock").display().to_string(),
        "--unix-socket-dir",
        &dir_arg,
        "--unix-socket-group",
        "no-such-group-duet",
    ]);
    let out = run(refused, None, Duration::from_secs(30));
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--unix-socket-group")
            && out.stderr.contains("no group named \"no-such-group-duet\""),
        "the error names the setting and the group: {}",
        out.stderr
    );
}

/// A migration whose application writes arrive over the unix socket: every round of writes
/// (both protocols, every write class) goes through duet's socket into the migrated table and
/// straight to PostgreSQL into its unmigrated twin, during the copy, when ready, after the flip and
/// after complete, and the two tables hold the same rows after each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_loses_nothing_written_over_the_unix_socket() {
    let Some(backend) = backend_or_skip("a_migration_loses_nothing_written_over_the_unix_socket")
    else {
        return;
    };
    let mut s = Scenario::start(
        backend.clone(),
        "unix_socket_migration",
        "usm",
        "int",
        "int",
        2000,
    )
    .await;
    let dir = TempDir::new("local-migration");
    // The scenario's duet listens on /tmp; this one, on the same database, on a directory of its
    // own, and the application's session goes through it over the socket.
    let local = DuetProcess::start(
        &backend.url(s.db.name()),
        &["--unix-socket-dir", &dir.path().display().to_string()],
    );
    s.through_session = connect(&backend.config_at(
        dir.path().to_str().expect("utf-8 path"),
        local.port(),
        s.db.name(),
    ))
    .await;
    let status = local.status_async().await;
    assert_eq!(status["sessions"][0]["client_addr"], "[local]", "{status}");
    s.round().await;
    let id = migrate_sql(&local, "ALTER TABLE usm.t ALTER COLUMN id TYPE bigint").await;
    s.round().await;
    s.assert_same_rows().await;
    wait_phase(&local, id, "ready").await;
    s.round().await;
    s.assert_same_rows().await;
    request(&local, json!({"command": "cutover"}))
        .await
        .expect_ok("cutover");
    s.round().await;
    s.assert_same_rows().await;
    request(&local, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    s.round().await;
    s.assert_same_rows().await;
    assert_eq!(column_type(s.direct(), "usm", "t", "id").await, "bigint");
    assert_clean(&local, s.direct(), "usm", id, "completed").await;
}
