//! Rule `ban-drop-constraint`: dropping a constraint removes a guarantee clients may rely on
//!
//! DROP CONSTRAINT takes ACCESS EXCLUSIVE (on both tables for a foreign key) and removes an
//! integrity guarantee; data written afterwards may violate what other code assumes.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-drop-constraint",
    level: Level::Warning,
    opt_in: false,
    summary: "dropping a constraint removes a guarantee clients may rely on",
    docs: "DROP CONSTRAINT takes ACCESS EXCLUSIVE (on both tables for a foreign key) and removes an integrity guarantee; data written afterwards may violate what other code assumes.",
    bad: "ALTER TABLE orders DROP CONSTRAINT orders_amount_positive;",
    good: "-- keep the constraint, or replace it before dropping
SELECT 1;",
    aliases: &["squawk:ban-drop-constraint"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table()
        || !(i.class.has_fact("drop_constraint") || i.class.has_fact("drop_constraint.foreign_key"))
    {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(
        format!("dropping a constraint of {t} removes a guarantee other code may rely on"),
        format!(
            "SET lock_timeout = '2s';\n{};  -- in a contract migration, once nothing relies on it",
            i.sql
        ),
    )]
}
