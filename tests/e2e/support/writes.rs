//! Every class of write a client sends, in both protocols, against a table under migration and,
//! in lockstep, against a plain control table of the same rows.
//!
//! What a client is told (CommandComplete counts, RETURNING rows) through duet must equal what
//! PostgreSQL tells a client of the control table, and at the end the migrated table must hold
//! exactly the control table's rows: the control table is "what the clients were told was
//! committed".

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::tools::{psql, Target};

/// A table under migration and its control twin, both `(id, v text NOT NULL, n)`.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Schema of both tables.
    pub schema: String,
    /// The table under migration (unqualified).
    pub table: String,
    /// The control table (unqualified).
    pub control: String,
    /// Words replaced in the SQL sent to the control table (a column renamed on the migrated
    /// table only, for old-shape statements): `(from, to)`.
    pub control_renames: Vec<(String, String)>,
}

impl Pair {
    /// The migrated table, qualified.
    pub fn migrated(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// The control table, qualified.
    pub fn control(&self) -> String {
        format!("{}.{}", self.schema, self.control)
    }

    /// `sql` (with `{T}`) for the migrated table.
    pub fn on_migrated(&self, sql: &str) -> String {
        sql.replace("{T}", &self.migrated())
    }

    /// `sql` (with `{T}`) for the control table, renames applied.
    pub fn on_control(&self, sql: &str) -> String {
        let mut sql = sql.replace("{T}", &self.control());
        for (from, to) in &self.control_renames {
            sql = sql.replace(from.as_str(), to);
        }
        sql
    }
}

/// One round of writes in the simple protocol, `{T}` standing for the table and every id derived
/// from `base` (distinct per round) and `touch` (a pre-populated row, 1..=rows).
pub fn simple_round(base: i64, touch: i64, v: &str, n: &str) -> String {
    let b = base;
    [
        format!("INSERT INTO {{T}} (id, {v}, {n}) VALUES ({}, 'a', 1), ({}, 'b', 2)", b + 1, b + 2),
        format!(
            "INSERT INTO {{T}} (id, {v}, {n}) SELECT {b} + 10 + g, 'sel' || g, g FROM generate_series(1, 3) g"
        ),
        format!(
            "INSERT INTO {{T}} (id, {v}, {n}) VALUES ({}, 'a2', 11) ON CONFLICT (id) DO UPDATE SET {v} = excluded.{v}, {n} = excluded.{n}",
            b + 1
        ),
        format!(
            "INSERT INTO {{T}} (id, {v}, {n}) VALUES ({}, 'zz', 0) ON CONFLICT DO NOTHING",
            b + 2
        ),
        format!(
            "INSERT INTO {{T}} (id, {v}, {n}) VALUES ({}, 'ret', 20) RETURNING id::text, {v}, {n}::text",
            b + 20
        ),
        format!(
            "UPDATE {{T}} SET {n} = {n} + 100 WHERE id BETWEEN {} AND {}",
            b + 11,
            b + 13
        ),
        format!(
            "UPDATE {{T}} AS t SET {v} = s.v FROM (VALUES ({}, 'from')) AS s(id, v) WHERE t.id = s.id",
            b + 1
        ),
        format!(
            "UPDATE {{T}} SET {v} = 'upd' WHERE id = {} RETURNING id::text, {v}, {n}::text",
            b + 20
        ),
        format!("UPDATE {{T}} SET {v} = {v} || '+' WHERE id = {touch}"),
        format!("DELETE FROM {{T}} WHERE id = {}", b + 13),
        format!(
            "DELETE FROM {{T}} AS t USING (VALUES ({})) AS d(id) WHERE t.id = d.id",
            b + 12
        ),
        format!("DELETE FROM {{T}} WHERE id = {} RETURNING id::text", b + 11),
        format!("DELETE FROM {{T}} WHERE id = {} RETURNING id::text, {v}", touch + 1),
    ]
    .join(";\n")
}

/// What a simple-protocol batch returned, as comparable text.
pub fn describe_simple(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::CommandComplete(n) => Some(format!("complete {n}")),
            SimpleQueryMessage::Row(row) => Some(format!(
                "row {:?}",
                (0..row.len()).map(|i| row.get(i)).collect::<Vec<_>>()
            )),
            _ => None,
        })
        .collect()
}

