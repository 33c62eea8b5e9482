//! Rule `adding-serial-primary-key-field`: ADD PRIMARY KEY builds its index under ACCESS EXCLUSIVE
//!
//! ALTER TABLE … ADD PRIMARY KEY builds a unique index while holding ACCESS EXCLUSIVE: reads and
//! writes wait for the whole build (and for a NOT NULL scan of nullable columns). Build the unique
//! index CONCURRENTLY first, then attach it with ADD CONSTRAINT … PRIMARY KEY USING INDEX, which
//! only takes the lock briefly. Make the columns NOT NULL first (see adding-not-nullable-field).

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "adding-serial-primary-key-field",
    level: Level::Error,
    opt_in: false,
    summary: "ADD PRIMARY KEY builds its index under ACCESS EXCLUSIVE",
    docs: "ALTER TABLE … ADD PRIMARY KEY builds a unique index while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build (and for a NOT NULL scan of nullable columns). Build the unique index CONCURRENTLY first, then attach it with ADD CONSTRAINT … PRIMARY KEY USING INDEX, which only takes the lock briefly. Make the columns NOT NULL first (see adding-not-nullable-field).",
    bad: "ALTER TABLE events ADD PRIMARY KEY (id);",
    good: "-- migrate:no-transaction
CREATE UNIQUE INDEX CONCURRENTLY events_pkey_idx ON events (id);
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_pkey_idx;",
    aliases: &["squawk:adding-serial-primary-key-field", "eugene:E7"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !i.class.has_fact("add_unique") {
        return Vec::new();
    }
    let table = i.table().to_string();
    let t = super::ident(&table);
    let short = table.rsplit('.').next().unwrap_or(&table).to_string();
    syntax::added_constraints(i.stmt)
        .into_iter()
        .filter(|c| c.contype() == pg_query::protobuf::ConstrType::ConstrPrimary && c.indexname.is_empty())
        .map(|c| {
            let cols = crate::check::ast::strings(&c.keys).iter().map(|k| super::ident(k)).collect::<Vec<_>>().join(", ");
            let name = if c.conname.is_empty() { format!("{short}_pkey") } else { c.conname.clone() };
            Hit::new(
                format!("the primary key's index on {t} is built while ACCESS EXCLUSIVE blocks reads and writes"),
                format!("-- outside a transaction block:\nCREATE UNIQUE INDEX CONCURRENTLY {name}_idx ON {t} ({cols});\nALTER TABLE {t} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {name}_idx;", super::ident(&name)),
            )
        })
        .collect()
}
