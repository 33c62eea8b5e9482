//! Rule `renaming-object`: renaming a view, index, constraint, sequence, type, schema or enum value breaks its users
//!
//! Queries, ORMs and other objects refer to these names; renaming breaks them until redeployed.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "renaming-object",
    level: Level::Warning,
    opt_in: false,
    summary: "renaming a view, index, constraint, sequence, type, schema or enum value breaks its users",
    docs: "Queries, ORMs and other objects refer to these names; renaming breaks them until redeployed.",
    bad: "ALTER VIEW active_users RENAME TO users_active;",
    good: "CREATE VIEW users_active AS SELECT 1 AS one;",
    aliases: &["squawk:renaming-object", "strong_migrations:rename_enum_value", "strong_migrations:rename_schema"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    const KINDS: &[&str] = &[
        "rename_view",
        "rename_materialized_view",
        "rename_sequence",
        "rename_type",
        "rename_schema",
        "rename_constraint",
        "rename_index",
        "rename_function",
        "rename_trigger",
        "rename_domain",
        "alter_enum.rename_value",
    ];
    if !KINDS.contains(&i.class.kind.as_str()) || i.on_fresh_table() {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new("renaming breaks the clients and objects that use the old name".to_string(), "-- expand/contract: add the new name alongside the old (new column + dual writes + backfill, or a view), move every client, then drop the old name; duet's migration does this with an atomic flip")]
}
