//! Rule `ban-concurrent-index-creation-in-transaction`: CONCURRENTLY cannot run inside a transaction block
//!
//! CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY and DETACH PARTITION CONCURRENTLY
//! fail with "cannot run inside a transaction block". Migration runners wrap each file in a
//! transaction unless told otherwise: put the statement in its own migration file with the runner's
//! no-transaction marker (e.g. `-- migrate:no-transaction`, dbmate `-- migrate:up
//! transaction:false`, goose `-- +goose NO TRANSACTION`, sqlx `-- no-transaction`). VACUUM has its
//! own rule, `ban-vacuum-in-transaction`.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-concurrent-index-creation-in-transaction",
    level: Level::Error,
    opt_in: false,
    summary: "CONCURRENTLY cannot run inside a transaction block",
    docs: "CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY and DETACH PARTITION CONCURRENTLY fail with \"cannot run inside a transaction block\". Migration runners wrap each file in a transaction unless told otherwise: put the statement in its own migration file with the runner's no-transaction marker (e.g. `-- migrate:no-transaction`, dbmate `-- migrate:up transaction:false`, goose `-- +goose NO TRANSACTION`, sqlx `-- no-transaction`). VACUUM has its own rule, `ban-vacuum-in-transaction`.",
    bad: "BEGIN;
CREATE INDEX CONCURRENTLY users_email_idx ON users (email);
COMMIT;",
    good: "-- migrate:no-transaction
CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    aliases: &["squawk:ban-concurrent-index-creation-in-transaction", "strong_migrations:disable_ddl_transaction"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if !i.class.no_transaction_block
        || !i.tx.in_transaction
        || super::ban_vacuum_in_transaction::is_vacuum(&i.class.kind)
    {
        return Vec::new();
    }
    let how = if i.tx.file_wrapped && i.tx.open_begin.is_none() {
        "the migration runner wraps this file in a transaction"
    } else {
        "it follows a BEGIN"
    };
    vec![Hit::new(
        format!("{} cannot run inside a transaction block, and {how}: it will fail", i.class.kind),
        format!("-- in a migration file of its own, with your runner's no-transaction marker:\n-- migrate:no-transaction\n{};", i.sql),
    )]
}
