//! The dual-write hook end to end: an in-process proxy in front of the real PostgreSQL, a table
//! and its shadow made by hand, a route published in the proxy's route table, and real clients
//! (tokio-postgres on the extended protocol, psql and a raw client on the simple protocol) whose
//! writes must land in both shapes with the answers they expect; refused statements must look like
//! server errors; named prepared statements must survive a flip.
//!
//! The server comes from `DUET_TEST_DATABASE_URL` (through `duet_testkit`; its user must be
//! trusted: the raw clients send no password). Without one the tests say so and pass, unless
//! `DUET_REQUIRE_DATABASE=1`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use duet_proxy::context::ProxyContext;
use duet_shadow::rewrite::{Column, ColumnMapping, TableRoute, Target};
use duet_testkit::wire::{self, message, BackendMessage};
use duet_testkit::{Backend, RawClient};
use support::{database_required, server_reachable};

/// The test server. Every test checks `server_reachable()` (the kit's skip-or-fail policy)
/// first, so here it is known to answer; the tests work in its maintenance database, each in a
/// schema of its own.
fn server() -> Backend {
    duet_testkit::backend().expect("the test checked server_reachable() first")
}

/// tokio-postgres through `proxy` (extended protocol), with `schema` first on the search path.
async fn connect_through(proxy: &InProcess, schema: &Schema) -> tokio_postgres::Client {
    let server = server();
    let (client, connection) = server
        .config_at("127.0.0.1", proxy.port, &server.maintenance_db)
        .options(format!("--search_path={}", schema.name))
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect through duet");
    tokio::spawn(connection);
    client
}

