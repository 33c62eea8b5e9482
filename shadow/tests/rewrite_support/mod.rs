//! Shared helpers of the rewrite tests: a throw-away database per test, a raw simple-query client
//! (tokio-postgres hides the CommandComplete verb, which the rewrite must restore), and routes.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;

use shadow::rewrite::{Column, ColumnMapping, Routes, TableRoute, Target};

pub fn host() -> String {
    std::env::var("DUET_TEST_PGHOST").unwrap_or_else(|_| "127.0.0.1".to_string())
}

/// Connects to the `postgres` database, or reports the skip (fails under DUET_REQUIRE_DATABASE=1).
pub fn admin(test: &str) -> Option<RawClient> {
    match RawClient::connect("postgres") {
        Ok(c) => Some(c),
        Err(err) => {
            if std::env::var("DUET_REQUIRE_DATABASE").is_ok_and(|v| v == "1") {
                panic!("DUET_REQUIRE_DATABASE=1 but PostgreSQL is unreachable: {err}");
            }
            eprintln!("SKIPPED {test}: no PostgreSQL at {}:5432 ({err})", host());
            None
        }
    }
}

/// A database created for one test and dropped at the end.
pub struct TestDb {
    pub name: String,
    admin: RawClient,
}

impl TestDb {
    pub fn create(test: &str) -> Option<TestDb> {
        let mut admin = admin(test)?;
        let name = format!("duet_rw_{}_{}", test, std::process::id());
        admin
            .query(&format!("DROP DATABASE IF EXISTS {name}"))
            .expect("drop old db");
        admin
            .query(&format!("CREATE DATABASE {name}"))
            .expect("create db");
        Some(TestDb { name, admin })
    }

    pub fn connect(&self) -> RawClient {
        RawClient::connect(&self.name).expect("connect to test db")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self.admin.query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// One statement's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub tag: String,
}

/// A minimal PostgreSQL simple-query client over the wire protocol (trust auth).
pub struct RawClient {
    stream: TcpStream,
}

impl RawClient {
    pub fn connect(db: &str) -> Result<RawClient, String> {
        let mut stream =
            TcpStream::connect(format!("{}:5432", host())).map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        body.extend_from_slice(&196608u32.to_be_bytes());
        for (k, v) in [("user", "postgres"), ("database", db)] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        stream.write_all(&msg).map_err(|e| e.to_string())?;
        let mut client = RawClient { stream };
        loop {
            let (kind, payload) = client.read_message()?;
            match kind {
                b'R' if payload[..4] != [0, 0, 0, 0] => return Err("auth required".into()),
                b'E' => return Err(error_text(&payload)),
                b'Z' => return Ok(client),
                _ => {}
            }
        }
    }

    fn read_message(&mut self) -> Result<(u8, Vec<u8>), String> {
        let mut head = [0u8; 5];
        self.stream
            .read_exact(&mut head)
            .map_err(|e| e.to_string())?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut payload = vec![0u8; len - 4];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| e.to_string())?;
        Ok((head[0], payload))
    }

    /// Runs a simple query; one [`Answer`] per statement, or the first error's message.
    pub fn query(&mut self, sql: &str) -> Result<Vec<Answer>, String> {
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
        msg.extend_from_slice(sql.as_bytes());
        msg.push(0);
        self.stream.write_all(&msg).map_err(|e| e.to_string())?;
        let mut answers = Vec::new();
        let mut current = Answer::default();
        let mut error = None;
        loop {
            let (kind, p) = self.read_message()?;
            match kind {
                b'T' => {
                    let n = u16::from_be_bytes([p[0], p[1]]) as usize;
                    let mut at = 2;
                    for _ in 0..n {
                        let end = at + p[at..].iter().position(|&b| b == 0).unwrap_or(0);
                        current
                            .columns
                            .push(String::from_utf8_lossy(&p[at..end]).into_owned());
                        at = end + 1 + 18;
                    }
                }
                b'D' => {
                    let n = u16::from_be_bytes([p[0], p[1]]) as usize;
                    let mut at = 2;
                    let mut row = Vec::new();
                    for _ in 0..n {
                        let len = i32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
                        at += 4;
                        if len < 0 {
                            row.push(None);
                        } else {
                            let len = len as usize;
                            row.push(Some(String::from_utf8_lossy(&p[at..at + len]).into_owned()));
                            at += len;
                        }
                    }
                    current.rows.push(row);
                }
                b'C' => {
                    current.tag = String::from_utf8_lossy(&p[..p.len() - 1]).into_owned();
                    answers.push(std::mem::take(&mut current));
                }
                b'I' => answers.push(std::mem::take(&mut current)),
                b'E' => error = Some(error_text(&p)),
                b'G' => {
                    // CopyIn: abort it.
                    let fail = b"no copy\0";
                    let mut m = vec![b'f'];
                    m.extend_from_slice(&((fail.len() + 4) as u32).to_be_bytes());
                    m.extend_from_slice(fail);
                    self.stream.write_all(&m).map_err(|e| e.to_string())?;
                }
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(answers),
        }
    }

    /// Runs `sql`, panicking with the statement on error.
    pub fn run(&mut self, sql: &str) -> Vec<Answer> {
        self.query(sql)
            .unwrap_or_else(|e| panic!("{e}\nwhile running: {sql}"))
    }

    /// The rows of one query as text.
    pub fn rows(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.run(sql).pop().map(|a| a.rows).unwrap_or_default()
    }
}

fn error_text(p: &[u8]) -> String {
    let mut out = String::new();
    let mut at = 0;
    while at < p.len() && p[at] != 0 {
        let code = p[at] as char;
        let end = at + 1 + p[at + 1..].iter().position(|&b| b == 0).unwrap_or(0);
        if code == 'C' || code == 'M' {
            out.push_str(&String::from_utf8_lossy(&p[at + 1..end]));
            out.push(' ');
        }
        at = end + 1;
    }
    out
}

/// The columns of the test table `t` in both schemas.
pub const TABLE_DDL: &str =
    "CREATE TABLE t (id serial PRIMARY KEY, amount numeric(12,2), note text,
    created timestamptz DEFAULT clock_timestamp(), r float8 DEFAULT random(),
    u uuid DEFAULT gen_random_uuid());
  CREATE TABLE other (id int, note text);
  INSERT INTO t (amount, note, created, r, u)
    SELECT g * 1.5, 'n' || g, '2020-01-01', 0.5, md5(g::text)::uuid FROM generate_series(1, 5) g;
  INSERT INTO other VALUES (1, 'x'), (2, 'y'), (9, 'z');";

