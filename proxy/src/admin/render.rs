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
        _ => format!("{result}\n"),
    }
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
    if let Some(sessions) = r["sessions"].as_array() {
        let _ = writeln!(out, "sessions      {}", sessions.len());
        if !sessions.is_empty() {
            out.push_str(&session_table(sessions));
        }
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
        assert!(text.contains("p99 200"));
        let pause = json!({"paused": false, "reason": "timeout", "waited_ms": 50, "blocking_sessions": [session]});
        let text = human("pause", &pause);
        assert!(text.contains("timeout"));
        assert!(text.contains("127.0.0.1:5555"));
    }
}