/// A proxy running in this process on its own thread, shut down when dropped.
struct InProcess {
    ctx: Arc<ProxyContext>,
    port: u16,
    /// The proxy thread's runtime (shutdown runs its tasks there).
    handle: tokio::runtime::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    fn start(test: &str) -> InProcess {
        let socket =
            std::env::temp_dir().join(format!("duet-hook-{test}-{}.sock", std::process::id()));
        let overrides = duet_proxy::config::Overrides {
            listen: Some("127.0.0.1:0".into()),
            backend: Some(server().url(&server().maintenance_db)),
            admin_socket: Some(socket),
            workers: Some(1),
            ..Default::default()
        };
        // This suite proves the rewrite hook itself, refusals included; by default duet forwards
        // what it cannot rewrite for the safety net to mirror (tests/e2e/safety_net.rs).
        let config = duet_proxy::config::from_str(
            "[migration]\nunrewritable_writes = \"refuse\"\n",
            overrides,
        )
        .expect("config");
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = current_thread_runtime();
            runtime.block_on(async move {
                let proxy = duet_proxy::server::Proxy::bind(config).await.expect("bind");
                let _ = tx.send((
                    proxy.context().clone(),
                    proxy.listen_addr().port(),
                    tokio::runtime::Handle::current(),
                ));
                proxy.run().await;
            });
        });
        let (ctx, port, handle) = rx.recv().expect("the proxy starts");
        InProcess {
            ctx,
            port,
            handle,
            thread: Some(thread),
        }
    }

    /// Runs the gate's pause, the route change `publish`, and the resume, like the flip does.
    fn flip(&self, publish: impl FnOnce(&ProxyContext)) {
        let runtime = current_thread_runtime();
        let outcome = runtime.block_on(
            self.ctx
                .gate
                .pause(&self.ctx.sessions, Duration::from_secs(30)),
        );
        assert!(
            matches!(outcome, duet_proxy::gate::PauseOutcome::Paused { .. }),
            "{outcome:?}"
        );
        publish(&self.ctx);
        self.ctx.gate.resume();
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _runtime = self.handle.enter();
        self.ctx
            .shutdown
            .begin(self.ctx.sessions.clone(), Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One statement's answer from the raw client.
#[derive(Debug, Default, Clone)]
struct Answer {
    rows: Vec<Vec<Option<String>>>,
    tags: Vec<String>,
    /// (SQLSTATE, message, hint) of the error, if any.
    error: Option<(String, String, String)>,
    /// The transaction status of the ReadyForQuery.
    status: u8,
    /// The error's context line (`W`), if any.
    context: Option<String>,
    /// The body of each CopyInResponse (overall format, column count, column formats).
    copy_in: Vec<Vec<u8>>,
}

/// A minimal wire-protocol client: simple queries and text-format prepared statements, with the
/// exact CommandComplete tags (drivers hide the verb the hook restores), every error field, the
/// transaction status and COPY FROM STDIN — more of each answer than the kit's [`RawClient`]
/// (which sets up and checks the tables here) keeps; its bytes come from the kit's [`wire`].
struct Raw {
    stream: TcpStream,
    /// What to send after a CopyInResponse: this data and CopyDone, or (`None`) a CopyFail.
    copy_data: Option<Vec<u8>>,
}

fn cstring(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

impl Raw {
    /// Logs in to the test server's maintenance database as its user, through `proxy`.
    fn through(proxy: &InProcess) -> Raw {
        Raw::connect("127.0.0.1", proxy.port)
    }

    /// Logs in at `host:port` (the test server or a proxy in front of it) as the test server's
    /// user, to its maintenance database.
    fn connect(host: &str, port: u16) -> Raw {
        let server = server();
        let mut stream = TcpStream::connect((host, port)).expect("connect");
        // A guard against hanging forever on a lost answer (fails the test; not a timing check).
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("read timeout");
        let startup =
            wire::startup_message(&[("user", &server.user), ("database", &server.maintenance_db)]);
        stream.write_all(&startup).expect("startup");
        let mut raw = Raw {
            stream,
            copy_data: None,
        };
        raw.answer();
        raw
    }

    fn read(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0u8; 5];
        self.stream.read_exact(&mut head).expect("read header");
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        self.stream.read_exact(&mut body).expect("read body");
        (head[0], body)
    }

    /// Reads up to a ReadyForQuery.
    fn answer(&mut self) -> Answer {
        let mut answer = Answer::default();
        loop {
            let (tag, body) = self.read();
            match tag {
                b'D' => {
                    let n = u16::from_be_bytes([body[0], body[1]]) as usize;
                    let mut at = 2;
                    let mut row = Vec::new();
                    for _ in 0..n {
                        let len = i32::from_be_bytes([
                            body[at],
                            body[at + 1],
                            body[at + 2],
                            body[at + 3],
                        ]);
                        at += 4;
                        if len < 0 {
                            row.push(None);
                        } else {
                            let end = at + len as usize;
                            row.push(Some(String::from_utf8_lossy(&body[at..end]).into_owned()));
                            at = end;
                        }
                    }
                    answer.rows.push(row);
                }
                b'C' => answer
                    .tags
                    .push(String::from_utf8_lossy(&body[..body.len() - 1]).into_owned()),
                b'E' => {
                    let mut fields = BackendMessage { tag, body }.fields();
                    let mut field = |code: u8| fields.remove(&code);
                    answer.context = field(b'W').or(answer.context.take());
                    answer.error = Some((
                        field(b'C').unwrap_or_default(),
                        field(b'M').unwrap_or_default(),
                        field(b'H').unwrap_or_default(),
                    ));
                }
                b'G' => {
                    answer.copy_in.push(body);
                    let out = match &self.copy_data {
                        Some(data) => [message(b'd', data), message(b'c', b"")].concat(),
                        None => message(b'f', b"no copy here\0"),
                    };
                    self.stream.write_all(&out).expect("copy data");
                }
                b'Z' => {
                    answer.status = body[0];
                    return answer;
                }
                _ => {}
            }
        }
    }

    fn simple(&mut self, sql: &str) -> Answer {
        let mut body = Vec::new();
        cstring(&mut body, sql);
        self.stream
            .write_all(&message(b'Q', &body))
            .expect("send query");
        self.answer()
    }

    /// A simple query whose COPY FROM STDIN (each one, if several) gets `data`.
    fn copy(&mut self, sql: &str, data: &[u8]) -> Answer {
        self.copy_data = Some(data.to_vec());
        let answer = self.simple(sql);
        self.copy_data = None;
        answer
    }

    fn ok(&mut self, sql: &str) -> Answer {
        let answer = self.simple(sql);
        assert!(answer.error.is_none(), "{sql}: {:?}", answer.error);
        answer
    }

    fn prepare(&mut self, name: &str, sql: &str) -> Answer {
        let mut body = Vec::new();
        cstring(&mut body, name);
        cstring(&mut body, sql);
        body.extend_from_slice(&[0, 0]);
        let mut out = message(b'P', &body);
        out.extend(message(b'S', b""));
        self.stream.write_all(&out).expect("send parse");
        self.answer()
    }

    /// Binds `params` as text and executes, results in text format.
    fn execute(&mut self, name: &str, params: &[&str]) -> Answer {
        let mut body = Vec::new();
        cstring(&mut body, "");
        cstring(&mut body, name);
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&(params.len() as u16).to_be_bytes());
        for p in params {
            body.extend_from_slice(&(p.len() as i32).to_be_bytes());
            body.extend_from_slice(p.as_bytes());
        }
        body.extend_from_slice(&[0, 0]);
        let mut out = message(b'B', &body);
        out.extend(message(b'E', b"\0\0\0\0\0"));
        out.extend(message(b'S', b""));
        self.stream.write_all(&out).expect("send execute");
        self.answer()
    }
}

/// A raw session straight on the test server (no proxy), to compare with one through duet.
fn direct() -> Raw {
    let server = server();
    let mut raw = Raw::connect(&server.host, server.port);
    raw.ok("SET client_min_messages = warning");
    raw
}

/// A session straight on the test server for setting up and checking tables.
fn setup() -> RawClient {
    let server = server();
    RawClient::connect(&server, &server.maintenance_db)
        .unwrap_or_else(|err| panic!("connecting to the test server: {err}"))
}

/// A schema of its own for one test, dropped at the end (with the safety nets installed in it).
struct Schema {
    name: String,
    nets: std::cell::RefCell<Vec<String>>,
}

impl Schema {
    fn create(test: &str) -> Schema {
        let name = format!("duet_hook_{test}_{}", std::process::id());
        setup().run(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ));
        Schema {
            name,
            nets: Default::default(),
        }
    }

    /// Installs the safety net of `route` on its table, as a migration's expand step does: a
    /// shadow column is set by it alone (its writes pass duet unchanged).
    fn net(&self, route: &TableRoute) {
        let table =
            duet_shadow::ident::QualifiedName::new(route.schema.clone(), route.name.clone());
        let install = duet_shadow::rewrite::net::install_sql(&table, &table, route).expect("a net");
        setup().run(&format!("CREATE SCHEMA IF NOT EXISTS duet; {install}"));
        self.nets
            .borrow_mut()
            .push(duet_shadow::rewrite::net::drop_function_sql(&table));
    }

    fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        setup().rows(&format!("SET search_path TO {}; {sql}", self.name))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Best effort: a drop guard must not panic (the test may be failing already).
        let Ok(mut client) = RawClient::connect(&server(), &server().maintenance_db) else {
            return;
        };
        let _ = client.query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        for drop_function in self.nets.borrow().iter() {
            let _ = client.query(drop_function);
        }
    }
}

fn column(name: &str, base_type: &str) -> Column {
    Column {
        name: name.into(),
        base_type: base_type.into(),
    }
}

fn mapped(target: &str, expr: &str) -> ColumnMapping {
    ColumnMapping {
        target: target.into(),
        expr: expr.into(),
    }
}