/// Runs `sql` (with `{T}`) as one multi-statement Query through `through` on the migrated table
/// and directly on the control table; asserts both were told the same; returns what they were told.
pub async fn simple_both(pair: &Pair, through: &Client, direct: &Client, sql: &str) -> Vec<String> {
    let on_migrated = pair.on_migrated(sql);
    let on_control = pair.on_control(sql);
    let got = through
        .simple_query(&on_migrated)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "through duet: {}\n{on_migrated}",
                super::database::describe(&err)
            )
        });
    let want = direct
        .simple_query(&on_control)
        .await
        .unwrap_or_else(|err| panic!("control: {}\n{on_control}", super::database::describe(&err)));
    let (got, want) = (describe_simple(&got), describe_simple(&want));
    assert_eq!(got, want, "simple protocol: duet told the client something else than PostgreSQL tells for the control table\n{on_migrated}");
    got
}

/// A parameter of an extended-protocol statement.
#[derive(Debug, Clone)]
pub enum Param {
    /// An int8 parameter.
    Int(i64),
    /// A text parameter.
    Text(String),
}

/// One extended-protocol statement: SQL with `{T}`, its parameters, whether it returns rows.
pub struct Extended {
    /// SQL with `{T}` and `$n`.
    pub sql: String,
    /// Parameters.
    pub params: Vec<Param>,
}

fn stmt(sql: String, params: Vec<Param>) -> Extended {
    Extended { sql, params }
}

/// One round of writes in the extended protocol (prepared, typed int8/text parameters).
pub fn extended_round(base: i64, touch: i64, v: &str, n: &str) -> Vec<Extended> {
    use Param::{Int, Text};
    let b = base;
    vec![
        stmt(
            format!("INSERT INTO {{T}} (id, {v}, {n}) VALUES ($1, $2, $3), ($4, $5, $6)"),
            vec![Int(b + 1), Text("a".into()), Int(1), Int(b + 2), Text("b".into()), Int(2)],
        ),
        stmt(
            format!("INSERT INTO {{T}} (id, {v}, {n}) SELECT $1 + g, 'sel' || g, g FROM generate_series(1, 3) g"),
            vec![Int(b + 10)],
        ),
        stmt(
            format!("INSERT INTO {{T}} (id, {v}, {n}) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET {v} = excluded.{v}, {n} = excluded.{n}"),
            vec![Int(b + 1), Text("a2".into()), Int(11)],
        ),
        stmt(
            format!("INSERT INTO {{T}} (id, {v}, {n}) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING"),
            vec![Int(b + 2), Text("zz".into())],
        ),
        stmt(
            format!("INSERT INTO {{T}} (id, {v}, {n}) VALUES ($1, $2, $3) RETURNING id::text, {v}, {n}::text"),
            vec![Int(b + 20), Text("ret".into()), Int(20)],
        ),
        stmt(
            format!("UPDATE {{T}} SET {n} = {n} + $3 WHERE id BETWEEN $1 AND $2"),
            vec![Int(b + 11), Int(b + 13), Int(100)],
        ),
        stmt(
            format!("UPDATE {{T}} AS t SET {v} = s.v FROM (VALUES ($1::int8, $2::text)) AS s(id, v) WHERE t.id = s.id"),
            vec![Int(b + 1), Text("from".into())],
        ),
        stmt(
            format!("UPDATE {{T}} SET {v} = $2 WHERE id = $1 RETURNING id::text, {v}, {n}::text"),
            vec![Int(b + 20), Text("upd".into())],
        ),
        stmt(
            format!("UPDATE {{T}} SET {v} = {v} || $2 WHERE id = $1"),
            vec![Int(touch), Text("+".into())],
        ),
        stmt("DELETE FROM {T} WHERE id = $1".into(), vec![Int(b + 13)]),
        stmt(
            "DELETE FROM {T} AS t USING (VALUES ($1::int8)) AS d(id) WHERE t.id = d.id".into(),
            vec![Int(b + 12)],
        ),
        stmt(
            "DELETE FROM {T} WHERE id = $1 RETURNING id::text".into(),
            vec![Int(b + 11)],
        ),
        stmt(
            format!("DELETE FROM {{T}} WHERE id = $1 RETURNING id::text, {v}"),
            vec![Int(touch + 1)],
        ),
    ]
}

