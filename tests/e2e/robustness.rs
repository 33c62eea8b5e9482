//! What a proxy meets in production besides well-behaved clients.
//!
//! Malformed, truncated, oversized and random protocol bytes close only the offending connection
//! (silently before a startup packet, as PostgreSQL does; with FATAL 08P01 after login) while a
//! real session next to them keeps working;
//! a backend that dies takes down only its sessions, duet keeps running, and serves again once a
//! server is back on the same address; an unreachable backend is reported as 08006 naming it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duet_harness::cluster::ClusterOptions;
use serde_json::Value;

use crate::support::cluster::{stop_postmaster, superuser_config, RestartedServer};
use crate::support::pg_client::{backend_pid, bounded, connect, try_connect};
use crate::support::wire::{self, Exchange, SeededRng};
use crate::support::{
    backend_or_skip, throwaway_cluster_or_skip, wait_for, wait_for_async, DuetProcess, TestDatabase,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(20);

/// How a hand-made bad input must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// FATAL 08P01, then closed.
    ProtocolViolation,
    /// A FATAL with this SQLSTATE, then closed (PostgreSQL's answer to a startup packet it
    /// cannot serve).
    Fatal(&'static str),
    /// Closed without a byte: PostgreSQL's answer to bytes that are not a startup packet.
    Nothing,
    /// Closed; if an error came first it is FATAL.
    ClosedMaybeFatal,
}

fn check_exchange(case: &str, exchange: &Exchange, expect: Expect) {
    assert!(
        exchange.closed,
        "{case}: duet did not close the connection within {LIMIT:?}: {exchange:?}"
    );
    assert!(
        exchange.trailing.is_empty(),
        "{case}: duet sent a partial message: {exchange:?}"
    );
    if expect == Expect::Nothing {
        assert!(
            exchange.messages.is_empty(),
            "{case}: PostgreSQL answers nothing here, duet sent {exchange:?}"
        );
        return;
    }
    let code = match expect {
        Expect::Fatal(code) => Some(code),
        Expect::ProtocolViolation => Some("08P01"),
        _ => None,
    };
    match (code, exchange.error()) {
        (Some(code), Some(error)) => {
            let fields = error.fields();
            assert_eq!(
                fields.get(&b'C').map(String::as_str),
                Some(code),
                "{case}: {fields:?}"
            );
            assert_eq!(
                fields.get(&b'V').map(String::as_str),
                Some("FATAL"),
                "{case}: {fields:?}"
            );
        }
        (Some(code), None) => {
            panic!("{case}: expected ErrorResponse {code}, got {exchange:?}")
        }
        (None, Some(error)) => {
            let fields = error.fields();
            assert_eq!(
                fields.get(&b'V').map(String::as_str),
                Some("FATAL"),
                "{case}: {fields:?}"
            );
        }
        (None, None) => {}
    }
}

fn raw(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protocol_closes_only_the_offender() {
    let Some(backend) = backend_or_skip("malformed_protocol_closes_only_the_offender") else {
        return;
    };
    let db = TestDatabase::create(&backend, "robust_protocol");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let config = duet.config_as(&backend, db.name());

    // A real session working all along.
    let healthy = connect(&config).await;
    let stop = Arc::new(AtomicBool::new(false));
    let successes = Arc::new(AtomicU64::new(0));
    let worker = {
        let stop = Arc::clone(&stop);
        let successes = Arc::clone(&successes);
        tokio::spawn(async move {
            let mut n = 0i32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let row = healthy
                    .client
                    .query_one("SELECT $1::int + 1", &[&n])
                    .await?;
                assert_eq!(row.get::<_, i32>(0), n + 1);
                successes.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, tokio_postgres::Error>(())
        })
    };

    let startup =
        wire::startup_message(&[("user", backend.user.as_str()), ("database", db.name())]);
    // What PostgreSQL 15 answers to each, probed direct: nothing for bytes that are not a
    // startup packet, a FATAL for a startup packet it cannot serve (connection_end.rs compares
    // the bytes with the server's own).
    let before_login: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "startup length below the minimum",
            raw(&[&4i32.to_be_bytes(), &[0, 3, 0, 0]]),
            Expect::Nothing,
        ),
        (
            "negative startup length",
            raw(&[&(-16i32).to_be_bytes(), &[0; 12]]),
            Expect::Nothing,
        ),
        (
            "oversized startup length",
            raw(&[
                &0x7fff_ff00i32.to_be_bytes(),
                &wire::PROTOCOL_3_0.to_be_bytes(),
                b"user\0x\0",
            ]),
            Expect::Nothing,
        ),
        (
            "truncated startup",
            startup[..startup.len() / 2].to_vec(),
            Expect::Nothing,
        ),
        (
            "startup header only",
            startup[..3].to_vec(),
            Expect::Nothing,
        ),
        (
            "unknown protocol version",
            raw(&[&8i32.to_be_bytes(), &0x0009_0000i32.to_be_bytes()]),
            Expect::Fatal("0A000"),
        ),
        (
            "startup parameters without terminators",
            raw(&[
                &24i32.to_be_bytes(),
                &wire::PROTOCOL_3_0.to_be_bytes(),
                b"userxxxxxxxxxxxx",
            ]),
            Expect::ProtocolViolation,
        ),
        (
            "HTTP request",
            b"GET / HTTP/1.1\r\nHost: duet\r\n\r\n".to_vec(),
            Expect::Nothing,
        ),
    ];
    for (case, bytes, expect) in before_login {
        let mut stream = tokio::net::TcpStream::connect(duet.listen())
            .await
            .expect("connect");
        let exchange = wire::send_and_collect(&mut stream, &bytes, LIMIT).await;
        check_exchange(case, &exchange, expect);
    }

    // After a successful login: the client stays connected (no EOF), duet must close on its own.
    let after_login: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "garbage message type",
            wire::message(0xff, b"garbage"),
            Expect::ProtocolViolation,
        ),
        (
            "length below 4",
            raw(&[b"Q", &2i32.to_be_bytes(), b"SELECT 1\0"]),
            Expect::ProtocolViolation,
        ),
        (
            "negative length",
            raw(&[b"Q", &(-5i32).to_be_bytes(), b"SELECT 1\0"]),
            Expect::ProtocolViolation,
        ),
        (
            "startup packet again",
            startup.clone(),
            Expect::ProtocolViolation,
        ),
    ];
    for (case, bytes, expect) in after_login {
        let (mut stream, _) = wire::login(duet.listen(), &backend.user, db.name()).await;
        let exchange = wire::send_and_collect_open(&mut stream, &bytes, LIMIT).await;
        check_exchange(case, &exchange, expect);
    }
    // After login, messages the client never finishes: closed once the client hangs up.
    let truncated: Vec<(&str, Vec<u8>)> = vec![
        (
            "oversized length",
            raw(&[b"Q", &0x7fff_fff0i32.to_be_bytes(), b"SELECT 1\0"]),
        ),
        (
            "truncated query",
            raw(&[b"Q", &100i32.to_be_bytes(), b"SELECT"]),
        ),
        ("truncated header", b"Q\0\0".to_vec()),
    ];
    for (case, bytes) in truncated {
        let (mut stream, _) = wire::login(duet.listen(), &backend.user, db.name()).await;
        let exchange = wire::send_and_collect(&mut stream, &bytes, LIMIT).await;
        check_exchange(case, &exchange, Expect::ClosedMaybeFatal);
    }

    // Random bytes from a seeded generator over many connections, 16 at a time.
    let seed: u64 = std::env::var("DUET_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00d0_e7e2);
    let mut rng = SeededRng::new(seed);
    for batch in 0..15 {
        let mut tasks = Vec::new();
        for index in 0..16 {
            let mode = rng.below(4);
            let noise_len = 1 + rng.below(600) as usize;
            let noise = rng.bytes(noise_len);
            let header = {
                let mut header = ((8 + rng.below(300)) as i32).to_be_bytes().to_vec();
                header.extend_from_slice(&wire::PROTOCOL_3_0.to_be_bytes());
                header
            };
            let addr = duet.listen();
            let user = backend.user.clone();
            let db_name = db.name().to_string();
            let startup = startup.clone();
            tasks.push(tokio::spawn(async move {
                let case = format!("seed {seed:#x} batch {batch} connection {index} mode {mode}");
                let (mut stream, bytes) = match mode {
                    0 => (
                        tokio::net::TcpStream::connect(addr).await.expect("connect"),
                        noise,
                    ),
                    1 => (
                        tokio::net::TcpStream::connect(addr).await.expect("connect"),
                        raw(&[&startup, &noise]),
                    ),
                    2 => (
                        tokio::net::TcpStream::connect(addr).await.expect("connect"),
                        raw(&[&header, &noise]),
                    ),
                    _ => (wire::login(addr, &user, &db_name).await.0, noise),
                };
                let exchange = wire::send_and_collect(&mut stream, &bytes, LIMIT).await;
                assert!(
                    exchange.closed,
                    "{case}: not closed after the client hung up: {exchange:?}"
                );
            }));
        }
        for task in tasks {
            task.await.expect("random-bytes connection");
        }
    }

    // The real session never noticed; new sessions work; nothing is left behind.
    stop.store(true, Ordering::Relaxed);
    bounded("the healthy session", LIMIT, worker)
        .await
        .expect("healthy task")
        .expect("the healthy session must not see any error");
    assert!(successes.load(Ordering::Relaxed) > 0);
    let fresh = connect(&config).await;
    let one: i32 = fresh
        .client
        .query_one("SELECT 1", &[])
        .await
        .expect("new session")
        .get(0);
    assert_eq!(one, 1);
    wait_for_async("only the new session to remain", LIMIT, || async {
        (duet.status_async().await.pointer("/clients/current") == Some(&Value::from(1)))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_and_gssenc_requests_are_declined_without_tls() {
    let Some(backend) = backend_or_skip("ssl_and_gssenc_requests_are_declined_without_tls") else {
        return;
    };
    let db = TestDatabase::create(&backend, "robust_negotiation");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    // libpq with gssencmode=prefer and sslmode=prefer asks both, in this order, on one connection.
    for requests in [
        vec![wire::SSL_REQUEST_CODE],
        vec![wire::GSSENC_REQUEST_CODE],
        vec![wire::GSSENC_REQUEST_CODE, wire::SSL_REQUEST_CODE],
    ] {
        let mut stream = tokio::net::TcpStream::connect(duet.listen())
            .await
            .expect("connect");
        for code in &requests {
            stream
                .write_all(&wire::negotiation_request(*code))
                .await
                .expect("negotiation request");
            let mut answer = [0u8; 1];
            bounded(
                "the answer to a negotiation request",
                LIMIT,
                stream.read_exact(&mut answer),
            )
            .await
            .expect("reading the one-byte answer");
            assert_eq!(
                answer[0], b'N',
                "request {code} must be declined without TLS configured"
            );
        }
        let messages = wire::login_on(&mut stream, &backend.user, db.name()).await;
        assert!(
            messages.iter().any(|m| m.tag == b'R'),
            "no authentication message after {requests:?}"
        );
        assert!(
            messages.iter().any(|m| m.tag == b'K'),
            "no BackendKeyData after {requests:?}"
        );
        // BackendKeyData carries the backend's real pid (only the secret is duet's own).
        let key = messages
            .iter()
            .find(|m| m.tag == b'K')
            .expect("BackendKeyData");
        let key_pid = i32::from_be_bytes([key.body[0], key.body[1], key.body[2], key.body[3]]);
        let mut query = b"SELECT pg_backend_pid()".to_vec();
        query.push(0);
        stream
            .write_all(&wire::message(b'Q', &query))
            .await
            .expect("Query");
        // Read the answer before saying goodbye (Query + Terminate at once is its own test).
        let reply = wire::read_until_ready(&mut stream, LIMIT).await;
        let _ = stream.write_all(&wire::message(b'X', &[])).await;
        let row = reply
            .iter()
            .find(|m| m.tag == b'D')
            .unwrap_or_else(|| panic!("no DataRow for pg_backend_pid(): {reply:?}"));
        // DataRow: column count (2 bytes), length (4 bytes), text value.
        let pid_text = String::from_utf8_lossy(&row.body[6..]).into_owned();
        assert_eq!(
            pid_text,
            key_pid.to_string(),
            "BackendKeyData pid is not the backend's pid"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_death_is_survived_and_recovered_from() {
    let test = "backend_death_is_survived_and_recovered_from";
    let Some(cluster) = throwaway_cluster_or_skip(test, ClusterOptions::default()) else {
        return;
    };
    let logs = crate::support::TempDir::new("restarted-pg");
    let duet = DuetProcess::start(&cluster.url("postgres", None, "postgres"), &[]);
    let config = duet.config("postgres", "postgres");
    // One backend process dies (SIGKILL: it cannot say goodbye): its client gets duet's FATAL 08006.
    let victim = connect(&config).await;
    let victim_pid = backend_pid(&victim.client).await;
    // SAFETY: kill(2) on a backend process of our own throwaway cluster; no memory effects.
    assert_eq!(
        unsafe { libc::kill(victim_pid, libc::SIGKILL) },
        0,
        "kill -9 backend {victim_pid}"
    );
    let ended = bounded(
        "the session of the killed backend to end",
        LIMIT,
        victim.ended,
    )
    .await
    .expect("connection task")
    .expect("the client must get an error, not a silent close");
    let db_error = ended
        .as_db_error()
        .unwrap_or_else(|| panic!("not an ErrorResponse: {ended:?}"));
    assert_eq!(db_error.code().code(), "08006", "{db_error:?}");
    assert_eq!(db_error.severity(), "FATAL");
    assert!(
        db_error
            .message()
            .contains("lost the connection to the backend"),
        "{}",
        db_error.message()
    );
    // The postmaster recovers from the crash by itself; duet serves new sessions again.
    let session = wait_for_async(
        "a session after crash recovery",
        Duration::from_secs(60),
        || async {
            let session = try_connect(&config).await.ok()?;
            session.client.simple_query("SELECT 1").await.ok()?;
            Some(session)
        },
    )
    .await;

    // The whole server stops (fast shutdown).
    stop_postmaster(&cluster);

    // The client learns its backend is gone: FATAL 08006 from duet, or the server's own 57P01
    // relayed before it went.
    let ended = bounded("the session to end", LIMIT, session.ended)
        .await
        .expect("connection task");
    if let Some(code) = ended.as_ref().and_then(|err| err.code()) {
        assert!(
            ["08006", "57P01"].contains(&code.code()),
            "unexpected error when the backend died: {:?}",
            ended
        );
    }
    assert!(session.client.simple_query("SELECT 1").await.is_err());

    // duet itself keeps running and reports the backend as unreachable to new clients.
    let status = duet.status_async().await;
    assert!(status["clients"]["current"].is_u64());
    let err = match try_connect(&config).await {
        Ok(_) => panic!("connected through duet while the backend is down"),
        Err(err) => err,
    };
    let db_error = err
        .as_db_error()
        .unwrap_or_else(|| panic!("no ErrorResponse while the backend is down: {err:?}"));
    assert_eq!(db_error.code().code(), "08006", "{db_error:?}");
    assert!(
        db_error
            .message()
            .contains(&format!("127.0.0.1:{}", cluster.port())),
        "the message must name the backend address: {}",
        db_error.message()
    );

    // A server back on the same address: duet serves again, without a restart.
    let _restarted =
        RestartedServer::start(cluster.data_dir().to_path_buf(), logs.join("postgres.log"));
    let direct = superuser_config(&cluster, "postgres");
    wait_for(
        "the restarted server to accept connections",
        Duration::from_secs(60),
        || crate::support::database::run_sql(&direct, "SELECT 1").ok(),
    );
    let again = connect(&config).await;
    let one: i32 = again
        .client
        .query_one("SELECT 1", &[])
        .await
        .expect("after the backend returned")
        .get(0);
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_backend_is_reported_as_08006() {
    let port = crate::support::free_port();
    let duet = DuetProcess::start(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        &[],
    );
    for _ in 0..3 {
        let err = match try_connect(&duet.config("postgres", "postgres")).await {
            Ok(_) => panic!("connected to a backend that does not exist"),
            Err(err) => err,
        };
        let db_error = err
            .as_db_error()
            .unwrap_or_else(|| panic!("no ErrorResponse: {err:?}"));
        assert_eq!(db_error.code().code(), "08006");
        assert_eq!(db_error.severity(), "FATAL");
        assert!(
            db_error.message().contains(&format!("127.0.0.1:{port}")),
            "{}",
            db_error.message()
        );
    }
    assert_eq!(
        duet.status_async().await["paused"],
        false,
        "duet keeps running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_gets_backpressure_not_buffering() {
    let Some(backend) =
        backend_or_skip("a_client_that_does_not_read_gets_backpressure_not_buffering")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "robust_slow_reader");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let baseline = duet.resident_kib();

    // Ask for ~1 GB of rows and never read them.
    let (mut slow, _) = wire::login(duet.listen(), &backend.user, db.name()).await;
    let mut query = b"SELECT repeat('x', 1000) || i AS filler, 'duet-slow-reader' FROM generate_series(1, 1000000) i".to_vec();
    query.push(0);
    slow.write_all(&wire::message(b'Q', &query))
        .await
        .expect("sending the big query");
    let observer = connect(&db.direct_config()).await;
    let streaming = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%duet-slow-reader%' AND pid <> pg_backend_pid()";
    wait_for_async("the big query to run", LIMIT, || async {
        let row = observer.client.query_one(streaming, &[]).await.ok()?;
        (row.get::<_, i64>(0) == 1).then_some(())
    })
    .await;
    // Give the backend time to push as much as the sockets and duet will take.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resident = duet.resident_kib().expect("reading duet's VmRSS");
    eprintln!("duet VmRSS with a slow reader: {resident} KiB (at start {baseline:?} KiB)");
    assert!(
        resident < 200 * 1024,
        "duet buffers what a slow client does not read: VmRSS {resident} KiB (at start {baseline:?} KiB)"
    );

    // Others are not affected.
    let config = duet.config_as(&backend, db.name());
    let other = connect(&config).await;
    let one: i32 = bounded(
        "another session next to the slow reader",
        LIMIT,
        other.client.query_one("SELECT 1", &[]),
    )
    .await
    .expect("another session")
    .get(0);
    assert_eq!(one, 1);

    // The slow client leaves: its backend stops sending and goes away.
    drop(slow);
    wait_for_async(
        "the slow reader's backend to end",
        Duration::from_secs(60),
        || async {
            let row = observer.client.query_one(streaming, &[]).await.ok()?;
            (row.get::<_, i64>(0) == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_protocol_versions_and_options_are_negotiated() {
    let Some(backend) = backend_or_skip("newer_protocol_versions_and_options_are_negotiated")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "robust_negotiate");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    // A protocol 3.2 client (libpq 18 with max_protocol_version=3.2) and a client sending a
    // `_pq_.` protocol option: the server answers NegotiateProtocolVersion ('v') and the session
    // proceeds. duet must let that exchange through (or negotiate itself) rather than refuse.
    for (version, extra) in [
        (0x0003_0002, None),
        (wire::PROTOCOL_3_0, Some(("_pq_.duet_e2e_option", "on"))),
    ] {
        let mut params = vec![("user", backend.user.as_str()), ("database", db.name())];
        params.extend(extra);
        let startup = wire::startup_message_version(version, &params);
        let mut stream = tokio::net::TcpStream::connect(duet.listen())
            .await
            .expect("connect");
        let messages = wire::login_with(&mut stream, &startup).await;
        if let Some(negotiate) = messages.iter().find(|m| m.tag == b'v') {
            let newest = i32::from_be_bytes([
                negotiate.body[0],
                negotiate.body[1],
                negotiate.body[2],
                negotiate.body[3],
            ]);
            assert!(
                newest >> 16 == 3,
                "NegotiateProtocolVersion names protocol {newest:#x}"
            );
        }
        let mut query = b"SELECT 'negotiated'".to_vec();
        query.push(0);
        stream
            .write_all(&wire::message(b'Q', &query))
            .await
            .expect("Query");
        let reply = wire::read_until_ready(&mut stream, LIMIT).await;
        let _ = stream.write_all(&wire::message(b'X', &[])).await;
        assert!(
            reply.iter().any(|m| m.tag == b'D'),
            "protocol {version:#x} {extra:?}: no result after login: {reply:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_terminate_in_one_write_still_get_the_results() {
    let Some(backend) = backend_or_skip("query_and_terminate_in_one_write_still_get_the_results")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "robust_query_terminate");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    // A client that pipelines its last Query and Terminate (no waiting in between): PostgreSQL
    // answers the Query before it reads the Terminate, so the client gets the whole result.
    let mut sql = b"SELECT i, repeat('r', 200) FROM generate_series(1, 2000) i".to_vec();
    sql.push(0);
    let bytes = [wire::message(b'Q', &sql), wire::message(b'X', &[])].concat();
    let backend_addr: std::net::SocketAddr = format!("{}:{}", backend.host, backend.port)
        .parse()
        .expect("the backend address is an IP:port");
    let mut results = Vec::new();
    for (via, addr) in [("direct", backend_addr), ("duet", duet.listen())] {
        let (mut stream, _) = wire::login(addr, &backend.user, db.name()).await;
        let exchange = wire::send_and_collect_open(&mut stream, &bytes, LIMIT).await;
        assert!(exchange.closed, "{via}: not closed after Terminate");
        let rows = exchange.messages.iter().filter(|m| m.tag == b'D').count();
        let complete = exchange.messages.iter().any(|m| m.tag == b'C');
        results.push((via, rows, complete));
    }
    assert_eq!(
        results[0],
        ("direct", 2000, true),
        "the server itself must answer fully"
    );
    assert_eq!(
        (results[1].1, results[1].2),
        (2000, true),
        "through duet, a Query followed at once by Terminate lost (part of) its result: {results:?}"
    );
}
