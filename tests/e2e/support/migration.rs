//! Helpers for the online-migration tests: the admin protocol's migration commands as JSON lines
//! on duet's admin socket, waiting for a phase, and catalog probes (column types, what duet left).
//!
//! Every wait has a generous upper bound so a broken controller fails the suite instead of hanging
//! it; none of them is the property under test.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio_postgres::Client;

use super::duet_process::DuetProcess;

/// How long a migration may take to reach a phase in these tests (tables of at most ~50k rows).
pub const PHASE_LIMIT: Duration = Duration::from_secs(180);

/// One reply of the admin socket: `{"ok", "result", "error"}`.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Whether the command was carried out.
    pub ok: bool,
    /// The result (when ok).
    pub result: Value,
    /// The error text (when not ok).
    pub error: String,
    /// The raw reply, for messages.
    pub raw: Value,
}

impl Reply {
    /// The result, panicking with the request and the reply when the command was refused.
    pub fn expect_ok(self, what: &str) -> Value {
        assert!(self.ok, "{what} was refused: {}", self.raw);
        self.result
    }
}

/// Sends one JSON request line to the admin socket at `socket` and reads its reply line.
pub async fn request_at(socket: &Path, request: &Value) -> Reply {
    let what = request.to_string();
    let exchange = async {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|err| format!("connecting to {}: {err}", socket.display()))?;
        let (read, mut write) = stream.into_split();
        write
            .write_all(format!("{what}\n").as_bytes())
            .await
            .map_err(|err| format!("writing {what}: {err}"))?;
        let mut line = String::new();
        BufReader::new(read)
            .read_line(&mut line)
            .await
            .map_err(|err| format!("reading the reply to {what}: {err}"))?;
        if line.is_empty() {
            return Err(format!("the admin socket closed without answering {what}"));
        }
        serde_json::from_str::<Value>(&line).map_err(|err| format!("reply {line:?}: {err}"))
    };
    let raw = tokio::time::timeout(Duration::from_secs(300), exchange)
        .await
        .unwrap_or_else(|_| panic!("no admin reply to {what} within 300s"))
        .unwrap_or_else(|err| panic!("{err}"));
    Reply {
        ok: raw["ok"].as_bool().unwrap_or(false),
        result: raw.get("result").cloned().unwrap_or(Value::Null),
        error: raw["error"].as_str().unwrap_or_default().to_string(),
        raw,
    }
}

/// [`request_at`] on `duet`'s socket.
pub async fn request(duet: &DuetProcess, request: Value) -> Reply {
    request_at(duet.socket(), &request).await
}

/// `cutover` under load: the flip drains in-flight transactions, and a missed budget or lock is
/// reported and retried, as an operator would (up to 10 times).
pub async fn cutover_retried(duet: &DuetProcess) {
    retried(duet, json!({"command": "cutover", "budget_ms": 5000})).await;
}

/// `request` until it is carried out, as an operator would retry a cutover or a revert that
/// missed its budget or lock under load (up to 10 times); returns the result.
pub async fn retried(duet: &DuetProcess, request_json: Value) -> Value {
    let mut refusals = Vec::new();
    for _ in 0..10 {
        let reply = request(duet, request_json.clone()).await;
        if reply.ok {
            return reply.result;
        }
        refusals.push(reply.error);
    }
    panic!("{request_json} never succeeded under load: {refusals:?}");
}

/// A moment of the writers' traffic in a phase.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// `migrate` of SQL (no auto cutover); returns the migration's id after asserting it was accepted.
pub async fn migrate_sql(duet: &DuetProcess, sql: &str) -> i64 {
    migrate_sql_with(duet, sql, false).await
}

/// [`migrate_sql`] with the operator's consent to a visible shadow column (`--shadow-column`),
/// for the tests of that strategy: without it a column's type change gets a shadow table.
pub async fn migrate_sql_shadow_column(duet: &DuetProcess, sql: &str) -> i64 {
    migrate_sql_with(duet, sql, true).await
}

