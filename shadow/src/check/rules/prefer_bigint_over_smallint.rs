//! Rule `prefer-bigint-over-smallint`: 16-bit integer columns overflow quickly
//!
//! smallint overflows at 32767; widening later rewrites the table. Use bigint (or integer with
//! care).

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-bigint-over-smallint",
    level: Level::Info,
    opt_in: false,
    summary: "16-bit integer columns overflow quickly",
    docs: "smallint overflows at 32767; widening later rewrites the table. Use bigint (or integer with care).",
    bad: "CREATE TABLE events (kind smallint);",
    good: "CREATE TABLE events (kind bigint);",
    aliases: &["squawk:prefer-bigint-over-smallint"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    syntax::new_column_types(i.stmt)
        .into_iter()
        .filter(|(_, _, ty)| matches!(ty.name.as_str(), "int2" | "smallserial" | "serial2"))
        .map(|(table, col, ty)| {
            let t = super::ident(&table);
            let c = super::ident(&col);
            let _ = &ty;
            Hit::new(
                format!("{t}.{c} is a 16-bit integer: it overflows at 32767"),
                "-- declare it bigint".to_string(),
            )
        })
        .collect()
}
