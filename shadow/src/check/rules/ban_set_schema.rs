//! Rule `ban-set-schema`: moving an object to another schema breaks clients that use its old name
//!
//! ALTER … SET SCHEMA takes ACCESS EXCLUSIVE and changes the object's qualified name; every query
//! using the old name fails.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-set-schema",
    level: Level::Warning,
    opt_in: false,
    summary: "moving an object to another schema breaks clients that use its old name",
    docs: "ALTER … SET SCHEMA takes ACCESS EXCLUSIVE and changes the object's qualified name; every query using the old name fails.",
    bad: "ALTER TABLE users SET SCHEMA archive;",
    good: "-- create a view under the new name first, move clients, then move the table
SELECT 1;",
    aliases: &["squawk:ban-set-schema", "strong_migrations:rename_schema"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.class.kind != "set_schema" {
        return Vec::new();
    }
    vec![Hit::new("moving to another schema breaks every client that uses the old qualified name", "-- expand/contract: add the new name (a view or duet's migration), move clients, then drop the old name")]
}
