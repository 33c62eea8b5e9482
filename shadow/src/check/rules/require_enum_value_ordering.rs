//! Rule `require-enum-value-ordering`: ADD VALUE without BEFORE/AFTER appends the value at the end
//!
//! Enum values sort in declaration order; a value appended at the end may sort in the wrong place.
//! Say where it goes with BEFORE or AFTER.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "require-enum-value-ordering",
    level: Level::Info,
    opt_in: false,
    summary: "ADD VALUE without BEFORE/AFTER appends the value at the end",
    docs: "Enum values sort in declaration order; a value appended at the end may sort in the wrong place. Say where it goes with BEFORE or AFTER.",
    bad: "ALTER TYPE mood ADD VALUE 'meh';",
    good: "ALTER TYPE mood ADD VALUE 'meh' AFTER 'sad';",
    aliases: &["squawk:require-enum-value-ordering"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    match i.stmt {
        Some(pg_query::protobuf::node::Node::AlterEnumStmt(e))
            if e.old_val.is_empty() && e.new_val_neighbor.is_empty() =>
        {
            vec![Hit::new(
                "the new enum value is appended at the end of the sort order",
                format!("{} AFTER '<existing value>';", i.sql),
            )]
        }
        _ => Vec::new(),
    }
}
