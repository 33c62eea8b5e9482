//! Changes that are cheap, or cheap in their safe form: added columns, indexes built and dropped
//! `CONCURRENTLY`, constraints added `NOT VALID` and validated, `SET NOT NULL` through a validated
//! `CHECK`, binary-compatible type changes. Guarded steps (short `lock_timeout`, bounded retries),
//! no copy, no flip.

use crate::ident::quote_ident;

use super::super::catalog::TableInfo;
use super::super::input::{qualify, Change};
use super::super::names::{with_suffix, NOT_NULL_SUFFIX};
use super::super::steps::{concurrent, step, BRIEF};
use super::super::{Plan, PlanError, PlanInput, PlanKind, Step, StepLock};
use super::{classify, empty_plan};
use crate::check::strategy::Strategy;
use crate::check::LockMode;

/// The plan of added columns, indexes, constraints and `NOT NULL` (no type change, no rename).
pub(in crate::plan) fn plan(
    info: &TableInfo,
    changes: &[Change],
    input: &PlanInput,
) -> Result<Plan, PlanError> {
    let t = info.name.sql();
    let mut steps: Vec<Step> = Vec::new();
    let mut reasons = Vec::new();
    for c in changes {
        match c {
            Change::AddColumn { column, sql } => {
                if info.column(column).is_some() {
                    return Err(PlanError::Invalid(format!(
                        "{} already has a column {}",
                        info.name,
                        quote_ident(column)
                    )));
                }
                let sql = qualify(sql, &t);
                let (verdict, reason) = classify(info, &sql)?;
                if verdict != Strategy::InPlaceGuarded {
                    return Err(PlanError::Unsupported(format!(
                        "{reason}. Add the column without the default (or with a constant \
                         one), then SET DEFAULT, then fill existing rows in batches and SET NOT \
                         NULL via a validated CHECK"
                    )));
                }
                reasons.push(reason);
                steps.push(step(sql, BRIEF, "add the column (no rewrite)"));
            }
            Change::SetNotNull { column } => {
                info.require_column(column)?;
                let q = quote_ident(column);
                let name = quote_ident(&with_suffix(column, NOT_NULL_SUFFIX));
                reasons.push(format!(
                    "SET NOT NULL on {q}: a validated CHECK lets it skip the scan under ACCESS EXCLUSIVE"
                ));
                steps.push(step(
                    format!(
                        "ALTER TABLE {t} ADD CONSTRAINT {name} CHECK ({q} IS NOT NULL) NOT VALID"
                    ),
                    BRIEF,
                    "prove the column non-null without a blocking scan",
                ));
                steps.push(step(
                    format!("ALTER TABLE {t} VALIDATE CONSTRAINT {name}"),
                    StepLock::new(
                        LockMode::ShareUpdateExclusive,
                        "(does not block reads or writes)",
                    ),
                    "scan the existing rows without blocking",
                ));
                steps.push(step(
                    format!("ALTER TABLE {t} ALTER COLUMN {q} SET NOT NULL"),
                    BRIEF,
                    "the validated CHECK makes this instant",
                ));
                steps.push(step(
                    format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {name}"),
                    BRIEF,
                    "the CHECK only existed to make SET NOT NULL instant",
                ));
            }
            Change::AddConstraint { name, sql } => {
                reasons.push(format!(
                    "constraint {}: added NOT VALID (brief lock), validated without blocking",
                    quote_ident(name)
                ));
                steps.push(step(
                    qualify(sql, &t),
                    StepLock::new(
                        LockMode::AccessExclusive,
                        "or SHARE ROW EXCLUSIVE (brief, no scan)",
                    ),
                    "enforce the constraint for new writes at once",
                ));
                steps.push(step(
                    format!("ALTER TABLE {t} VALIDATE CONSTRAINT {}", quote_ident(name)),
                    StepLock::new(
                        LockMode::ShareUpdateExclusive,
                        "(does not block reads or writes)",
                    ),
                    "check the existing rows without blocking",
                ));
            }
            Change::AddUnique { name, columns } => {
                for col in columns {
                    info.require_column(col)?;
                }
                let cols = columns
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ");
                reasons.push(format!(
                    "unique constraint {}: its index is built CONCURRENTLY first",
                    quote_ident(name)
                ));
                steps.push(concurrent(
                    format!(
                        "CREATE UNIQUE INDEX CONCURRENTLY {} ON {t} ({cols})",
                        quote_ident(name)
                    ),
                    StepLock::new(
                        LockMode::ShareUpdateExclusive,
                        "(does not block reads or writes)",
                    ),
                    "build the unique index without blocking writes",
                ));
                steps.push(step(
                    format!(
                        "ALTER TABLE {t} ADD CONSTRAINT {0} UNIQUE USING INDEX {0}",
                        quote_ident(name)
                    ),
                    BRIEF,
                    "attach the prebuilt index as the constraint",
                ));
            }
            Change::CreateIndex { sql } => {
                reasons.push("CREATE INDEX CONCURRENTLY does not block writes".into());
                steps.push(concurrent(
                    qualify(sql, &t),
                    StepLock::new(
                        LockMode::ShareUpdateExclusive,
                        "(does not block reads or writes)",
                    ),
                    "build the index without blocking writes",
                ));
            }
            Change::DropColumn { column } => {
                info.require_column(column)?;
                if info.is_key_column(column) {
                    return Err(PlanError::Unsupported(format!(
                        "{} is a key column of {}: drop the key first",
                        quote_ident(column),
                        info.name
                    )));
                }
                reasons.push(format!(
                    "DROP COLUMN {} is a contract step: run it only once no client reads or \
                     writes the column",
                    quote_ident(column)
                ));
                steps.push(step(
                    format!("ALTER TABLE {t} DROP COLUMN {}", quote_ident(column)),
                    BRIEF,
                    "contract: the column is marked dropped, no rewrite",
                ));
            }
            Change::DropIndex { name } => {
                reasons.push(format!(
                    "DROP INDEX {name} is a contract step, run CONCURRENTLY"
                ));
                steps.push(concurrent(
                    format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"),
                    StepLock::new(
                        LockMode::ShareUpdateExclusive,
                        "(does not block reads or writes)",
                    ),
                    "contract: drop the index without blocking writes",
                ));
            }
            Change::AlterType { .. } | Change::Rename { .. } => {
                return Err(PlanError::Unsupported(
                    "type changes and renames are planned on their own: split the input".into(),
                ))
            }
        }
    }
    let mut plan = empty_plan(info, PlanKind::InPlace, reasons.join("; "), input);
    plan.expand = steps;
    Ok(plan)
}

/// A type change that is binary-compatible (only the catalog changes): each statement as it is,
/// guarded; `reasons` are the classifier's, one per statement.
pub(in crate::plan) fn binary_compatible(
    info: &TableInfo,
    statements: Vec<String>,
    reasons: &[&str],
    input: &PlanInput,
) -> Plan {
    let mut plan = empty_plan(info, PlanKind::InPlace, reasons.join("; "), input);
    plan.expand = statements
        .into_iter()
        .map(|s| {
            step(
                s,
                BRIEF,
                "the type change is binary-compatible: only the catalog changes",
            )
        })
        .collect();
    plan
}
