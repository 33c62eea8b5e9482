//! How connections end, compared byte for byte with PostgreSQL itself.
//!
//! A backend that ends a session with its own FATAL (`pg_terminate_backend`, an idle timeout)
//! gives the client exactly that ErrorResponse and then EOF, nothing of duet's after it (a second
//! FATAL crashed node-postgres's suite); only a backend that vanishes without a word gets duet's
//! 08006 (robustness.rs). Bytes that are not a startup packet get what PostgreSQL gives them:
//! nothing; a startup packet PostgreSQL cannot serve gets a FATAL with PostgreSQL's SQLSTATE.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::Client;

use crate::support::pg_client::{backend_pid, bounded, connect};
use crate::support::wire::{self, BackendMessage};
use crate::support::{backend_or_skip, Backend, DuetProcess, TestDatabase};

const LIMIT: Duration = Duration::from_secs(20);

/// Everything a server sends until it closes the connection (EOF or reset: PostgreSQL resets a
/// connection it closes with unread input), or a panic after [`LIMIT`].
async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match bounded(
            "the server to close the connection",
            LIMIT,
            stream.read(&mut chunk),
        )
        .await
        {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Runs `query` (simple protocol) on a raw connection and returns the messages up to its
/// ReadyForQuery.
async fn query(stream: &mut TcpStream, sql: &str) -> Vec<BackendMessage> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    stream
        .write_all(&wire::message(b'Q', &body))
        .await
        .expect("sending a query");
    wire::read_until_ready(stream, LIMIT).await
}

/// The first column of the first DataRow, as text.
fn first_value(messages: &[BackendMessage]) -> String {
    let row = messages
        .iter()
        .find(|message| message.tag == b'D')
        .expect("a DataRow");
    // DataRow: column count (2 bytes), then per column a length (4 bytes) and the value.
    let len = i32::from_be_bytes([row.body[2], row.body[3], row.body[4], row.body[5]]);
    let len = usize::try_from(len).expect("a non-null value");
    String::from_utf8_lossy(&row.body[6..6 + len]).into_owned()
}

/// The address of the server under test, for raw connections made direct.
async fn direct_addr(backend: &Backend) -> SocketAddr {
    tokio::net::lookup_host(backend.address())
        .await
        .expect("resolving the server's address")
        .next()
        .expect("an address")
}

/// Asserts that `received` is exactly one FATAL ErrorResponse with `code`, whole.
fn assert_one_fatal(who: &str, received: &[u8], code: &str) {
    let (messages, used) = wire::parse_messages(received);
    assert_eq!(
        used,
        received.len(),
        "{who}: a partial message: {received:?}"
    );
    assert_eq!(
        messages.len(),
        1,
        "{who}: exactly one message before EOF, got {:?}",
        messages
            .iter()
            .map(|m| (m.tag as char, m.fields()))
            .collect::<Vec<_>>()
    );
    let fields = messages[0].fields();
    assert_eq!(messages[0].tag, b'E', "{who}: {fields:?}");
    assert_eq!(fields.get(&b'C').map(String::as_str), Some(code), "{who}");
    assert_eq!(
        fields.get(&b'V').map(String::as_str),
        Some("FATAL"),
        "{who}"
    );
}

/// A raw session logged in on `addr`, and its backend's pid.
async fn logged_in(addr: SocketAddr, backend: &Backend, db: &str) -> (TcpStream, String) {
    let (mut stream, _) = wire::login(addr, &backend.user, db).await;
    let pid = first_value(&query(&mut stream, "SELECT pg_backend_pid()").await);
    (stream, pid)
}