/// A proxy whose routes send `items` (created in a fresh schema) to its shadow table.
fn items_under_migration(label: &str) -> (InProcess, Schema) {
    let proxy = InProcess::start(label);
    let schema = Schema::create(label);
    create_items(&schema);
    proxy.ctx.routes.set_table(
        &schema.name,
        "items",
        Some(items_route(&schema.name)),
        150000,
    );
    (proxy, schema)
}

/// A runtime for the async clients of a synchronous test.
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `items (id int4 PRIMARY KEY, note text)` migrating to `items__duet` with a bigint key.
fn items_route(schema: &str) -> TableRoute {
    TableRoute {
        schema: schema.into(),
        name: "items".into(),
        columns: vec![column("id", "int4"), column("note", "text")],
        key: vec!["id".into()],
        target: Target::ShadowTable {
            shadow: "items__duet".into(),
            mapping: vec![mapped("id", "\"id\"::bigint"), mapped("note", "\"note\"")],
            shadow_key: vec!["id".into()],
            skip_when: None,
            plain_deletes: false,
        },
    }
}

fn create_items(schema: &Schema) {
    setup().run(&format!(
        "SET search_path TO {};
         CREATE TABLE items (id int4 PRIMARY KEY, note text);
         CREATE TABLE items__duet (id bigint PRIMARY KEY, note text,
             \"__duet_deleted\" boolean NOT NULL DEFAULT false);
         INSERT INTO items VALUES (1, 'one'), (2, 'two');
         INSERT INTO items__duet (id, note) SELECT id, note FROM items;",
        schema.name
    ));
}

fn text(rows: &[Vec<Option<String>>]) -> Vec<Vec<&str>> {
    rows.iter()
        .map(|r| r.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect())
        .collect()
}

#[test]
fn extended_protocol_writes_land_in_both_shapes() {
    if !server_reachable() {
        return;
    }
    let (proxy, schema) = items_under_migration("extended");
    let runtime = current_thread_runtime();
    runtime.block_on(async {
        let mut client = connect_through(&proxy, &schema).await;

        let insert = client
            .prepare("INSERT INTO items (id, note) VALUES ($1, $2) RETURNING id, note")
            .await
            .expect("prepare insert");
        for id in [10i32, 11, 12] {
            let row = client
                .query_one(&insert, &[&id, &format!("n{id}")])
                .await
                .expect("insert");
            assert_eq!(
                row.get::<_, i32>(0),
                id,
                "RETURNING keeps the client's types"
            );
        }
        let updated = client
            .execute(
                "UPDATE items SET note = $1 WHERE id >= $2",
                &[&"big", &11i32],
            )
            .await
            .expect("update");
        assert_eq!(updated, 2);
        let deleted = client
            .execute("DELETE FROM items WHERE id = $1", &[&12i32])
            .await
            .expect("delete");
        assert_eq!(deleted, 1);

        // A refused statement: the client sees duet's 0A000, and the session carries on.
        let merge = "MERGE INTO items USING (SELECT 1 AS id) s ON items.id = s.id \
                     WHEN MATCHED THEN DELETE";
        let err = client.execute(merge, &[]).await.expect_err("refused");
        let db = err.as_db_error().expect("a server-style error");
        assert_eq!(db.code().code(), "0A000");
        assert!(db.message().contains("MERGE into table items"), "{db:?}");
        assert!(db.hint().is_some());
        assert_eq!(
            client
                .query_one("SELECT count(*) FROM items", &[])
                .await
                .expect("the session is usable")
                .get::<_, i64>(0),
            4
        );

        // Inside a transaction the refusal aborts it like a real error.
        let tx = client.transaction().await.expect("begin");
        tx.execute("INSERT INTO items VALUES (20, 'in tx')", &[])
            .await
            .expect("insert in tx");
        let err = tx.execute(merge, &[]).await.expect_err("refused in tx");
        assert_eq!(err.code().map(|c| c.code()), Some("0A000"));
        let aborted = tx.execute("SELECT 1", &[]).await.expect_err("aborted");
        assert_eq!(aborted.code().map(|c| c.code()), Some("25P02"));
        tx.rollback().await.expect("rollback");
    });
    assert_eq!(
        text(&schema.rows("SELECT id, note FROM items ORDER BY id")),
        [["1", "one"], ["2", "two"], ["10", "n10"], ["11", "big"]]
    );
    assert_eq!(
        text(
            &schema
                .rows("SELECT id, note FROM items__duet WHERE NOT \"__duet_deleted\" ORDER BY id")
        ),
        [["1", "one"], ["2", "two"], ["10", "n10"], ["11", "big"]]
    );
    // The deleted row stays as a tombstone (the copier must not bring it back).
    assert_eq!(
        text(&schema.rows("SELECT id FROM items__duet WHERE \"__duet_deleted\"")),
        [["12"]]
    );
    let counters = proxy.ctx.routes.counters(&schema.name, "items");
    assert!(counters.dual_writes.load(Ordering::Relaxed) >= 5);
    assert_eq!(counters.refusals.load(Ordering::Relaxed), 2);
}

#[test]
fn simple_protocol_keeps_tags_and_refuses_like_the_server() {
    if !server_reachable() {
        return;
    }
    let proxy = InProcess::start("simple");
    let schema = Schema::create("simple");
    create_items(&schema);
    setup().run(&format!(
        "SET search_path TO {};
         CREATE TABLE amounts (id int PRIMARY KEY, amount int, amount__duet bigint);
         INSERT INTO amounts VALUES (1, 5, 5);",
        schema.name
    ));
    proxy.ctx.routes.set_table(
        &schema.name,
        "items",
        Some(items_route(&schema.name)),
        150000,
    );
    let amounts = TableRoute {
        schema: schema.name.clone(),
        name: "amounts".into(),
        columns: vec![
            column("id", "int4"),
            column("amount", "int4"),
            column("amount__duet", "int8"),
        ],
        key: vec!["id".into()],
        target: Target::ShadowColumn {
            column: "amount__duet".into(),
            expr: "\"amount\"::bigint * 10".into(),
            skip_when: None,
            recover: None,
        },
    };
    schema.net(&amounts);
    proxy
        .ctx
        .routes
        .set_table(&schema.name, "amounts", Some(amounts), 0);

    let mut raw = Raw::through(&proxy);
    raw.ok(&format!("SET search_path TO {}", schema.name));
    let answer = raw.ok(
        "INSERT INTO items VALUES (3, 'three'); UPDATE items SET note = 'x' WHERE id <= 2; \
         SELECT 1; DELETE FROM items WHERE id = 1; UPDATE amounts SET amount = 7",
    );
    assert_eq!(
        answer.tags,
        ["INSERT 0 1", "UPDATE 2", "SELECT 1", "DELETE 1", "UPDATE 1"]
    );
    // COPY FROM is dual-written (see `copy_from_*`): a client's CopyFail fails it like the
    // server does, and nothing is written.
    let copy = raw.simple("COPY items FROM STDIN");
    let (code, message, _) = copy.error.expect("CopyFail fails the COPY");
    assert_eq!(code, "57014");
    assert_eq!(message, "COPY from stdin failed: no copy here");
    assert_eq!(copy.copy_in.len(), 1, "the client got the CopyInResponse");
    assert_eq!(copy.status, b'I');
    // Refused, outside and inside a transaction; the session stays usable.
    let merge =
        raw.simple("MERGE INTO items USING items s ON false WHEN NOT MATCHED THEN DO NOTHING");
    let (code, message, hint) = merge.error.expect("MERGE is refused");
    assert_eq!(code, "0A000");
    assert!(message.contains("MERGE into table items"), "{message}");
    assert!(!hint.is_empty());
    assert_eq!(merge.status, b'I');
    raw.ok("BEGIN");
    raw.ok("INSERT INTO items VALUES (40, 'in tx')");
    let refused =
        raw.simple("MERGE INTO items USING items s ON false WHEN NOT MATCHED THEN DO NOTHING");
    assert_eq!(refused.error.map(|e| e.0).as_deref(), Some("0A000"));
    assert_eq!(refused.status, b'E', "the transaction is aborted");
    assert_eq!(
        raw.simple("SELECT 1").error.map(|e| e.0).as_deref(),
        Some("25P02")
    );
    assert_eq!(raw.ok("ROLLBACK").status, b'I');
    assert_eq!(
        raw.ok("SELECT count(*) FROM items").rows,
        [[Some("2".into())]]
    );

    // psql, one multi-statement query string: each statement's tag as the server would print it.
    let server = server();
    let psql = std::process::Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &proxy.port.to_string(),
            "-U",
            &server.user,
            "-d",
            &server.maintenance_db,
            "-c",
        ])
        .arg(format!(
            "SET search_path TO {}; INSERT INTO items VALUES (5, 'five'), (6, 'six'); \
             UPDATE items SET note = 'psql' WHERE id = 5; DELETE FROM items WHERE id = 6",
            schema.name
        ))
        .output();
    match psql {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for tag in ["INSERT 0 2", "UPDATE 1", "DELETE 1"] {
                assert!(stdout.contains(tag), "psql printed {stdout}");
            }
            let refused = std::process::Command::new("psql")
                .args(["-X", "-h", "127.0.0.1", "-p", &proxy.port.to_string()])
                .args(["-U", &server.user, "-d", &server.maintenance_db, "-c"])
                .arg(format!(
                    "MERGE INTO {}.items USING (SELECT 1 AS id) s ON false \
                     WHEN NOT MATCHED THEN DO NOTHING",
                    schema.name
                ))
                .output()
                .expect("psql runs");
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert!(!refused.status.success());
            assert!(stderr.contains("MERGE into table items"), "{stderr}");
        }
        Err(err) if !database_required() => {
            eprintln!("SKIPPED the psql part: {err}");
        }
        Err(err) => panic!("psql: {err}"),
    }
    assert_eq!(
        text(&schema.rows("SELECT id, note FROM items ORDER BY id")),
        [["2", "x"], ["3", "three"], ["5", "psql"]]
    );
    assert_eq!(
        text(
            &schema
                .rows("SELECT id, note FROM items__duet WHERE NOT \"__duet_deleted\" ORDER BY id")
        ),
        [["2", "x"], ["3", "three"], ["5", "psql"]]
    );
    assert_eq!(
        text(&schema.rows("SELECT id FROM items__duet WHERE \"__duet_deleted\" ORDER BY id")),
        [["1"], ["6"]]
    );
    assert_eq!(
        text(&schema.rows("SELECT amount, amount__duet FROM amounts")),
        [["7", "70"]]
    );
}

