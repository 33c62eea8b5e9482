//! The stable JSON contract (documented in `shadow/docs/check-json.md`).

use super::super::report::Report;

/// Renders the report as pretty-printed JSON.
pub fn render(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