/// Logs in on `addr`, has the session terminated from `killer`, and returns what it got after.
async fn terminated(addr: SocketAddr, backend: &Backend, db: &str, killer: &Client) -> Vec<u8> {
    let (mut stream, pid) = logged_in(addr, backend, db).await;
    killer
        .simple_query(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .expect("pg_terminate_backend");
    read_to_end(&mut stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_backend_gives_its_fatal_and_nothing_else() {
    let Some(backend) = backend_or_skip("a_terminated_backend_gives_its_fatal_and_nothing_else")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "end_terminate");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let killer = connect(&db.direct_config()).await;

    let direct = terminated(
        direct_addr(&backend).await,
        &backend,
        db.name(),
        &killer.client,
    )
    .await;
    assert_one_fatal("direct", &direct, "57P01");
    let through = terminated(duet.listen(), &backend, db.name(), &killer.client).await;
    assert_one_fatal("through duet", &through, "57P01");
    assert_eq!(through, direct, "the same bytes through duet as direct");

    // A driver sees the server's own error as what ended its connection.
    let session = connect(&duet.config_as(&backend, db.name())).await;
    let pid = backend_pid(&session.client).await;
    killer
        .client
        .simple_query(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .expect("pg_terminate_backend");
    let ended = bounded("the terminated session to end", LIMIT, session.ended)
        .await
        .expect("connection task")
        .expect("the client must get the server's FATAL");
    let db_error = ended
        .as_db_error()
        .unwrap_or_else(|| panic!("not an ErrorResponse: {ended:?}"));
    assert_eq!(db_error.code().code(), "57P01", "{db_error:?}");
    assert_eq!(db_error.severity(), "FATAL");

    // duet serves on.
    let again = connect(&duet.config_as(&backend, db.name())).await;
    again
        .client
        .simple_query("SELECT 1")
        .await
        .expect("a new session");
}

/// Logs in on `addr`, runs a named prepared statement (extended protocol: Parse, Bind, Execute,
/// Flush, Sync) that sleeps, has the session terminated from `killer` while it runs, and returns what it
/// got after its ParseComplete and BindComplete.
async fn terminated_while_executing(
    addr: SocketAddr,
    backend: &Backend,
    db: &str,
    killer: &Client,
) -> Vec<u8> {
    let (mut stream, pid) = logged_in(addr, backend, db).await;
    let mut batch = wire::message(b'P', b"sleep query\0SELECT pg_sleep(30)\0\0\0");
    batch.extend(wire::message(b'B', b"\0sleep query\0\0\0\0\0\0\0"));
    // Flush: the server sends ParseComplete and BindComplete now, not at Sync.
    batch.extend(wire::message(b'H', b""));
    batch.extend(wire::message(b'E', b"\0\0\0\0\0"));
    batch.extend(wire::message(b'S', b""));
    stream.write_all(&batch).await.expect("sending the batch");
    // ParseComplete ('1') and BindComplete ('2'), 5 bytes each, come before the statement runs.
    let mut answered = [0u8; 10];
    bounded(
        "ParseComplete and BindComplete",
        LIMIT,
        stream.read_exact(&mut answered),
    )
    .await
    .expect("ParseComplete and BindComplete");
    assert_eq!((answered[0], answered[5]), (b'1', b'2'), "{answered:?}");
    // Wait until the statement is running, then end it.
    loop {
        let rows = killer
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE pid = $1::text::int AND state = 'active'",
                &[&pid],
            )
            .await
            .expect("pg_stat_activity");
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    killer
        .simple_query(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .expect("pg_terminate_backend");
    read_to_end(&mut stream).await
}

/// The same with a named prepared statement killed while it executes (node-postgres's
/// "query killed during query execution of prepared statement"): the statement's name made duet's
/// hook read the ErrorResponse, and the FATAL it forwarded was not counted, so a second FATAL
/// (08006) followed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_statement_terminated_while_executing_gives_one_fatal() {
    let Some(backend) =
        backend_or_skip("a_prepared_statement_terminated_while_executing_gives_one_fatal")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "end_terminate_prepared");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let killer = connect(&db.direct_config()).await;

    let direct = terminated_while_executing(
        direct_addr(&backend).await,
        &backend,
        db.name(),
        &killer.client,
    )
    .await;
    assert_one_fatal("direct", &direct, "57P01");
    let through =
        terminated_while_executing(duet.listen(), &backend, db.name(), &killer.client).await;
    assert_one_fatal("through duet", &through, "57P01");
    assert_eq!(through, direct, "the same bytes through duet as direct");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_timeout_gives_its_fatal_and_nothing_else() {
    let Some(backend) = backend_or_skip("an_idle_session_timeout_gives_its_fatal_and_nothing_else")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "end_idle_timeout");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let timed_out = |addr: SocketAddr| {
        let user = backend.user.clone();
        let db = db.name().to_owned();
        async move {
            let (mut stream, _) = wire::login(addr, &user, &db).await;
            query(&mut stream, "SET idle_session_timeout = '200ms'").await;
            read_to_end(&mut stream).await
        }
    };
    let direct = timed_out(direct_addr(&backend).await).await;
    assert_one_fatal("direct", &direct, "57P05");
    let through = timed_out(duet.listen()).await;
    assert_one_fatal("through duet", &through, "57P05");
    assert_eq!(through, direct, "the same bytes through duet as direct");
}

/// Sends `bytes` (then half-closes) and returns everything the server sent until it closed.
async fn probe(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    read_to_end(&mut stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_before_a_startup_packet_are_answered_as_postgresql_does() {
    let Some(backend) =
        backend_or_skip("bytes_before_a_startup_packet_are_answered_as_postgresql_does")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "end_garbage");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let direct = direct_addr(&backend).await;
    let startup = wire::startup_message(&[("user", backend.user.as_str())]);
    let be = |n: i32| n.to_be_bytes().to_vec();

    // Not a startup packet: PostgreSQL closes without a byte.
    let silent: Vec<(&str, Vec<u8>)> = vec![
        (
            "garbage",
            b"\x01\x02\x03\x04 these are not the bytes".to_vec(),
        ),
        (
            "length below the minimum",
            [be(4), be(wire::PROTOCOL_3_0)].concat(),
        ),
        ("negative length", [be(-16), vec![0; 12]].concat()),
        (
            "length above 10000",
            [be(10_001), be(wire::PROTOCOL_3_0), b"user\0x\0".to_vec()].concat(),
        ),
        (
            "HTTP request",
            b"GET / HTTP/1.1\r\nHost: duet\r\n\r\n".to_vec(),
        ),
        ("three bytes of a length", startup[..3].to_vec()),
        (
            "half a startup message",
            startup[..startup.len() / 2].to_vec(),
        ),
        (
            "cancel request of the wrong size",
            [be(12), be(wire::CANCEL_REQUEST_CODE), be(1)].concat(),
        ),
    ];
    for (case, bytes) in &silent {
        let from_postgres = probe(direct, bytes).await;
        assert!(
            from_postgres.is_empty(),
            "{case}: PostgreSQL sent {from_postgres:?}"
        );
        let from_duet = probe(duet.listen(), bytes).await;
        assert_eq!(
            from_duet, from_postgres,
            "{case}: duet must answer as PostgreSQL does"
        );
    }
    assert!(
        duet.log()
            .contains("closing a connection that did not send a valid startup packet"),
        "duet logs what it closed:\n{}",
        duet.log()
    );

    // A startup packet PostgreSQL cannot serve: a FATAL with the server's SQLSTATE (the text and
    // the source-location fields are duet's own).
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("protocol 9.0", [be(8), be(0x0009_0000)].concat()),
        (
            "parameters without a terminator",
            [be(24), be(wire::PROTOCOL_3_0), b"userxxxxxxxxxxxx".to_vec()].concat(),
        ),
    ];
    for (case, bytes) in &refused {
        let from_postgres = probe(direct, bytes).await;
        let from_duet = probe(duet.listen(), bytes).await;
        for (who, received) in [("direct", &from_postgres), ("duet", &from_duet)] {
            let (messages, used) = wire::parse_messages(received);
            assert_eq!(
                (messages.len(), used),
                (1, received.len()),
                "{case} {who}: {received:?}"
            );
        }
        let code = |received: &[u8]| {
            let fields = wire::parse_messages(received).0[0].fields();
            (fields.get(&b'V').cloned(), fields.get(&b'C').cloned())
        };
        assert_eq!(code(&from_duet), code(&from_postgres), "{case}");
    }

    // duet keeps serving.
    let session = connect(&duet.config_as(&backend, db.name())).await;
    session
        .client
        .simple_query("SELECT 1")
        .await
        .expect("a session after the garbage");
}
