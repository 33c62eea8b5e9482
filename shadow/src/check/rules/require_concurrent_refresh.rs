//! Rule `require-concurrent-refresh`: REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks readers
//!
//! A plain refresh rebuilds the view under ACCESS EXCLUSIVE: every reader waits. REFRESH
//! MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view) takes EXCLUSIVE, which lets
//! reads continue.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "require-concurrent-refresh",
    level: Level::Warning,
    opt_in: false,
    summary: "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks readers",
    docs: "A plain refresh rebuilds the view under ACCESS EXCLUSIVE: every reader waits. REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view) takes EXCLUSIVE, which lets reads continue.",
    bad: "REFRESH MATERIALIZED VIEW daily_totals;",
    good: "REFRESH MATERIALIZED VIEW CONCURRENTLY daily_totals;",
    aliases: &["engine-facts:refresh_materialized_view"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !i.class.has_fact("refresh_materialized_view") {
        return Vec::new();
    }
    let upper = i.sql.to_ascii_uppercase();
    let fixed = match upper.find("VIEW") {
        Some(p) => format!("{}VIEW CONCURRENTLY{}", &i.sql[..p], &i.sql[p + 4..]),
        None => i.sql.to_string(),
    };
    vec![Hit::new(
        "the refresh blocks every reader of the view (ACCESS EXCLUSIVE)",
        format!("-- needs a unique index on the view:\n{fixed};"),
    )]
}
