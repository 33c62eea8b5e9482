//! Rule `ban-drop-not-null`: dropping NOT NULL lets NULLs reach clients that never expected them
//!
//! DROP NOT NULL is instant, but clients that assume the column is always set (non-optional fields
//! in typed code) break on the first NULL.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-drop-not-null",
    level: Level::Warning,
    opt_in: false,
    summary: "dropping NOT NULL lets NULLs reach clients that never expected them",
    docs: "DROP NOT NULL is instant, but clients that assume the column is always set (non-optional fields in typed code) break on the first NULL.",
    bad: "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
    good: "-- make every reader handle NULL first, then drop NOT NULL in a contract migration
SELECT 1;",
    aliases: &["squawk:ban-drop-not-null"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !(i.class.has_fact("drop_not_null")) {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(
        format!("{t}: dropping NOT NULL lets NULLs reach clients that assume a value"),
        format!(
            "-- deploy readers that handle NULL first, then:\n{};",
            i.sql
        ),
    )]
}
