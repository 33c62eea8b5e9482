//! Rule `ban-drop-table`: dropping a table breaks clients and loses data
//!
//! DROP TABLE takes ACCESS EXCLUSIVE (also on tables its foreign keys reference), loses the data,
//! and breaks every client still using the table. Rename-and-wait or stop all use first; drop in a
//! contract migration.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-drop-table",
    level: Level::Error,
    opt_in: false,
    summary: "dropping a table breaks clients and loses data",
    docs: "DROP TABLE takes ACCESS EXCLUSIVE (also on tables its foreign keys reference), loses the data, and breaks every client still using the table. Rename-and-wait or stop all use first; drop in a contract migration.",
    bad: "DROP TABLE audit_log;",
    good: "CREATE TABLE scratch (id bigint);
DROP TABLE scratch;",
    aliases: &["squawk:ban-drop-table"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !(i.class.has_fact("drop_table")) {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(format!("dropping {t} loses its data and breaks every client still using it"), format!("-- stop all use of {t} first (deploy), keep a backup, then in a contract migration:\n{};", i.sql))]
}
