//! Rule `ban-exclusion-constraint`: ADD EXCLUDE builds its index under ACCESS EXCLUSIVE and cannot be NOT VALID
//!
//! An exclusion constraint is checked by building an index while ACCESS EXCLUSIVE is held, and
//! unlike CHECK or FOREIGN KEY it cannot be added NOT VALID. There is no online way on a populated
//! table; create it with the table, or migrate to a new table (duet's shadow table migration).

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "ban-exclusion-constraint",
    level: Level::Error,
    opt_in: false,
    summary: "ADD EXCLUDE builds its index under ACCESS EXCLUSIVE and cannot be NOT VALID",
    docs: "An exclusion constraint is checked by building an index while ACCESS EXCLUSIVE is held, and unlike CHECK or FOREIGN KEY it cannot be added NOT VALID. There is no online way on a populated table; create it with the table, or migrate to a new table (duet's shadow table migration).",
    bad: "ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&);",
    good: "CREATE TABLE bookings2 (room int, during tstzrange, EXCLUDE USING gist (room WITH =, during WITH &&));",
    aliases: &["eugene:E8", "strong_migrations:add_exclusion_constraint"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if i.on_fresh_table() || !(i.class.has_fact("add_exclusion")) {
        return Vec::new();
    }
    let t = super::ident(i.table());
    let _ = &t;
    vec![Hit::new(format!("the exclusion constraint on {t} is built under ACCESS EXCLUSIVE and cannot be NOT VALID"), "-- no online form exists: create the constraint on a new table and move the data with duet's shadow-table migration".to_string())]
}