/// Runs one extended statement on `client` for `table`: a prepared statement with typed
/// parameters; RETURNING rows as text, else the affected-row count.
pub async fn run_extended(
    client: &Client,
    statement: &Extended,
    sql: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let types: Vec<Type> = statement
        .params
        .iter()
        .map(|p| match p {
            Param::Int(_) => Type::INT8,
            Param::Text(_) => Type::TEXT,
        })
        .collect();
    let prepared = client.prepare_typed(sql, &types).await?;
    let values: Vec<Box<dyn ToSql + Sync + Send>> = statement
        .params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Int(i) => Box::new(*i),
                Param::Text(t) => Box::new(t.clone()),
            }
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect();
    if prepared.columns().is_empty() {
        let n = client.execute(&prepared, &refs).await?;
        Ok(vec![format!("complete {n}")])
    } else {
        let rows = client.query(&prepared, &refs).await?;
        let mut out: Vec<String> = rows
            .iter()
            .map(|row| {
                format!(
                    "row {:?}",
                    (0..row.len())
                        .map(|i| row.get::<_, Option<String>>(i))
                        .collect::<Vec<_>>()
                )
            })
            .collect();
        out.push(format!("complete {}", rows.len()));
        Ok(out)
    }
}

/// Runs an extended round on the migrated table through duet and on the control table directly,
/// asserting the same answers.
pub async fn extended_both(pair: &Pair, through: &Client, direct: &Client, round: &[Extended]) {
    for statement in round {
        let got = run_extended(through, statement, &pair.on_migrated(&statement.sql))
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "through duet (extended): {}\n{}",
                    super::database::describe(&err),
                    statement.sql
                )
            });
        let want = run_extended(direct, statement, &pair.on_control(&statement.sql))
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "control (extended): {}\n{}",
                    super::database::describe(&err),
                    statement.sql
                )
            });
        assert_eq!(
            got, want,
            "extended protocol: duet told the client something else\n{}",
            statement.sql
        );
    }
}

/// Runs the simple round as a psql script (one statement per Query, psql's own output) through
/// duet and directly on the control table; asserts identical output.
pub fn psql_both(pair: &Pair, through: &Target, direct: &Target, sql: &str) {
    let run = |target: &Target, script: String| {
        let output = psql(
            target,
            &["-A", "-v", "ON_ERROR_STOP=1"],
            Some(format!("{script};\n").as_bytes()),
        );
        output.assert_success();
        output.stdout_text()
    };
    let got = run(through, pair.on_migrated(sql));
    // Column headers of RETURNING name the control's columns: name them as the migrated table's.
    let mut want = run(direct, pair.on_control(sql));
    for (from, to) in &pair.control_renames {
        want = want.replace(to.as_str(), from);
    }
    assert_eq!(
        got, want,
        "psql through duet printed something else than for the control table"
    );
}