async fn migrate_sql_with(duet: &DuetProcess, sql: &str, shadow_column: bool) -> i64 {
    let reply = request(
        duet,
        json!({"command": "migrate", "input": {"kind": "sql", "sql": sql, "shadow_column": shadow_column},
               "auto_cutover": false}),
    )
    .await;
    let result = reply.expect_ok(&format!("migrate {sql:?}"));
    result["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("migrate replied without an id: {result}"))
}

/// The status entry of migration `id` (Null when status does not list it).
pub async fn migration(duet: &DuetProcess, id: i64) -> Value {
    let status = request(duet, json!({"command": "status"}))
        .await
        .expect_ok("status");
    status["migrations"]
        .as_array()
        .and_then(|list| list.iter().find(|m| m["id"] == id).cloned())
        .unwrap_or(Value::Null)
}

/// Every migration entry of status.
pub async fn migrations(duet: &DuetProcess) -> Vec<Value> {
    let status = request(duet, json!({"command": "status"}))
        .await
        .expect_ok("status");
    status["migrations"].as_array().cloned().unwrap_or_default()
}

/// Waits until migration `id` reaches `phase`; fails when it reports an error or a terminal phase
/// other than the one awaited, or after [`PHASE_LIMIT`].
pub async fn wait_phase(duet: &DuetProcess, id: i64, phase: &str) -> Value {
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        let m = migration(duet, id).await;
        if m["phase"] == phase {
            return m;
        }
        assert!(
            m["error"].is_null() || m["error"] == "",
            "migration {id} failed while waiting for {phase}: {m}\n--- duet log ---\n{}",
            duet.log()
        );
        assert!(
            !matches!(
                m["phase"].as_str(),
                Some("completed" | "aborted" | "reverted" | "failed")
            ),
            "migration {id} ended ({}) instead of reaching {phase}: {m}",
            m["phase"]
        );
        assert!(
            Instant::now() < deadline,
            "migration {id} did not reach {phase} within {PHASE_LIMIT:?}: {m}\n--- duet log ---\n{}",
            duet.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `condition` holds for migration `id`'s status entry.
pub async fn wait_status(
    duet: &DuetProcess,
    id: i64,
    what: &str,
    condition: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        let m = migration(duet, id).await;
        if condition(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "migration {id}: gave up waiting for {what}: {m}\n--- duet log ---\n{}",
            duet.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Relations, live columns and constraints of `schema` whose name contains `__duet`: what a
/// finished migration must not leave behind.
pub async fn leftovers(direct: &Client, schema: &str) -> Vec<String> {
    let rows = direct
        .query(
            "SELECT 'relation ' || c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname LIKE '%\\_\\_duet%'
             UNION ALL
             SELECT 'column ' || c.relname || '.' || a.attname FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND a.attname LIKE '%\\_\\_duet%' AND NOT a.attisdropped
             UNION ALL
             SELECT 'constraint ' || conname FROM pg_constraint c
               JOIN pg_namespace n ON n.oid = c.connamespace
              WHERE n.nspname = $1 AND conname LIKE '%\\_\\_duet%'",
            &[&schema],
        )
        .await
        .expect("reading the catalog");
    rows.iter().map(|row| row.get(0)).collect()
}

/// `format_type` of `schema.table.column` (panics when there is no such live column).
pub async fn column_type(direct: &Client, schema: &str, table: &str, column: &str) -> String {
    try_column_type(direct, schema, table, column)
        .await
        .unwrap_or_else(|| panic!("no column {schema}.{table}.{column}"))
}

/// `format_type` of `schema.table.column`, `None` when it does not exist.
pub async fn try_column_type(
    direct: &Client,
    schema: &str,
    table: &str,
    column: &str,
) -> Option<String> {
    direct
        .query_opt(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3
                AND a.attnum > 0 AND NOT a.attisdropped",
            &[&schema, &table, &column],
        )
        .await
        .expect("reading pg_attribute")
        .map(|row| row.get(0))
}

/// The phase recorded in `duet.migrations` for `id`.
pub async fn stored_phase(direct: &Client, id: i64) -> String {
    direct
        .query_one(
            "SELECT phase::text FROM duet.migrations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap_or_else(|err| panic!("reading duet.migrations for {id}: {err}"))
        .get(0)
}

/// Every row `query` returns, as text (tables compared across types).
pub async fn rows_as_text(direct: &Client, query: &str) -> Vec<Vec<String>> {
    let messages = direct
        .simple_query(query)
        .await
        .unwrap_or_else(|err| panic!("{query}: {err}"));
    messages
        .iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("<NULL>").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Asserts that nothing of duet's is left in `schema` and that migration `id` is terminal
/// (`phase`) in `duet.migrations` and no longer active in status.
pub async fn assert_clean(duet: &DuetProcess, direct: &Client, schema: &str, id: i64, phase: &str) {
    let left = leftovers(direct, schema).await;
    assert!(left.is_empty(), "duet left behind in {schema}: {left:?}");
    assert_eq!(stored_phase(direct, id).await, phase);
    let active: Vec<Value> = migrations(duet)
        .await
        .into_iter()
        .filter(|m| {
            !matches!(
                m["phase"].as_str(),
                Some("completed" | "aborted" | "reverted" | "failed")
            )
        })
        .collect();
    assert!(
        active.is_empty(),
        "status still lists active migrations: {active:?}"
    );
}
