//! Rule `prefer-bigint-over-int`: 32-bit integer columns can overflow
//!
//! integer/serial ids and counters overflow at 2^31-1; changing the type later rewrites the table.
//! Use bigint from the start.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-bigint-over-int",
    level: Level::Info,
    opt_in: false,
    summary: "32-bit integer columns can overflow",
    docs: "integer/serial ids and counters overflow at 2^31-1; changing the type later rewrites the table. Use bigint from the start.",
    bad: "CREATE TABLE events (id integer);",
    good: "CREATE TABLE events (id bigint);",
    aliases: &["squawk:prefer-bigint-over-int"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    syntax::new_column_types(i.stmt)
        .into_iter()
        .filter(|(_, _, ty)| matches!(ty.name.as_str(), "int4" | "serial" | "serial4"))
        .map(|(table, col, ty)| {
            let t = super::ident(&table);
            let c = super::ident(&col);
            let _ = &ty;
            Hit::new(format!("{t}.{c} is a 32-bit integer: it can overflow, and widening it later rewrites the table"), "-- declare it bigint (or bigserial / bigint GENERATED ALWAYS AS IDENTITY)".to_string())
        })
        .collect()
}
