//! Admin replies rendered for people (`--format human`).

use std::fmt::Write;

use serde_json::Value;

/// Renders the result of `command` as readable text.
pub fn human(command: &str, result: &Value) -> String {
    match command {
        "status" => status(result),
        "pause" => pause(result),
        "resume" => "resumed: new transactions proceed\n".to_owned(),
        "shutdown" => format!(
            "shutting down: no longer accepting clients; {} session(s) still open\n",
            num(result, &["sessions"])
        ),
        "migrate" => match result["migrations"].as_array() {
            Some(members) => {
                let mut out = format!(
                    "migration of {} tables started; they flip together (`cutover` once every one is ready):\n",
                    members.len()
                );
                for m in members {
                    out.push_str(&started(m));
                }
                out
            }
            None => started(result),
        },
        "cutover" => format!(
            "migration {} flipped; clients were held {} ms\n{}",
            num(result, &["id"]),
            num(result, &["stall_ms"]),
            members(result)
        ),
        "abort" | "revert" | "complete" => format!(
            "migration {}: {}\n{}",
            num(result, &["id"]),
            num(result, &["phase"]),
            members(result)
        ),
        "pause_copy" | "resume_copy" => format!(
            "migration {}: copy {}\n",
            num(result, &["id"]),
            num(result, &["copy_state"])
        ),
        "set" => format!(
            "migration {}: {}\n",
            num(result, &["id"]),
            settings_line(result)
        ),
        "plan" => match result["plans"].as_array() {
            Some(plans) => {
                let mut out = format!(
                    "{} tables, planned together: each is copied on its own and all flip in one transaction, in this order\n",
                    plans.len()
                );
                for p in plans {
                    out.push('\n');
                    out.push_str(&plan(p));
                }
                out
            }
            None => plan(result),
        },
        _ => format!("{result}\n"),
    }
}

/// What `migrate` says about one started migration: id, table, strategy, reason, warnings.
fn started(m: &Value) -> String {
    format!(
        "migration {} of {} started: {} ({})\n{}",
        num(m, &["id"]),
        num(m, &["table"]),
        num(m, &["strategy"]),
        num(m, &["reason"]),
        m["warnings"]
            .as_array()
            .map(|w| w
                .iter()
                .map(|w| format!("warning: {}\n", w.as_str().unwrap_or_default()))
                .collect::<String>())
            .unwrap_or_default()
    )
}

