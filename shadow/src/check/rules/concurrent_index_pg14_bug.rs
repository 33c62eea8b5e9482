//! Rule `concurrent-index-pg14-bug`: CREATE/REINDEX … CONCURRENTLY can corrupt indexes on PostgreSQL 14.0–14.3
//!
//! PostgreSQL 14.0 to 14.3 have a bug where indexes built with CONCURRENTLY can miss rows (silent
//! corruption). Upgrade to 14.4 or later before building indexes concurrently; rebuild indexes
//! built on those versions. Set the minor version (engine_version = "14.4") to silence this when
//! you are on a fixed release.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "concurrent-index-pg14-bug",
    level: Level::Error,
    opt_in: false,
    summary: "CREATE/REINDEX … CONCURRENTLY can corrupt indexes on PostgreSQL 14.0–14.3",
    docs: "PostgreSQL 14.0 to 14.3 have a bug where indexes built with CONCURRENTLY can miss rows (silent corruption). Upgrade to 14.4 or later before building indexes concurrently; rebuild indexes built on those versions. Set the minor version (engine_version = \"14.4\") to silence this when you are on a fixed release.",
    bad: "-- engine 14.2
-- migrate:no-transaction
CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    good: "-- migrate:no-transaction
CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    aliases: &["strong_migrations:add_index_concurrently_pg14"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    let concurrent =
        i.class.has_fact("create_index.concurrently") || i.class.has_fact("reindex.concurrently");
    if !concurrent || i.version.major != 14 || i.version.minor.is_some_and(|m| m >= 4) {
        return Vec::new();
    }
    vec![Hit::new(
        format!("PostgreSQL {} may build a corrupt index with CONCURRENTLY (bug fixed in 14.4)", i.version),
        "-- upgrade to PostgreSQL 14.4 or later first, then build the index; set engine_version = \"14.x\" with x >= 4 once upgraded",
    )]
}
