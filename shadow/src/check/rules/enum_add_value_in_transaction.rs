//! Rule `enum-add-value-in-transaction`: ALTER TYPE … ADD VALUE cannot run in a transaction block before PostgreSQL 12
//!
//! Before PostgreSQL 12, ALTER TYPE … ADD VALUE fails inside a transaction block; from 12 on it
//! works, but the new value cannot be used until the transaction commits.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "enum-add-value-in-transaction",
    level: Level::Error,
    opt_in: false,
    summary: "ALTER TYPE … ADD VALUE cannot run in a transaction block before PostgreSQL 12",
    docs: "Before PostgreSQL 12, ALTER TYPE … ADD VALUE fails inside a transaction block; from 12 on it works, but the new value cannot be used until the transaction commits.",
    bad: "-- engine 11
ALTER TYPE mood ADD VALUE 'great' AFTER 'happy';",
    good: "-- migrate:no-transaction
ALTER TYPE mood ADD VALUE 'great' AFTER 'happy';",
    aliases: &["squawk:ban-alter-enum-add-value-in-transaction"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.class.kind != "alter_enum.add_value" || i.version.at_least(12) || !i.tx.in_transaction {
        return Vec::new();
    }
    vec![Hit::new(
        format!(
            "PostgreSQL {} cannot add an enum value inside a transaction block",
            i.version
        ),
        format!(
            "-- in its own migration, with the runner's no-transaction marker:\n{};",
            i.sql
        ),
    )]
}
