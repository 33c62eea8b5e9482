//! `duet admin pause` / `resume`: PgBouncer's PAUSE, exactly.
//!
//! New transactions wait at their boundary without error; open transactions run to their end;
//! pause returns once everything is quiet, or gives up at its timeout, releases, and names the
//! sessions that kept it from being quiet. Under pgbench load, toggling pause never fails a
//! transaction.
//!
//! "Does not return / stays blocked" can only be observed over some time: the tests look after a
//! second (and again after the state changes). A correct proxy never finishes those early, so these
//! checks cannot flake against it; the time only bounds how long a wrong one is watched.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::duet_process::through;
use crate::support::pg_client::{backend_pid, bounded, connect};
use crate::support::tools::{parse_pgbench, pgbench};
use crate::support::wire;
use crate::support::{backend_or_skip, DuetProcess, TestDatabase};

const LIMIT: Duration = Duration::from_secs(30);
const WATCH: Duration = Duration::from_secs(1);

/// Waits until the pause has taken hold (status says paused), or — if this proxy reports `paused`
/// only once the pause completed — gives it a few seconds: after that, new transactions are held.
async fn wait_until_pausing(duet: &DuetProcess) {
    for _ in 0..50 {
        if duet.status_async().await["paused"] == true {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_waits_for_open_transactions_and_holds_new_ones() {
    let Some(backend) = backend_or_skip("pause_waits_for_open_transactions_and_holds_new_ones")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "pause_hold");
    db.execute("CREATE TABLE counter (id int PRIMARY KEY, v int NOT NULL); INSERT INTO counter VALUES (1, 0)");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let writer = connect(&through(&backend, &duet, &db, "e2e-writer")).await;
    let waiter = connect(&through(&backend, &duet, &db, "e2e-waiter")).await;
    let waiter_client = Arc::new(waiter.client);
    waiter_client
        .simple_query("SELECT 1")
        .await
        .expect("waiter warm-up");

    writer
        .client
        .batch_execute("BEGIN; UPDATE counter SET v = v + 1 WHERE id = 1")
        .await
        .expect("writer's transaction");

    let pause = duet.admin_spawn(&["pause", "--timeout", "60s", "--format", "json"]);
    wait_until_pausing(&duet).await;
    tokio::time::sleep(WATCH).await;
    assert!(
        !pause.is_finished(),
        "pause returned while a transaction was open: {:?}",
        pause.await
    );

    // A new transaction from the idle session is held, without error.
    let held_client = Arc::clone(&waiter_client);
    let held = tokio::spawn(async move {
        held_client
            .query_one("SELECT v FROM counter WHERE id = 1", &[])
            .await
            .map(|row| row.get::<_, i32>(0))
    });
    tokio::time::sleep(WATCH).await;
    assert!(
        !held.is_finished(),
        "a new query ran while pausing: {:?}",
        held.await
    );

    // The open transaction goes on: more statements, then COMMIT.
    bounded(
        "a statement inside the open transaction while pausing",
        LIMIT,
        writer
            .client
            .batch_execute("UPDATE counter SET v = v + 1 WHERE id = 1"),
    )
    .await
    .expect("statement inside the open transaction");
    bounded(
        "COMMIT while pausing",
        LIMIT,
        writer.client.batch_execute("COMMIT"),
    )
    .await
    .expect("COMMIT of the open transaction");

    let paused = bounded("pause to return after COMMIT", LIMIT, pause)
        .await
        .expect("pause task");
    assert_eq!(paused.code, Some(0), "pause: {paused:?}");
    let reply = paused.json();
    assert_eq!(reply["paused"], true, "{reply}");
    assert!(reply["waited_ms"].is_u64(), "{reply}");
    assert_eq!(duet.status_async().await["paused"], true);

    // Still held after the pause completed, also a brand-new query from the former writer.
    let writer_client = Arc::new(writer.client);
    let second_client = Arc::clone(&writer_client);
    let second = tokio::spawn(async move { second_client.simple_query("SELECT 'second'").await });
    // A client connecting while paused logs in (only transactions are held), then waits.
    let newcomer = bounded(
        "logging in while paused",
        LIMIT,
        connect(&through(&backend, &duet, &db, "e2e-newcomer")),
    )
    .await;
    let newcomer_client = Arc::new(newcomer.client);
    let third_client = Arc::clone(&newcomer_client);
    let third = tokio::spawn(async move { third_client.simple_query("SELECT 'third'").await });
    tokio::time::sleep(WATCH).await;
    assert!(
        !third.is_finished(),
        "a new client's query ran while paused: {:?}",
        third.await
    );
    assert!(
        !held.is_finished(),
        "held query ran before resume: {:?}",
        held.await
    );
    assert!(
        !second.is_finished(),
        "new query ran while paused: {:?}",
        second.await
    );

    let resumed = duet.admin_async(&["resume", "--format", "json"]).await;
    assert_eq!(resumed.code, Some(0), "resume: {resumed:?}");
    assert_eq!(resumed.json()["paused"], false);

    let value = bounded("held query after resume", LIMIT, held)
        .await
        .expect("held task")
        .expect("the held query must succeed, not error");
    assert_eq!(
        value, 2,
        "the held query must run after the transaction committed"
    );
    bounded("second query after resume", LIMIT, second)
        .await
        .expect("second task")
        .expect("second query");
    bounded("the newcomer's query after resume", LIMIT, third)
        .await
        .expect("third task")
        .expect("the newcomer's query");
    assert_eq!(duet.status_async().await["paused"], false);
    let again = duet.admin_async(&["resume", "--format", "json"]).await;
    assert_eq!(
        again.code,
        Some(0),
        "resume when not paused is ok: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_timeout_names_the_blocking_session_and_releases() {
    let Some(backend) = backend_or_skip("pause_timeout_names_the_blocking_session_and_releases")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "pause_timeout");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let blocker = connect(&through(&backend, &duet, &db, "e2e-blocker")).await;
    let bystander = connect(&through(&backend, &duet, &db, "e2e-bystander")).await;
    let blocker_pid = backend_pid(&blocker.client).await;
    bystander
        .client
        .simple_query("SELECT 1")
        .await
        .expect("bystander warm-up");
    blocker
        .client
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("BEGIN");

    let pause = duet.admin_spawn(&["pause", "--timeout", "2s", "--format", "json"]);
    wait_until_pausing(&duet).await;
    // A query sent during the (doomed) pause is held, then proceeds when the pause gives up.
    let bystander_client = Arc::new(bystander.client);
    let held_client = Arc::clone(&bystander_client);
    let held = tokio::spawn(async move {
        held_client
            .simple_query("SELECT 'held then released'")
            .await
    });
    let out = bounded("the pause to time out", LIMIT, pause)
        .await
        .expect("pause task");
    assert_eq!(out.code, Some(1), "a pause that times out exits 1: {out:?}");
    let reply = out.json();
    assert_eq!(reply["paused"], false, "{reply}");
    assert_eq!(reply["reason"], "timeout", "{reply}");
    assert!(reply["waited_ms"].is_u64(), "{reply}");
    let blocking = reply["blocking_sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no blocking_sessions: {reply}"));
    assert_eq!(
        blocking.len(),
        1,
        "only the idle-in-transaction session blocks: {reply}"
    );
    assert_eq!(blocking[0]["backend_pid"], blocker_pid, "{reply}");
    assert_eq!(blocking[0]["state"], "idle in transaction", "{reply}");
    assert_eq!(blocking[0]["application_name"], "e2e-blocker", "{reply}");

    // Released: not paused, old and new sessions run.
    assert_eq!(duet.status_async().await["paused"], false);
    bounded("the query held during the failed pause", LIMIT, held)
        .await
        .expect("held task")
        .expect("a query held during a pause that timed out must proceed, not fail");
    bounded(
        "bystander query after the failed pause",
        LIMIT,
        bystander_client.simple_query("SELECT 2"),
    )
    .await
    .expect("bystander after failed pause");
    let fresh = connect(&through(&backend, &duet, &db, "e2e-fresh")).await;
    bounded(
        "new session after the failed pause",
        LIMIT,
        fresh.client.simple_query("SELECT 3"),
    )
    .await
    .expect("new session after failed pause");
    bounded(
        "COMMIT of the blocker",
        LIMIT,
        blocker.client.batch_execute("COMMIT"),
    )
    .await
    .expect("blocker COMMIT");
}

#[test]
fn pgbench_survives_repeated_pause_and_resume() {
    let Some(backend) = backend_or_skip("pgbench_survives_repeated_pause_and_resume") else {
        return;
    };
    let db = TestDatabase::create(&backend, "pause_pgbench");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let mut target = duet.target(&backend.user, db.name());
    if let Some(password) = &backend.password {
        target = target.with_password(password);
    }
    pgbench(&target, &["-i", "-s", "1", "-q"]).assert_success();

    // Two pgbench processes, simple and extended protocol, 4 clients in all.
    let loads: Vec<_> = ["simple", "prepared"]
        .into_iter()
        .map(|mode| {
            let target = target.clone();
            std::thread::spawn(move || {
                pgbench(
                    &target,
                    &["-M", mode, "-c", "2", "-j", "1", "-T", "8", "-n"],
                )
            })
        })
        .collect();
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(500));
        let paused = duet.admin(&["pause", "--timeout", "10s", "--format", "json"]);
        assert_eq!(paused.code, Some(0), "pause round {round}: {paused:?}");
        assert_eq!(paused.json()["paused"], true);
        std::thread::sleep(Duration::from_millis(300));
        let resumed = duet.admin(&["resume", "--format", "json"]);
        assert_eq!(resumed.code, Some(0), "resume round {round}: {resumed:?}");
        assert_eq!(resumed.json()["paused"], Value::Bool(false));
    }
    for load in loads {
        let run = load.join().expect("pgbench thread");
        run.assert_success();
        let summary = parse_pgbench(&run);
        assert!(summary.processed > 0, "{}", run.stdout_text());
        assert_eq!(
            summary.failed,
            0,
            "failed transactions under pause/resume:\n{}",
            run.stdout_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_paused_closes_held_clients() {
    let Some(backend) = backend_or_skip("shutdown_while_paused_closes_held_clients") else {
        return;
    };
    let db = TestDatabase::create(&backend, "pause_shutdown");
    let mut duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let waiter = connect(&through(&backend, &duet, &db, "e2e-held")).await;
    waiter
        .client
        .simple_query("SELECT 1")
        .await
        .expect("warm-up");
    let paused = duet.admin_async(&["pause", "--format", "json"]).await;
    assert_eq!(paused.code, Some(0), "pause: {paused:?}");

    let held_client = Arc::new(waiter.client);
    let query_client = Arc::clone(&held_client);
    let held = tokio::spawn(async move { query_client.simple_query("SELECT 'held'").await });
    tokio::time::sleep(WATCH).await;
    assert!(
        !held.is_finished(),
        "a query ran while paused: {:?}",
        held.await
    );

    // A client that disconnects while paused is not held (Terminate is not a transaction).
    let leaver = connect(&through(&backend, &duet, &db, "e2e-leaver")).await;
    wait_for_two_clients(&duet).await;
    drop(leaver);
    let mut current = Value::Null;
    for _ in 0..100 {
        current = duet.status_async().await["clients"]["current"].clone();
        if current == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        current, 1,
        "a client that left while paused is still counted"
    );

    // Shutdown with a budget: the held client is not left hanging; it gets an error and duet
    // exits 0.
    let reply = duet
        .admin_async(&["shutdown", "--timeout", "1s", "--format", "json"])
        .await;
    assert_eq!(reply.code, Some(0), "shutdown: {reply:?}");
    let outcome = bounded("the held query at shutdown", LIMIT, held)
        .await
        .expect("held task");
    if let Err(err) = &outcome {
        if let Some(code) = err.code() {
            assert_eq!(code.code(), "57P01", "{err:?}");
        }
    }
    let ended = bounded("the held session to end", LIMIT, waiter.ended)
        .await
        .expect("connection task");
    if let Some(code) = ended.as_ref().and_then(|err| err.code()) {
        assert_eq!(code.code(), "57P01", "{ended:?}");
    }
    let status = duet.wait_exit(LIMIT);
    assert_eq!(
        status.code(),
        Some(0),
        "duet after shutdown while paused: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_waits_for_a_running_copy() {
    use futures_util::SinkExt;

    let Some(backend) = backend_or_skip("pause_waits_for_a_running_copy") else {
        return;
    };
    let db = TestDatabase::create(&backend, "pause_copy");
    db.execute("CREATE TABLE copied (id int, note text)");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let copier = connect(&through(&backend, &duet, &db, "e2e-copier")).await;

    // A COPY FROM STDIN is in progress when the pause starts: it is in-flight work. tokio-postgres
    // sends it over the extended protocol: Bind, Execute, Sync, CopyData…, CopyDone, Sync — and
    // the server ignores the first Sync while in copy-in mode (one ReadyForQuery for two Syncs).
    let sink = copier
        .client
        .copy_in("COPY copied FROM STDIN")
        .await
        .expect("COPY FROM STDIN");
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from("1\tbefore the pause\n"))
        .await
        .expect("first COPY data");
    let pause = duet.admin_spawn(&["pause", "--timeout", "60s", "--format", "json"]);
    wait_until_pausing(&duet).await;
    tokio::time::sleep(WATCH).await;
    assert!(
        !pause.is_finished(),
        "pause returned while a COPY was running: {:?}",
        pause.await
    );
    for id in 2..=1000 {
        sink.send(bytes::Bytes::from(format!("{id}\twhile pausing\n")))
            .await
            .expect("COPY data while pausing");
    }
    let copied = bounded(
        "COPY to finish while pausing",
        LIMIT,
        sink.as_mut().finish(),
    )
    .await
    .expect("finishing the COPY while pausing");
    assert_eq!(copied, 1000);

    // The session is idle again, so the pause completes.
    let mut last = Value::Null;
    for _ in 0..100 {
        let status = duet.status_async().await;
        last = status["sessions"]
            .as_array()
            .and_then(|sessions| {
                sessions
                    .iter()
                    .find(|s| s["application_name"] == "e2e-copier")
            })
            .cloned()
            .unwrap_or(Value::Null);
        if last["state"] == "idle" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last["state"], "idle",
        "after an extended-protocol COPY FROM STDIN finished, duet still reports the session \
         busy (it expects a ReadyForQuery for the Sync the server ignored in copy-in mode), so a \
         pause can never complete while this session lives: {last}"
    );
    let paused = bounded("pause to return after the COPY", LIMIT, pause)
        .await
        .expect("pause task");
    assert_eq!(paused.code, Some(0), "pause: {paused:?}");
    let resumed = duet.admin_async(&["resume", "--format", "json"]).await;
    assert_eq!(resumed.code, Some(0), "resume: {resumed:?}");
    let count: i64 = copier
        .client
        .query_one("SELECT count(*) FROM copied", &[])
        .await
        .expect("count after resume")
        .get(0);
    assert_eq!(count, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_lets_pipelined_queries_finish() {
    let Some(backend) = backend_or_skip("pause_lets_pipelined_queries_finish") else {
        return;
    };
    let db = TestDatabase::create(&backend, "pause_pipeline");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let session = connect(&through(&backend, &duet, &db, "e2e-pipeline")).await;
    session
        .client
        .simple_query("SELECT 1")
        .await
        .expect("warm-up");

    // 50 requests in flight on one connection when the pause starts: all complete (those that
    // were not yet sent may wait for the resume), nothing errors.
    let client = &session.client;
    let queries: Vec<_> = (0..50i32)
        .map(|n| async move {
            client
                .query_one("SELECT $1::int + 1000 FROM pg_sleep(0.01)", &[&n])
                .await
                .map(|row| row.get::<_, i32>(0))
        })
        .collect();
    let all = futures_util::future::join_all(queries);
    let pause = duet.admin_spawn(&["pause", "--timeout", "60s", "--format", "json"]);
    let resume_after_pause = async {
        let paused = bounded("pause with a pipeline in flight", LIMIT, pause)
            .await
            .expect("pause task");
        assert_eq!(paused.code, Some(0), "pause: {paused:?}");
        tokio::time::sleep(WATCH).await;
        let resumed = duet.admin_async(&["resume", "--format", "json"]).await;
        assert_eq!(resumed.code, Some(0), "resume: {resumed:?}");
    };
    let (results, ()) = bounded(
        "pipelined queries across a pause",
        LIMIT,
        futures_util::future::join(all, resume_after_pause),
    )
    .await;
    for (n, result) in results.into_iter().enumerate() {
        let n = i32::try_from(n).expect("small");
        assert_eq!(result.expect("pipelined query"), n + 1000);
    }
}

async fn wait_for_two_clients(duet: &DuetProcess) {
    for _ in 0..100 {
        if duet.status_async().await["clients"]["current"] == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("duet never counted 2 clients");
}

/// Frontend extended-protocol messages for one unnamed statement, without the closing Sync.
fn parse_bind_execute(sql: &str) -> Vec<u8> {
    let mut parse = vec![0u8]; // unnamed statement
    parse.extend_from_slice(sql.as_bytes());
    parse.extend_from_slice(&[0, 0, 0]); // terminator, no parameter types
    let bind = [0u8, 0, 0, 0, 0, 0, 0, 0]; // unnamed portal and statement, no formats/params/result formats
    let mut execute = vec![0u8]; // unnamed portal
    execute.extend_from_slice(&0i32.to_be_bytes());
    [
        wire::message(b'P', &parse),
        wire::message(b'B', &bind),
        wire::message(b'E', &execute),
    ]
    .concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_waits_for_an_extended_request_until_its_sync() {
    use tokio::io::AsyncWriteExt;

    let Some(backend) = backend_or_skip("pause_waits_for_an_extended_request_until_its_sync")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "pause_unsynced");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let (mut stream, _) = wire::login(duet.listen(), &backend.user, db.name()).await;

    // Parse/Bind/Execute sent, Sync not yet (as a pipelining driver does): an unfinished request.
    stream
        .write_all(&parse_bind_execute("SELECT 42"))
        .await
        .expect("Parse/Bind/Execute");
    // Let duet see those bytes before the pause starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pause = duet.admin_spawn(&["pause", "--timeout", "60s", "--format", "json"]);
    wait_until_pausing(&duet).await;
    tokio::time::sleep(WATCH).await;
    assert!(
        !pause.is_finished(),
        "pause returned while a request (Parse/Bind/Execute without Sync) was unfinished: {:?}",
        pause.await
    );

    // Its Sync belongs to the unfinished request: it goes through, the result arrives.
    stream
        .write_all(&wire::message(b'S', &[]))
        .await
        .expect("Sync");
    let reply = wire::read_until_ready(&mut stream, LIMIT).await;
    let tags: Vec<char> = reply.iter().map(|m| m.tag as char).collect();
    assert!(
        tags.ends_with(&['Z']) && tags.contains(&'D'),
        "the Sync of an unfinished request was held (or its result lost) while pausing: {tags:?}"
    );
    let paused = bounded("pause after the Sync", LIMIT, pause)
        .await
        .expect("pause task");
    assert_eq!(paused.code, Some(0), "pause: {paused:?}");
    let resumed = duet.admin_async(&["resume", "--format", "json"]).await;
    assert_eq!(resumed.code, Some(0), "resume: {resumed:?}");
}
