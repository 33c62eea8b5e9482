//! Rule `require-concurrent-index-deletion`: DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table
//!
//! DROP INDEX locks the table ACCESS EXCLUSIVE (queueing all reads behind any running query); DROP
//! INDEX CONCURRENTLY waits for running users instead of blocking new ones. It cannot run in a
//! transaction block.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "require-concurrent-index-deletion",
    level: Level::Warning,
    opt_in: false,
    summary: "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table",
    docs: "DROP INDEX locks the table ACCESS EXCLUSIVE (queueing all reads behind any running query); DROP INDEX CONCURRENTLY waits for running users instead of blocking new ones. It cannot run in a transaction block.",
    bad: "DROP INDEX users_email_idx;",
    good: "-- migrate:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS users_email_idx;",
    aliases: &["squawk:require-concurrent-index-deletion", "strong_migrations:remove_index"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !i.class.has_fact("drop_index") {
        return Vec::new();
    }
    let upper = i.sql.to_ascii_uppercase();
    let fixed = match upper.find("INDEX") {
        Some(p) => format!("{}INDEX CONCURRENTLY{}", &i.sql[..p], &i.sql[p + 5..]),
        None => i.sql.to_string(),
    };
    vec![Hit::new(
        "DROP INDEX takes ACCESS EXCLUSIVE on the table: reads and writes queue behind it",
        format!("-- outside a transaction block:\n{fixed};"),
    )]
}
