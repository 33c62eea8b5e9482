//! One file per strategy, each owning when it applies and the steps it runs:
//!
//! - [`in_place`]: cheap or in its safe form (`CONCURRENTLY`, `NOT VALID` + `VALIDATE`, a
//!   binary-compatible type change): guarded steps, no flip;
//! - [`rename`]: the flip renames the column, the proxy translates the old name until `complete`;
//! - [`shadow_column`]: one column copied beside the old one, swapped by renames (only when the
//!   operator accepts a visible column);
//! - [`shadow_table`]: the whole table rebuilt in the new shape and swapped by renames, with its
//!   identity columns ([`identity`]), constraints, indexes and everything bound to it.
//!
//! The planner ([`super::planner`]) reads what was asked and the catalog and picks one; the
//! pieces every strategy builds with (a step, `NOT NULL` without a scan, the safety net) are in
//! [`super::steps`].

mod identity;
pub(super) mod in_place;
pub(super) mod rename;
pub(super) mod shadow_column;
pub(super) mod shadow_table;

use crate::check::ast::{self, ColumnType};
use crate::check::schema::{Column as SchemaColumn, Schema, Table};
use crate::check::strategy::{strategy, Strategy};
use crate::check::version::EngineVersion;
use crate::parse::run_on_parser_stack;

use super::catalog::TableInfo;
use super::{Plan, PlanError, PlanInput, PlanKind};

/// A plan of `kind` for `info`, with its reason and no steps yet.
pub(super) fn empty_plan(
    info: &TableInfo,
    kind: PlanKind,
    reason: String,
    input: &PlanInput,
) -> Plan {
    Plan {
        table: info.name.clone(),
        kind,
        reason,
        input: input.clone(),
        expand: Vec::new(),
        dual_write_route: None,
        copy: None,
        prepare_flip: Vec::new(),
        flip: Vec::new(),
        flipped_route: None,
        revert: Vec::new(),
        after_revert: Vec::new(),
        complete: Vec::new(),
        abort: Vec::new(),
        warnings: Vec::new(),
        carried: Default::default(),
        group: Vec::new(),
    }
}

/// The classifier's model of the one table.
fn schema_of(info: &TableInfo) -> Schema {
    let mut schema = Schema::default();
    let columns = info
        .columns
        .iter()
        .map(|c| {
            let base = c.base_type.rsplit('.').next().unwrap_or(&c.base_type);
            let base = base.trim_matches('"');
            let array = base.starts_with('_');
            let mut ty = ColumnType::named(base.trim_start_matches('_'));
            ty.array = array;
            ty.mods = c
                .full_type
                .split_once('(')
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(inner, _)| {
                    inner
                        .split(',')
                        .filter_map(|m| m.trim().parse::<i64>().ok())
                        .collect()
                })
                .unwrap_or_default();
            SchemaColumn {
                name: c.name.clone(),
                ty: Some(ty),
                not_null: c.not_null,
                has_default: c.default.is_some(),
                collation: None,
            }
        })
        .collect();
    schema.tables.insert(
        ast::relation_key(&info.name.schema, &info.name.name),
        Table {
            columns,
            partitioned: info.relkind == 'p',
            ..Table::default()
        },
    );
    schema
}

/// The classifier's verdict on one statement against the table as the catalog describes it:
/// which strategy, and why.
pub(super) fn classify(info: &TableInfo, sql: &str) -> Result<(Strategy, String), PlanError> {
    let schema = schema_of(info);
    let version = EngineVersion::major(info.server_version_num / 10_000);
    let sql = sql.to_string();
    let verdict = run_on_parser_stack(move || strategy(&sql, &schema, version))
        .map_err(|e| PlanError::Invalid(e.to_string()))?
        .map_err(|e| PlanError::Invalid(e.to_string()))?;
    Ok((verdict.strategy, verdict.reason))
}
