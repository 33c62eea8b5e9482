//! A type change of one column through a shadow column `c__duet` beside it: set by the safety
//! net's trigger on every write, backfilled in chunks, swapped by renames at the flip. Only when
//! the operator asks for it (`--shadow-column`): clients see `c__duet` while it runs and
//! `c__duet_old` after the flip, and the column is the table's last after `complete`.

use crate::ident::quote_ident;
use crate::rewrite::{ParkedValue, TableRoute, Target};

use super::super::catalog::TableInfo;
use super::super::names::{with_suffix, OLD_SUFFIX, TEMP_SUFFIX};
use super::super::steps::{
    narrowing_predicate, not_null_steps, refuse_revert_while, route_columns, step, ShadowSteps,
    TypeChange, BRIEF,
};
use super::super::{BackfillSpec, CopySpec, Plan, PlanInput, PlanKind, StepLock};
use super::empty_plan;
use crate::check::LockMode;

/// The plan of a type change of `change.column` through a shadow column (the operator asked for
/// one, and the column has no index or constraint): only the column is copied.
pub(in crate::plan) fn plan(
    info: &TableInfo,
    key: &[String],
    change: &TypeChange,
    input: &PlanInput,
) -> Plan {
    let (s, column) = steps(info, key, change);
    let reason = format!(
        "changing the type of {0} rewrites every row of {1} under ACCESS EXCLUSIVE; a shadow \
         column was asked for: only {0} is copied, but clients see {2} until the cutover and \
         {3} after it, and {0} is the last column of {1} after complete, so SELECT * and \
         positional INSERT and COPY change meaning",
        quote_ident(&change.column),
        info.name,
        quote_ident(&column),
        quote_ident(&with_suffix(&change.column, OLD_SUFFIX))
    );
    let mut plan = empty_plan(info, PlanKind::ShadowColumn, reason, input);
    plan.copy = Some(CopySpec::Column(BackfillSpec {
        table: info.name.clone(),
        key: key.to_vec(),
        column,
        expr: change.up.clone(),
    }));
    s.fill(&mut plan);
    plan.carried = info.carried.clone();
    plan
}

