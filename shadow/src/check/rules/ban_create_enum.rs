//! Rule `ban-create-enum`: enums are hard to change: values cannot be removed or reordered
//!
//! An enum's values can be added but not removed, and renaming one breaks clients. A lookup table
//! with a foreign key (or text with a CHECK) evolves with ordinary, online-safe migrations.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-create-enum",
    level: Level::Info,
    opt_in: false,
    summary: "enums are hard to change: values cannot be removed or reordered",
    docs: "An enum's values can be added but not removed, and renaming one breaks clients. A lookup table with a foreign key (or text with a CHECK) evolves with ordinary, online-safe migrations.",
    bad: "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');",
    good: "CREATE TABLE moods (name text PRIMARY KEY);",
    aliases: &["eugene:W13"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    match i.stmt {
        Some(pg_query::protobuf::node::Node::CreateEnumStmt(_)) => vec![Hit::new(
            "an enum cannot lose or reorder values later",
            "CREATE TABLE <name> (value text PRIMARY KEY);  -- and a foreign key from the using columns",
        )],
        _ => Vec::new(),
    }
}
