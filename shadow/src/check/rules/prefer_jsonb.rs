//! Rule `prefer-jsonb`: json columns: prefer jsonb
//!
//! json has no equality operator (SELECT DISTINCT and GROUP BY fail), keeps duplicate keys and
//! whitespace, and cannot be indexed with GIN. Use jsonb.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-jsonb",
    level: Level::Warning,
    opt_in: false,
    summary: "json columns: prefer jsonb",
    docs: "json has no equality operator (SELECT DISTINCT and GROUP BY fail), keeps duplicate keys and whitespace, and cannot be indexed with GIN. Use jsonb.",
    bad: "CREATE TABLE events (payload json);",
    good: "CREATE TABLE events (payload jsonb);",
    aliases: &["eugene:E3", "strong_migrations:add_column_json"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    syntax::new_column_types(i.stmt)
        .into_iter()
        .filter(|(_, _, ty)| ty.name == "json")
        .map(|(table, col, ty)| {
            let t = super::ident(&table);
            let c = super::ident(&col);
            let _ = &ty;
            Hit::new(
                format!("{t}.{c} is json: no equality operator, no GIN indexing"),
                format!("-- declare {c} as jsonb"),
            )
        })
        .collect()
}
