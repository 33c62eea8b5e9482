//! Rule `prefer-identity`: serial columns: prefer identity columns
//!
//! serial creates a separately owned sequence with loose permissions and dump semantics; GENERATED
//! … AS IDENTITY is the standard, better-behaved form.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-identity",
    level: Level::Info,
    opt_in: false,
    summary: "serial columns: prefer identity columns",
    docs: "serial creates a separately owned sequence with loose permissions and dump semantics; GENERATED … AS IDENTITY is the standard, better-behaved form.",
    bad: "CREATE TABLE events (id bigserial PRIMARY KEY);",
    good: "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);",
    aliases: &["squawk:prefer-identity"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    syntax::new_column_types(i.stmt)
        .into_iter()
        .filter(|(_, _, ty)| ty.is_serial())
        .map(|(table, col, ty)| {
            let t = super::ident(&table);
            let c = super::ident(&col);
            let _ = &ty;
            Hit::new(
                format!("{t}.{c} uses a serial type"),
                format!("-- declare {c} as bigint GENERATED ALWAYS AS IDENTITY"),
            )
        })
        .collect()
}
