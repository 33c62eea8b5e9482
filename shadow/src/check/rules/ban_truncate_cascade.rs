//! Rule `ban-truncate-cascade`: TRUNCATE … CASCADE also empties every table with a foreign key to it
//!
//! CASCADE truncates every table that references the target, recursively, under ACCESS EXCLUSIVE:
//! far more data than intended may disappear.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-truncate-cascade",
    level: Level::Error,
    opt_in: false,
    summary: "TRUNCATE … CASCADE also empties every table with a foreign key to it",
    docs: "CASCADE truncates every table that references the target, recursively, under ACCESS EXCLUSIVE: far more data than intended may disappear.",
    bad: "TRUNCATE users CASCADE;",
    good: "TRUNCATE sessions;",
    aliases: &["squawk:ban-truncate-cascade"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    match i.stmt {
        Some(pg_query::protobuf::node::Node::TruncateStmt(t))
            if t.behavior() == pg_query::protobuf::DropBehavior::DropCascade =>
        {
            vec![Hit::new(
                "CASCADE also truncates every table with a foreign key to this one",
                "-- name every table explicitly:\nTRUNCATE <table>, <referencing table>;",
            )]
        }
        _ => Vec::new(),
    }
}
