//! Rule `opaque-code`: DO blocks and procedure calls cannot be inspected
//!
//! duet cannot see what a DO block or CALL does (it may take any lock, rewrite or backfill). Review
//! it by hand, or move the DDL out into plain statements.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "opaque-code",
    level: Level::Info,
    opt_in: false,
    summary: "DO blocks and procedure calls cannot be inspected",
    docs: "duet cannot see what a DO block or CALL does (it may take any lock, rewrite or backfill). Review it by hand, or move the DDL out into plain statements.",
    bad: "DO $$ BEGIN EXECUTE 'ALTER TABLE users ADD COLUMN x int'; END $$;",
    good: "ALTER TABLE users ADD COLUMN x int;",
    aliases: &["strong_migrations:execute"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.class.kind != "do" && i.class.kind != "call" {
        return Vec::new();
    }
    vec![Hit::bare(
        "the effects of procedural code are not inspected: review the locks it takes by hand",
    )]
}
