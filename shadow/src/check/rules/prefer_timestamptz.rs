//! Rule `prefer-timestamptz`: timestamp without time zone loses the offset
//!
//! timestamp stores wall-clock time with no zone, so values written from sessions in different time
//! zones are ambiguous; converting to timestamptz later rewrites the table unless the session
//! TimeZone is UTC (PostgreSQL 12+). Use timestamptz.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-timestamptz",
    level: Level::Warning,
    opt_in: false,
    summary: "timestamp without time zone loses the offset",
    docs: "timestamp stores wall-clock time with no zone, so values written from sessions in different time zones are ambiguous; converting to timestamptz later rewrites the table unless the session TimeZone is UTC (PostgreSQL 12+). Use timestamptz.",
    bad: "CREATE TABLE events (at timestamp);",
    good: "CREATE TABLE events (at timestamptz);",
    aliases: &["squawk:prefer-timestamptz", "squawk:prefer-timestamp-tz"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    syntax::new_column_types(i.stmt)
        .into_iter()
        .filter(|(_, _, ty)| ty.name == "timestamp")
        .map(|(table, col, ty)| {
            let t = super::ident(&table);
            let c = super::ident(&col);
            let _ = &ty;
            Hit::new(
                format!("{t}.{c} is timestamp without time zone"),
                format!("-- declare {c} as timestamptz"),
            )
        })
        .collect()
}
