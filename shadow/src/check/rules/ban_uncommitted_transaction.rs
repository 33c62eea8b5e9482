//! Rule `ban-uncommitted-transaction`: BEGIN without COMMIT
//!
//! A file that opens a transaction and never commits it leaves its locks held until the runner's
//! connection closes (or rolls everything back).

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-uncommitted-transaction",
    level: Level::Error,
    opt_in: false,
    summary: "BEGIN without COMMIT",
    docs: "A file that opens a transaction and never commits it leaves its locks held until the runner's connection closes (or rolls everything back).",
    bad: "BEGIN;
CREATE TABLE t (id bigint);",
    good: "BEGIN;
CREATE TABLE t (id bigint);
COMMIT;",
    aliases: &["squawk:ban-uncommitted-transaction"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    // Decided at the end of each file by the engine, which attaches the finding to the BEGIN.
    let _ = i;
    Vec::new()
}
