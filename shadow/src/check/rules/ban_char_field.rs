//! Rule `ban-char-field`: char(n) pads with spaces and is almost always a mistake
//!
//! char(n)/character(n) pads values with spaces, compares surprisingly and is no faster than text
//! or varchar. Use text (with a CHECK on length if needed).

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-char-field",
    level: Level::Warning,
    opt_in: false,
    summary: "char(n) pads with spaces and is almost always a mistake",
    docs: "char(n)/character(n) pads values with spaces, compares surprisingly and is no faster than text or varchar. Use text (with a CHECK on length if needed).",
    bad: "CREATE TABLE codes (code char(3));",
    good: "CREATE TABLE codes (code text CHECK (length(code) = 3));",
    aliases: &["squawk:ban-char-field"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    syntax::new_column_types(i.stmt)
        .into_iter()
        .filter(|(_, _, ty)| ty.name == "bpchar")
        .map(|(table, col, ty)| {
            let t = super::ident(&table);
            let c = super::ident(&col);
            let _ = &ty;
            Hit::new(format!("{t}.{c} is char(n): values are blank-padded to the length"), format!("ALTER TABLE {t} ALTER COLUMN {c} TYPE text;  -- or declare it text (+ CHECK (length({c}) <= n)) from the start"))
        })
        .collect()
}