#[test]
fn named_statements_keep_working_across_a_flip() {
    if !server_reachable() {
        return;
    }
    let (proxy, schema) = items_under_migration("flip");
    let mut raw = Raw::through(&proxy);
    raw.ok(&format!("SET search_path TO {}", schema.name));
    assert!(raw
        .prepare("ins", "INSERT INTO items (id, note) VALUES ($1, $2)")
        .error
        .is_none());
    assert!(raw
        .prepare("sel", "SELECT * FROM items WHERE id = $1")
        .error
        .is_none());
    assert!(raw.prepare("other", "SELECT 42").error.is_none());
    // A driver that sends binary parameters of the types it was told at prepare time (int4 here):
    // after the flip, its statements must still take int4, not the int8 of the new shape.
    let runtime = current_thread_runtime();
    let (binary, binary_insert, binary_select) = runtime.block_on(async {
        let client = connect_through(&proxy, &schema).await;
        let insert = client
            .prepare("INSERT INTO items (id, note) VALUES ($1, $2)")
            .await
            .expect("prepare insert");
        let select = client
            .prepare("SELECT note FROM items WHERE id = $1")
            .await
            .expect("prepare select");
        client
            .execute(&insert, &[&70i32, &"binary before"])
            .await
            .expect("binary insert before the flip");
        (client, insert, select)
    });
    let before = raw.execute("ins", &["7", "before"]);
    assert_eq!(before.tags, ["INSERT 0 1"], "{before:?}");
    assert_eq!(
        raw.execute("sel", &["7"]).rows,
        [[Some("7".into()), Some("before".into())]]
    );

    // The flip, by hand: the shadow becomes the table, the old table its reverse mirror.
    proxy.flip(|ctx| {
        setup().run(&format!(
            "SET search_path TO {};
             BEGIN;
             DELETE FROM items__duet WHERE \"__duet_deleted\";
             ALTER TABLE items__duet DROP COLUMN \"__duet_deleted\";
             ALTER TABLE items ADD COLUMN \"__duet_deleted\" boolean NOT NULL DEFAULT false;
             ALTER TABLE items RENAME TO items__duet_old;
             ALTER TABLE items__duet RENAME TO items;
             COMMIT;",
            schema.name
        ));
        let reverse = TableRoute {
            schema: schema.name.clone(),
            name: "items".into(),
            columns: vec![column("id", "int8"), column("note", "text")],
            key: vec!["id".into()],
            target: Target::ShadowTable {
                shadow: "items__duet_old".into(),
                mapping: vec![mapped("id", "\"id\"::int4"), mapped("note", "\"note\"")],
                shadow_key: vec!["id".into()],
                skip_when: None,
                plain_deletes: false,
            },
        };
        ctx.routes
            .set_table(&schema.name, "items", Some(reverse), 0);
    });

    runtime.block_on(async {
        binary
            .execute(&binary_insert, &[&80i32, &"binary after"])
            .await
            .expect("a binary int4 parameter still fits the statement prepared before the flip");
        let row = binary
            .query_one(&binary_select, &[&70i32])
            .await
            .expect("binary select after the flip");
        assert_eq!(row.get::<_, String>(0), "binary before");
    });
    let after = raw.execute("ins", &["8", "after"]);
    assert!(after.error.is_none(), "{after:?}");
    assert_eq!(after.tags, ["INSERT 0 1"]);
    let selected = raw.execute("sel", &["8"]);
    assert!(selected.error.is_none(), "{selected:?}");
    assert_eq!(selected.rows, [[Some("8".into()), Some("after".into())]]);
    assert_eq!(raw.execute("other", &[]).rows, [[Some("42".into())]]);
    // Both shapes got the write made through the statement prepared before the flip.
    assert_eq!(
        text(&schema.rows("SELECT id, note FROM items WHERE id >= 7 ORDER BY id")),
        [
            ["7", "before"],
            ["8", "after"],
            ["70", "binary before"],
            ["80", "binary after"]
        ]
    );
    assert_eq!(
        text(&schema.rows(
            "SELECT id, note, \"__duet_deleted\" FROM items__duet_old WHERE id >= 7 ORDER BY id"
        )),
        [
            ["7", "before", "f"],
            ["8", "after", "f"],
            ["70", "binary before", "f"],
            ["80", "binary after", "f"]
        ]
    );
    // The type the server reports is the new one.
    assert_eq!(
        text(&schema.rows(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'items'::regclass AND attname = 'id'"
        )),
        [["bigint"]]
    );
}

