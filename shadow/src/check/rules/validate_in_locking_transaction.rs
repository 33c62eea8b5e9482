//! Rule `validate-in-locking-transaction`: VALIDATE CONSTRAINT runs in a transaction that already holds a blocking lock
//!
//! VALIDATE CONSTRAINT is the non-blocking half of NOT VALID + VALIDATE only in a transaction of
//! its own: after an ADD CONSTRAINT (or other DDL) in the same transaction, the earlier lock is
//! held for the whole validation scan.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "validate-in-locking-transaction",
    level: Level::Warning,
    opt_in: false,
    summary: "VALIDATE CONSTRAINT runs in a transaction that already holds a blocking lock",
    docs: "VALIDATE CONSTRAINT is the non-blocking half of NOT VALID + VALIDATE only in a transaction of its own: after an ADD CONSTRAINT (or other DDL) in the same transaction, the earlier lock is held for the whole validation scan.",
    bad: "ALTER TABLE orders ADD CONSTRAINT orders_amount_positive CHECK (amount > 0) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_amount_positive;",
    good: "ALTER TABLE orders ADD CONSTRAINT orders_amount_positive CHECK (amount > 0) NOT VALID;
COMMIT;
ALTER TABLE orders VALIDATE CONSTRAINT orders_amount_positive;",
    aliases: &["strong_migrations:validate_in_transaction"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    let validating = i.class.has_fact("validate_constraint.check")
        || i.class.has_fact("validate_constraint.foreign_key");
    let held = i.tx.strongest_lock.filter(|l| l.blocks_writes());
    match held {
        Some(lock) if validating && i.tx.in_transaction => vec![Hit::new(
            format!("this transaction already holds {lock}: the validation scan runs while it blocks others"),
            format!("COMMIT;  -- validate in a transaction of its own\n{};", i.sql),
        )],
        _ => Vec::new(),
    }
}
