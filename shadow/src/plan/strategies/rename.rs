//! Renaming a column: the flip renames it, and the proxy translates statements written for the
//! old name (`SELECT *` included) until `complete`.

use crate::ident::quote_ident;
use crate::rewrite::{TableRoute, Target};

use super::super::catalog::TableInfo;
use super::super::input::Change;
use super::super::steps::{route_columns, step, BRIEF};
use super::super::{Plan, PlanError, PlanInput, PlanKind};
use super::empty_plan;

/// The plan of one or more column renames (nothing else in the same migration).
pub(in crate::plan) fn plan(
    info: &TableInfo,
    changes: &[Change],
    input: &PlanInput,
) -> Result<Plan, PlanError> {
    let t = info.name.sql();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for c in changes {
        let Change::Rename { from, to } = c else {
            return Err(PlanError::Unsupported(
                "a rename is planned on its own: split the other changes into a separate \
                 migration"
                    .into(),
            ));
        };
        info.require_column(from)?;
        if info.column(to).is_some() || pairs.iter().any(|(_, b)| b == to) {
            return Err(PlanError::Invalid(format!(
                "{} already has a column {}",
                info.name,
                quote_ident(to)
            )));
        }
        pairs.push((from.clone(), to.clone()));
    }
    let mut plan = empty_plan(
        info,
        PlanKind::Rename,
        "renaming a column breaks every client still using the old name: the flip renames it \
         and the proxy translates statements written for the old name until complete"
            .into(),
        input,
    );
    let renamed = |name: &str| {
        pairs
            .iter()
            .find(|(a, _)| a == name)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| name.to_string())
    };
    plan.flip = pairs
        .iter()
        .map(|(a, b)| {
            step(
                format!(
                    "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                    quote_ident(a),
                    quote_ident(b)
                ),
                BRIEF,
                "the rename itself",
            )
        })
        .collect();
    plan.revert = pairs
        .iter()
        .rev()
        .map(|(a, b)| {
            step(
                format!(
                    "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                    quote_ident(b),
                    quote_ident(a)
                ),
                BRIEF,
                "back to the old name",
            )
        })
        .collect();
    plan.flipped_route = Some(TableRoute {
        schema: info.name.schema.clone(),
        name: info.name.name.clone(),
        columns: route_columns(
            info.columns
                .iter()
                .map(|c| (renamed(&c.name), c.base_type.clone())),
        ),
        key: info
            .key
            .as_ref()
            .map(|k| k.columns.iter().map(|c| renamed(c)).collect())
            .unwrap_or_default(),
        target: Target::Renamed { columns: pairs },
    });
    Ok(plan)
}
