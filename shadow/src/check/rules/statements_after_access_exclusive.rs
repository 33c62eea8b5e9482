//! Rule `statements-after-access-exclusive`: more statements run while an ACCESS EXCLUSIVE lock is held
//!
//! Locks are held until the transaction ends. Every statement after one that took ACCESS EXCLUSIVE
//! on a live table extends the time all reads and writes of that table are blocked. Commit right
//! after the locking statement and continue in a new transaction.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "statements-after-access-exclusive",
    level: Level::Warning,
    opt_in: false,
    summary: "more statements run while an ACCESS EXCLUSIVE lock is held",
    docs: "Locks are held until the transaction ends. Every statement after one that took ACCESS EXCLUSIVE on a live table extends the time all reads and writes of that table are blocked. Commit right after the locking statement and continue in a new transaction.",
    bad: "ALTER TABLE users ADD COLUMN nickname text;
CREATE INDEX users_created_idx ON orders (created_at);",
    good: "ALTER TABLE users ADD COLUMN nickname text;
COMMIT;
CREATE INDEX users_created_idx ON orders (created_at);",
    aliases: &["eugene:E4"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    let Some((table, line)) = i.tx.access_exclusive_held.as_ref() else {
        return Vec::new();
    };
    if i.tx.access_exclusive_reported || crate::check::transaction::is_trivial(i.class) {
        return Vec::new();
    }
    vec![Hit::new(
        format!("{} is still locked ACCESS EXCLUSIVE since line {line}: this statement keeps its readers and writers waiting longer", super::ident(table)),
        "COMMIT;  -- right after the statement that took the lock, then continue in a new transaction",
    )]
}
