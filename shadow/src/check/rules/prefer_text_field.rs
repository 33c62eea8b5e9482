//! Rule `prefer-text-field`: varchar(n): prefer text with a CHECK on length
//!
//! Changing a varchar(n) limit later needs ACCESS EXCLUSIVE (and a rewrite when shrinking); a CHECK
//! (length(c) <= n) on a text column can be replaced online with NOT VALID + VALIDATE.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-text-field",
    level: Level::Info,
    opt_in: false,
    summary: "varchar(n): prefer text with a CHECK on length",
    docs: "Changing a varchar(n) limit later needs ACCESS EXCLUSIVE (and a rewrite when shrinking); a CHECK (length(c) <= n) on a text column can be replaced online with NOT VALID + VALIDATE.",
    bad: "CREATE TABLE users (name varchar(100));",
    good: "CREATE TABLE users (name text CHECK (length(name) <= 100));",
    aliases: &["squawk:prefer-text-field"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    syntax::new_column_types(i.stmt)
        .into_iter()
        .filter(|(_, _, ty)| ty.name == "varchar" && !ty.mods.is_empty())
        .map(|(table, col, ty)| {
            let t = super::ident(&table);
            let c = super::ident(&col);
            let _ = &ty;
            Hit::new(
                format!(
                    "{t}.{c} is {}: changing the limit later needs ACCESS EXCLUSIVE",
                    ty.display()
                ),
                format!("-- declare {c} text with CHECK (length({c}) <= n)"),
            )
        })
        .collect()
}
