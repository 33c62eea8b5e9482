//! Rule `require-lock-timeout`: a blocking lock is requested without lock_timeout
//!
//! A statement waiting for a lock that conflicts with reads or writes makes every later query on
//! that table queue behind it, so one long-running query turns a brief DDL into an outage. Set
//! lock_timeout first (and retry on timeout): the DDL then gives up instead of stalling the
//! application.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "require-lock-timeout",
    level: Level::Warning,
    opt_in: false,
    summary: "a blocking lock is requested without lock_timeout",
    docs: "A statement waiting for a lock that conflicts with reads or writes makes every later query on that table queue behind it, so one long-running query turns a brief DDL into an outage. Set lock_timeout first (and retry on timeout): the DDL then gives up instead of stalling the application.",
    bad: "ALTER TABLE users ADD COLUMN nickname text;",
    good: "SET lock_timeout = '2s';
ALTER TABLE users ADD COLUMN nickname text;",
    aliases: &["squawk:require-lock-timeout", "squawk:require-timeout-settings", "eugene:E9"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.tx.lock_timeout_set || !(i.class.blocks_reads() || i.class.blocks_writes()) {
        return Vec::new();
    }
    let lock = i
        .class
        .strongest_lock()
        .map(|l| l.name())
        .unwrap_or("a blocking lock");
    vec![Hit::new(
        format!("{lock} is requested with no lock_timeout: while it waits, every query on {} queues behind it", super::ident(i.table())),
        format!("SET lock_timeout = '2s';  -- retry the migration on timeout\n{};", i.sql),
    )]
}
