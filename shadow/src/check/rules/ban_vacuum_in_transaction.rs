//! Rule `ban-vacuum-in-transaction`: VACUUM cannot run inside a transaction block
//!
//! `VACUUM` and `VACUUM FULL` fail with "VACUUM cannot run inside a transaction block", and
//! migration runners wrap each file in a transaction unless told otherwise. (`VACUUM FULL` also
//! rewrites the table under ACCESS EXCLUSIVE: `rewrite-under-access-exclusive` says so.) Run it
//! from a migration file of its own with the runner's no-transaction marker, or outside the
//! migrations (autovacuum usually makes it unnecessary). `ANALYZE` alone is allowed in a
//! transaction.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-vacuum-in-transaction",
    level: Level::Error,
    opt_in: false,
    summary: "VACUUM cannot run inside a transaction block",
    docs: "`VACUUM` and `VACUUM FULL` fail with \"VACUUM cannot run inside a transaction block\", and migration runners wrap each file in a transaction unless told otherwise. (`VACUUM FULL` also rewrites the table under ACCESS EXCLUSIVE: `rewrite-under-access-exclusive` says so.) Run it from a migration file of its own with the runner's no-transaction marker, or outside the migrations (autovacuum usually makes it unnecessary). `ANALYZE` alone is allowed in a transaction.",
    bad: "BEGIN;
VACUUM ANALYZE users;
COMMIT;",
    good: "-- migrate:no-transaction
VACUUM ANALYZE users;",
    aliases: &[],
    check,
};

/// Whether a statement kind is a VACUUM (with or without FULL).
pub fn is_vacuum(kind: &str) -> bool {
    kind == "vacuum" || kind == "vacuum_full"
}

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if !is_vacuum(&i.class.kind) || !i.tx.in_transaction {
        return Vec::new();
    }
    let how = if i.tx.file_wrapped && i.tx.open_begin.is_none() {
        "the migration runner wraps this file in a transaction"
    } else {
        "it follows a BEGIN"
    };
    vec![Hit::new(
        format!("VACUUM cannot run inside a transaction block, and {how}: it will fail"),
        format!("-- in a migration file of its own, with your runner's no-transaction marker:\n-- migrate:no-transaction\n{};", i.sql),
    )]
}
