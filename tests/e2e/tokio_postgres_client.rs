//! tokio-postgres through duet: the extended protocol as a modern driver uses it.
//!
//! Named prepared statements reused many times, transactions and savepoints, pipelined queries
//! (many requests in flight on one connection), binary COPY both ways, LISTEN/NOTIFY between two
//! sessions, notices, errors with every field, cancellation (which must reach exactly its own
//! backend), and startup parameters.

use std::time::Duration;

use futures_util::{pin_mut, SinkExt, TryStreamExt};
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::support::duet_process::through;
use crate::support::pg_client::{backend_pid, bounded, connect, Session};
use crate::support::wire;
use crate::support::{backend_or_skip, DuetProcess, TestDatabase};

const LIMIT: Duration = Duration::from_secs(30);

/// Waits for the next notice/notification satisfying `wanted` (others are skipped).
async fn next_message(
    session: &mut Session,
    what: &str,
    wanted: impl Fn(&AsyncMessage) -> bool,
) -> AsyncMessage {
    bounded(what, LIMIT, async {
        loop {
            match session.messages.recv().await {
                Some(message) if wanted(&message) => return message,
                Some(_) => continue,
                None => panic!("connection ended while waiting for {what}"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_transactions_and_pipelining() {
    let Some(backend) = backend_or_skip("prepared_statements_transactions_and_pipelining") else {
        return;
    };
    let db = TestDatabase::create(&backend, "tp_prepared");
    db.execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL)",
    );
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let mut session = connect(&duet.config_as(&backend, db.name())).await;
    let client = &mut session.client;

    // A named statement, prepared once and executed many times with different parameters.
    let insert = client
        .prepare_typed(
            "INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3) RETURNING id",
            &[Type::INT4, Type::TEXT, Type::INT8],
        )
        .await
        .expect("prepare insert");
    for id in 1..=200i32 {
        let returned: i32 = client
            .query_one(
                &insert,
                &[&id, &format!("owner {id}"), &(i64::from(id) * 100)],
            )
            .await
            .expect("execute prepared insert")
            .get(0);
        assert_eq!(returned, id);
    }
    let by_id = client
        .prepare("SELECT owner, balance FROM accounts WHERE id = $1")
        .await
        .expect("prepare select");
    for id in [1i32, 77, 200] {
        let row = client
            .query_one(&by_id, &[&id])
            .await
            .expect("execute prepared select");
        assert_eq!(row.get::<_, String>(0), format!("owner {id}"));
        assert_eq!(row.get::<_, i64>(1), i64::from(id) * 100);
    }

    // Rolled back transaction: nothing of it stays.
    {
        let tx = client.transaction().await.expect("BEGIN");
        tx.execute("UPDATE accounts SET balance = 0", &[])
            .await
            .expect("update in tx");
        tx.execute(&insert, &[&1000i32, &"ghost", &1i64])
            .await
            .expect("insert in tx");
        tx.rollback().await.expect("ROLLBACK");
    }
    let total: i64 = client
        .query_one("SELECT sum(balance)::bigint FROM accounts", &[])
        .await
        .expect("sum")
        .get(0);
    assert_eq!(
        total,
        (1..=200i64).map(|id| id * 100).sum::<i64>(),
        "rollback did not undo the update"
    );
    assert!(client
        .query_opt(&by_id, &[&1000i32])
        .await
        .expect("select ghost")
        .is_none());

    // Committed transaction with a savepoint rolled back inside it.
    {
        let mut tx = client.transaction().await.expect("BEGIN");
        tx.execute(
            "UPDATE accounts SET balance = balance - 50 WHERE id = 1",
            &[],
        )
        .await
        .expect("debit");
        {
            let savepoint = tx.savepoint("sp_inner").await.expect("SAVEPOINT");
            savepoint
                .execute("UPDATE accounts SET balance = -1 WHERE id = 2", &[])
                .await
                .expect("update under savepoint");
            savepoint.rollback().await.expect("ROLLBACK TO SAVEPOINT");
        }
        tx.execute(
            "UPDATE accounts SET balance = balance + 50 WHERE id = 2",
            &[],
        )
        .await
        .expect("credit");
        tx.commit().await.expect("COMMIT");
    }
    let one: i64 = client
        .query_one(&by_id, &[&1i32])
        .await
        .expect("row 1")
        .get(1);
    let two: i64 = client
        .query_one(&by_id, &[&2i32])
        .await
        .expect("row 2")
        .get(1);
    assert_eq!((one, two), (50, 250));

    // A failed statement inside a transaction aborts it; the session recovers after ROLLBACK.
    {
        let tx = client.transaction().await.expect("BEGIN");
        let failed = tx.execute(&insert, &[&1i32, &"duplicate", &0i64]).await;
        assert_eq!(
            crate::support::pg_client::sqlstate("duplicate insert", failed),
            "23505"
        );
        let aborted = tx.query_one("SELECT 1", &[]).await;
        assert_eq!(
            crate::support::pg_client::sqlstate("query in aborted tx", aborted),
            "25P02"
        );
        tx.rollback().await.expect("ROLLBACK after error");
    }

    // Pipelining: 100 requests in flight at once on one connection, answers in order.
    let client = &session.client;
    let futures: Vec<_> = (1..=100i32)
        .map(|n| {
            let by_id = by_id.clone();
            async move {
                let id = (n % 200) + 1;
                let row = client.query_one(&by_id, &[&id]).await?;
                let echo = client.query_one("SELECT $1::int * 2", &[&n]).await?;
                Ok::<_, tokio_postgres::Error>((
                    id,
                    row.get::<_, String>(0),
                    echo.get::<_, i32>(0),
                    n,
                ))
            }
        })
        .collect();
    let results = bounded(
        "100 pipelined queries",
        LIMIT,
        futures_util::future::try_join_all(futures),
    )
    .await
    .expect("pipelined queries");
    for (id, owner, doubled, n) in results {
        assert_eq!(owner, format!("owner {id}"));
        assert_eq!(doubled, n * 2);
    }
    // Statements prepared in a pipeline, then dropped (tokio-postgres closes them).
    let texts: Vec<String> = (0..20)
        .map(|k| format!("SELECT {k}::int + $1::int"))
        .collect();
    let prepared =
        futures_util::future::try_join_all(texts.iter().map(|text| client.prepare(text)))
            .await
            .expect("pipelined prepares");
    for (k, statement) in prepared.iter().enumerate() {
        let k = i32::try_from(k).expect("small");
        let value: i32 = client
            .query_one(statement, &[&1i32])
            .await
            .expect("run")
            .get(0);
        assert_eq!(value, k + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_in_and_out() {
    let Some(backend) = backend_or_skip("binary_copy_in_and_out") else {
        return;
    };
    let db = TestDatabase::create(&backend, "tp_copy");
    db.execute(
        "CREATE TABLE samples (id int PRIMARY KEY, label text, payload bytea, score float8)",
    );
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let session = connect(&duet.config_as(&backend, db.name())).await;
    let client = &session.client;
    let types = [Type::INT4, Type::TEXT, Type::BYTEA, Type::FLOAT8];

    let rows: Vec<(i32, Option<String>, Vec<u8>, f64)> = (1..=20_000i32)
        .map(|id| {
            let label = (id % 7 != 0).then(|| format!("label {id} ✓"));
            let payload: Vec<u8> = (0..(id % 300)).map(|b| (b * 7 + id) as u8).collect();
            (id, label, payload, f64::from(id) / 3.0)
        })
        .collect();

    let sink = client
        .copy_in("COPY samples (id, label, payload, score) FROM STDIN (FORMAT binary)")
        .await
        .expect("COPY FROM STDIN");
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for (id, label, payload, score) in &rows {
        writer
            .as_mut()
            .write(&[id, label, payload, score])
            .await
            .expect("writing a COPY row");
    }
    let copied = bounded("COPY IN finish", LIMIT, writer.finish())
        .await
        .expect("finishing COPY IN");
    assert_eq!(copied, rows.len() as u64);

    let stream = client
        .copy_out("COPY (SELECT id, label, payload, score FROM samples ORDER BY id) TO STDOUT (FORMAT binary)")
        .await
        .expect("COPY TO STDOUT");
    let stream = BinaryCopyOutStream::new(stream, &types);
    let read: Vec<(i32, Option<String>, Vec<u8>, f64)> = bounded(
        "COPY OUT",
        LIMIT,
        stream
            .map_ok(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .try_collect::<Vec<_>>(),
    )
    .await
    .expect("reading COPY OUT");
    assert_eq!(read.len(), rows.len());
    assert!(
        read == rows,
        "binary COPY OUT through duet does not return what COPY IN wrote"
    );

    // Text COPY IN with a bad row: the error arrives, the session stays usable.
    let sink = client
        .copy_in("COPY samples (id, label) FROM STDIN")
        .await
        .expect("COPY text FROM STDIN");
    pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"900001\tfine\nnot-a-number\tbad\n",
    ))
    .await
    .expect("sending COPY data");
    let failed = sink.finish().await;
    assert_eq!(
        crate::support::pg_client::sqlstate("bad COPY", failed),
        "22P02"
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM samples", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 20_000);

    // A COPY cancelled by the client (CopyFail): nothing copied, session usable.
    let sink = client
        .copy_in("COPY samples (id) FROM STDIN")
        .await
        .expect("COPY FROM STDIN");
    // Boxed (not pinned on the stack) so that dropping it really drops the sink: that aborts the
    // COPY with CopyFail.
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(b"900002\n"))
        .await
        .expect("COPY data");
    drop(sink);
    let count: i64 = client
        .query_one("SELECT count(*) FROM samples", &[])
        .await
        .expect("count after CopyFail")
        .get(0);
    assert_eq!(count, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_and_notices_through_duet() {
    let Some(backend) = backend_or_skip("listen_notify_and_notices_through_duet") else {
        return;
    };
    let db = TestDatabase::create(&backend, "tp_notify");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let config = duet.config_as(&backend, db.name());
    let mut listener = connect(&config).await;
    let notifier = connect(&config).await;
    listener
        .client
        .batch_execute("LISTEN duet_e2e_channel")
        .await
        .expect("LISTEN");
    let notifier_pid = backend_pid(&notifier.client).await;

    notifier
        .client
        .batch_execute("NOTIFY duet_e2e_channel, 'first payload'")
        .await
        .expect("NOTIFY");
    notifier
        .client
        .execute(
            "SELECT pg_notify('duet_e2e_channel', $1)",
            &[&"second ✓ payload"],
        )
        .await
        .expect("pg_notify");

    // The listener is idle: the notifications must be forwarded without any request from it.
    for expected in ["first payload", "second ✓ payload"] {
        let message = next_message(&mut listener, "a notification", |m| {
            matches!(m, AsyncMessage::Notification(_))
        })
        .await;
        let AsyncMessage::Notification(notification) = message else {
            unreachable!("filtered above")
        };
        assert_eq!(notification.channel(), "duet_e2e_channel");
        assert_eq!(notification.payload(), expected);
        assert_eq!(notification.process_id(), notifier_pid);
    }

    // Notices (RAISE NOTICE / WARNING) reach the client with their fields.
    listener
        .client
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'hello % from duet', 42 USING HINT = 'a notice hint'; RAISE WARNING 'careful'; END $$")
        .await
        .expect("DO with notices");
    let notice = next_message(&mut listener, "a notice", |m| {
        matches!(m, AsyncMessage::Notice(_))
    })
    .await;
    let AsyncMessage::Notice(notice) = notice else {
        unreachable!("filtered above")
    };
    assert_eq!(notice.severity(), "NOTICE");
    assert_eq!(notice.code().code(), "00000");
    assert_eq!(notice.message(), "hello 42 from duet");
    assert_eq!(notice.hint(), Some("a notice hint"));
    let warning = next_message(&mut listener, "a warning", |m| {
        matches!(m, AsyncMessage::Notice(_))
    })
    .await;
    let AsyncMessage::Notice(warning) = warning else {
        unreachable!("filtered above")
    };
    assert_eq!(
        (warning.severity(), warning.message()),
        ("WARNING", "careful")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_fields_are_identical_to_direct() {
    let Some(backend) = backend_or_skip("error_fields_are_identical_to_direct") else {
        return;
    };
    let db = TestDatabase::create(&backend, "tp_errors");
    db.execute(
        "CREATE TABLE parent (id int PRIMARY KEY, name text NOT NULL CHECK (name <> ''));
         CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent (id));
         INSERT INTO parent VALUES (1, 'one');",
    );
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let proxied = connect(&duet.config_as(&backend, db.name())).await;
    let direct = connect(&db.direct_config()).await;

    let failing: &[(&str, &str)] = &[
        ("INSERT INTO parent VALUES (1, 'again')", "23505"),
        ("INSERT INTO child VALUES (1, 99)", "23503"),
        ("INSERT INTO parent VALUES (2, '')", "23514"),
        ("SELECT nme FROM parent", "42703"),
        ("SELECT * FROM parent WHERE id = 'x'", "22P02"),
        ("SELEC 1", "42601"),
        (
            "DO $$ BEGIN RAISE EXCEPTION 'custom failure %', 7 USING DETAIL = 'the detail', HINT = 'the hint', ERRCODE = '22023'; END $$",
            "22023",
        ),
    ];
    let mut seen_detail = false;
    let mut seen_hint = false;
    let mut seen_position = false;
    for (sql, code) in failing {
        for protocol in ["simple", "extended"] {
            let via_duet = match protocol {
                "simple" => proxied.client.batch_execute(sql).await.map(|_| ()),
                _ => proxied.client.execute(*sql, &[]).await.map(|_| ()),
            };
            let via_direct = match protocol {
                "simple" => direct.client.batch_execute(sql).await.map(|_| ()),
                _ => direct.client.execute(*sql, &[]).await.map(|_| ()),
            };
            let duet_error = via_duet.expect_err("statement must fail through duet");
            let direct_error = via_direct.expect_err("statement must fail direct");
            let duet_db = duet_error.as_db_error().unwrap_or_else(|| {
                panic!("{sql} through duet: not a server error: {duet_error:?}")
            });
            let direct_db = direct_error.as_db_error().expect("direct: a server error");
            assert_eq!(duet_db.code().code(), *code, "{sql} ({protocol})");
            assert_eq!(
                duet_db, direct_db,
                "{sql} ({protocol}): error through duet differs from direct"
            );
            seen_detail |= duet_db.detail().is_some();
            seen_hint |= duet_db.hint().is_some();
            seen_position |= duet_db.position().is_some();
        }
    }
    assert!(
        seen_detail && seen_hint && seen_position,
        "the error cases must cover detail, hint and position"
    );
    // Both sessions are still usable after all those errors.
    let one: i32 = proxied
        .client
        .query_one("SELECT 1", &[])
        .await
        .expect("after errors")
        .get(0);
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_its_own_backend_and_no_other() {
    let Some(backend) = backend_or_skip("cancel_reaches_its_own_backend_and_no_other") else {
        return;
    };
    let db = TestDatabase::create(&backend, "tp_cancel");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let config = duet.config_as(&backend, db.name());
    let victim = connect(&config).await;
    let bystander = connect(&config).await;
    let observer = connect(&db.direct_config()).await;
    let victim_pid = backend_pid(&victim.client).await;
    let bystander_pid = backend_pid(&bystander.client).await;

    let victim_token = victim.client.cancel_token();
    let victim_client = std::sync::Arc::new(victim.client);
    let sleeper = std::sync::Arc::clone(&victim_client);
    let victim_query =
        tokio::spawn(async move { sleeper.simple_query("SELECT pg_sleep(30)").await });
    let bystander_client = bystander.client;
    let bystander_query =
        tokio::spawn(async move { bystander_client.simple_query("SELECT pg_sleep(8)").await });

    // Both are running pg_sleep on their backends.
    let both_sleeping = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1) AND state = 'active' AND query LIKE 'SELECT pg_sleep%'";
    crate::support::wait_for_async("both sessions to be sleeping", LIMIT, || async {
        let row = observer
            .client
            .query_one(both_sleeping, &[&vec![victim_pid, bystander_pid]])
            .await
            .expect("pg_stat_activity");
        (row.get::<_, i64>(0) == 2).then_some(())
    })
    .await;

    // A CancelRequest with the bystander's pid but a made-up key must be ignored.
    let mut bogus = tokio::net::TcpStream::connect(duet.listen())
        .await
        .expect("connect for bogus cancel");
    let _ = wire::send_and_collect(
        &mut bogus,
        &wire::cancel_request(bystander_pid, 0x1234_5678),
        LIMIT,
    )
    .await;

    // The real cancel, through duet, with the key duet gave the client.
    bounded("cancel_query", LIMIT, victim_token.cancel_query(NoTls))
        .await
        .expect("sending the cancel request through duet");
    let cancelled = bounded("the cancelled query", Duration::from_secs(25), victim_query)
        .await
        .expect("victim task");
    assert_eq!(
        crate::support::pg_client::sqlstate("pg_sleep(30) after cancel", cancelled),
        "57014",
        "the cancelled query must fail with query_canceled"
    );
    // The bystander is still sleeping (the cancel was delivered while it ran and missed it)…
    let still: i64 = observer
        .client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
            &[&bystander_pid],
        )
        .await
        .expect("pg_stat_activity")
        .get(0);
    assert_eq!(
        still, 1,
        "the other session's query is no longer running after the cancel"
    );
    // …and completes normally.
    bounded("the bystander's pg_sleep", LIMIT, bystander_query)
        .await
        .expect("bystander task")
        .expect("the other session's pg_sleep must not be cancelled");
    // The cancelled session is usable afterwards.
    let one: i32 = victim_client
        .query_one("SELECT 1", &[])
        .await
        .expect("after cancel")
        .get(0);
    assert_eq!(one, 1);

    // Cancel connections are not sessions: only the victim is still counted (the bystander's
    // client went away with its task).
    crate::support::wait_for_async("clients.current to settle at 1", LIMIT, || async {
        (duet.status_async().await["clients"]["current"] == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_parameters_reach_the_backend() {
    let Some(backend) = backend_or_skip("startup_parameters_reach_the_backend") else {
        return;
    };
    let db = TestDatabase::create(&backend, "tp_startup");
    db.execute("CREATE SCHEMA e2e_schema; CREATE TABLE e2e_schema.marker (v text); INSERT INTO e2e_schema.marker VALUES ('found')");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let mut config = duet.config_as(&backend, db.name());
    config
        .application_name("duet-e2e-app")
        .options("-c search_path=e2e_schema,public -c statement_timeout=12345");
    let session = connect(&config).await;
    let client = &session.client;

    let app: String = client
        .query_one("SHOW application_name", &[])
        .await
        .expect("SHOW")
        .get(0);
    assert_eq!(app, "duet-e2e-app");
    let path: String = client
        .query_one("SELECT current_setting('search_path')", &[])
        .await
        .expect("current_setting")
        .get(0);
    assert_eq!(path, "e2e_schema,public");
    let timeout: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("SHOW")
        .get(0);
    assert_eq!(timeout, "12345ms");
    let marker: String = client
        .query_one("SELECT v FROM marker", &[])
        .await
        .expect("unqualified")
        .get(0);
    assert_eq!(marker, "found");
    let (user, database): (String, String) = {
        let row = client
            .query_one("SELECT current_user::text, current_database()::text", &[])
            .await
            .expect("identity");
        (row.get(0), row.get(1))
    };
    assert_eq!(
        (user.as_str(), database.as_str()),
        (backend.user.as_str(), db.name())
    );

    // ParameterStatus messages are relayed: the client learned the same values a direct one does.
    let direct = connect(&db.direct_config()).await;
    for name in [
        "server_version",
        "server_encoding",
        "client_encoding",
        "DateStyle",
        "TimeZone",
        "integer_datetimes",
    ] {
        assert_eq!(
            session.parameters.get(name),
            direct.parameters.get(name),
            "ParameterStatus {name} through duet differs from direct"
        );
        assert!(
            session.parameters.contains_key(name),
            "no ParameterStatus {name} through duet"
        );
    }
    assert_eq!(
        session
            .parameters
            .get("application_name")
            .map(String::as_str),
        Some("duet-e2e-app")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_messages_larger_than_any_buffer() {
    let Some(backend) = backend_or_skip("single_messages_larger_than_any_buffer") else {
        return;
    };
    let db = TestDatabase::create(&backend, "tp_large_messages");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let session = connect(&duet.config_as(&backend, db.name())).await;
    let client = &session.client;

    // Client → server: one Bind message carrying a 24 MB parameter.
    let payload: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let row = bounded(
        "a 24 MB parameter",
        LIMIT,
        client.query_one("SELECT length($1::bytea), md5($1::bytea)", &[&payload]),
    )
    .await
    .expect("query with a 24 MB parameter");
    let direct = connect(&db.direct_config()).await;
    let expected = direct
        .client
        .query_one("SELECT length($1::bytea), md5($1::bytea)", &[&payload])
        .await
        .expect("the same query direct");
    assert_eq!(row.get::<_, i32>(0), 24 * 1024 * 1024);
    assert_eq!(row.get::<_, String>(1), expected.get::<_, String>(1));

    // Server → client: one DataRow of 24 MB, and a 24 MB simple Query text.
    let big: Vec<u8> = bounded(
        "a 24 MB DataRow",
        LIMIT,
        client.query_one("SELECT $1::bytea", &[&payload]),
    )
    .await
    .expect("a 24 MB value back")
    .get(0);
    assert!(big == payload, "the 24 MB value came back different");
    let literal = format!("SELECT length('{}')", "q".repeat(24 * 1024 * 1024));
    let messages = bounded(
        "a 24 MB Query message",
        LIMIT,
        client.simple_query(&literal),
    )
    .await
    .expect("a 24 MB simple query");
    let length = messages.iter().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(length.as_deref(), Some("25165824"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_names_in_startup_parameters_pass_unchanged() {
    let Some(backend) = backend_or_skip("odd_names_in_startup_parameters_pass_unchanged") else {
        return;
    };
    // A database name with spaces, quotes, a backslash and non-ASCII characters.
    let name = format!("duet e2e \"odd\" '名前' \\ ü {}", std::process::id());
    let db = TestDatabase::create_exact(&backend, name.clone());
    let duet = DuetProcess::start(&backend.url(&backend.maintenance_db), &[]);
    let app = "app \"quoted\" 'single' \\ ✓ tab\there";
    let session = connect(&through(&backend, &duet, &db, app)).await;
    let row = session
        .client
        .query_one(
            "SELECT current_database()::text, current_setting('application_name')",
            &[],
        )
        .await
        .expect("identity through duet");
    assert_eq!(row.get::<_, String>(0), name);
    // PostgreSQL replaces non-printable ASCII in application_name with '?'; compare with direct.
    let mut direct_config = db.direct_config();
    direct_config.application_name(app);
    let direct = connect(&direct_config).await;
    let direct_app: String = direct
        .client
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .expect("direct application_name")
        .get(0);
    assert_eq!(row.get::<_, String>(1), direct_app);

    // duet's status JSON carries them intact (escaped, not mangled).
    let status = duet.status_async().await;
    let sessions = status["sessions"].as_array().expect("sessions");
    assert!(
        sessions.iter().any(|s| s["database"] == name.as_str()),
        "database name mangled in status: {status:#}"
    );
    assert!(
        sessions
            .iter()
            .any(|s| s["application_name"] == app || s["application_name"] == direct_app.as_str()),
        "application_name mangled in status: {status:#}"
    );
}
