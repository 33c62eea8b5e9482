//! Rule `require-table-schema`: objects are not schema-qualified
//!
//! Unqualified names resolve through search_path, which may differ between environments. Opt-in.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "require-table-schema",
    level: Level::Info,
    opt_in: true,
    summary: "objects are not schema-qualified",
    docs: "Unqualified names resolve through search_path, which may differ between environments. Opt-in.",
    bad: "CREATE TABLE users (id bigint);",
    good: "CREATE TABLE app.users (id bigint);",
    aliases: &["squawk:require-table-schema"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if !(i.class.kind.starts_with("create_") || i.class.kind.starts_with("alter_table")) {
        return Vec::new();
    }
    i.class
        .tables
        .iter()
        .filter(|t| !t.contains('.'))
        .map(|t| {
            Hit::new(
                format!("{} is not schema-qualified", super::ident(t)),
                format!("-- write it as <schema>.{t}"),
            )
        })
        .collect()
}
