//! Rule `require-concurrent-reindex`: REINDEX without CONCURRENTLY blocks writes and use of the index
//!
//! REINDEX takes SHARE on the table (writes wait) and ACCESS EXCLUSIVE on the index (queries that
//! would use it wait). REINDEX … CONCURRENTLY (PostgreSQL 12+) does neither; it cannot run in a
//! transaction block.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "require-concurrent-reindex",
    level: Level::Warning,
    opt_in: false,
    summary: "REINDEX without CONCURRENTLY blocks writes and use of the index",
    docs: "REINDEX takes SHARE on the table (writes wait) and ACCESS EXCLUSIVE on the index (queries that would use it wait). REINDEX … CONCURRENTLY (PostgreSQL 12+) does neither; it cannot run in a transaction block.",
    bad: "REINDEX INDEX users_email_idx;",
    good: "-- migrate:no-transaction
REINDEX INDEX CONCURRENTLY users_email_idx;",
    aliases: &["squawk:require-concurrent-reindex"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if !i.class.has_fact("reindex") || !i.version.at_least(12) {
        return Vec::new();
    }
    let upper = i.sql.to_ascii_uppercase();
    let fixed = ["INDEX", "TABLE", "SCHEMA", "DATABASE", "SYSTEM"]
        .iter()
        .find_map(|k| {
            upper
                .find(k)
                .map(|p| format!("{}{k} CONCURRENTLY{}", &i.sql[..p], &i.sql[p + k.len()..]))
        })
        .unwrap_or_else(|| i.sql.to_string());
    vec![Hit::new(
        "REINDEX blocks writes to the table and every query that would use the index",
        format!("-- outside a transaction block:\n{fixed};"),
    )]
}