/// The shadow-column steps for one column, and the shadow column's name.
pub(in crate::plan) fn steps(
    info: &TableInfo,
    key: &[String],
    change: &TypeChange,
) -> (ShadowSteps, String) {
    let t = info.name.sql();
    let c = &change.column;
    let qc = quote_ident(c);
    let shadow = with_suffix(c, TEMP_SUFFIX);
    let qs = quote_ident(&shadow);
    let parked = with_suffix(c, OLD_SUFFIX);
    let qp = quote_ident(&parked);
    let col = info.column(c);
    let mut prepare = Vec::new();
    let mut flip = vec![
        step(
            format!("ALTER TABLE {t} RENAME COLUMN {qc} TO {qp}"),
            BRIEF,
            "park the old column",
        ),
        step(
            format!("ALTER TABLE {t} RENAME COLUMN {qs} TO {qc}"),
            BRIEF,
            "the new column takes the name",
        ),
    ];
    let mut revert = vec![
        step(
            format!("ALTER TABLE {t} RENAME COLUMN {qc} TO {qs}"),
            BRIEF,
            "park the new column under the shadow name",
        ),
        step(
            format!("ALTER TABLE {t} RENAME COLUMN {qp} TO {qc}"),
            BRIEF,
            "the old column takes the name back",
        ),
    ];
    if let Some(col) = col {
        if col.not_null {
            let steps = not_null_steps((&t, &shadow), (&t, c), "column");
            prepare.extend(steps.prepare);
            flip.extend(steps.flip);
        }
        if let Some(def) = &col.default {
            prepare.push(step(
                format!("ALTER TABLE {t} ALTER COLUMN {qs} SET DEFAULT {def}"),
                BRIEF,
                "the new column keeps the default (the old one keeps it too, for a revert)",
            ));
        }
        if let Some(seq) = &col.owned_sequence {
            if change.widens_to_bigint {
                flip.push(step(
                    format!("ALTER SEQUENCE {seq} AS bigint"),
                    StepLock::new(LockMode::AccessExclusive, "on the sequence (brief)"),
                    "the sequence must be able to pass the old type's maximum",
                ));
            }
            flip.push(step(
                format!("ALTER SEQUENCE {seq} OWNED BY {t}.{qc}"),
                StepLock::new(LockMode::AccessExclusive, "on the sequence (brief)"),
                "dropping the old column must not drop the sequence",
            ));
            revert.push(step(
                format!("ALTER SEQUENCE {seq} OWNED BY {t}.{qc}"),
                StepLock::new(LockMode::AccessExclusive, "on the sequence (brief)"),
                "dropping the new column must not drop the sequence",
            ));
        }
    }
    // Views, triggers and policies name columns by number: created again once the swapped
    // column has the name, so they read and test the column that has it.
    flip.extend(info.carried.shadow_column_swap(&t));
    revert.extend(info.carried.shadow_column_swap(&t));
    let before = route_columns(
        info.columns
            .iter()
            .map(|x| (x.name.clone(), x.base_type.clone())),
    );
    // After the flip the new column sits where the shadow column was added (last) and the parked
    // old column where the old one was; the route keeps the application's order, the one its
    // positional writes are written in (`crate::rewrite::visible_columns` lists it for them).
    let after = route_columns(info.columns.iter().map(|x| {
        let base = if &x.name == c {
            change.new_base.clone()
        } else {
            x.base_type.clone()
        };
        (x.name.clone(), base)
    }));
    // After a widening, the new column may hold values the old one cannot: the mirror back sets
    // NULL there instead of failing the application's write, and the revert refuses while any
    // exist. Not for a NOT NULL column: its parked old column cannot take the NULL (such a write
    // fails with the old type's range error, as before).
    let unrepresentable = match col {
        Some(col) if col.not_null => None,
        _ => narrowing_predicate(info, std::slice::from_ref(change)),
    };
    if let Some(predicate) = &unrepresentable {
        revert.insert(0, refuse_revert_while(&t, predicate, &info.name.sql()));
    }
    // Not for a column with a default: the parked column keeps it (for a revert), so a value
    // there may be its default — an INSERT that named the new column NULL — not a misplaced one.
    let recover = match col {
        Some(col) if col.default.is_some() => None,
        _ => Some(ParkedValue {
            column: c.clone(),
            expr: change.up.clone(),
        }),
    };
    let steps = ShadowSteps {
        expand: vec![step(
            format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {qs} {}", change.new_type),
            BRIEF,
            "the shadow column in the new type, nullable and without default (no rewrite); a run again after an interruption keeps the one it added (the plan refused a name already taken)",
        )],
        prepare_flip: prepare,
        flip,
        revert,
        after_revert: vec![step(
            format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {qs}"),
            BRIEF,
            "drop the new column after a revert",
        )],
        complete: vec![step(
            format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {qp}"),
            BRIEF,
            "contract: drop the old column",
        )],
        abort: vec![step(
            format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {qs}"),
            BRIEF,
            "drop the shadow column; the table was never changed otherwise",
        )],
        dual_write_route: TableRoute {
            schema: info.name.schema.clone(),
            name: info.name.name.clone(),
            columns: before,
            key: key.to_vec(),
            target: Target::ShadowColumn {
                column: shadow.clone(),
                expr: change.up.clone(),
                skip_when: None,
                recover: None,
            },
        },
        flipped_route: TableRoute {
            schema: info.name.schema.clone(),
            name: info.name.name.clone(),
            columns: after,
            key: key.to_vec(),
            target: Target::ShadowColumn {
                column: parked,
                expr: change.down.clone(),
                skip_when: unrepresentable.clone(),
                recover,
            },
        },
    };
    (steps, shadow)
}
