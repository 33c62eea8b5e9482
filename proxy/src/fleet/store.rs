//! The fleet's table, `duet.members`: one row per duet in front of the database.
//!
//! A member is *live* while the connection that registered it is open: its row names that
//! connection's backend (pid and start time), and `pg_stat_activity` still lists it. A member
//! that exits or is killed closes the connection and drops out at once; a frozen one (stopped, or
//! cut off without the TCP connection noticing) stays a member — so a coordinated flip waits for
//! it, and refuses within its budget, rather than flipping under clients it cannot hold. Rows of
//! members that are gone are deleted by whoever looks next.

use serde::Serialize;
use tokio_postgres::GenericClient;

use super::message::CHANNEL;

/// The advisory lock (`pg_advisory_xact_lock`, two-int form: this class, 0) that orders a
/// registration against a flip: a registration takes it shared, the flip's transaction exclusive,
/// so a member that joins during a flip is either held by it or sees its result.
pub const FLEET_LOCK_CLASS: i32 = 0x6475_6601; // "duf\x01"
/// The advisory lock class of a migration's driver (`pg_try_advisory_lock(class, id)` on the
/// member's connection): the member that holds it runs the migration's background work.
pub const DRIVER_LOCK_CLASS: i32 = 0x6475_6602;

/// Whether the member row `m` is live (its registering connection is open).
const LIVE: &str = "EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
    WHERE a.pid = m.pid AND (a.backend_start IS NULL OR a.backend_start = m.backend_start))";

/// Creates `duet.members` and the trigger that announces changes of `duet.migrations`
/// (idempotent, safe to race: under the same advisory lock as the state schema).
pub const ENSURE_SQL: &str = "SELECT pg_advisory_xact_lock(hashtext('duet.state_schema'));
CREATE TABLE IF NOT EXISTS duet.members (
    id text PRIMARY KEY,
    pid int NOT NULL,
    backend_start timestamptz NOT NULL,
    listen text NOT NULL,
    admin_socket text NOT NULL,
    version text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    route_epoch bigint NOT NULL DEFAULT 0,
    sessions int NOT NULL DEFAULT 0,
    ack text,
    counters jsonb NOT NULL DEFAULT '{}'
);
DO $duet$
BEGIN
  -- Created once, never replaced: a member whose control role is not the function's owner
  -- could not replace it.
  IF to_regprocedure('duet.migrations_announce()') IS NULL THEN
    CREATE FUNCTION duet.migrations_announce() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
      PERFORM pg_catalog.pg_notify('duet_fleet', 'changed ' || NEW.id);
      RETURN NULL;
    END
    $f$;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                 WHERE tgrelid = 'duet.migrations'::regclass AND tgname = 'migrations_announce') THEN
    CREATE TRIGGER migrations_announce AFTER INSERT OR UPDATE ON duet.migrations
      FOR EACH ROW EXECUTE FUNCTION duet.migrations_announce();
  END IF;
END
$duet$";

/// What a member publishes about itself.
#[derive(Debug, Clone, Default)]
pub struct SelfReport {
    /// Its client-facing address.
    pub listen: String,
    /// Its admin socket.
    pub admin_socket: String,
    /// duet's version.
    pub version: String,
    /// The epoch of its current routes.
    pub route_epoch: i64,
    /// Its client sessions.
    pub sessions: i32,
    /// Per table (`schema.name`): what its sessions counted (see [`TableCounts`]); and under
    /// `client_latency` (no dot: never a table) its clients' recent latency
    /// (`crate::control::latency::MemberLatency`).
    pub counters: serde_json::Value,
}

/// One live member, as `status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct MemberView {
    /// The member's id.
    pub id: String,
    /// Whether it is the member answering.
    pub is_self: bool,
    /// Its client-facing address.
    pub listen: String,
    /// Its admin socket.
    pub admin_socket: String,
    /// duet's version.
    pub version: String,
    /// The backend pid of its fleet connection.
    pub pid: i32,
    /// When it joined (server time).
    pub started_at: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_s: f64,
    /// The epoch of its routes.
    pub route_epoch: i64,
    /// Its client sessions.
    pub sessions: i32,
    /// What its sessions counted, per table.
    #[serde(skip)]
    pub counters: serde_json::Value,
}

