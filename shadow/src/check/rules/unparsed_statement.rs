//! Rule `unparsed-statement`: PostgreSQL's grammar rejects the statement
//!
//! The statement does not parse with PostgreSQL's own parser (pg_query), so nothing about it can be
//! judged, and the server will reject it too.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "unparsed-statement",
    level: Level::Error,
    opt_in: false,
    summary: "PostgreSQL's grammar rejects the statement",
    docs: "The statement does not parse with PostgreSQL's own parser (pg_query), so nothing about it can be judged, and the server will reject it too.",
    bad: "ALTER TABLE users ADD COLUMN;",
    good: "ALTER TABLE users ADD COLUMN nickname text;",
    aliases: &[],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.class.kind != "unparsed" {
        return Vec::new();
    }
    let why = i
        .class
        .notes
        .first()
        .cloned()
        .unwrap_or_else(|| "the statement does not parse".into());
    vec![Hit::bare(why)]
}
