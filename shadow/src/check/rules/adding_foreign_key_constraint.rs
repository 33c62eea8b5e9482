//! Rule `adding-foreign-key-constraint`: a validated foreign key blocks writes on both tables while every row is checked
//!
//! ADD FOREIGN KEY takes SHARE ROW EXCLUSIVE on the referencing and the referenced table and checks
//! every existing row while holding it: writes to both tables wait for the scan. Add the constraint
//! NOT VALID (brief lock, checks only new writes), then VALIDATE CONSTRAINT in a separate
//! transaction (SHARE UPDATE EXCLUSIVE: reads and writes continue).
//! ADD COLUMN … DEFAULT … REFERENCES is validated the same way, but under ACCESS EXCLUSIVE: add
//! the column without REFERENCES, then the foreign key NOT VALID, then VALIDATE.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The statement with the constraint named, so that the VALIDATE step can refer to it.
fn with_name(sql: &str, c: &pg_query::protobuf::Constraint, name: &str) -> String {
    if !c.conname.is_empty() {
        return sql.to_string();
    }
    let upper = sql.to_ascii_uppercase();
    match upper
        .find("ADD FOREIGN KEY")
        .or_else(|| upper.find("ADD  FOREIGN KEY"))
    {
        Some(pos) => format!(
            "{}ADD CONSTRAINT {} {}",
            &sql[..pos],
            super::ident(name),
            &sql[pos + 4..]
        ),
        None => sql.to_string(),
    }
}

/// The rule.
pub const RULE: Rule = Rule {
    id: "adding-foreign-key-constraint",
    level: Level::Error,
    opt_in: false,
    summary: "a validated foreign key blocks writes on both tables while every row is checked",
    docs: "ADD FOREIGN KEY takes SHARE ROW EXCLUSIVE on the referencing and the referenced table and checks every existing row while holding it: writes to both tables wait for the scan. Add the constraint NOT VALID (brief lock, checks only new writes), then VALIDATE CONSTRAINT in a separate transaction (SHARE UPDATE EXCLUSIVE: reads and writes continue). ADD COLUMN … DEFAULT … REFERENCES is validated the same way, but under ACCESS EXCLUSIVE: add the column without REFERENCES, then the foreign key NOT VALID, then VALIDATE.",
    bad: "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);",
    good: "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
COMMIT;
ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;",
    aliases: &["squawk:adding-foreign-key-constraint", "squawk:constraint-missing-not-valid", "eugene:E1", "strong_migrations:add_foreign_key"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() {
        return Vec::new();
    }
    if i.class.has_fact("add_column.references_validated") {
        let table = super::ident(i.table());
        return vec![Hit::new(
            format!("the new column has a DEFAULT, so its foreign key is checked against every row of {table} while ACCESS EXCLUSIVE blocks reads and writes"),
            format!("ALTER TABLE {table} ADD COLUMN <column> <type> DEFAULT <value>;  -- without REFERENCES
ALTER TABLE {table} ADD CONSTRAINT <name> FOREIGN KEY (<column>) REFERENCES <referenced> (<key>) NOT VALID;
-- in a separate transaction (reads and writes continue):
ALTER TABLE {table} VALIDATE CONSTRAINT <name>;"),
        )];
    }
    if !i.class.has_fact("add_foreign_key") {
        return Vec::new();
    }
    let table = super::ident(i.table());
    syntax::added_constraints(i.stmt)
        .into_iter()
        .filter(|c| c.contype() == pg_query::protobuf::ConstrType::ConstrForeign && !c.skip_validation)
        .map(|c| {
            let name = if c.conname.is_empty() { format!("{}_fkey", i.table()) } else { c.conname.clone() };
            Hit::new(
                format!("the foreign key is checked against every row of {table} while writes to both tables are blocked (SHARE ROW EXCLUSIVE)"),
                format!("{} NOT VALID;\n-- in a separate transaction (reads and writes continue):\nALTER TABLE {table} VALIDATE CONSTRAINT {};", with_name(i.sql, c, &name), super::ident(&name)),
            )
        })
        .collect()
}
