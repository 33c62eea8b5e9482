//! Rule `ban-duplicate-column-assignments`: the same column is assigned or declared twice
//!
//! UPDATE … SET a = 1, a = 2, an INSERT column list naming a column twice, or a table declaring a
//! column twice fail at run time ("multiple assignments to same column").

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-duplicate-column-assignments",
    level: Level::Error,
    opt_in: false,
    summary: "the same column is assigned or declared twice",
    docs: "UPDATE … SET a = 1, a = 2, an INSERT column list naming a column twice, or a table declaring a column twice fail at run time (\"multiple assignments to same column\").",
    bad: "UPDATE users SET plan = 'free', plan = 'pro';",
    good: "UPDATE users SET plan = 'pro';",
    aliases: &["squawk:ban-duplicate-column-assignments"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    use pg_query::protobuf::node::Node as N;
    let mut names: Vec<String> = Vec::new();
    match i.stmt {
        Some(N::UpdateStmt(u)) => {
            for t in &u.target_list {
                if let Some(N::ResTarget(r)) = t.node.as_ref() {
                    names.push(r.name.clone());
                }
            }
        }
        Some(N::InsertStmt(s)) => {
            for t in &s.cols {
                if let Some(N::ResTarget(r)) = t.node.as_ref() {
                    names.push(r.name.clone());
                }
            }
        }
        Some(N::CreateStmt(_)) | Some(N::AlterTableStmt(_)) => {
            names = syntax::new_columns(i.stmt)
                .into_iter()
                .map(|(_, c)| c.colname.clone())
                .collect();
        }
        _ => {}
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut dup = std::collections::BTreeSet::new();
    for n in names.into_iter().filter(|n| !n.is_empty()) {
        if !seen.insert(n.clone()) {
            dup.insert(n);
        }
    }
    dup.into_iter()
        .map(|d| {
            Hit::bare(format!(
                "column {} is assigned or declared more than once: the statement fails",
                super::ident(&d)
            ))
        })
        .collect()
}
