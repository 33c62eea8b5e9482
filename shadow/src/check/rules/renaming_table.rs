//! Rule `renaming-table`: renaming a table breaks every client that uses the old name
//!
//! RENAME TO is instant but every running client using the old name fails. Expand/contract: new
//! table (or an updatable view under the new name), dual writes, backfill, switch, drop.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "renaming-table",
    level: Level::Error,
    opt_in: false,
    summary: "renaming a table breaks every client that uses the old name",
    docs: "RENAME TO is instant but every running client using the old name fails. Expand/contract: new table (or an updatable view under the new name), dual writes, backfill, switch, drop.",
    bad: "ALTER TABLE users RENAME TO accounts;",
    good: "CREATE VIEW accounts AS SELECT * FROM users;",
    aliases: &["squawk:renaming-table", "strong_migrations:rename_table"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    const KINDS: &[&str] = &["rename_table"];
    if !KINDS.contains(&i.class.kind.as_str()) || i.on_fresh_table() {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(format!("renaming {t} breaks every client that still uses the old name"), "-- expand/contract: add the new name alongside the old (new column + dual writes + backfill, or a view), move every client, then drop the old name; duet's migration does this with an atomic flip")]
}
