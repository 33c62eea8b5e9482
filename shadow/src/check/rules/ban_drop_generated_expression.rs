//! Rule `ban-drop-generated-expression`: DROP EXPRESSION turns a generated column into a plain one that nothing maintains
//!
//! After ALTER COLUMN … DROP EXPRESSION the column keeps its values but is no longer computed:
//! clients relying on it being derived read stale data.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-drop-generated-expression",
    level: Level::Warning,
    opt_in: false,
    summary: "DROP EXPRESSION turns a generated column into a plain one that nothing maintains",
    docs: "After ALTER COLUMN … DROP EXPRESSION the column keeps its values but is no longer computed: clients relying on it being derived read stale data.",
    bad: "ALTER TABLE users ALTER COLUMN full_name DROP EXPRESSION;",
    good: "-- keep the generated column, or maintain the value explicitly before dropping the expression
SELECT 1;",
    aliases: &["squawk:ban-drop-generated-expression"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !(i.class.has_fact("drop_expression")) {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(
        format!("{t}: the generated column stops being computed"),
        format!(
            "-- make the application maintain the value first, then:\n{};",
            i.sql
        ),
    )]
}