/// Per-table counts a member reports with its heartbeat (keys of [`SelfReport::counters`]).
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TableCounts {
    /// Statements written for the old shape and translated.
    pub old_shape_statements: u64,
    /// When the last one arrived (ms since the Unix epoch; 0: never).
    pub old_shape_last_seen_ms: u64,
    /// Statements rewritten to dual-write.
    pub dual_writes: u64,
    /// Writes forwarded without their dual-write.
    pub unrewritten_writes: u64,
}

/// Registers (or re-registers) member `id` on this connection and removes rows of members that
/// are gone.
pub async fn register(
    client: &mut tokio_postgres::Client,
    id: &str,
    report: &SelfReport,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1, 0)",
        &[&FLEET_LOCK_CLASS],
    )
    .await?;
    tx.execute(
        "INSERT INTO duet.members AS m (id, pid, backend_start, listen, admin_socket, version)
         SELECT $1, pg_backend_pid(), a.backend_start, $2, $3, $4
           FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_backend_pid()
         ON CONFLICT (id) DO UPDATE SET pid = EXCLUDED.pid, backend_start = EXCLUDED.backend_start,
             listen = EXCLUDED.listen, admin_socket = EXCLUDED.admin_socket,
             version = EXCLUDED.version, heartbeat_at = now(), ack = NULL",
        &[&id, &report.listen, &report.admin_socket, &report.version],
    )
    .await?;
    tx.execute(&format!("DELETE FROM duet.members m WHERE NOT {LIVE}"), &[])
        .await?;
    tx.commit().await
}

/// Records a heartbeat of member `id` and returns every live member.
pub async fn heartbeat(
    client: &tokio_postgres::Client,
    id: &str,
    report: &SelfReport,
) -> Result<Vec<MemberView>, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE duet.members SET heartbeat_at = now(), route_epoch = $2, sessions = $3,
                 counters = $4::text::jsonb
             WHERE id = $1",
            &[
                &id,
                &report.route_epoch,
                &report.sessions,
                &report.counters.to_string(),
            ],
        )
        .await?;
    client
        .execute(&format!("DELETE FROM duet.members m WHERE NOT {LIVE}"), &[])
        .await?;
    live_members(client, id).await
}

/// Every live member (`me` is marked as self).
pub async fn live_members(
    client: &impl GenericClient,
    me: &str,
) -> Result<Vec<MemberView>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT id, listen, admin_socket, version, pid, started_at::text,
                        extract(epoch FROM clock_timestamp() - heartbeat_at)::float8,
                        route_epoch, sessions, counters::text
                 FROM duet.members m WHERE {LIVE} ORDER BY started_at, id"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let id: String = r.get(0);
            MemberView {
                is_self: id == me,
                id,
                listen: r.get(1),
                admin_socket: r.get(2),
                version: r.get(3),
                pid: r.get(4),
                started_at: r.get(5),
                heartbeat_age_s: r.get(6),
                route_epoch: r.get(7),
                sessions: r.get(8),
                counters: serde_json::from_str(&r.get::<_, String>(9))
                    .unwrap_or(serde_json::Value::Null),
            }
        })
        .collect())
}

/// The live members other than `me` that have not acknowledged `token`.
pub async fn not_acknowledged(
    client: &impl GenericClient,
    me: &str,
    token: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT id FROM duet.members m
                 WHERE id <> $1 AND ack IS DISTINCT FROM $2 AND {LIVE} ORDER BY id"
            ),
            &[&me, &token],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Member `id` acknowledges `token` (stored for the flip's own check, announced to wake the
/// asker).
pub async fn acknowledge(
    client: &tokio_postgres::Client,
    id: &str,
    token: &str,
    ok: bool,
    detail: &str,
) -> Result<(), tokio_postgres::Error> {
    if ok {
        client
            .execute(
                "UPDATE duet.members SET ack = $2 WHERE id = $1",
                &[&id, &token],
            )
            .await?;
    }
    let message = super::Message::Ack {
        token: token.to_owned(),
        member: id.to_owned(),
        ok,
        detail: detail.replace(['\n', '\r'], " "),
    };
    notify(client, &message).await
}

/// Sends `message` to every member (delivered when the sender's transaction commits).
pub async fn notify(
    client: &impl GenericClient,
    message: &super::Message,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "SELECT pg_catalog.pg_notify($1, $2)",
            &[&CHANNEL, &message.payload()],
        )
        .await
        .map(|_| ())
}
