//! Rule `combine-alter-table`: several ALTER TABLEs on the same table where one would do
//!
//! Each ALTER TABLE takes its lock and may scan or rewrite separately; subcommands combined in one
//! statement share one lock acquisition and one pass over the table.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "combine-alter-table",
    level: Level::Info,
    opt_in: false,
    summary: "several ALTER TABLEs on the same table where one would do",
    docs: "Each ALTER TABLE takes its lock and may scan or rewrite separately; subcommands combined in one statement share one lock acquisition and one pass over the table.",
    bad: "ALTER TABLE users ADD COLUMN a int;
ALTER TABLE users ADD COLUMN b int;",
    good: "ALTER TABLE users ADD COLUMN a int, ADD COLUMN b int;",
    aliases: &["eugene:W12"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    let Some(target) = syntax::alter_target(i.stmt) else {
        return Vec::new();
    };
    if !i.tx.in_transaction || i.on_fresh_table() || !i.tx.altered_tables.contains(&target) {
        return Vec::new();
    }
    vec![Hit::new(format!("{} was already altered in this transaction: combine the subcommands into one ALTER TABLE", super::ident(&target)), format!("ALTER TABLE {} <first change>, <second change>;", super::ident(&target)))]
}
