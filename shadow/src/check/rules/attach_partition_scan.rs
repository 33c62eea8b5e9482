//! Rule `attach-partition-scan`: ATTACH PARTITION scans the partition to prove its bound
//!
//! ATTACH PARTITION reads every row of the new partition (and of a DEFAULT partition) to prove the
//! rows fit the bound, holding ACCESS EXCLUSIVE on the partition (SHARE UPDATE EXCLUSIVE on the
//! parent since PostgreSQL 12; ACCESS EXCLUSIVE before). A valid CHECK constraint that implies the
//! bound lets PostgreSQL skip the scan: add it NOT VALID, VALIDATE it, attach, then drop it.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "attach-partition-scan",
    level: Level::Warning,
    opt_in: false,
    summary: "ATTACH PARTITION scans the partition to prove its bound",
    docs: "ATTACH PARTITION reads every row of the new partition (and of a DEFAULT partition) to prove the rows fit the bound, holding ACCESS EXCLUSIVE on the partition (SHARE UPDATE EXCLUSIVE on the parent since PostgreSQL 12; ACCESS EXCLUSIVE before). A valid CHECK constraint that implies the bound lets PostgreSQL skip the scan: add it NOT VALID, VALIDATE it, attach, then drop it.",
    bad: "ALTER TABLE measurements ATTACH PARTITION measurements_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');",
    good: "ALTER TABLE measurements_2025 ADD CONSTRAINT m2025_bound CHECK (at IS NOT NULL AND at >= '2025-01-01' AND at < '2026-01-01') NOT VALID;
-- later, in its own transaction:
-- ALTER TABLE measurements_2025 VALIDATE CONSTRAINT m2025_bound;",
    aliases: &["engine-facts:attach_partition"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    if !(i.class.has_fact("attach_partition")
        || i.class.has_fact("attach_partition.before_12")
        || i.class.has_fact("attach_partition.scans_default"))
    {
        return Vec::new();
    }
    let part = i
        .class
        .tables
        .get(1)
        .cloned()
        .unwrap_or_else(|| "<partition>".into());
    let p = super::ident(&part);
    if !(i.class.has_fact("attach_partition") || i.class.has_fact("attach_partition.before_12")) {
        // Only the parent's DEFAULT partition is scanned.
        return vec![Hit::new(
            format!("ATTACH PARTITION reads every row of the parent's DEFAULT partition under ACCESS EXCLUSIVE, to prove none belongs to {p}"),
            "-- give the DEFAULT partition a valid CHECK that excludes the new bound (NOT VALID, then VALIDATE) before attaching, or keep it empty".to_string(),
        )];
    }
    vec![Hit::new(
        format!("ATTACH PARTITION reads every row of {p} under ACCESS EXCLUSIVE unless a valid CHECK constraint implies the partition bound"),
        format!("ALTER TABLE {p} ADD CONSTRAINT {part}_bound CHECK (<key> IS NOT NULL AND <bound expression>) NOT VALID;\nALTER TABLE {p} VALIDATE CONSTRAINT {part}_bound;\n{};\nALTER TABLE {p} DROP CONSTRAINT {part}_bound;", i.sql),
    )]
}
