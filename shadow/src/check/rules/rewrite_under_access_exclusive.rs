//! Rule `rewrite-under-access-exclusive`: the table is rewritten under ACCESS EXCLUSIVE
//!
//! VACUUM FULL, CLUSTER, SET TABLESPACE, SET LOGGED/UNLOGGED and SET ACCESS METHOD copy the whole
//! table and rebuild its indexes while holding ACCESS EXCLUSIVE: all reads and writes wait for the
//! copy. Build a new table and switch (duet's shadow-table migration, or pg_repack; REPACK
//! CONCURRENTLY on PostgreSQL 19+).
//! ADD COLUMN of a domain type with CHECK or NOT NULL constraints rewrites the table the same
//! way (every row is checked). Setting the access method, tablespace or persistence the table
//! already has is a no-op.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "rewrite-under-access-exclusive",
    level: Level::Error,
    opt_in: false,
    summary: "the table is rewritten under ACCESS EXCLUSIVE",
    docs: "VACUUM FULL, CLUSTER, SET TABLESPACE, SET LOGGED/UNLOGGED and SET ACCESS METHOD copy the whole table and rebuild its indexes while holding ACCESS EXCLUSIVE: all reads and writes wait for the copy. Build a new table and switch (duet's shadow-table migration, or pg_repack; REPACK CONCURRENTLY on PostgreSQL 19+). ADD COLUMN of a domain type with CHECK or NOT NULL constraints rewrites the table the same way (every row is checked). Setting the access method, tablespace or persistence the table already has is a no-op.",
    bad: "VACUUM FULL users;",
    good: "VACUUM users;",
    aliases: &["eugene:E10", "squawk:prefer-repack"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table()
        || !(i.class.has_fact("table_rewrite") || i.class.has_fact("add_column.constrained_domain"))
    {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(format!("{t} is copied and its indexes rebuilt while ACCESS EXCLUSIVE blocks reads and writes"), "-- run it through duet's shadow-table migration (or pg_repack) instead of rewriting in place".to_string())]
}
