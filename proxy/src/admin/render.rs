//! Admin replies rendered for people (`--format human`), read as the typed replies of
//! [`super::reply`].

use std::fmt::Write;

use duet_shadow::plan::{CopySpec, Plan, PlanKind, Step};
use duet_shadow::rewrite::Target;
use serde_json::Value;

use super::reply::{
    result_of, CopyStateReply, MemberPhase, PauseReply, PhaseReply, PlanReply, SessionView,
    SettingsReply, ShutdownReply, StartedMigration, StartedReply, StatusReport, UnexpectedReply,
};
use crate::control::latency::ThrottleStatus;
use crate::control::status::MigrationStatus;
use crate::control::RunSettings;

/// Renders the result of `command` as readable text; a result that is not the command's
/// documented shape is an error (an unknown command's result is shown as JSON).
pub fn human(command: &'static str, result: &Value) -> Result<String, UnexpectedReply> {
    Ok(match command {
        "status" => status(&result_of::<StatusReport>(command, result)?),
        "pause" => pause(&result_of::<PauseReply>(command, result)?),
        "resume" => "resumed: new transactions proceed\n".to_owned(),
        "shutdown" => format!(
            "shutting down: no longer accepting clients; {} session(s) still open\n",
            result_of::<ShutdownReply>(command, result)?.sessions
        ),
        "migrate" => {
            let reply: StartedReply = result_of(command, result)?;
            if reply.migrations.is_empty() {
                started(&reply.first)
            } else {
                let mut out = format!(
                    "migration of {} tables started; they flip together (`cutover` once every one is ready):\n",
                    reply.migrations.len()
                );
                for m in &reply.migrations {
                    out.push_str(&started(m));
                }
                out
            }
        }
        "cutover" => {
            let reply: PhaseReply = result_of(command, result)?;
            format!(
                "migration {} flipped; clients were held {} ms\n{}",
                reply.id,
                reply
                    .stall_ms
                    .map_or_else(|| "-".to_owned(), |ms| ms.to_string()),
                members(&reply.migrations)
            )
        }
        "abort" | "revert" | "complete" | "retry" => {
            let reply: PhaseReply = result_of(command, result)?;
            format!(
                "migration {}: {}\n{}",
                reply.id,
                reply.phase,
                members(&reply.migrations)
            )
        }
        "pause_copy" | "resume_copy" => {
            let reply: CopyStateReply = result_of(command, result)?;
            format!("migration {}: copy {}\n", reply.id, reply.copy_state)
        }
        "set" => {
            let reply: SettingsReply = result_of(command, result)?;
            format!(
                "migration {}: {}\n",
                reply.id,
                settings_line(&reply.settings)
            )
        }
        "plan" => match result_of::<PlanReply>(command, result)? {
            PlanReply::Group { plans, .. } => {
                let mut out = format!(
                    "{} tables, planned together: each is copied on its own and all flip in one transaction, in this order\n",
                    plans.len()
                );
                for p in &plans {
                    out.push('\n');
                    out.push_str(&plan(p));
                }
                out
            }
            PlanReply::One(one) => plan(&one),
        },
        _ => format!("{result}\n"),
    })
}

