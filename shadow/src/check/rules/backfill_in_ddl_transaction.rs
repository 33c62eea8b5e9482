//! Rule `backfill-in-ddl-transaction`: a data change runs in the same transaction as DDL, so the DDL locks are held for the whole backfill
//!
//! Locks are held until the transaction ends. An UPDATE/DELETE/INSERT … SELECT that runs after DDL
//! in the same transaction keeps the DDL's lock (often ACCESS EXCLUSIVE) for as long as the
//! backfill takes. Commit the DDL first and backfill in batches in separate transactions.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "backfill-in-ddl-transaction",
    level: Level::Warning,
    opt_in: false,
    summary: "a data change runs in the same transaction as DDL, so the DDL locks are held for the whole backfill",
    docs: "Locks are held until the transaction ends. An UPDATE/DELETE/INSERT … SELECT that runs after DDL in the same transaction keeps the DDL's lock (often ACCESS EXCLUSIVE) for as long as the backfill takes. Commit the DDL first and backfill in batches in separate transactions.",
    bad: "ALTER TABLE users ADD COLUMN plan text;
UPDATE users SET plan = 'free';",
    good: "ALTER TABLE users ADD COLUMN plan text;
COMMIT;
-- separately, in batches:
-- UPDATE users SET plan = 'free' WHERE id BETWEEN 1 AND 10000;",
    aliases: &["strong_migrations:backfilling"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    let is_dml = matches!(i.class.kind.as_str(), "update" | "delete" | "merge")
        || (i.class.kind == "insert"
            && matches!(i.stmt, Some(pg_query::protobuf::node::Node::InsertStmt(s)) if s.select_stmt.as_ref().is_some_and(|q| matches!(q.node.as_ref(), Some(pg_query::protobuf::node::Node::SelectStmt(sel)) if sel.values_lists.is_empty()))));
    if !is_dml || !i.tx.ddl_in_transaction || i.on_fresh_table() {
        return Vec::new();
    }
    let held = i.tx.strongest_lock.map(|l| l.name()).unwrap_or("DDL");
    vec![Hit::new(
          format!("this data change runs after DDL in the same transaction: the {held} lock stays held until the backfill commits"),
          "COMMIT;  -- end the DDL transaction first
    -- then backfill in batches, each in its own short transaction:
    -- UPDATE … WHERE <key> BETWEEN <lo> AND <hi>;".to_string(),
      )]
}