#[test]
fn old_shape_statements_are_translated_and_counted_after_a_rename() {
    if !server_reachable() {
        return;
    }
    let proxy = InProcess::start("renamed");
    let schema = Schema::create("renamed");
    setup().run(&format!(
        "SET search_path TO {};
         CREATE TABLE people (id int PRIMARY KEY, full_name text);
         INSERT INTO people VALUES (1, 'a');",
        schema.name
    ));
    let route = TableRoute {
        schema: schema.name.clone(),
        name: "people".into(),
        columns: vec![column("id", "int4"), column("full_name", "text")],
        key: vec!["id".into()],
        target: Target::Renamed {
            columns: vec![("name".into(), "full_name".into())],
        },
    };
    proxy
        .ctx
        .routes
        .set_table(&schema.name, "people", Some(route), 150000);
    let mut raw = Raw::through(&proxy);
    raw.ok(&format!("SET search_path TO {}", schema.name));
    let answer = raw.ok("UPDATE people SET name = 'b' WHERE id = 1 RETURNING name");
    assert_eq!(answer.tags, ["UPDATE 1"]);
    assert_eq!(answer.rows, [[Some("b".into())]]);
    assert!(raw
        .prepare("old", "SELECT name FROM people")
        .error
        .is_none());
    assert_eq!(raw.execute("old", &[]).rows, [[Some("b".into())]]);
    let counters = proxy.ctx.routes.counters(&schema.name, "people");
    assert_eq!(counters.old_shape_statements.load(Ordering::Relaxed), 2);
    assert!(counters.old_shape_last_seen_ms.load(Ordering::Relaxed) > 0);
}

#[test]
fn a_stale_plan_outside_any_migration_behaves_as_on_postgresql() {
    if !server_reachable() {
        return;
    }
    let proxy = InProcess::start("stale");
    let schema = Schema::create("stale");
    setup().run(&format!(
        "SET search_path TO {};
         CREATE TABLE plain (id int4 PRIMARY KEY, note text);
         INSERT INTO plain VALUES (1, 'a');",
        schema.name
    ));
    // The same statement prepared through duet and straight on PostgreSQL.
    let mut sessions = [Raw::through(&proxy), direct()];
    for raw in &mut sessions {
        raw.ok(&format!("SET search_path TO {}", schema.name));
        assert!(raw.prepare("sel", "SELECT * FROM plain").error.is_none());
        assert_eq!(raw.execute("sel", &[]).rows.len(), 1);
    }
    // A schema change outside duet's routes changes the statement's result type: both are
    // refused the stale plan, and go on being refused (duet neither prepares it again in its
    // first shape nor drops it) until the client prepares it again itself.
    setup().run(&format!(
        "ALTER TABLE {}.plain ALTER COLUMN id TYPE bigint",
        schema.name
    ));
    for (raw, via) in sessions.iter_mut().zip(["duet", "direct"]) {
        for attempt in ["first", "next"] {
            let failed = raw.execute("sel", &[]);
            let (code, message, _) = failed
                .error
                .unwrap_or_else(|| panic!("{via}, {attempt} execution: the stale plan is refused"));
            assert_eq!(code, "0A000", "{via}");
            assert_eq!(message, "cached plan must not change result type", "{via}");
        }
        raw.ok("DEALLOCATE sel");
        assert!(raw.prepare("sel", "SELECT * FROM plain").error.is_none());
        let again = raw.execute("sel", &[]);
        assert!(again.error.is_none(), "{via}: {again:?}");
        assert_eq!(again.rows, [[Some("1".into()), Some("a".into())]], "{via}");
    }
}

