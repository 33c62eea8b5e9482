//! The names a migration will create, refused at plan time when something already has them.
//!
//! A shadow table's migration creates `t__duet` (and its key index `t__duet_pkey`), builds each
//! secondary index under `<index>__duet`, and parks the old table and its indexes under
//! `…__duet_old` at the flip; a shadow column's adds `c__duet` and parks the old column as
//! `c__duet_old`. Were one of those names taken, the migration would fail half-way (`expand`
//! stopping on "already exists"), or worse, quietly use the wrong object: `CREATE INDEX … IF NOT
//! EXISTS` would skip the shadow's index, and the flip's renames would move the other object.
//!
//! So the plan is refused first, naming the object, and this is what lets `expand` run again
//! after an interruption: whatever it finds under those names is its own, made by the attempt
//! that was cut short (see `strategies::shadow_table`, `strategies::shadow_column`).

use tokio_postgres::Client;

use super::catalog::TableInfo;
use super::names::{old_table, pkey_name, with_suffix, OLD_SUFFIX, TEMP_SUFFIX};
use super::{CopySpec, Plan, PlanError, PlanKind};
use crate::ident::quote_ident;
use crate::rewrite::Target;

/// Refuses `plan` when a relation of the table's schema, or a column of the table, already has
/// a name the migration will create.
pub(super) async fn refuse_taken_names(
    client: &Client,
    info: &TableInfo,
    plan: &Plan,
) -> Result<(), PlanError> {
    let db = |e: tokio_postgres::Error| PlanError::Database(e.to_string());
    let table = &plan.table;
    let relations = relation_names(info, plan);
    if !relations.is_empty() {
        let taken = client
            .query_opt(
                "SELECT c.relname::text FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = ANY($2)
                  ORDER BY c.relname LIMIT 1",
                &[&table.schema, &relations],
            )
            .await
            .map_err(db)?;
        if let Some(row) = taken {
            let name: String = row.get(0);
            return Err(PlanError::Unsupported(format!(
                "{}.{} already exists, and this migration of {table} needs that name: drop it if \
                 it is left over from an earlier migration of {table} that duet no longer lists \
                 (duet admin status), or rename it; then plan again",
                quote_ident(&table.schema),
                quote_ident(&name)
            )));
        }
    }
    let columns = column_names(plan);
    if !columns.is_empty() {
        let taken = client
            .query_opt(
                "SELECT a.attname::text FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
                    AND a.attname = ANY($2)
                  ORDER BY a.attnum LIMIT 1",
                &[&table.sql(), &columns],
            )
            .await
            .map_err(db)?;
        if let Some(row) = taken {
            let name: String = row.get(0);
            return Err(PlanError::Unsupported(format!(
                "{table} already has a column {}, and this migration needs that name: drop it if \
                 it is left over from an earlier migration that duet no longer lists (duet admin \
                 status), or rename it; then plan again",
                quote_ident(&name)
            )));
        }
    }
    Ok(())
}

/// The relations a shadow-table plan creates or renames into, in the table's schema.
fn relation_names(info: &TableInfo, plan: &Plan) -> Vec<String> {
    let Some(CopySpec::Table(target)) = &plan.copy else {
        return Vec::new();
    };
    if plan.kind != PlanKind::ShadowTable {
        return Vec::new();
    }
    let shadow = &target.shadow.name;
    let mut names = vec![
        shadow.clone(),
        pkey_name(shadow),
        old_table(&plan.table).name,
    ];
    for ix in &info.indexes {
        names.push(with_suffix(&ix.name, TEMP_SUFFIX));
        names.push(with_suffix(&ix.name, OLD_SUFFIX));
    }
    names.sort();
    names.dedup();
    names
}

/// The columns a shadow-column plan adds or renames into.
fn column_names(plan: &Plan) -> Vec<String> {
    if plan.kind != PlanKind::ShadowColumn {
        return Vec::new();
    }
    [&plan.dual_write_route, &plan.flipped_route]
        .into_iter()
        .flatten()
        .filter_map(|route| match &route.target {
            Target::ShadowColumn { column, .. } => Some(column.clone()),
            _ => None,
        })
        .collect()
}
