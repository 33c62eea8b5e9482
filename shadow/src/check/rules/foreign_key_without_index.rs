//! Rule `foreign-key-without-index`: a foreign key whose referencing columns have no index
//!
//! Without an index on the referencing columns, every DELETE or key UPDATE on the referenced table
//! scans the referencing table (under a lock), and joins are slow. Create the index CONCURRENTLY.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "foreign-key-without-index",
    level: Level::Info,
    opt_in: false,
    summary: "a foreign key whose referencing columns have no index",
    docs: "Without an index on the referencing columns, every DELETE or key UPDATE on the referenced table scans the referencing table (under a lock), and joins are slow. Create the index CONCURRENTLY.",
    bad: "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint);
COMMIT;
ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
    good: "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint);
CREATE INDEX orders_user_id_idx ON orders (user_id);
COMMIT;
ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
    aliases: &["eugene:E15"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    let Some(table) = syntax::alter_target(i.stmt) else {
        return Vec::new();
    };
    let Some(model) = i.schema.table(&table) else {
        return Vec::new();
    };
    let _ = model;
    syntax::added_constraints(i.stmt)
        .into_iter()
        .filter(|c| c.contype() == pg_query::protobuf::ConstrType::ConstrForeign)
        .filter_map(|c| {
            let cols = crate::check::ast::strings(&c.fk_attrs);
            let first = cols.first()?.clone();
            let indexed = i.schema.indexes_of(&table).any(|k| i.schema.indexes.get(k).is_some_and(|ix| ix.columns.first() == Some(&first)));
            if indexed {
                return None;
            }
            let t = super::ident(&table);
            let list = cols.iter().map(|c| super::ident(c)).collect::<Vec<_>>().join(", ");
            Some(Hit::new(
                format!("no index on {t} ({list}): deletes on the referenced table will scan {t}"),
                format!("-- outside a transaction block:\nCREATE INDEX CONCURRENTLY {}_{}_idx ON {t} ({list});", table.rsplit('.').next().unwrap_or(&table), cols.join("_")),
            ))
        })
        .collect()
}