/// The tables a command on a migration of several acted on (one line each), or nothing.
fn members(result: &Value) -> String {
    result["migrations"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| {
                    format!(
                        "  migration {} of {}: {}\n",
                        num(m, &["id"]),
                        num(m, &["table"]),
                        num(m, &["phase"])
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One line of a migration's progress (`migrate --wait` and the status section).
pub fn migration_progress(m: &Value) -> String {
    let mut line = format!(
        "{} {} {} {}",
        num(m, &["id"]),
        num(m, &["table"]),
        num(m, &["strategy"]),
        num(m, &["phase"])
    );
    if let Some(done) = m["rows_done"].as_i64() {
        let _ = write!(line, "  rows {done}");
        if let Some(total) = m["rows_total"].as_i64() {
            let _ = write!(line, "/{total}");
        }
        if let Some(rate) = m["rate_rows_per_s"].as_f64() {
            let _ = write!(line, "  {rate:.0} rows/s");
        }
        if let Some(eta) = m["eta_s"].as_f64() {
            let _ = write!(line, "  eta {eta:.0}s");
        }
    }
    if let Some(state) = m["copy_state"].as_str() {
        let _ = write!(line, "  copy: {state}");
    }
    if let Some(error) = m["error"].as_str() {
        let _ = write!(line, "  error: {error}");
    }
    line
}

/// The latency throttle's state and reason on one line, with its counts so far:
/// `holding: client p99 4.1 ms > 1.5 × baseline 2.5 ms, waiting 0.8 s …; 3 holds, 2.1 s held`.
fn latency_throttle_line(throttle: &Value) -> Option<String> {
    let state = throttle["state"].as_str()?;
    let mut line = format!("{state}: {}", throttle["reason"].as_str().unwrap_or(""));
    let holds = throttle["holds"].as_u64().unwrap_or(0);
    if holds > 0 {
        let _ = write!(
            line,
            "; {holds} hold(s), {:.1} s held",
            throttle["held_s"].as_f64().unwrap_or(0.0)
        );
        let forced = throttle["forced"].as_u64().unwrap_or(0);
        if forced > 0 {
            let _ = write!(
                line,
                ", {forced} piece(s) let through by the progress guarantee"
            );
        }
    }
    Some(line)
}

/// A migration's run settings (`set`'s reply, status's `settings`) on one line.
fn settings_line(settings: &Value) -> String {
    let on_off = |field: &str| {
        if settings[field].as_bool().unwrap_or(false) {
            "on"
        } else {
            "off"
        }
    };
    let ms = |field: &str| {
        settings[field]
            .as_f64()
            .map_or_else(|| "?".to_owned(), |us| format!("{} ms", us / 1000.0))
    };
    let latency = match settings["max_latency_factor"].as_f64() {
        None => String::new(),
        Some(0.0) => ", client latency not watched".to_owned(),
        Some(f) => format!(
            ", max latency factor {f} (floor {}, max pause {} ms, baseline {})",
            ms("latency_floor_us"),
            num(settings, &["latency_max_pause_ms"]),
            if settings["latency_baseline_us"].is_number() {
                ms("latency_baseline_us")
            } else {
                "none stored: measured by the copier once clients are busy".to_owned()
            }
        ),
    };
    format!(
        "auto-cutover {}, chunk time {} ms, nice ratio {}, max replication lag {} ms, max active backends {}{latency}{}",
        on_off("auto_cutover"),
        num(settings, &["chunk_time_ms"]),
        num(settings, &["nice_ratio"]),
        num(settings, &["max_replication_lag_ms"]),
        match &settings["max_active_backends"] {
            Value::Number(n) => n.to_string(),
            _ => "no limit".to_owned(),
        },
        if settings["copy_paused"].as_bool().unwrap_or(false) {
            ", copy paused"
        } else {
            ""
        }
    )
}

fn migrations(list: &[Value]) -> String {
    let mut out = String::new();
    for m in list {
        let _ = writeln!(out, "  {}", migration_progress(m));
        let _ = writeln!(
            out,
            "      dual-writes {}  refusals {}  unrewritten writes {}  old-shape statements {}{}",
            num(m, &["dual_writes"]),
            num(m, &["refusals"]),
            num(m, &["unrewritten_writes"]),
            num(m, &["old_shape_statements"]),
            m["old_shape_last_seen_s_ago"]
                .as_f64()
                .map(|s| format!(" (last {s:.1}s ago)"))
                .unwrap_or_default()
        );
        if m["settings"].is_object() {
            let _ = writeln!(out, "      settings: {}", settings_line(&m["settings"]));
        }
        if let Some(line) = latency_throttle_line(&m["latency_throttle"]) {
            let _ = writeln!(out, "      client latency: {line}");
        }
        if let Some(writers) = m["bypassing_writers"].as_array().filter(|w| !w.is_empty()) {
            let _ = writeln!(
                out,
                "      writers bypassing duet (mirrored by the safety net):"
            );
            for w in writers {
                let _ = writeln!(
                    out,
                    "        pid {}  user {}  application {}  from {}  seen {:.1}s ago",
                    num(w, &["pid"]),
                    num(w, &["user"]),
                    num(w, &["application_name"]),
                    num(w, &["client_addr"]),
                    w["seen_s_ago"].as_f64().unwrap_or(0.0)
                );
            }
        }
        if m["last_flip"].is_object() {
            let flip = &m["last_flip"];
            let _ = writeln!(
                out,
                "      last cutover: {} (clients held {} ms){}",
                num(flip, &["outcome"]),
                num(flip, &["stall_ms"]),
                flip["message"]
                    .as_str()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            );
        }
    }
    out
}

/// A plan (`shadow::plan::Plan` as JSON) in the order its steps run, each with its lock.
fn plan(p: &Value) -> String {
    let mut out = format!(
        "plan for {}.{}: {}\nwhy: {}\n",
        num(p, &["table", "schema"]),
        num(p, &["table", "name"]),
        num(p, &["kind"]),
        num(p, &["reason"])
    );
    for warning in p["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "warning: {}", warning.as_str().unwrap_or_default());
    }
    let carried = serde_json::from_value::<shadow::plan::Carried>(p["carried"].clone())
        .map(|c| c.describe())
        .unwrap_or_default();
    if !carried.is_empty() {
        let _ = writeln!(
            out,
            "\ncarried over: re-created on the new shape at the cutover (and on the old one at a revert) as they are now; objects made or changed after planning make the cutover refuse"
        );
        for line in carried {
            let _ = writeln!(out, "  - {line}");
        }
    }
    let steps = |out: &mut String, title: &str, key: &str| {
        let Some(list) = p[key].as_array().filter(|l| !l.is_empty()) else {
            return;
        };
        let _ = writeln!(out, "\n{title}");
        for step in list {
            let _ = writeln!(
                out,
                "  - {} [lock: {}{}]",
                num(step, &["why"]),
                num(step, &["lock"]),
                if step["outside_transaction"].as_bool() == Some(true) {
                    "; outside a transaction"
                } else {
                    ""
                }
            );
            for line in num(step, &["sql"]).lines() {
                let _ = writeln!(out, "      {}", line.trim());
            }
        }
    };
    steps(
        &mut out,
        "1. expand (guarded: short lock_timeout, retried with jitter)",
        "expand",
    );
    if let Some(target) = p["dual_write_route"]["target"].as_object() {
        let _ = writeln!(
            out,
            "\n2. dual-writes: every write to the table through duet also writes {}",
            describe_target(target)
        );
    }
    match p["copy"]["kind"].as_str() {
        Some("table") => {
            let _ = writeln!(
                out,
                "\n3. copy: the whole table (every column, same column order), keyset chunks in ({}) order into {}.{} (INSERT … ON CONFLICT DO NOTHING), then verify and repair",
                join(&p["copy"]["key"]["columns"]),
                num(p, &["copy", "shadow", "schema"]),
                num(p, &["copy", "shadow", "name"])
            );
        }
        Some("column") => {
            let _ = writeln!(
                out,
                "\n3. backfill: one column only, keyset chunks in ({0}) order, UPDATE … SET {1} = {2}, then verify and repair; clients see {1} until the cutover and the column is the table's last after complete",
                join(&p["copy"]["key"]),
                num(p, &["copy", "column"]),
                num(p, &["copy", "expr"])
            );
        }
        _ => {}
    }
    steps(&mut out, "4. prepare the cutover (guarded)", "prepare_flip");
    steps(
        &mut out,
        "5. cutover (`duet admin cutover`): one transaction while clients are held at a transaction boundary",
        "flip",
    );
    if let Some(target) = p["flipped_route"]["target"].as_object() {
        let _ = writeln!(
            out,
            "  after it: {}",
            if target.contains_key("Renamed") {
                describe_target(target)
            } else {
                format!("writes through duet also write {}", describe_target(target))
            }
        );
    }
    if p["kind"].as_str() == Some("rename") {
        let _ = writeln!(
            out,
            "\n6a. complete (`duet admin complete`): stop translating the old names (refused while statements using them still arrive)"
        );
    }
    steps(
        &mut out,
        "6a. complete (`duet admin complete`, contract): after the cutover",
        "complete",
    );
    steps(
        &mut out,
        "6b. revert (`duet admin revert`): after the cutover, one transaction while clients are held",
        "revert",
    );
    steps(&mut out, "    then, after the revert", "after_revert");
    steps(
        &mut out,
        "abort (`duet admin abort`): any time before the cutover",
        "abort",
    );
    out
}

/// A route target (`Target` as JSON, externally tagged) in words.
fn describe_target(target: &serde_json::Map<String, Value>) -> String {
    if let Some(t) = target.get("ShadowTable") {
        format!(
            "the shadow table {} (a data-modifying CTE and one upsert; deletes become tombstones)",
            num(t, &["shadow"])
        )
    } else if let Some(t) = target.get("ShadowColumn") {
        format!(
            "the column {} = {} (inline, in the same statement)",
            num(t, &["column"]),
            num(t, &["expr"])
        )
    } else if let Some(t) = target.get("Renamed") {
        let pairs: Vec<String> = t["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|pair| {
                let name = |i: usize| pair.get(i).and_then(Value::as_str).unwrap_or("?");
                format!("{} → {}", name(0), name(1))
            })
            .collect();
        format!(
            "statements using the old names ({}) are translated",
            pairs.join(", ")
        )
    } else {
        "(unknown target)".to_owned()
    }
}

fn join(list: &Value) -> String {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

fn num(value: &Value, path: &[&str]) -> String {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        _ => "-".to_owned(),
    }
}

fn status(r: &Value) -> String {
    let mut out = String::new();
    let uptime = r["uptime_secs"].as_f64().unwrap_or(0.0);
    let _ = writeln!(out, "uptime        {uptime:.1}s");
    let _ = writeln!(out, "listen        {}", num(r, &["listen"]));
    let _ = writeln!(out, "backend       {}", num(r, &["backend"]));
    if let Some(tls) = r["backend_tls"].as_str() {
        let _ = writeln!(out, "backend tls   {tls}");
    }
    let _ = writeln!(
        out,
        "paused        {}",
        if r["paused"].as_bool().unwrap_or(false) {
            "yes"
        } else {
            "no"
        }
    );
    let _ = writeln!(
        out,
        "clients       {} current, {} total",
        num(r, &["clients", "current"]),
        num(r, &["clients", "total"])
    );
    let _ = writeln!(
        out,
        "backends      {} current, {} total",
        num(r, &["backend_connections", "current"]),
        num(r, &["backend_connections", "total"])
    );
    let _ = writeln!(
        out,
        "bytes         {} client→server, {} server→client",
        num(r, &["bytes", "client_to_server"]),
        num(r, &["bytes", "server_to_client"])
    );
    let _ = writeln!(out, "statements    {}", num(r, &["statements"]));
    let _ = writeln!(
        out,
        "latency (µs)  p50 {}  p99 {}  p999 {}  max {}  ({} requests)",
        num(r, &["latency_us", "p50"]),
        num(r, &["latency_us", "p99"]),
        num(r, &["latency_us", "p999"]),
        num(r, &["latency_us", "max"]),
        num(r, &["latency_us", "count"])
    );
    if r["latency_recent_us"].is_object() {
        let _ = writeln!(
            out,
            "last second   p50 {}  p99 {}  max {}  ({} requests)",
            num(r, &["latency_recent_us", "p50"]),
            num(r, &["latency_recent_us", "p99"]),
            num(r, &["latency_recent_us", "max"]),
            num(r, &["latency_recent_us", "count"])
        );
    }
    if let Some(sessions) = r["sessions"].as_array() {
        let _ = writeln!(out, "sessions      {}", sessions.len());
        if !sessions.is_empty() {
            out.push_str(&session_table(sessions));
        }
    }
    if let Some(list) = r["members"].as_array().filter(|l| !l.is_empty()) {
        let _ = writeln!(out, "fleet         {} member(s)", list.len());
        for m in list {
            let _ =
                writeln!(
                out,
                "  {}{}  listen {}  sessions {}  route epoch {}  heartbeat {:.1}s ago  (duet {})",
                m["id"].as_str().unwrap_or("?"),
                if m["is_self"].as_bool().unwrap_or(false) { " (this one)" } else { "" },
                m["listen"].as_str().unwrap_or("?"),
                num(m, &["sessions"]),
                num(m, &["route_epoch"]),
                m["heartbeat_age_s"].as_f64().unwrap_or(0.0),
                m["version"].as_str().unwrap_or("?"),
            );
        }
    }
    if let Some(list) = r["migrations"].as_array().filter(|l| !l.is_empty()) {
        let _ = writeln!(out, "migrations    {}", list.len());
        out.push_str(&migrations(list));
    }
    out
}

fn pause(r: &Value) -> String {
    let waited = num(r, &["waited_ms"]);
    if r["paused"].as_bool().unwrap_or(false) {
        return format!("paused after {waited} ms: every session is at a transaction boundary; run `duet admin resume` to release\n");
    }
    let reason = r["reason"].as_str().unwrap_or("unknown");
    let mut out = format!("not paused ({reason}) after {waited} ms; held clients were released\n");
    if let Some(blocking) = r["blocking_sessions"].as_array() {
        let _ = writeln!(out, "sessions that kept the proxy from being quiet:");
        out.push_str(&session_table(blocking));
    }
    out
}

fn session_table(sessions: &[Value]) -> String {
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
            num(s, &["id"]),
            num(s, &["client_addr"]),
            num(s, &["user"]),
            num(s, &["database"]),
            num(s, &["application_name"]),
            num(s, &["backend_pid"]),
            num(s, &["state"]),
            s["state_secs"].as_f64().unwrap_or(0.0)
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
        let text = human("plan", &plan);
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
        let text = human("status", &status);
        assert!(text.contains("idle in transaction"));
        let mut with_migration = status.clone();
        with_migration["migrations"] = json!([{"id": 7, "table": "public.t", "strategy": "shadow_table",
            "phase": "copying", "error": null, "rows_done": 10, "rows_total": 100, "rate_rows_per_s": 5.0,
            "eta_s": 18.0, "copy_state": "running", "dual_writes": 3, "refusals": 0,
            "old_shape_statements": 0, "old_shape_last_seen_s_ago": null,
            "bypassing_writers": [{"pid": 9, "user": "u", "application_name": "job", "client_addr": "", "seen_s_ago": 0.5}],
            "last_flip": {"outcome": "budget_missed", "stall_ms": 2000, "blocked_by": []}}]);
        let text = human("status", &with_migration);
        assert!(text.contains("rows 10/100"), "{text}");
        assert!(text.contains("budget_missed"), "{text}");
        assert!(text.contains("pid 9"), "{text}");
        assert!(text.contains("p99 200"));
        with_migration["latency_recent_us"] =
            json!({"window_ms": 1000, "count": 700, "p50": 900, "p99": 4100, "max": 9000});
        with_migration["migrations"][0]["latency_throttle"] = json!({"state": "holding",
            "reason": "client p99 4.1 ms > 1.5 × baseline 2.5 ms", "p99_us": 4100,
            "statements": 700, "window_ms": 1000, "baseline_us": 2500, "limit_us": 3750,
            "holds": 3, "held_s": 2.25, "forced": 1});
        with_migration["migrations"][0]["settings"] = json!({"auto_cutover": false,
            "chunk_time_ms": 100, "max_replication_lag_ms": 10000, "max_active_backends": null,
            "nice_ratio": 1.0, "max_latency_factor": 1.5, "latency_floor_us": 2000,
            "latency_max_pause_ms": 2000, "latency_baseline_us": 2500, "copy_paused": false});
        let text = human("status", &with_migration);
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
        let pause = json!({"paused": false, "reason": "timeout", "waited_ms": 50, "blocking_sessions": [session]});
        let text = human("pause", &pause);
        assert!(text.contains("timeout"));
        assert!(text.contains("127.0.0.1:5555"));
    }
}
