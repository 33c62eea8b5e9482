//! Rule `require-statement-timeout`: a long-running scan or rewrite runs without statement_timeout
//!
//! Scans and rewrites of large tables can run for minutes while holding their lock; a
//! statement_timeout bounds the damage.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "require-statement-timeout",
    level: Level::Info,
    opt_in: false,
    summary: "a long-running scan or rewrite runs without statement_timeout",
    docs: "Scans and rewrites of large tables can run for minutes while holding their lock; a statement_timeout bounds the damage.",
    bad: "ALTER TABLE users ADD CONSTRAINT users_age_check CHECK (age >= 0);",
    good: "SET statement_timeout = '15min';
ALTER TABLE users ADD CONSTRAINT users_age_check CHECK (age >= 0);",
    aliases: &["squawk:require-statement-timeout"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.tx.statement_timeout_set
        || i.on_fresh_table()
        || !(i.class.rewrites_table || i.class.scans_table)
        || !(i.class.blocks_reads() || i.class.blocks_writes())
    {
        return Vec::new();
    }
    vec![Hit::new("this scan or rewrite holds a blocking lock for as long as it runs, with no statement_timeout", format!("SET statement_timeout = '15min';\n{};", i.sql))]
}