/// A number as JSON writes it (`1.0`, not `1`), as the replies have always shown decimals.
fn decimal(value: f64) -> String {
    serde_json::Number::from_f64(value).map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// What `migrate` says about one started migration: id, table, strategy, reason, warnings.
fn started(m: &StartedMigration) -> String {
    format!(
        "migration {} of {} started: {} ({})\n{}",
        m.id,
        m.table,
        m.strategy.as_str(),
        m.reason,
        m.warnings
            .iter()
            .map(|w| format!("warning: {w}\n"))
            .collect::<String>()
    )
}

/// The tables a command on a migration of several acted on (one line each), or nothing.
fn members(members: &[MemberPhase]) -> String {
    members
        .iter()
        .map(|m| format!("  migration {} of {}: {}\n", m.id, m.table, m.phase))
        .collect()
}

/// One line of a migration's progress (`migrate --wait` and the status section).
pub fn migration_progress(m: &MigrationStatus) -> String {
    let mut line = format!("{} {} {} {}", m.id, m.table, m.strategy.as_str(), m.phase);
    if let Some(done) = m.rows_done {
        let _ = write!(line, "  rows {done}");
        if let Some(total) = m.rows_total {
            let _ = write!(line, "/{total}");
        }
        if let Some(rate) = m.rate_rows_per_s {
            let _ = write!(line, "  {rate:.0} rows/s");
        }
        if let Some(eta) = m.eta_s {
            let _ = write!(line, "  eta {eta:.0}s");
        }
    }
    if let Some(state) = &m.copy_state {
        let _ = write!(line, "  copy: {state}");
    }
    if let Some(error) = &m.error {
        let _ = write!(line, "  error: {error}");
    }
    line
}

/// The latency throttle's state and reason on one line, with its counts so far:
/// `holding: client p99 4.1 ms > 1.5 × baseline 2.5 ms, waiting 0.8 s …; 3 holds, 2.1 s held`.
fn latency_throttle_line(throttle: &ThrottleStatus) -> String {
    let mut line = format!("{}: {}", throttle.state, throttle.reason);
    if throttle.holds > 0 {
        let _ = write!(
            line,
            "; {} hold(s), {:.1} s held",
            throttle.holds, throttle.held_s
        );
        if throttle.forced > 0 {
            let _ = write!(
                line,
                ", {} piece(s) let through by the progress guarantee",
                throttle.forced
            );
        }
    }
    line
}

/// A migration's run settings (`set`'s reply, status's `settings`) on one line.
fn settings_line(settings: &RunSettings) -> String {
    let on_off = |on: bool| if on { "on" } else { "off" };
    let ms = |us: u64| format!("{} ms", us as f64 / 1000.0);
    let latency = if settings.max_latency_factor == 0.0 {
        ", client latency not watched".to_owned()
    } else {
        format!(
            ", max latency factor {} (floor {}, max pause {} ms, baseline {})",
            settings.max_latency_factor,
            ms(settings.latency_floor_us),
            settings.latency_max_pause_ms,
            settings.latency_baseline_us.map_or_else(
                || "none stored: measured by the copier once clients are busy".to_owned(),
                ms
            )
        )
    };
    format!(
        "auto-cutover {}, chunk time {} ms, nice ratio {}, max replication lag {} ms, max active backends {}{latency}{}",
        on_off(settings.auto_cutover),
        settings.chunk_time_ms,
        decimal(settings.nice_ratio),
        settings.max_replication_lag_ms,
        settings
            .max_active_backends
            .map_or_else(|| "no limit".to_owned(), |n| n.to_string()),
        if settings.copy_paused {
            ", copy paused"
        } else {
            ""
        }
    )
}

fn migrations(list: &[MigrationStatus]) -> String {
    let mut out = String::new();
    for m in list {
        let _ = writeln!(out, "  {}", migration_progress(m));
        let _ = writeln!(
            out,
            "      dual-writes {}  refusals {}  unrewritten writes {}  old-shape statements {}{}",
            m.dual_writes,
            m.refusals,
            m.unrewritten_writes,
            m.old_shape_statements,
            m.old_shape_last_seen_s_ago
                .map(|s| format!(" (last {s:.1}s ago)"))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "      settings: {}", settings_line(&m.settings));
        if let Some(throttle) = &m.latency_throttle {
            let _ = writeln!(
                out,
                "      client latency: {}",
                latency_throttle_line(throttle)
            );
        }
        if !m.bypassing_writers.is_empty() {
            let _ = writeln!(
                out,
                "      writers bypassing duet (mirrored by the safety net):"
            );
            for w in &m.bypassing_writers {
                let _ = writeln!(
                    out,
                    "        pid {}  user {}  application {}  from {}  seen {:.1}s ago",
                    w.pid, w.user, w.application_name, w.client_addr, w.seen_s_ago
                );
            }
        }
        if let Some(flip) = &m.last_flip {
            let _ = writeln!(
                out,
                "      last cutover: {} (clients held {} ms){}",
                flip.outcome.as_str(),
                flip.stall_ms,
                flip.message
                    .as_ref()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            );
        }
    }
    out
}

/// A plan in the order its steps run, each with its lock.
fn plan(p: &Plan) -> String {
    let mut out = format!(
        "plan for {}.{}: {}\nwhy: {}\n",
        p.table.schema,
        p.table.name,
        p.kind.as_str(),
        p.reason
    );
    for warning in &p.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    let carried = p.carried.describe();
    if !carried.is_empty() {
        let _ = writeln!(
            out,
            "\ncarried over: re-created on the new shape at the cutover (and on the old one at a revert) as they are now; objects made or changed after planning make the cutover refuse"
        );
        for line in carried {
            let _ = writeln!(out, "  - {line}");
        }
    }
    let steps = |out: &mut String, title: &str, list: &[Step]| {
        if list.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n{title}");
        for step in list {
            let _ = writeln!(
                out,
                "  - {} [lock: {}{}]",
                step.why,
                step.lock,
                if step.outside_transaction {
                    "; outside a transaction"
                } else {
                    ""
                }
            );
            for line in step.sql.lines() {
                let _ = writeln!(out, "      {}", line.trim());
            }
        }
    };
    steps(
        &mut out,
        "1. expand (guarded: short lock_timeout, retried with jitter)",
        &p.expand,
    );
    if let Some(route) = &p.dual_write_route {
        let _ = writeln!(
            out,
            "\n2. dual-writes: every write to the table through duet also writes {}",
            describe_target(&route.target)
        );
    }
    match &p.copy {
        Some(CopySpec::Table(target)) => {
            let _ = writeln!(
                out,
                "\n3. copy: the whole table (every column, same column order), keyset chunks in ({}) order into {}.{} (INSERT … ON CONFLICT DO NOTHING), then verify and repair",
                target.key.columns.join(", "),
                target.shadow.schema,
                target.shadow.name
            );
        }
        Some(CopySpec::Column(spec)) => {
            let _ = writeln!(
                out,
                "\n3. backfill: one column only, keyset chunks in ({0}) order, UPDATE … SET {1} = {2}, then verify and repair; clients see {1} until the cutover and the column is the table's last after complete",
                spec.key.join(", "),
                spec.column,
                spec.expr
            );
        }
        None => {}
    }
    steps(
        &mut out,
        "4. prepare the cutover (guarded)",
        &p.prepare_flip,
    );
    steps(
        &mut out,
        "5. cutover (`duet admin cutover`): one transaction while clients are held at a transaction boundary",
        &p.flip,
    );
    if let Some(route) = &p.flipped_route {
        let _ = writeln!(
            out,
            "  after it: {}",
            if matches!(route.target, Target::Renamed { .. }) {
                describe_target(&route.target)
            } else {
                format!(
                    "writes through duet also write {}",
                    describe_target(&route.target)
                )
            }
        );
    }
    if p.kind == PlanKind::Rename {
        let _ = writeln!(
            out,
            "\n6a. complete (`duet admin complete`): stop translating the old names (refused while statements using them still arrive)"
        );
    }
    steps(
        &mut out,
        "6a. complete (`duet admin complete`, contract): after the cutover",
        &p.complete,
    );
    steps(
        &mut out,
        "6b. revert (`duet admin revert`): after the cutover, one transaction while clients are held",
        &p.revert,
    );
    steps(&mut out, "    then, after the revert", &p.after_revert);
    steps(
        &mut out,
        "abort (`duet admin abort`): any time before the cutover",
        &p.abort,
    );
    out
}

/// A route target in words.
fn describe_target(target: &Target) -> String {
    match target {
        Target::ShadowTable { shadow, .. } => format!(
            "the shadow table {shadow} (a data-modifying CTE and one upsert; deletes become tombstones)"
        ),
        Target::ShadowColumn { column, expr, .. } => {
            format!("the column {column} = {expr} (inline, in the same statement)")
        }
        Target::Renamed { columns } => {
            let pairs: Vec<String> = columns
                .iter()
                .map(|(old, new)| format!("{old} → {new}"))
                .collect();
            format!(
                "statements using the old names ({}) are translated",
                pairs.join(", ")
            )
        }
    }
}

fn status(r: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "uptime        {:.1}s", r.uptime_secs);
    let _ = writeln!(out, "listen        {}", r.listen);
    if !r.unix_socket.is_empty() {
        let _ = writeln!(out, "unix socket   {}", r.unix_socket);
    }
    let _ = writeln!(out, "backend       {}", r.backend);
    if !r.backend_tls.is_empty() {
        let _ = writeln!(out, "backend tls   {}", r.backend_tls);
    }
    let _ = writeln!(out, "paused        {}", if r.paused { "yes" } else { "no" });
    let _ = writeln!(
        out,
        "clients       {} current, {} total",
        r.clients.current, r.clients.total
    );
    let _ = writeln!(
        out,
        "backends      {} current, {} total",
        r.backend_connections.current, r.backend_connections.total
    );
    for pool in &r.pools {
        let _ = writeln!(
            out,
            "pool          {}@{}: {} of {} open, {} in use, {} waiting, {} statements",
            pool.user,
            pool.database,
            pool.open,
            pool.size,
            pool.in_use,
            pool.waiting,
            pool.statements
        );
    }
    let _ = writeln!(
        out,
        "bytes         {} client→server, {} server→client",
        r.bytes.client_to_server, r.bytes.server_to_client
    );
    let _ = writeln!(out, "statements    {}", r.statements);
    let latency = &r.latency_us;
    let _ = writeln!(
        out,
        "latency (µs)  p50 {}  p99 {}  p999 {}  max {}  ({} requests)",
        latency.p50, latency.p99, latency.p999, latency.max, latency.count
    );
    // A proxy that did not report it reads as the empty window.
    let recent = &r.latency_recent_us;
    if recent.window_ms > 0 {
        let _ = writeln!(
            out,
            "last second   p50 {}  p99 {}  max {}  ({} requests)",
            recent.p50, recent.p99, recent.max, recent.count
        );
    }
    let _ = writeln!(out, "sessions      {}", r.sessions.len());
    if !r.sessions.is_empty() {
        out.push_str(&session_table(&r.sessions));
    }
    if !r.members.is_empty() {
        let _ = writeln!(out, "fleet         {} member(s)", r.members.len());
        for m in &r.members {
            let _ = writeln!(
                out,
                "  {}{}  listen {}  sessions {}  route epoch {}  heartbeat {:.1}s ago  (duet {})",
                m.id,
                if m.is_self { " (this one)" } else { "" },
                m.listen,
                m.sessions,
                m.route_epoch,
                m.heartbeat_age_s,
                m.version,
            );
        }
    }
    if !r.migrations.is_empty() {
        let _ = writeln!(out, "migrations    {}", r.migrations.len());
        out.push_str(&migrations(&r.migrations));
    }
    out
}

