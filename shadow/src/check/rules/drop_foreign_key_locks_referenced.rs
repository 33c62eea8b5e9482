//! Rule `drop-foreign-key-locks-referenced`: dropping a foreign key (or a table that has one) locks the referenced table ACCESS EXCLUSIVE too
//!
//! Dropping a foreign key removes triggers on both tables, so PostgreSQL takes ACCESS EXCLUSIVE on
//! the referencing and the referenced table: reads of the (often hot) parent table queue behind it.
//! Set a short lock_timeout and retry.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-foreign-key-locks-referenced",
    level: Level::Warning,
    opt_in: false,
    summary: "dropping a foreign key (or a table that has one) locks the referenced table ACCESS EXCLUSIVE too",
    docs: "Dropping a foreign key removes triggers on both tables, so PostgreSQL takes ACCESS EXCLUSIVE on the referencing and the referenced table: reads of the (often hot) parent table queue behind it. Set a short lock_timeout and retry.",
    bad: "CREATE TABLE users (id bigint PRIMARY KEY);
CREATE TABLE orders (id bigint, user_id bigint REFERENCES users (id));
COMMIT;
ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey;",
    good: "CREATE TABLE users (id bigint PRIMARY KEY);
CREATE TABLE orders (id bigint, user_id bigint REFERENCES users (id));
COMMIT;
ALTER TABLE orders DROP CONSTRAINT orders_id_check;",
    aliases: &["engine-facts:drop_constraint.foreign_key"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if !(i.class.has_fact("drop_constraint.foreign_key")
        || (i.class.has_fact("drop_table") && i.class.locks.len() > 1))
    {
        return Vec::new();
    }
    let others: Vec<String> = i
        .class
        .locks
        .keys()
        .filter(|k| Some(k.as_str()) != i.class.tables.first().map(String::as_str))
        .map(|k| super::ident(k))
        .collect();
    if others.is_empty() {
        return Vec::new();
    }
    vec![Hit::new(
        format!(
            "also takes ACCESS EXCLUSIVE on the referenced table {}: its readers wait too",
            others.join(", ")
        ),
        format!("SET lock_timeout = '2s';  -- retry on timeout\n{};", i.sql),
    )]
}
