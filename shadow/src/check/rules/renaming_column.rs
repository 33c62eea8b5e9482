//! Rule `renaming-column`: renaming a column breaks every client that uses the old name
//!
//! RENAME COLUMN is instant but running clients keep sending the old name and fail until they are
//! redeployed. Use expand/contract: add the new column, dual-write, backfill, switch clients, drop
//! the old column (duet's migration flips clients atomically).

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "renaming-column",
    level: Level::Error,
    opt_in: false,
    summary: "renaming a column breaks every client that uses the old name",
    docs: "RENAME COLUMN is instant but running clients keep sending the old name and fail until they are redeployed. Use expand/contract: add the new column, dual-write, backfill, switch clients, drop the old column (duet's migration flips clients atomically).",
    bad: "ALTER TABLE users RENAME COLUMN email TO email_address;",
    good: "ALTER TABLE users ADD COLUMN email_address text;",
    aliases: &["squawk:renaming-column", "strong_migrations:rename_column"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    const KINDS: &[&str] = &["rename_column"];
    if !KINDS.contains(&i.class.kind.as_str()) || i.on_fresh_table() {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(format!("renaming a column of {t} breaks every client that still uses the old name"), "-- expand/contract: add the new name alongside the old (new column + dual writes + backfill, or a view), move every client, then drop the old name; duet's migration does this with an atomic flip")]
}
