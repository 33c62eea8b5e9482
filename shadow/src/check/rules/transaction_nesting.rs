//! Rule `transaction-nesting`: BEGIN/COMMIT inside a file the runner already wraps in a transaction
//!
//! When the runner wraps the file in a transaction, a BEGIN only warns and a COMMIT ends the
//! runner's transaction early: statements after it run outside any transaction and the runner's
//! bookkeeping may commit separately.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "transaction-nesting",
    level: Level::Warning,
    opt_in: false,
    summary: "BEGIN/COMMIT inside a file the runner already wraps in a transaction",
    docs: "When the runner wraps the file in a transaction, a BEGIN only warns and a COMMIT ends the runner's transaction early: statements after it run outside any transaction and the runner's bookkeeping may commit separately.",
    bad: "BEGIN;
ALTER TABLE users ADD COLUMN nickname text;
COMMIT;",
    good: "-- migrate:no-transaction
BEGIN;
ALTER TABLE users ADD COLUMN nickname text;
COMMIT;",
    aliases: &["squawk:transaction-nesting"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    let nested_begin = i.class.kind == "begin" && i.tx.in_transaction;
    let early_commit = matches!(i.class.kind.as_str(), "commit" | "rollback")
        && i.tx.file_wrapped
        && i.tx.open_begin.is_none();
    if nested_begin {
        vec![Hit::new("a transaction is already open (the runner wraps this file): BEGIN is ignored with a warning", "-- remove BEGIN/COMMIT, or mark the file with the runner's no-transaction marker")]
    } else if early_commit {
        vec![Hit::new(
            "this ends the runner's transaction early: later statements run outside a transaction",
            "-- split the file in two migrations instead of committing inside one",
        )]
    } else {
        Vec::new()
    }
}
