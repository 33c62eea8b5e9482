//! Rule `prefer-robust-stmts`: outside a transaction, a half-applied migration cannot be re-run
//!
//! When a migration runs outside a transaction (e.g. for CONCURRENTLY) and fails halfway, re-
//! running it fails on the objects it already created. Use IF NOT EXISTS / IF EXISTS so it can be
//! retried (and drop INVALID indexes left by a failed CONCURRENTLY build).

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-robust-stmts",
    level: Level::Info,
    opt_in: false,
    summary: "outside a transaction, a half-applied migration cannot be re-run",
    docs: "When a migration runs outside a transaction (e.g. for CONCURRENTLY) and fails halfway, re-running it fails on the objects it already created. Use IF NOT EXISTS / IF EXISTS so it can be retried (and drop INVALID indexes left by a failed CONCURRENTLY build).",
    bad: "-- migrate:no-transaction
CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    good: "-- migrate:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);",
    aliases: &["squawk:prefer-robust-stmts"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    use pg_query::protobuf::node::Node as N;
    if i.tx.in_transaction {
        return Vec::new();
    }
    let robust = match i.stmt {
        Some(N::IndexStmt(s)) => s.if_not_exists,
        Some(N::CreateStmt(s)) => s.if_not_exists,
        Some(N::DropStmt(s)) => s.missing_ok,
        Some(N::AlterTableStmt(_)) => syntax::alter_cmds(i.stmt).iter().all(|c| {
            use pg_query::protobuf::AlterTableType as At;
            !matches!(
                c.subtype(),
                At::AtAddColumn | At::AtDropColumn | At::AtDropConstraint
            ) || c.missing_ok
        }),
        _ => true,
    };
    if robust {
        return Vec::new();
    }
    vec![Hit::new("outside a transaction this statement cannot be re-run after a partial failure", "-- add IF NOT EXISTS / IF EXISTS (CREATE INDEX CONCURRENTLY IF NOT EXISTS …, DROP INDEX CONCURRENTLY IF EXISTS …)")]
}
