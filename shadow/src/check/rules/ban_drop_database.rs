//! Rule `ban-drop-database`: dropping a database from a migration
//!
//! DROP DATABASE in a migration destroys everything and cannot be rolled back.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-drop-database",
    level: Level::Error,
    opt_in: false,
    summary: "dropping a database from a migration",
    docs: "DROP DATABASE in a migration destroys everything and cannot be rolled back.",
    bad: "DROP DATABASE app;",
    good: "-- drop databases by hand, never from a migration
SELECT 1;",
    aliases: &["squawk:ban-drop-database"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.class.kind != "drop_database" {
        return Vec::new();
    }
    vec![Hit::bare("a migration drops a whole database")]
}
