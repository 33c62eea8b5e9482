//! Rule `require-concurrent-partition-detach`: DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the parent
//!
//! DETACH PARTITION locks the parent and the partition ACCESS EXCLUSIVE, blocking all queries on
//! the partitioned table. Since PostgreSQL 14, DETACH PARTITION … CONCURRENTLY takes SHARE UPDATE
//! EXCLUSIVE (outside a transaction block).

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "require-concurrent-partition-detach",
    level: Level::Warning,
    opt_in: false,
    summary: "DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the parent",
    docs: "DETACH PARTITION locks the parent and the partition ACCESS EXCLUSIVE, blocking all queries on the partitioned table. Since PostgreSQL 14, DETACH PARTITION … CONCURRENTLY takes SHARE UPDATE EXCLUSIVE (outside a transaction block).",
    bad: "ALTER TABLE measurements DETACH PARTITION measurements_2020;",
    good: "-- migrate:no-transaction
ALTER TABLE measurements DETACH PARTITION measurements_2020 CONCURRENTLY;",
    aliases: &["squawk:require-concurrent-partition-detach"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if !i.class.has_fact("detach_partition") || !i.version.at_least(14) {
        return Vec::new();
    }
    vec![Hit::new(
        "DETACH PARTITION blocks every query on the partitioned table (ACCESS EXCLUSIVE)",
        format!("-- outside a transaction block:\n{} CONCURRENTLY;", i.sql),
    )]
}