/// The shadow-column route of `public.acc`: `amount__duet bigint` = `amount * 10`.
pub fn shadow_column_routes() -> Routes {
    let col = |name: &str, ty: &str| Column {
        name: name.into(),
        base_type: ty.into(),
    };
    Routes {
        tables: vec![TableRoute {
            schema: "public".into(),
            name: "acc".into(),
            columns: vec![
                col("id", "int4"),
                col("amount", "int4"),
                col("note", "text"),
            ],
            key: vec!["id".into()],
            target: Target::ShadowColumn {
                column: "amount__duet".into(),
                expr: "\"amount\"::bigint * 10".into(),
                skip_when: None,
            },
        }],
        server_version_num: 150000,
        net_only: vec![],
    }
}

/// The shadow-table route of `app.t`: id int → bigint, amount numeric(12,2) → numeric.
pub fn shadow_table_routes() -> Routes {
    let col = |name: &str, ty: &str| Column {
        name: name.into(),
        base_type: ty.into(),
    };
    let map = |target: &str, expr: &str| ColumnMapping {
        target: target.into(),
        expr: expr.into(),
    };
    Routes {
        tables: vec![TableRoute {
            schema: "app".into(),
            name: "t".into(),
            columns: vec![
                col("id", "int4"),
                col("amount", "numeric"),
                col("note", "text"),
                col("created", "timestamptz"),
                col("r", "float8"),
                col("u", "uuid"),
            ],
            key: vec!["id".into()],
            target: Target::ShadowTable {
                shadow: "t__duet".into(),
                mapping: vec![
                    map("id", "\"id\"::bigint"),
                    map("amount", "\"amount\"::numeric"),
                    map("note", "\"note\""),
                    map("created", "\"created\""),
                    map("r", "\"r\""),
                    map("u", "\"u\""),
                ],
                shadow_key: vec!["id".into()],
                skip_when: None,
                plain_deletes: false,
            },
        }],
        server_version_num: 150000,
        net_only: vec![],
    }
}

/// Fresh `ctl.t` (control, original statements) and `app.t` + `app.t__duet` (rewritten
/// statements), the shadow already filled by a "copier".
pub fn reset_shadow_table(c: &mut RawClient) {
    c.run(
        "DROP SCHEMA IF EXISTS ctl CASCADE; DROP SCHEMA IF EXISTS app CASCADE;
           CREATE SCHEMA ctl; CREATE SCHEMA app;",
    );
    for schema in ["ctl", "app"] {
        c.run(&format!("SET search_path = {schema}; {TABLE_DDL}"));
    }
    c.run("CREATE TABLE app.t__duet (id bigint PRIMARY KEY, amount numeric, note text,
             created timestamptz, r float8, u uuid, __duet_deleted boolean NOT NULL DEFAULT false);
           INSERT INTO app.t__duet SELECT id::bigint, amount::numeric, note, created, r, u FROM app.t;");
}

/// Installs the safety net of the first route's table, as a migration's expand step does.
pub fn install_net(c: &mut RawClient, routes: &Routes) {
    let route = &routes.tables[0];
    let table = shadow::ident::QualifiedName::new(route.schema.clone(), route.name.clone());
    let install = shadow::rewrite::net::install_sql(&table, &table, route).expect("a net");
    c.run(&format!("CREATE SCHEMA IF NOT EXISTS duet; {install}"));
}
