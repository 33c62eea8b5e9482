//! Rule `ban-alter-identity`: changing or dropping an identity column's generation breaks inserting clients
//!
//! ALTER COLUMN … SET GENERATED / DROP IDENTITY changes how new ids are produced under ACCESS
//! EXCLUSIVE; clients that rely on the old behaviour (or insert explicit ids) break. Treat it as a
//! contract step.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-alter-identity",
    level: Level::Warning,
    opt_in: false,
    summary: "changing or dropping an identity column's generation breaks inserting clients",
    docs: "ALTER COLUMN … SET GENERATED / DROP IDENTITY changes how new ids are produced under ACCESS EXCLUSIVE; clients that rely on the old behaviour (or insert explicit ids) break. Treat it as a contract step.",
    bad: "ALTER TABLE users ALTER COLUMN id DROP IDENTITY;",
    good: "-- keep the identity; retire it in a contract migration once no client relies on it
SELECT 1;",
    aliases: &["squawk:ban-alter-identity"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    use pg_query::protobuf::AlterTableType as At;
    syntax::alter_cmds(i.stmt)
        .into_iter()
        .filter(|c| matches!(c.subtype(), At::AtSetIdentity | At::AtDropIdentity))
        .map(|c| {
            Hit::bare(format!(
                "changing the identity of {}.{} changes how new rows get ids",
                super::ident(i.table()),
                super::ident(&c.name)
            ))
        })
        .collect()
}
