//! The dual-write hook end to end: an in-process proxy in front of the real PostgreSQL, a table
//! and its shadow made by hand, a route published in the proxy's route table, and real clients
//! (tokio-postgres on the extended protocol, psql and a raw client on the simple protocol) whose
//! writes must land in both shapes with the answers they expect; refused statements must look like
//! server errors; named prepared statements must survive a flip.
//!
//! The server comes from 127.0.0.1:5432 (user postgres, trust). Without one the tests say so and
//! pass, unless `DUET_REQUIRE_DATABASE=1`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use duet::context::ProxyContext;
use shadow::rewrite::{Column, ColumnMapping, TableRoute, Target};
use support::server_reachable;

const URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// tokio-postgres through `proxy` (extended protocol), with `schema` first on the search path.
async fn connect_through(proxy: &InProcess, schema: &Schema) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres options=--search_path={}",
            proxy.port, schema.name
        ),
        tokio_postgres::NoTls,
    )
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
        let overrides = duet::config::Overrides {
            listen: Some("127.0.0.1:0".into()),
            backend: Some(URL.into()),
            admin_socket: Some(socket),
            workers: Some(1),
            ..Default::default()
        };
        let config = duet::config::from_str("", overrides).expect("config");
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let proxy = duet::server::Proxy::bind(config).await.expect("bind");
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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let outcome = runtime.block_on(
            self.ctx
                .gate
                .pause(&self.ctx.sessions, Duration::from_secs(30)),
        );
        assert!(
            matches!(outcome, duet::gate::PauseOutcome::Paused { .. }),
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
}

/// A minimal wire-protocol client: simple queries and text-format prepared statements, with the
/// exact CommandComplete tags (drivers hide the verb the hook restores).
struct Raw {
    stream: TcpStream,
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstring(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // A guard against hanging forever on a lost answer (fails the test; not a timing check).
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("read timeout");
        let mut body = 196608u32.to_be_bytes().to_vec();
        for part in ["user", "postgres", "database", "postgres", ""] {
            cstring(&mut body, part);
        }
        let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        stream.write_all(&startup).expect("startup");
        let mut raw = Raw { stream };
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
                    let mut fields = (String::new(), String::new(), String::new());
                    for field in body.split(|&b| b == 0).filter(|f| !f.is_empty()) {
                        let value = String::from_utf8_lossy(&field[1..]).into_owned();
                        match field[0] {
                            b'C' => fields.0 = value,
                            b'M' => fields.1 = value,
                            b'H' => fields.2 = value,
                            _ => {}
                        }
                    }
                    answer.error = Some(fields);
                }
                b'G' => self
                    .stream
                    .write_all(&message(b'f', b"no copy here\0"))
                    .expect("copy fail"),
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

/// A direct connection (no proxy) for setup and checks.
fn direct() -> Raw {
    let mut raw = Raw::connect(5432);
    raw.ok("SET client_min_messages = warning");
    raw
}

/// A schema of its own for one test, dropped at the end.
struct Schema {
    name: String,
}

impl Schema {
    fn create(test: &str) -> Schema {
        let name = format!("duet_hook_{test}_{}", std::process::id());
        direct().ok(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ));
        Schema { name }
    }

    fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        direct()
            .ok(&format!("SET search_path TO {}; {sql}", self.name))
            .rows
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = direct().simple(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
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
    direct().ok(&format!(
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
    let proxy = InProcess::start("extended");
    let schema = Schema::create("extended");
    create_items(&schema);
    proxy.ctx.routes.set_table(
        &schema.name,
        "items",
        Some(items_route(&schema.name)),
        150000,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
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
    direct().ok(&format!(
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
            sources: vec!["amount".into()],
        },
    };
    proxy
        .ctx
        .routes
        .set_table(&schema.name, "amounts", Some(amounts), 0);

    let mut raw = Raw::connect(proxy.port);
    raw.ok(&format!("SET search_path TO {}", schema.name));
    let answer = raw.ok(
        "INSERT INTO items VALUES (3, 'three'); UPDATE items SET note = 'x' WHERE id <= 2; \
         SELECT 1; DELETE FROM items WHERE id = 1; UPDATE amounts SET amount = 7",
    );
    assert_eq!(
        answer.tags,
        ["INSERT 0 1", "UPDATE 2", "SELECT 1", "DELETE 1", "UPDATE 1"]
    );
    // Refused, outside and inside a transaction; the session stays usable.
    let copy = raw.simple("COPY items FROM STDIN");
    let (code, message, hint) = copy.error.expect("COPY FROM is refused");
    assert_eq!(code, "0A000");
    assert!(message.contains("COPY FROM into table items"), "{message}");
    assert!(!hint.is_empty());
    assert_eq!(copy.status, b'I');
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
    let psql = std::process::Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &proxy.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
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
                .args(["-U", "postgres", "-d", "postgres", "-c"])
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
        Err(err) if std::env::var("DUET_REQUIRE_DATABASE").as_deref() != Ok("1") => {
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
    let proxy = InProcess::start("flip");
    let schema = Schema::create("flip");
    create_items(&schema);
    proxy.ctx.routes.set_table(
        &schema.name,
        "items",
        Some(items_route(&schema.name)),
        150000,
    );
    let mut raw = Raw::connect(proxy.port);
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
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
        direct().ok(&format!(
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
    direct().ok(&format!(
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
    let mut raw = Raw::connect(proxy.port);
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
fn a_stale_plan_is_prepared_again_for_the_next_transaction() {
    if !server_reachable() {
        return;
    }
    let proxy = InProcess::start("stale");
    let schema = Schema::create("stale");
    direct().ok(&format!(
        "SET search_path TO {};
         CREATE TABLE plain (id int4 PRIMARY KEY, note text);
         INSERT INTO plain VALUES (1, 'a');",
        schema.name
    ));
    // Nothing routed: the statement is remembered all the same.
    let mut raw = Raw::connect(proxy.port);
    raw.ok(&format!("SET search_path TO {}", schema.name));
    assert!(raw.prepare("sel", "SELECT * FROM plain").error.is_none());
    assert_eq!(raw.execute("sel", &[]).rows.len(), 1);
    // A schema change outside duet's routes changes the statement's result type.
    direct().ok(&format!(
        "ALTER TABLE {}.plain ALTER COLUMN id TYPE bigint",
        schema.name
    ));
    let failed = raw.execute("sel", &[]);
    let (code, message, _) = failed.error.expect("the server refuses the stale plan");
    assert_eq!(code, "0A000");
    assert_eq!(message, "cached plan must not change result type");
    // The next transaction prepares it again first: it works.
    let again = raw.execute("sel", &[]);
    assert!(again.error.is_none(), "{again:?}");
    assert_eq!(again.rows, [[Some("1".into()), Some("a".into())]]);
}
