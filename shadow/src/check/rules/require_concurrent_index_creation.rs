//! Rule `require-concurrent-index-creation`: CREATE INDEX without CONCURRENTLY blocks writes for the whole build
//!
//! CREATE INDEX takes SHARE on the table: reads continue but every INSERT/UPDATE/DELETE waits until
//! the index is built. CREATE INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE (reads and writes
//! continue) at the cost of two scans; it cannot run in a transaction block. Not needed for a table
//! created in the same transaction.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "require-concurrent-index-creation",
    level: Level::Error,
    opt_in: false,
    summary: "CREATE INDEX without CONCURRENTLY blocks writes for the whole build",
    docs: "CREATE INDEX takes SHARE on the table: reads continue but every INSERT/UPDATE/DELETE waits until the index is built. CREATE INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE (reads and writes continue) at the cost of two scans; it cannot run in a transaction block. Not needed for a table created in the same transaction.",
    bad: "CREATE INDEX users_email_idx ON users (email);",
    good: "-- migrate:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);",
    aliases: &["squawk:require-concurrent-index-creation", "eugene:E6", "strong_migrations:add_index"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if !i.class.has_fact("create_index") {
        return Vec::new();
    }
    let sql = i.sql;
    let upper = sql.to_ascii_uppercase();
    let fixed = match upper.find("INDEX") {
        Some(p) => format!("{}INDEX CONCURRENTLY{}", &sql[..p], &sql[p + 5..]),
        None => sql.to_string(),
    };
    vec![Hit::new(
        format!(
            "CREATE INDEX blocks all writes to {} until the index is built (SHARE lock)",
            super::ident(i.table())
        ),
        format!("-- in its own migration, outside a transaction block:\n{fixed};"),
    )]
}
