//! Rule `disallowed-unique-constraint`: ADD UNIQUE builds its index under ACCESS EXCLUSIVE
//!
//! ADD CONSTRAINT … UNIQUE (and an inline UNIQUE on ADD COLUMN) builds a unique index while holding
//! ACCESS EXCLUSIVE, blocking reads and writes for the whole build. Build the unique index
//! CONCURRENTLY, then attach it with ADD CONSTRAINT … UNIQUE USING INDEX (brief lock).

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "disallowed-unique-constraint",
    level: Level::Error,
    opt_in: false,
    summary: "ADD UNIQUE builds its index under ACCESS EXCLUSIVE",
    docs: "ADD CONSTRAINT … UNIQUE (and an inline UNIQUE on ADD COLUMN) builds a unique index while holding ACCESS EXCLUSIVE, blocking reads and writes for the whole build. Build the unique index CONCURRENTLY, then attach it with ADD CONSTRAINT … UNIQUE USING INDEX (brief lock).",
    bad: "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);",
    good: "-- migrate:no-transaction
CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;",
    aliases: &["squawk:disallowed-unique-constraint", "eugene:E7", "strong_migrations:add_unique_constraint"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table()
        || !(i.class.has_fact("add_unique") || i.class.has_fact("add_column.unique"))
    {
        return Vec::new();
    }
    let table = i.table().to_string();
    let t = super::ident(&table);
    let mut hits: Vec<Hit> = syntax::added_constraints(i.stmt)
        .into_iter()
        .filter(|c| c.contype() == pg_query::protobuf::ConstrType::ConstrUnique && c.indexname.is_empty())
        .map(|c| {
            let cols = crate::check::ast::strings(&c.keys).iter().map(|k| super::ident(k)).collect::<Vec<_>>().join(", ");
            let name = if c.conname.is_empty() { format!("{}_key", table.rsplit('.').next().unwrap_or(&table)) } else { c.conname.clone() };
            let n = super::ident(&name);
            Hit::new(
                format!("the unique index on {t} is built while ACCESS EXCLUSIVE blocks reads and writes"),
                format!("-- outside a transaction block:\nCREATE UNIQUE INDEX CONCURRENTLY {n} ON {t} ({cols});\nALTER TABLE {t} ADD CONSTRAINT {n} UNIQUE USING INDEX {n};"),
            )
        })
        .collect();
    if i.class.has_fact("add_column.unique") {
        hits.push(Hit::new(
            format!("an inline UNIQUE/PRIMARY KEY on the new column builds an index on {t} under ACCESS EXCLUSIVE"),
            format!("ALTER TABLE {t} ADD COLUMN <column> <type>;\n-- outside a transaction block:\nCREATE UNIQUE INDEX CONCURRENTLY <name> ON {t} (<column>);\nALTER TABLE {t} ADD CONSTRAINT <name> UNIQUE USING INDEX <name>;"),
        ));
    }
    hits
}