fn pause(r: &PauseReply) -> String {
    let waited = r.waited_ms;
    if r.paused {
        return format!("paused after {waited} ms: every session is at a transaction boundary; run `duet admin resume` to release\n");
    }
    let reason = r.reason.as_deref().unwrap_or("unknown");
    let mut out = format!("not paused ({reason}) after {waited} ms; held clients were released\n");
    if let Some(blocking) = &r.blocking_sessions {
        let _ = writeln!(out, "sessions that kept the proxy from being quiet:");
        out.push_str(&session_table(blocking));
    }
    out
}

fn session_table(sessions: &[SessionView]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:>6}  {:<21}  {:<12}  {:<12}  {:<16}  {:>7}  {:<30}  {:>8}",
        "id", "client", "user", "database", "application", "pid", "state", "secs"
    );
    for s in sessions {
        let _ = writeln!(
            out,
            "  {:>6}  {:<21}  {:<12}  {:<12}  {:<16}  {:>7}  {:<30}  {:>8.1}",
            s.id,
            s.client_addr,
            s.user,
            s.database,
            s.application_name,
            s.backend_pid,
            s.state,
            s.state_secs
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_a_plan_in_running_order_with_locks() {
        let step = |sql: &str, why: &str| json!({"sql": sql, "lock": "ACCESS EXCLUSIVE (brief)", "why": why, "outside_transaction": false});
        let plan = json!({"table": {"schema": "public", "name": "items"}, "kind": "shadow_table",
            "reason": "key column id changes type", "input": {"kind": "sql", "sql": "x"},
            "expand": [step("CREATE TABLE a;\n   ALTER TABLE a ADD x int;", "create the shadow")],
            "dual_write_route": {"schema": "public", "name": "items", "columns": [], "key": ["id"],
                "target": {"ShadowTable": {"shadow": "items__duet", "mapping": [], "shadow_key": ["id"]}}},
            "copy": {"kind": "table", "source": {"schema": "public", "name": "items"},
                "shadow": {"schema": "public", "name": "items__duet"},
                "key": {"columns": ["id"], "source_types": ["integer"], "index_name": "p", "is_primary": true},
                "shadow_key_types": ["int8"], "mapping": []},
            "prepare_flip": [], "flip": [step("ALTER TABLE items RENAME TO items__duet_old", "park the old table")],
            "flipped_route": {"schema": "public", "name": "items", "columns": [], "key": ["id"],
                "target": {"Renamed": {"columns": [["a", "b"]]}}},
            "revert": [], "after_revert": [], "complete": [step("DROP TABLE x", "contract")],
            "abort": [], "warnings": ["a publication"],
            "carried": {"views": [{"name": {"schema": "public", "name": "items_v"},
                    "definition": "SELECT 1", "owner": "\"app\""}],
                "triggers": [{"name": "audit", "definition": "CREATE TRIGGER audit …", "enabled": "O"}],
                "row_security": {"enabled": true, "forced": false, "policies": [
                    {"name": "mine", "summary": "permissive, FOR ALL, TO app", "statement": "CREATE POLICY …"}]}}});
        let text = human("plan", &plan).expect("the documented shape");
        for line in [
            "\ncarried over: re-created on the new shape at the cutover",
            "  - view \"public\".\"items_v\"\n",
            "  - trigger \"audit\"\n",
            "  - row-level security enabled\n",
            "  - policy \"mine\" (permissive, FOR ALL, TO app)\n",
        ] {
            assert!(text.contains(line), "{line:?} missing: {text}");
        }
        assert!(
            text.starts_with(
                "plan for public.items: shadow_table\nwhy: key column id changes type\n"
            ),
            "{text}"
        );
        assert!(text.contains("warning: a publication"), "{text}");
        assert!(
            text.contains("      CREATE TABLE a;\n      ALTER TABLE a ADD x int;"),
            "{text}"
        );
        assert!(
            text.contains("also writes the shadow table items__duet"),
            "{text}"
        );
        assert!(
            text.contains("keyset chunks in (id) order into public.items__duet"),
            "{text}"
        );
        assert!(
            text.contains("3. copy: the whole table (every column, same column order)"),
            "{text}"
        );
        assert!(text.contains("(a → b) are translated"), "{text}");
        let order: Vec<usize> = [
            "1. expand",
            "2. dual-writes",
            "3. copy",
            "5. cutover",
            "6a. complete",
        ]
        .iter()
        .map(|h| {
            text.find(h)
                .unwrap_or_else(|| panic!("{h} missing: {text}"))
        })
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(
            !text.contains("6b. revert"),
            "empty sections are left out: {text}"
        );
    }

    #[test]
    fn renders_a_status_and_a_timed_out_pause() {
        let session = json!({"id": 3, "client_addr": "127.0.0.1:5555", "user": "u", "database": "d",
            "application_name": "a", "backend_pid": 42, "state": "idle in transaction", "state_secs": 1.5});
        let status = json!({"uptime_secs": 2.0, "listen": "127.0.0.1:6432", "backend": "127.0.0.1:5432",
            "paused": false, "clients": {"current": 1, "total": 2},
            "backend_connections": {"current": 1, "total": 2},
            "bytes": {"client_to_server": 10, "server_to_client": 20}, "statements": 5,
            "latency_us": {"count": 5, "p50": 100, "p99": 200, "p999": 300, "max": 400},
            "sessions": [session.clone()]});
        let settings = json!({"auto_cutover": false,
            "chunk_time_ms": 100, "max_replication_lag_ms": 10000, "max_active_backends": null,
            "nice_ratio": 1.0, "max_latency_factor": 1.5, "latency_floor_us": 2000,
            "latency_max_pause_ms": 2000, "latency_baseline_us": null, "copy_paused": false});
        let text = human("status", &status).expect("the documented shape");
        assert!(text.contains("idle in transaction"));
        let mut with_migration = status.clone();
        with_migration["migrations"] = json!([{"id": 7, "table": "public.t", "strategy": "shadow_table",
            "phase": "copying", "error": null, "rows_done": 10, "rows_total": 100, "rate_rows_per_s": 5.0,
            "eta_s": 18.0, "copy_state": "running", "dual_writes": 3, "refusals": 0,
            "unrewritten_writes": 0, "settings": settings,
            "fleet": {"members": 1, "dual_writes": 3, "unrewritten_writes": 0, "old_shape_statements": 0},
            "old_shape_statements": 0, "old_shape_last_seen_s_ago": null,
            "bypassing_writers": [{"pid": 9, "user": "u", "application_name": "job", "client_addr": "", "seen_s_ago": 0.5}],
            "last_flip": {"outcome": "budget_missed", "stall_ms": 2000, "blocked_by": []}}]);
        let text = human("status", &with_migration).expect("the documented shape");
        assert!(text.contains("rows 10/100"), "{text}");
        assert!(text.contains("budget_missed"), "{text}");
        assert!(text.contains("pid 9"), "{text}");
        assert!(text.contains("p99 200"));
        with_migration["latency_recent_us"] =
            json!({"window_ms": 1000, "count": 700, "p50": 900, "p99": 4100, "max": 9000});
        with_migration["migrations"][0]["latency_throttle"] = json!({"state": "holding",
            "reason": "client p99 4.1 ms > 1.5 × baseline 2.5 ms", "p99_us": 4100,
            "statements": 700, "window_ms": 1000, "baseline_us": 2500, "limit_us": 3750,
            "holds": 3, "held_s": 2.25, "forced": 1, "pace": 1.0});
        with_migration["migrations"][0]["settings"] = json!({"auto_cutover": false,
            "chunk_time_ms": 100, "max_replication_lag_ms": 10000, "max_active_backends": null,
            "nice_ratio": 1.0, "max_latency_factor": 1.5, "latency_floor_us": 2000,
            "latency_max_pause_ms": 2000, "latency_baseline_us": 2500, "copy_paused": false});
        let text = human("status", &with_migration).expect("the documented shape");
        assert!(
            text.contains("client latency: holding: client p99 4.1 ms > 1.5 × baseline 2.5 ms; 3 hold(s), 2.2 s held, 1 piece(s) let through"),
            "{text}"
        );
        assert!(
            text.contains(
                "max latency factor 1.5 (floor 2 ms, max pause 2000 ms, baseline 2.5 ms)"
            ),
            "{text}"
        );
        assert!(text.contains("last second   p50 900  p99 4100"), "{text}");
        assert!(
            text.contains("nice ratio 1.0,"),
            "decimals as JSON writes them: {text}"
        );
        let pause = json!({"paused": false, "reason": "timeout", "waited_ms": 50, "blocking_sessions": [session]});
        let text = human("pause", &pause).expect("the documented shape");
        assert!(text.contains("timeout"));
        assert!(text.contains("127.0.0.1:5555"));
    }
}
