//! Rule `adding-field-with-default`: a new column whose values are computed per row rewrites the whole table
//!
//! Adding a column with a volatile default (random(), gen_random_uuid(), clock_timestamp(), an
//! unknown function), a serial or identity column, or a stored generated column makes PostgreSQL
//! compute a value for every row: the table and all its indexes are rewritten under ACCESS
//! EXCLUSIVE, blocking reads and writes for the whole rewrite. Before PostgreSQL 11 any non-null
//! default does this. Add the column without the default, set the default for new rows, and
//! backfill existing rows in batches.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "adding-field-with-default",
    level: Level::Error,
    opt_in: false,
    summary: "a new column whose values are computed per row rewrites the whole table",
    docs: "Adding a column with a volatile default (random(), gen_random_uuid(), clock_timestamp(), an unknown function), a serial or identity column, or a stored generated column makes PostgreSQL compute a value for every row: the table and all its indexes are rewritten under ACCESS EXCLUSIVE, blocking reads and writes for the whole rewrite. Before PostgreSQL 11 any non-null default does this. Add the column without the default, set the default for new rows, and backfill existing rows in batches.",
    bad: "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();",
    good: "ALTER TABLE users ADD COLUMN token uuid;
ALTER TABLE users ALTER COLUMN token SET DEFAULT gen_random_uuid();",
    aliases: &["squawk:adding-field-with-default", "eugene:E11", "strong_migrations:add_column_default_callable", "strong_migrations:add_column_auto_incrementing", "strong_migrations:add_column_generated_stored"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    const IDS: [&str; 4] = [
        "add_column.volatile_default",
        "add_column.default_before_11",
        "add_column.serial_or_identity",
        "add_column.generated_stored",
    ];
    if i.on_fresh_table() || !IDS.iter().any(|f| i.class.has_fact(f)) {
        return Vec::new();
    }
    let table = super::ident(i.table());
    syntax::new_columns(i.stmt)
        .into_iter()
        .map(|(_, col)| {
            let ty = col
                .type_name
                .as_ref()
                .map(|t| crate::check::ast::ColumnType::from_type_name(t).display())
                .unwrap_or_else(|| "<type>".into());
            let ty = match ty.as_str() {
                "serial" | "serial4" => "integer".to_string(),
                "bigserial" | "serial8" => "bigint".to_string(),
                "smallserial" | "serial2" => "smallint".to_string(),
                _ => ty,
            };
            let c = super::ident(&col.colname);
            Hit::new(
                format!("adding {c} computes a value for every row: {table} and its indexes are rewritten under ACCESS EXCLUSIVE"),
                format!(
                    "ALTER TABLE {table} ADD COLUMN {c} {ty};\nALTER TABLE {table} ALTER COLUMN {c} SET DEFAULT <expression>;\n-- backfill existing rows in batches, outside the DDL transaction:\nUPDATE {table} SET {c} = <expression> WHERE {c} IS NULL AND <key range>;\n-- or run it through duet's shadow migration"
                ),
            )
        })
        .collect()
}
