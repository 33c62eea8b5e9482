//! Rule `changing-column-type`: a type change that rewrites the table under ACCESS EXCLUSIVE
//!
//! ALTER COLUMN … TYPE to a type that is not binary-coercible (int → bigint, shrinking varchar,
//! text → varchar(n), numeric scale changes, timestamp → timestamptz unless the session TimeZone is
//! UTC on 12+) converts every row: the table and its indexes are rewritten under ACCESS EXCLUSIVE.
//! Clients may also break on the new type. Use an expand/contract migration: new column, dual
//! writes, batched backfill, switch, drop — which is what duet's shadow migration automates.
//! duet cannot see the runner's TimeZone, so timestamp → timestamptz counts as a rewrite unless
//! `session_time_zone = "UTC"` is configured; even under UTC, and for a new collation, the
//! column's indexes are rebuilt, reading the whole table under ACCESS EXCLUSIVE, which this
//! rule reports too.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "changing-column-type",
    level: Level::Error,
    opt_in: false,
    summary: "a type change that rewrites the table under ACCESS EXCLUSIVE",
    docs: "ALTER COLUMN … TYPE to a type that is not binary-coercible (int → bigint, shrinking varchar, text → varchar(n), numeric scale changes, timestamp → timestamptz unless the session TimeZone is UTC on 12+) converts every row: the table and its indexes are rewritten under ACCESS EXCLUSIVE. Clients may also break on the new type. Use an expand/contract migration: new column, dual writes, batched backfill, switch, drop — which is what duet's shadow migration automates. duet cannot see the runner's TimeZone, so timestamp → timestamptz counts as a rewrite unless `session_time_zone = \"UTC\"` is configured; even under UTC, and for a new collation, the column's indexes are rebuilt, reading the whole table under ACCESS EXCLUSIVE, which this rule reports too.",
    bad: "ALTER TABLE users ALTER COLUMN id TYPE bigint;",
    good: "CREATE TABLE t (name varchar(10));
COMMIT;
ALTER TABLE t ALTER COLUMN name TYPE varchar(20);",
    aliases: &["squawk:changing-column-type", "eugene:E5", "strong_migrations:change_column"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    let rebuild = i.class.has_fact("alter_column_type.rebuilds_indexes");
    if i.on_fresh_table() || !(i.class.has_fact("alter_column_type.rewrite") || rebuild) {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let what = if i.class.has_fact("alter_column_type.rewrite") {
        "rewrites {t} and its indexes"
    } else {
        "rebuilds its indexes, reading all of {t},"
    }
    .replace("{t}", &t);
    syntax::alter_cmds(i.stmt)
        .into_iter()
        .filter(|c| c.subtype() == pg_query::protobuf::AlterTableType::AtAlterColumnType)
        .map(|c| {
            let col = super::ident(&c.name);
            Hit::new(
                format!("changing the type of {t}.{col} {what} under ACCESS EXCLUSIVE (reads and writes blocked throughout)"),
                format!("-- run it through duet's shadow migration (new column, dual writes, batched copy, atomic flip), or by hand:\nALTER TABLE {t} ADD COLUMN {}_new <new type>;\n-- dual-write (trigger or application), backfill in batches, switch readers, then drop {col}", c.name),
            )
        })
        .collect()
}
