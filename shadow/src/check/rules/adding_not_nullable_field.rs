//! Rule `adding-not-nullable-field`: SET NOT NULL scans the whole table under ACCESS EXCLUSIVE
//!
//! ALTER COLUMN … SET NOT NULL checks every row while holding ACCESS EXCLUSIVE. Since PostgreSQL 12
//! the scan is skipped when a valid CHECK (col IS NOT NULL) exists, so: add that check NOT VALID,
//! validate it (no blocking), set NOT NULL (instant), and drop the check. On PostgreSQL 18, ADD
//! CONSTRAINT … NOT NULL … NOT VALID followed by VALIDATE does the same directly.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "adding-not-nullable-field",
    level: Level::Error,
    opt_in: false,
    summary: "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE",
    docs: "ALTER COLUMN … SET NOT NULL checks every row while holding ACCESS EXCLUSIVE. Since PostgreSQL 12 the scan is skipped when a valid CHECK (col IS NOT NULL) exists, so: add that check NOT VALID, validate it (no blocking), set NOT NULL (instant), and drop the check. On PostgreSQL 18, ADD CONSTRAINT … NOT NULL … NOT VALID followed by VALIDATE does the same directly.",
    bad: "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
    good: "ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;
COMMIT;
ALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
ALTER TABLE users DROP CONSTRAINT users_email_not_null;",
    aliases: &["squawk:adding-not-nullable-field", "eugene:E2", "strong_migrations:change_column_null"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !i.class.has_fact("set_not_null") {
        return Vec::new();
    }
    let table = i.table().to_string();
    let t = super::ident(&table);
    let mut cols: Vec<String> = syntax::alter_cmds(i.stmt)
        .into_iter()
        .filter(|c| c.subtype() == pg_query::protobuf::AlterTableType::AtSetNotNull)
        .map(|c| c.name.clone())
        .collect();
    for con in syntax::added_constraints(i.stmt) {
        if con.contype() == pg_query::protobuf::ConstrType::ConstrNotnull {
            cols.extend(crate::check::ast::strings(&con.keys));
        }
    }
    cols.into_iter()
        .map(|col| {
            let c = super::ident(&col);
            let check = super::ident(&format!("{}_{}_not_null", table.rsplit('.').next().unwrap_or(&table), col));
            let suggestion = if i.version.at_least(18) {
                format!("ALTER TABLE {t} ADD CONSTRAINT {check} NOT NULL {c} NOT VALID;\n-- in a separate transaction:\nALTER TABLE {t} VALIDATE CONSTRAINT {check};")
            } else if i.version.at_least(12) {
                format!("ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID;\n-- in a separate transaction:\nALTER TABLE {t} VALIDATE CONSTRAINT {check};\nALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;\nALTER TABLE {t} DROP CONSTRAINT {check};")
            } else {
                format!("-- PostgreSQL {} cannot skip the scan: keep CHECK ({c} IS NOT NULL) NOT VALID + VALIDATE instead of SET NOT NULL\nALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID;\nALTER TABLE {t} VALIDATE CONSTRAINT {check};", i.version)
            };
            Hit::new(format!("SET NOT NULL on {t}.{c} reads every row while ACCESS EXCLUSIVE blocks reads and writes"), suggestion)
        })
        .collect()
}
