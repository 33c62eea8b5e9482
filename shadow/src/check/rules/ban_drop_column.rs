//! Rule `ban-drop-column`: dropping a column breaks clients that still use it
//!
//! DROP COLUMN is catalog-only (ACCESS EXCLUSIVE briefly) but every running client that selects or
//! inserts the column fails afterwards (ORMs cache column lists). Stop using the column in the
//! application first (deploy), then drop it in a contract migration.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-drop-column",
    level: Level::Warning,
    opt_in: false,
    summary: "dropping a column breaks clients that still use it",
    docs: "DROP COLUMN is catalog-only (ACCESS EXCLUSIVE briefly) but every running client that selects or inserts the column fails afterwards (ORMs cache column lists). Stop using the column in the application first (deploy), then drop it in a contract migration.",
    bad: "ALTER TABLE users DROP COLUMN legacy_flag;",
    good: "-- 1. deploy code that no longer reads or writes legacy_flag
-- 2. then, in a later contract migration, drop it
SELECT 1;",
    aliases: &["squawk:ban-drop-column", "strong_migrations:remove_column"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !(i.class.has_fact("drop_column")) {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(format!("dropping a column of {t} breaks every client that still reads or writes it"), format!("-- deploy code that ignores the column first, then drop it in a contract migration:\n{};\n-- or let duet's migration flip clients over first", i.sql))]
}
