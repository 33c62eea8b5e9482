//! Rule `adding-required-field`: a NOT NULL column without a default fails on a populated table and breaks old INSERTs
//!
//! ADD COLUMN … NOT NULL without a default cannot succeed on a table with rows (existing rows would
//! be NULL), and once it exists every INSERT from the running application that does not name the
//! column fails. Add the column nullable (or with a constant default), backfill, then enforce NOT
//! NULL with the CHECK … NOT VALID pattern.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "adding-required-field",
    level: Level::Error,
    opt_in: false,
    summary: "a NOT NULL column without a default fails on a populated table and breaks old INSERTs",
    docs: "ADD COLUMN … NOT NULL without a default cannot succeed on a table with rows (existing rows would be NULL), and once it exists every INSERT from the running application that does not name the column fails. Add the column nullable (or with a constant default), backfill, then enforce NOT NULL with the CHECK … NOT VALID pattern.",
    bad: "ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;",
    good: "ALTER TABLE users ADD COLUMN tenant_id bigint;
-- backfill, then add CHECK (tenant_id IS NOT NULL) NOT VALID, VALIDATE, SET NOT NULL",
    aliases: &["squawk:adding-required-field"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !i.class.has_fact("add_column.not_null_without_default") {
        return Vec::new();
    }
    let t = super::ident(i.table());
    syntax::new_columns(i.stmt)
        .into_iter()
        .filter(|(_, c)| c.is_not_null || crate::check::ast::column_constraints(c).any(|k| k.contype() == pg_query::protobuf::ConstrType::ConstrNotnull))
        .map(|(_, col)| {
            let c = super::ident(&col.colname);
            Hit::new(
                format!("{c} is NOT NULL without a default: the ALTER fails if {t} has rows, and old INSERTs that omit {c} fail"),
                format!("ALTER TABLE {t} ADD COLUMN {c} <type>;  -- nullable, or NOT NULL DEFAULT <constant>\n-- backfill in batches, then:\nALTER TABLE {t} ADD CONSTRAINT {}_not_null CHECK ({c} IS NOT NULL) NOT VALID;\nALTER TABLE {t} VALIDATE CONSTRAINT {}_not_null;\nALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;", col.colname, col.colname),
            )
        })
        .collect()
}
