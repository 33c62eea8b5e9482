//! Rule `type-change-revalidates-checks`: a type change re-validates the column's CHECK constraints with a full scan
//!
//! Even a binary-coercible type change re-checks every CHECK constraint on the column, reading
//! every row under ACCESS EXCLUSIVE. Drop the checks, change the type, re-add them NOT VALID and
//! VALIDATE separately.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "type-change-revalidates-checks",
    level: Level::Warning,
    opt_in: false,
    summary: "a type change re-validates the column's CHECK constraints with a full scan",
    docs: "Even a binary-coercible type change re-checks every CHECK constraint on the column, reading every row under ACCESS EXCLUSIVE. Drop the checks, change the type, re-add them NOT VALID and VALIDATE separately.",
    bad: "CREATE TABLE t (name varchar(10) CHECK (name <> ''));
COMMIT;
ALTER TABLE t ALTER COLUMN name TYPE varchar(20);",
    good: "CREATE TABLE t (name varchar(10));
COMMIT;
ALTER TABLE t ALTER COLUMN name TYPE varchar(20);",
    aliases: &["strong_migrations:change_column_constraint"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !(i.class.has_fact("alter_column_type.no_rewrite_rechecks")) {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(format!("the column's CHECK constraints are re-validated against every row of {t} under ACCESS EXCLUSIVE"), format!("ALTER TABLE {t} DROP CONSTRAINT <check>;\n{};\nALTER TABLE {t} ADD CONSTRAINT <check> CHECK (<condition>) NOT VALID;\nALTER TABLE {t} VALIDATE CONSTRAINT <check>;", i.sql))]
}
