//! Rule `primary-key-using-nullable-index`: PRIMARY KEY USING INDEX on nullable columns scans the table under ACCESS EXCLUSIVE
//!
//! ADD PRIMARY KEY USING INDEX must make its columns NOT NULL; if they are nullable that is a full-
//! table scan under ACCESS EXCLUSIVE. Make the columns NOT NULL first with the CHECK … NOT VALID →
//! VALIDATE → SET NOT NULL pattern.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "primary-key-using-nullable-index",
    level: Level::Warning,
    opt_in: false,
    summary: "PRIMARY KEY USING INDEX on nullable columns scans the table under ACCESS EXCLUSIVE",
    docs: "ADD PRIMARY KEY USING INDEX must make its columns NOT NULL; if they are nullable that is a full-table scan under ACCESS EXCLUSIVE. Make the columns NOT NULL first with the CHECK … NOT VALID → VALIDATE → SET NOT NULL pattern.",
    bad: "CREATE TABLE t (id bigint);
CREATE UNIQUE INDEX t_id_idx ON t (id);
COMMIT;
ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_id_idx;",
    good: "CREATE TABLE t (id bigint NOT NULL);
CREATE UNIQUE INDEX t_id_idx ON t (id);
COMMIT;
ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_id_idx;",
    aliases: &["eugene:W14"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !(i.class.has_fact("add_primary_key.using_index_nullable")) {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(format!("the index columns of {t} are nullable: the primary key scans the table under ACCESS EXCLUSIVE"), format!("-- first: CHECK (col IS NOT NULL) NOT VALID, VALIDATE, SET NOT NULL for each column; then:\n{};", i.sql))]
}
