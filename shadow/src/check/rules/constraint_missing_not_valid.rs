//! Rule `constraint-missing-not-valid`: a new CHECK constraint is validated under ACCESS EXCLUSIVE
//!
//! ADD CONSTRAINT … CHECK takes ACCESS EXCLUSIVE and evaluates the check for every row while
//! holding it: reads and writes wait for the scan. Add it NOT VALID (brief lock; new writes are
//! checked), then VALIDATE CONSTRAINT in a separate transaction, which scans under SHARE UPDATE
//! EXCLUSIVE and blocks nobody.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "constraint-missing-not-valid",
    level: Level::Error,
    opt_in: false,
    summary: "a new CHECK constraint is validated under ACCESS EXCLUSIVE",
    docs: "ADD CONSTRAINT … CHECK takes ACCESS EXCLUSIVE and evaluates the check for every row while holding it: reads and writes wait for the scan. Add it NOT VALID (brief lock; new writes are checked), then VALIDATE CONSTRAINT in a separate transaction, which scans under SHARE UPDATE EXCLUSIVE and blocks nobody.",
    bad: "ALTER TABLE orders ADD CONSTRAINT orders_amount_positive CHECK (amount > 0);",
    good: "ALTER TABLE orders ADD CONSTRAINT orders_amount_positive CHECK (amount > 0) NOT VALID;
COMMIT;
ALTER TABLE orders VALIDATE CONSTRAINT orders_amount_positive;",
    aliases: &["squawk:constraint-missing-not-valid", "eugene:E1", "strong_migrations:add_check_constraint"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !i.class.has_fact("add_check") {
        return Vec::new();
    }
    let table = super::ident(i.table());
    syntax::added_constraints(i.stmt)
        .into_iter()
        .filter(|c| c.contype() == pg_query::protobuf::ConstrType::ConstrCheck && !c.skip_validation)
        .map(|c| {
            let name = if c.conname.is_empty() { "<constraint>".to_string() } else { super::ident(&c.conname) };
            Hit::new(
                format!("the CHECK is evaluated for every row of {table} while ACCESS EXCLUSIVE blocks reads and writes"),
                format!("{} NOT VALID;\n-- in a separate transaction (reads and writes continue):\nALTER TABLE {table} VALIDATE CONSTRAINT {name};", i.sql),
            )
        })
        .collect()
}