/// Writes duet cannot rewrite into a dual-write — MERGE (simple, extended, inside a transaction)
/// and COPY FROM in the extended protocol — sent through duet on the migrated table and directly
/// on the control table: each is told the same, and (once the caller compares the tables) lands
/// in both shapes, mirrored by the safety net. Sessions stay usable.
pub async fn unrewritable_both(pair: &Pair, through: &Client, direct: &Client, base: i64, v: &str) {
    let merge = |table: &str, v: &str, id: i64| {
        format!(
            "MERGE INTO {table} AS t USING (VALUES ({id})) AS s(id) ON t.id = s.id \
             WHEN MATCHED THEN UPDATE SET {v} = t.{v} || '+merged' \
             WHEN NOT MATCHED THEN INSERT (id, {v}) VALUES (s.id, 'merged')"
        )
    };
    let control_v = pair.on_control(v);
    for (i, id) in [base + 1, base + 1, 2].into_iter().enumerate() {
        let (got, want) = (
            merge(&pair.migrated(), v, id),
            merge(&pair.control(), &control_v, id),
        );
        let told = |r: Result<u64, tokio_postgres::Error>, what: &str| {
            r.unwrap_or_else(|e| panic!("MERGE ({what}) #{i}: {}", super::database::describe(&e)))
        };
        let (g, w) = if i % 2 == 0 {
            (
                told(
                    through.execute(got.as_str(), &[]).await,
                    "extended, through duet",
                ),
                told(direct.execute(want.as_str(), &[]).await, "extended, direct"),
            )
        } else {
            through.batch_execute("BEGIN").await.expect("BEGIN");
            let g = told(through.execute(got.as_str(), &[]).await, "in a transaction");
            through.batch_execute("COMMIT").await.expect("COMMIT");
            (g, told(direct.execute(want.as_str(), &[]).await, "direct"))
        };
        assert_eq!(g, w, "MERGE #{i} told another row count through duet");
    }
    for (client, table, v) in [
        (through, pair.migrated(), v.to_owned()),
        (direct, pair.control(), control_v.clone()),
    ] {
        let sink = client
            .copy_in::<_, bytes::Bytes>(format!("COPY {table} (id, {v}) FROM STDIN").as_str())
            .await
            .expect("COPY FROM in the extended protocol");
        futures_util::pin_mut!(sink);
        use futures_util::SinkExt;
        sink.send(bytes::Bytes::from(format!(
            "{}\tcopied a\n{}\tcopied b\n",
            base + 2,
            base + 3
        )))
        .await
        .expect("COPY data");
        assert_eq!(sink.finish().await.expect("COPY done"), 2);
    }
    through
        .simple_query("SELECT 1")
        .await
        .expect("session usable after the writes duet cannot rewrite");
}

/// Asserts the migrated table holds exactly the control table's rows (compared as text).
pub async fn assert_same_rows(pair: &Pair, direct: &Client, columns: &str, control_columns: &str) {
    let got = super::migration::rows_as_text(
        direct,
        &format!("SELECT {columns} FROM {} ORDER BY id", pair.migrated()),
    )
    .await;
    let want = super::migration::rows_as_text(
        direct,
        &format!(
            "SELECT {control_columns} FROM {} ORDER BY id",
            pair.control()
        ),
    )
    .await;
    assert_eq!(
        got.len(),
        want.len(),
        "row counts differ: migrated {} vs control {}",
        got.len(),
        want.len()
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            g,
            w,
            "first differing row of {} vs control",
            pair.migrated()
        );
    }
}

/// Where the psycopg script connects: a libpq conninfo.
pub fn conninfo(host: &str, port: u16, user: &str, db: &str, password: Option<&str>) -> String {
    let password = password
        .map(|p| format!(" password={p}"))
        .unwrap_or_default();
    format!("host={host} port={port} user={user} dbname={db} connect_timeout=10{password}")
}

/// Runs tests/python/migration_writes.py through duet on the migrated table and directly on the
/// control table, asserting the same output. `unrewritable` also runs writes duet cannot rewrite
/// (MERGE, COPY … FREEZE), which must be told the same. Returns false after a loud skip when
/// psycopg is missing.
#[allow(clippy::too_many_arguments)]
pub fn psycopg_both(
    pair: &Pair,
    through_dsn: &str,
    direct_dsn: &str,
    base: i64,
    touch: i64,
    v: &str,
    n: &str,
    unrewritable: bool,
) -> bool {
    let script = super::tests_path("python/migration_writes.py");
    let run = |dsn: &str, table: String, v: String, n: String| {
        let (base, touch) = (base.to_string(), touch.to_string());
        super::tools::python(
            &script,
            &[],
            &[
                ("DSN", dsn),
                ("TABLE", &table),
                ("BASE", &base),
                ("TOUCH", &touch),
                ("V", &v),
                ("N", &n),
                ("UNREWRITABLE", if unrewritable { "1" } else { "0" }),
            ],
        )
    };
    let got = run(through_dsn, pair.migrated(), v.into(), n.into());
    if got.code() == Some(77) {
        let why = format!("python3 cannot import psycopg ({})", got.stderr.trim());
        let _: Option<()> = super::skip_or_fail("psycopg writes during a migration", &why);
        return false;
    }
    got.assert_success();
    let want = run(
        direct_dsn,
        pair.control(),
        pair.on_control(v),
        pair.on_control(n),
    );
    want.assert_success();
    assert_eq!(
        got.stdout_text(),
        want.stdout_text(),
        "psycopg through duet was told something else than for the control table"
    );
    true
}
