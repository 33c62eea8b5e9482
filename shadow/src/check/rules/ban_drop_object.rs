//! Rule `ban-drop-object`: dropping a view, function, type, schema, sequence, domain or extension breaks its users
//!
//! Views, functions, types, sequences, domains, schemas and extensions are used by application
//! queries and by other database objects; dropping them breaks those users (CASCADE silently drops
//! dependents too). Drop them in a contract migration once nothing uses them.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-drop-object",
    level: Level::Warning,
    opt_in: false,
    summary: "dropping a view, function, type, schema, sequence, domain or extension breaks its users",
    docs: "Views, functions, types, sequences, domains, schemas and extensions are used by application queries and by other database objects; dropping them breaks those users (CASCADE silently drops dependents too). Drop them in a contract migration once nothing uses them.",
    bad: "DROP VIEW active_users;",
    good: "-- stop using the view first, then drop it in a contract migration
SELECT 1;",
    aliases: &["squawk:ban-drop-view", "squawk:ban-drop-function", "squawk:ban-drop-type", "squawk:ban-drop-schema", "squawk:ban-drop-sequence", "squawk:ban-drop-domain", "squawk:ban-drop-extension"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    const KINDS: [&str; 10] = [
        "drop_view",
        "drop_materialized_view",
        "drop_function",
        "drop_procedure",
        "drop_routine",
        "drop_type",
        "drop_schema",
        "drop_sequence",
        "drop_domain",
        "drop_extension",
    ];
    if !KINDS.contains(&i.class.kind.as_str()) {
        return Vec::new();
    }
    let what = i.class.kind.trim_start_matches("drop_").replace('_', " ");
    vec![Hit::new(format!("dropping a {what} breaks the queries and objects that use it"), format!("-- once nothing uses it (check pg_depend and the application), in a contract migration:\n{};", i.sql))]
}
