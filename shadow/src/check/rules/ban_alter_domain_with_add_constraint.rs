//! Rule `ban-alter-domain-with-add-constraint`: adding a constraint to a domain checks every column of that domain
//!
//! ALTER DOMAIN … ADD CONSTRAINT validates every column in every table that uses the domain, with
//! no online alternative short of NOT VALID domains; domain constraints are hard to change later.
//! Prefer table CHECK constraints added NOT VALID.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-alter-domain-with-add-constraint",
    level: Level::Error,
    opt_in: false,
    summary: "adding a constraint to a domain checks every column of that domain",
    docs: "ALTER DOMAIN … ADD CONSTRAINT validates every column in every table that uses the domain, with no online alternative short of NOT VALID domains; domain constraints are hard to change later. Prefer table CHECK constraints added NOT VALID.",
    bad: "ALTER DOMAIN email ADD CONSTRAINT email_has_at CHECK (VALUE LIKE '%@%');",
    good: "ALTER TABLE users ADD CONSTRAINT users_email_has_at CHECK (email LIKE '%@%') NOT VALID;",
    aliases: &["squawk:ban-alter-domain-with-add-constraint"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    match i.stmt {
        Some(pg_query::protobuf::node::Node::AlterDomainStmt(d)) if d.subtype == "C" => vec![Hit::new(
            "adding a domain constraint re-checks every column of that domain under lock",
            "-- use a table CHECK constraint instead:\nALTER TABLE <table> ADD CONSTRAINT <name> CHECK (<condition>) NOT VALID;\nALTER TABLE <table> VALIDATE CONSTRAINT <name>;",
        )],
        _ => Vec::new(),
    }
}