/// `serials (id serial PRIMARY KEY, n int NOT NULL CHECK (n > 0), note text DEFAULT 'd')`
/// migrating to `serials__duet` with a bigint key; `gauges (id, amount int, amount__duet bigint)`
/// with a shadow column `amount * 10`.
fn create_copy_tables(proxy: &InProcess, schema: &Schema) {
    setup().run(&format!(
        "SET search_path TO {};
         CREATE TABLE serials (id serial PRIMARY KEY, n int NOT NULL CHECK (n > 0),
             note text DEFAULT 'd');
         CREATE TABLE serials__duet (id bigint PRIMARY KEY, n int, note text,
             \"__duet_deleted\" boolean NOT NULL DEFAULT false);
         INSERT INTO serials (n) VALUES (1), (2);
         INSERT INTO serials__duet (id, n, note) SELECT id, n, note FROM serials;
         DELETE FROM serials WHERE id = 2;
         INSERT INTO serials__duet (id, \"__duet_deleted\") VALUES (2, true)
             ON CONFLICT (id) DO UPDATE SET \"__duet_deleted\" = true;
         CREATE TABLE gauges (id int PRIMARY KEY, amount int, amount__duet bigint);",
        schema.name
    ));
    let serials = TableRoute {
        schema: schema.name.clone(),
        name: "serials".into(),
        columns: vec![
            column("id", "int4"),
            column("n", "int4"),
            column("note", "text"),
        ],
        key: vec!["id".into()],
        target: Target::ShadowTable {
            shadow: "serials__duet".into(),
            mapping: vec![
                mapped("id", "\"id\"::bigint"),
                mapped("n", "\"n\""),
                mapped("note", "\"note\""),
            ],
            shadow_key: vec!["id".into()],
            skip_when: None,
            plain_deletes: false,
        },
    };
    let gauges = TableRoute {
        schema: schema.name.clone(),
        name: "gauges".into(),
        columns: vec![column("id", "int4"), column("amount", "int4")],
        key: vec!["id".into()],
        target: Target::ShadowColumn {
            column: "amount__duet".into(),
            expr: "\"amount\"::bigint * 10".into(),
            skip_when: None,
            recover: None,
        },
    };
    schema.net(&gauges);
    let routes = &proxy.ctx.routes;
    routes.set_table(&schema.name, "serials", Some(serials), 150000);
    routes.set_table(&schema.name, "gauges", Some(gauges), 150000);
}

/// The rows of `serials` and of its shadow's live rows (key converted), which must be equal.
fn serials_in_both(schema: &Schema) -> Vec<Vec<Option<String>>> {
    let table = schema.rows("SELECT id, n, note FROM serials ORDER BY id");
    let shadow = schema
        .rows("SELECT id, n, note FROM serials__duet WHERE NOT \"__duet_deleted\" ORDER BY id");
    assert_eq!(table, shadow, "the shadow holds exactly the table's rows");
    table
}

/// A binary COPY stream of `(n int4, note text)` rows.
fn binary_rows(rows: &[(i32, &str)]) -> Vec<u8> {
    let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
    out.extend_from_slice(&[0; 8]);
    for (n, note) in rows {
        out.extend_from_slice(&2i16.to_be_bytes());
        out.extend_from_slice(&4i32.to_be_bytes());
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&(note.len() as i32).to_be_bytes());
        out.extend_from_slice(note.as_bytes());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

#[test]
fn copy_from_is_dual_written_in_the_simple_protocol() {
    if !server_reachable() {
        return;
    }
    let proxy = InProcess::start("copy_simple");
    let schema = Schema::create("copy_simple");
    create_copy_tables(&proxy, &schema);
    let path = format!("SET search_path TO {}", schema.name);
    let mut raw = Raw::through(&proxy);
    raw.ok(&path);
    let mut plain = direct();
    plain.ok(&path);

    // The omitted key gets the table's default, once: the shadow holds the same generated ids.
    let copy = raw.copy("COPY serials (n) FROM STDIN", b"5\n6\n");
    assert!(copy.error.is_none(), "{:?}", copy.error);
    assert_eq!(copy.tags, ["COPY 2"]);
    assert_eq!(copy.status, b'I');
    // The CopyInResponse is the one the client gets without duet (same column count and formats).
    let expected = plain.copy("BEGIN; COPY serials (n) FROM STDIN; ROLLBACK", b"1\n");
    assert_eq!(copy.copy_in, expected.copy_in);
    assert_eq!(
        text(&serials_in_both(&schema)),
        [["1", "1", "d"], ["3", "5", "d"], ["4", "6", "d"]]
    );

    // csv with a header and a WHERE, then binary, then every column without a list.
    let csv = raw.copy(
        "COPY serials (n, note) FROM STDIN WITH (FORMAT csv, HEADER true) WHERE n > 1",
        b"n,note\n1,skipped\n7,\"c,sv\"\n",
    );
    assert_eq!(csv.tags, ["COPY 1"], "{:?}", csv.error);
    let binary = raw.copy(
        "COPY serials (n, note) FROM STDIN (FORMAT binary)",
        &binary_rows(&[(8, "bin"), (9, "ary")]),
    );
    assert_eq!(binary.tags, ["COPY 2"], "{:?}", binary.error);
    assert_eq!(binary.copy_in[0][0], 1, "binary overall format");
    let all = raw.copy("COPY serials FROM STDIN", b"100\t10\t\\N\n");
    assert_eq!(all.tags, ["COPY 1"], "{:?}", all.error);
    assert_eq!(
        text(&serials_in_both(&schema)),
        [
            ["1", "1", "d"],
            ["3", "5", "d"],
            ["4", "6", "d"],
            // (5 went to the direct COPY that was rolled back: sequences do not roll back.)
            ["6", "7", "c,sv"],
            ["7", "8", "bin"],
            ["8", "9", "ary"],
            ["100", "10", "NULL"]
        ]
    );
    let before = serials_in_both(&schema);

    // Errors are the server's, as the client would get them on the table itself.
    for (sql, data) in [
        ("COPY serials (n) FROM STDIN", &b"11\nx\n"[..]),
        ("COPY serials (n) FROM STDIN", b"12\n-1\n"),
        ("COPY serials (n) FROM STDIN", b"\\N\n"),
        ("COPY serials (id, n) FROM STDIN", b"1\t13\n"),
        ("COPY serials (n, nosuch) FROM STDIN", b"1\t2\n"),
        ("COPY serials (n, n) FROM STDIN", b"1\t2\n"),
        ("COPY serials (n) FROM STDIN", b"1\t2\n"),
    ] {
        let through = raw.copy(sql, data);
        let direct = plain.copy(sql, data);
        let (code, message, _) = through.error.clone().expect("the COPY fails");
        let (direct_code, direct_message, _) = direct.error.clone().expect("fails directly");
        assert_eq!((&code, &message), (&direct_code, &direct_message), "{sql}");
        if code == "22P02" || code == "22P04" {
            assert_eq!(through.context, direct.context, "{sql}");
        }
        assert!(through.tags.is_empty(), "{sql}: {:?}", through.tags);
        assert_eq!(through.status, b'I');
    }
    // A client's CopyFail.
    let failed = raw.simple("COPY serials (n) FROM STDIN");
    assert_eq!(
        failed.error.map(|e| e.0).as_deref(),
        Some("57014"),
        "CopyFail"
    );
    assert_eq!(
        serials_in_both(&schema),
        before,
        "nothing written by failures"
    );

    // In a transaction block: rolled back with it, or committed with it (two COPYs).
    raw.ok("BEGIN");
    let copy = raw.copy("COPY serials (n) FROM STDIN", b"20\n");
    assert_eq!(
        (copy.tags.as_slice(), copy.status),
        (&["COPY 1".to_owned()][..], b'T')
    );
    assert_eq!(raw.ok("ROLLBACK").status, b'I');
    assert_eq!(serials_in_both(&schema), before, "rolled back");
    raw.ok("BEGIN");
    raw.copy("COPY serials (n) FROM STDIN", b"21\n");
    raw.copy("COPY serials (n, note) FROM STDIN (FORMAT csv)", b"22,tx\n");
    let failed = raw.copy("COPY serials (n) FROM STDIN", b"bad\n");
    assert_eq!(failed.status, b'E', "the transaction is aborted");
    assert_eq!(raw.ok("ROLLBACK").status, b'I');
    raw.ok("BEGIN");
    raw.copy("COPY serials (n) FROM STDIN", b"21\n");
    raw.copy("COPY serials (n, note) FROM STDIN (FORMAT csv)", b"22,tx\n");
    assert_eq!(raw.ok("COMMIT").status, b'I');
    // Two COPYs and other statements in one query string: each keeps its own answer.
    let many = raw.copy(
        "COPY serials (n) FROM STDIN; SELECT 1; COPY serials (n) FROM STDIN",
        b"30\n31\n",
    );
    assert_eq!(
        many.tags,
        ["COPY 2", "SELECT 1", "COPY 2"],
        "{:?}",
        many.error
    );
    assert_eq!(
        serials_in_both(&schema)
            .iter()
            .filter(|r| r[1]
                .as_deref()
                .is_some_and(|n| n.parse::<i32>().unwrap_or(0) >= 20))
            .count(),
        6
    );
    let tombstones =
        schema.rows("SELECT id FROM serials__duet WHERE \"__duet_deleted\" ORDER BY id");
    assert_eq!(text(&tombstones), [["2"]], "tombstones untouched");

    // A shadow column is computed from the copied values (by the safety net: the COPY is
    // forwarded as written, a column list leaving the source to its default included).
    let gauges = raw.copy("COPY gauges (id, amount) FROM STDIN", b"1\t3\n2\t\\N\n");
    assert_eq!(gauges.tags, ["COPY 2"], "{:?}", gauges.error);
    let gauges = raw.copy("COPY gauges FROM STDIN (FORMAT csv)", b"3,4\n");
    assert_eq!(gauges.tags, ["COPY 1"], "{:?}", gauges.error);
    assert_eq!(
        text(&schema.rows("SELECT id, amount, amount__duet FROM gauges ORDER BY id")),
        [["1", "3", "30"], ["2", "NULL", "NULL"], ["3", "4", "40"]]
    );

    // What duet still cannot dual-write is refused, and nothing runs.
    for (sql, what) in [
        ("COPY serials (n) FROM STDIN (FREEZE)", "FREEZE"),
        ("COPY serials (n) FROM STDIN WHERE id > 1", "WHERE"),
    ] {
        let refused = raw.copy(sql, b"1\n");
        let (code, message, hint) = refused.error.expect("refused");
        assert_eq!(code, "0A000", "{sql}");
        assert!(message.contains(what), "{sql}: {message}");
        assert!(!hint.is_empty());
        assert!(refused.copy_in.is_empty(), "{sql}: refused before any data");
    }
    // COPY TO and tables not under migration are untouched.
    raw.ok("CREATE TEMP TABLE plain_copy (n int)");
    assert_eq!(
        raw.copy("COPY plain_copy FROM STDIN", b"1\n").tags,
        ["COPY 1"]
    );

    // psql's \copy (a simple-protocol COPY FROM STDIN fed from psql's stdin).
    let server = server();
    let psql = std::process::Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args([
            "-p",
            &proxy.port.to_string(),
            "-U",
            &server.user,
            "-d",
            &server.maintenance_db,
        ])
        .arg("-c")
        .arg(&path)
        .arg("-c")
        .arg("\\copy serials (n, note) from stdin with (format csv)")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    match psql {
        Ok(mut child) => {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(b"40,psql\n41,psql\n").expect("psql stdin");
            }
            let out = child.wait_with_output().expect("psql runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains("COPY 2"), "psql printed {stdout}");
            assert_eq!(
                schema.rows("SELECT count(*) FROM serials__duet WHERE note = 'psql'"),
                [[Some("2".into())]]
            );
        }
        Err(err) if !database_required() => {
            eprintln!("SKIPPED the psql part: {err}");
        }
        Err(err) => panic!("psql: {err}"),
    }
    serials_in_both(&schema);
}

#[test]
fn copy_from_in_the_extended_protocol_is_refused() {
    if !server_reachable() {
        return;
    }
    let proxy = InProcess::start("copy_extended");
    let schema = Schema::create("copy_extended");
    create_copy_tables(&proxy, &schema);
    let runtime = current_thread_runtime();
    runtime.block_on(async {
        let client = connect_through(&proxy, &schema).await;
        let err = client
            .copy_in::<_, bytes::Bytes>("COPY serials (n) FROM STDIN")
            .await
            .err()
            .expect("refused");
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "0A000");
        assert!(db.message().contains("extended query protocol"), "{db:?}");
        assert!(db.hint().is_some_and(|h| h.contains("simple query")));
        // The session goes on.
        let rows = client.query("SELECT count(*) FROM serials", &[]).await;
        assert_eq!(rows.expect("query").len(), 1);
    });
    serials_in_both(&schema);
}

#[test]
fn a_session_that_moves_its_search_path_is_not_rewritten_for_another_table() {
    if !server_reachable() {
        return;
    }
    let (proxy, schema) = items_under_migration("search_path");
    let other = format!("{}_other", schema.name);
    setup().run(&format!(
        "DROP SCHEMA IF EXISTS {other} CASCADE; CREATE SCHEMA {other};
         CREATE TABLE {other}.items (id int PRIMARY KEY, label text)"
    ));
    let runtime = current_thread_runtime();
    runtime.block_on(async {
        let client = connect_through(&proxy, &schema).await;
        // Prepared while the session's path (from its startup packet) starts with the migrating
        // table's schema: rewritten.
        let insert = client
            .prepare("INSERT INTO items (id) VALUES ($1)")
            .await
            .expect("prepare");
        client.execute(&insert, &[&50i32]).await.expect("insert");
        // Now `items` means another table, of another shape (no `note`): the same prepared
        // statement and a fresh one write it as PostgreSQL resolves it, and fail nothing.
        client
            .batch_execute(&format!("SET search_path TO {other}, {}", schema.name))
            .await
            .expect("set search_path");
        client
            .execute(&insert, &[&60i32])
            .await
            .expect("prepared insert, other table");
        client
            .execute("INSERT INTO items (id) VALUES ($1)", &[&61i32])
            .await
            .expect("fresh insert, other table");
        client
            .batch_execute("INSERT INTO items (id) VALUES (62)")
            .await
            .expect("simple insert, other table");
    });
    assert_eq!(
        text(&schema.rows("SELECT id FROM items__duet WHERE id >= 50 ORDER BY id")),
        [["50"]],
        "only the migrating table's row reached its shadow"
    );
    assert_eq!(
        text(&setup().rows(&format!("SELECT id FROM {other}.items ORDER BY id"))),
        [["60"], ["61"], ["62"]]
    );
    setup().run(&format!("DROP SCHEMA {other} CASCADE"));
}

/// A session that moves its `search_path` away from its tables and back keeps every statement it
/// prepared, as it does on PostgreSQL (which re-analyses them at their next use): duet decides
/// them again only after the statement that moved the path, and only those naming a table under
/// migration. Found by asyncpg's suite (`SET search_path=none`, then back, then a cached
/// statement: "prepared statement … does not exist" through duet).
#[test]
fn prepared_statements_survive_a_search_path_moved_away_and_back() {
    if !server_reachable() {
        return;
    }
    let (proxy, schema) = items_under_migration("path_away");
    setup().run(&format!(
        "CREATE TABLE {}.plain (id int PRIMARY KEY); INSERT INTO {}.plain VALUES (1)",
        schema.name, schema.name
    ));
    let runtime = current_thread_runtime();
    runtime.block_on(async {
        let client = connect_through(&proxy, &schema).await;
        let plain = client
            .prepare("SELECT id FROM plain")
            .await
            .expect("prepare, unrouted table");
        let routed = client
            .prepare("INSERT INTO items (id) VALUES ($1)")
            .await
            .expect("prepare, routed table");
        client
            .batch_execute("SET search_path = pg_catalog")
            .await
            .expect("path away");
        client
            .batch_execute(&format!("SET search_path = {}", schema.name))
            .await
            .expect("path back");
        let rows = client.query(&plain, &[]).await.expect("unrouted statement");
        assert_eq!(rows.len(), 1);
        client
            .execute(&routed, &[&70i32])
            .await
            .expect("routed statement, decided again under the path it runs under");
    });
    assert_eq!(
        text(&schema.rows("SELECT id FROM items__duet WHERE id = 70")),
        [["70"]],
        "the routed statement was rewritten again after the path came back"
    );
}
