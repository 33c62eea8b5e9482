//! Rule `ban-create-domain-with-constraint`: domain CHECK constraints are hard to change online
//!
//! A CHECK on a domain applies to every column of that type; changing it later re-checks them all
//! under lock. Keep constraints on tables, where NOT VALID + VALIDATE works.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-create-domain-with-constraint",
    level: Level::Error,
    opt_in: false,
    summary: "domain CHECK constraints are hard to change online",
    docs: "A CHECK on a domain applies to every column of that type; changing it later re-checks them all under lock. Keep constraints on tables, where NOT VALID + VALIDATE works.",
    bad: "CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);",
    good: "CREATE DOMAIN positive_int AS integer;",
    aliases: &["squawk:ban-create-domain-with-constraint"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    match i.stmt {
        Some(pg_query::protobuf::node::Node::CreateDomainStmt(d))
            if d.constraints.iter().any(|c| matches!(c.node.as_ref(), Some(pg_query::protobuf::node::Node::Constraint(k)) if k.contype() == pg_query::protobuf::ConstrType::ConstrCheck)) =>
        {
            vec![Hit::new("the domain has a CHECK constraint, which is hard to change online later", "-- put the CHECK on the table columns instead:\nALTER TABLE <table> ADD CONSTRAINT <name> CHECK (<condition>) NOT VALID;")]
        }
        _ => Vec::new(),
    }
}
