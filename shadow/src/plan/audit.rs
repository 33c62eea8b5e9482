//! The catalog audit: what would let writes escape the dual-write, or make the flip change what
//! other objects see. Refusals for the shadow strategies; warnings where the change is harmless.

use crate::ident::quote_ident;

use super::catalog::TableInfo;
use super::{Plan, PlanError, PlanKind};

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// Audit `info` for `plan`; `changed` are the columns whose type changes. Pushes warnings onto
/// the plan, or refuses.
pub(super) fn audit(
    info: &TableInfo,
    plan: &mut Plan,
    changed: &[String],
) -> Result<(), PlanError> {
    let t = &info.name;
    let shadow = matches!(plan.kind, PlanKind::ShadowTable | PlanKind::ShadowColumn);
    if shadow {
        // The table's own triggers, the views over it and its row-level security are carried
        // over to the new shape (`super::carried`); rules on the table itself are not: they
        // would rewrite the dual-write's own statements.
        if !info.rules.is_empty() {
            return Err(PlanError::Audit(format!(
                "{t} has rules ({}): rewritten statements would bypass the dual-write. Drop \
                 the rules for the migration",
                list(&info.rules)
            )));
        }
        if info.relkind == 'p' || !info.inheritance.is_empty() {
            return Err(PlanError::Unsupported(format!(
                "{t} is partitioned or part of an inheritance tree ({}): duet cannot swap it \
                 online. Migrate each partition as its own table, or detach first",
                list(&info.inheritance)
            )));
        }
        // Foreign keys with cascading actions need nothing: the server's own writes to the
        // table (a cascade, `SET NULL`) fire the safety net's trigger like any other write.
    }
    if plan.kind == PlanKind::ShadowTable {
        // Foreign keys of other tables are re-pointed at the new table by the flip
        // (`super::referencing`); those it could not re-create are refused here.
        if !info.foreign_key_blockers.is_empty() {
            return Err(PlanError::Audit(info.foreign_key_blockers.join("; ")));
        }
        narrower_referencing_columns(info, plan);
        identity_and_generated(info, &*plan, changed)?;
        if info.column_privileges {
            return Err(PlanError::Unsupported(format!(
                "{t} has column privileges: the shadow table would not carry them. Remove them \
                 for the migration and re-create them after `complete`, or change the table in \
                 a maintenance window"
            )));
        }
        if info.indexes.iter().any(|i| i.constraint == Some('x')) {
            return Err(PlanError::Unsupported(format!(
                "{t} has an exclusion constraint: it cannot be rebuilt on the shadow online"
            )));
        }
    }
    if plan.kind == PlanKind::ShadowColumn {
        // The backfill fills the shadow column with an UPDATE of every row: such a trigger would
        // fire once per row (and per chunk) besides the application's writes — an audit trigger
        // would log the whole table. A shadow table never fires them for duet's own writes.
        let fire: Vec<String> = info
            .carried
            .triggers
            .iter()
            .filter(|trigger| trigger.fires_on_any_update())
            .map(|trigger| quote_ident(&trigger.name))
            .collect();
        if !fire.is_empty() {
            return Err(PlanError::Unsupported(format!(
                "{t} has triggers that fire on UPDATE ({}): a shadow column is filled by an \
                 UPDATE of every row, which would fire them for each row besides the \
                 application's own writes. Plan without --shadow-column (the shadow table \
                 carries the triggers and fires them once per application write), or restrict \
                 them to the columns they watch (UPDATE OF …) or disable them for the migration",
                fire.join(", ")
            )));
        }
    }
    if plan.kind == PlanKind::ShadowColumn {
        shadow_column_identity_and_generated(info, changed)?;
    }
    if shadow && !info.carry_blockers.is_empty() {
        return Err(PlanError::Audit(format!(
            "{t} cannot be migrated with everything bound to it: {}",
            info.carry_blockers.join("; ")
        )));
    }
    if shadow {
        for (view, rows, bytes) in &info.refreshed_views {
            plan.warnings.push(format!(
                "materialized view {view} (about {} rows, {} MB) is re-created inside the \
                 cutover and refreshed when it holds rows: clients are held while its query \
                 runs. If that is too long, drop it for the migration and re-create it after \
                 `complete`",
                rows.max(0.0).round(),
                bytes / (1024 * 1024)
            ));
        }
    }
    if plan.kind == PlanKind::ShadowTable && info.carried.enforces_row_security() {
        plan.warnings.push(format!(
            "{t} enforces row-level security: its writes are not rewritten (a rewrite's RETURNING \
             would be checked against the SELECT policies); the safety net mirrors every row \
             as duet's role, which costs the writers a trigger call per row during the migration"
        ));
    }
    if !info.publications.is_empty() {
        plan.warnings.push(format!(
            "{t} is in publications ({}){}",
            list(&info.publications),
            if plan.kind == PlanKind::ShadowTable {
                ": after the flip the new table is not published; add it to each publication \
                 (ALTER PUBLICATION … ADD TABLE) and resynchronise subscribers"
            } else {
                ": subscribers receive the changed shape; update them first"
            }
        ));
    }
    if !shadow && (!info.triggers.is_empty() || !info.rules.is_empty()) {
        plan.warnings.push(format!(
            "{t} has triggers or rules ({}): check that none refers to a changed column by name",
            list(
                &info
                    .triggers
                    .iter()
                    .chain(&info.rules)
                    .cloned()
                    .collect::<Vec<_>>()
            )
        ));
    }
    if plan.kind == PlanKind::ShadowTable {
        if let Ok(k) = &info.key {
            if !k.is_primary {
                plan.warnings.push(format!(
                    "{t} has no primary key: the new table gets one on the copy key {}",
                    quote_ident(&k.index_name)
                ));
            }
        }
    }
    Ok(())
}

/// Warns, for each column of another table whose foreign key references a changed column of the
/// table, when it keeps a type that cannot hold every value of the new one (an `integer`
/// referencing a key widened to `bigint`): its own migration is next, and the plan says how.
fn narrower_referencing_columns(info: &TableInfo, plan: &mut Plan) {
    let Some(flipped) = plan.flipped_route.as_ref() else {
        return;
    };
    let mut warnings = Vec::new();
    for key in &info.carried.foreign_keys {
        for column in &key.columns {
            let old = info
                .column(&column.references)
                .map(|c| c.base_type.as_str());
            let new = flipped
                .column(&column.references)
                .map(|c| c.base_type.as_str());
            let (Some(old), Some(new)) = (old, new) else {
                continue;
            };
            if old == new || column.base_type == new {
                continue;
            }
            let new = readable_type(new);
            warnings.push(format!(
                "{}.{} ({}) references {}.{} through {}, and {}.{} becomes {new}: the key is \
                 re-pointed at the new table and stays enforced, but {} cannot hold every new \
                 value. Migrate it next: duet admin migrate --sql 'ALTER TABLE {} ALTER COLUMN {} \
                 TYPE {new}'",
                key.table,
                quote_ident(&column.column),
                column.sql_type,
                info.name,
                quote_ident(&column.references),
                key.label(),
                info.name,
                quote_ident(&column.references),
                quote_ident(&column.column),
                key.table,
                quote_ident(&column.column),
            ));
        }
    }
    plan.warnings.extend(warnings);
}

/// The name `format_type` gives a base type (`int8` → `bigint`), for messages and statements.
fn readable_type(base: &str) -> &str {
    match base {
        "int8" => "bigint",
        "int4" => "integer",
        "int2" => "smallint",
        "float8" => "double precision",
        "float4" => "real",
        "bool" => "boolean",
        other => other,
    }
}

/// The integer types an identity column may have (PostgreSQL refuses any other).
const IDENTITY_TYPES: [&str; 3] = ["int2", "int4", "int8"];

/// A shadow table takes identity and generated columns over (see `super::steps::shadow_table`
/// and shadow/docs/online-migrations.md): identity columns are plain columns on the shadow and
/// get their identity, continuing the old sequence, in the flip; generated columns are computed
/// by the shadow itself. What it cannot take over is refused here, before anything is created.
fn identity_and_generated(
    info: &TableInfo,
    plan: &Plan,
    changed: &[String],
) -> Result<(), PlanError> {
    let t = &info.name;
    for col in &info.columns {
        let q = quote_ident(&col.name);
        if col.is_identity() {
            if col.identity_sequence.is_none() {
                return Err(PlanError::Unsupported(format!(
                    "identity column {q} of {t} has no sequence duet can read: the new table \
                     could not continue it. Check that duet's role may read the catalog, or \
                     convert the column to a sequence default first (ALTER COLUMN {q} DROP \
                     IDENTITY, then SET DEFAULT nextval(…))"
                )));
            }
            let new_base = plan
                .flipped_route
                .as_ref()
                .and_then(|r| r.column(&col.name))
                .map(|c| c.base_type.as_str());
            if let Some(base) = new_base.filter(|b| !IDENTITY_TYPES.contains(b)) {
                return Err(PlanError::Unsupported(format!(
                    "identity column {q} of {t} would become {base}: an identity column must be \
                     smallint, integer or bigint. Drop the identity first (ALTER COLUMN {q} DROP \
                     IDENTITY) if the column is to hold other values"
                )));
            }
        }
        if !col.is_generated() {
            continue;
        }
        let reads_changed: Vec<String> = col
            .generated_from
            .iter()
            .filter(|c| changed.contains(c))
            .map(|c| quote_ident(c))
            .collect();
        if !reads_changed.is_empty() {
            return Err(PlanError::Unsupported(format!(
                "generated column {q} of {t} is computed from {}, whose type changes: its \
                 expression might not compute the same values over the new type (PostgreSQL's \
                 own ALTER refuses this too). Drop the generated column for the migration and \
                 add it back after `complete`, or keep its values as a plain column \
                 (ALTER COLUMN {q} DROP EXPRESSION)",
                reads_changed.join(", ")
            )));
        }
    }
    Ok(())
}

/// A shadow column leaves every other column alone: identity and generated columns are fine
/// unless the changed column is one, or a generated column reads it (after the swap its
/// expression would still read the parked old column: expressions name columns by number).
fn shadow_column_identity_and_generated(
    info: &TableInfo,
    changed: &[String],
) -> Result<(), PlanError> {
    let t = &info.name;
    for c in changed {
        let Some(col) = info.column(c) else {
            continue;
        };
        let q = quote_ident(c);
        if col.is_identity() {
            return Err(PlanError::Unsupported(format!(
                "{q} is an identity column of {t}: a shadow column cannot take its identity \
                 over. Plan without --shadow-column: a shadow table carries the identity and \
                 its sequence through the flip"
            )));
        }
        if col.is_generated() {
            return Err(PlanError::Unsupported(format!(
                "{q} is a generated column of {t}: a shadow column cannot be generated. Plan \
                 without --shadow-column: a shadow table computes it in the new type"
            )));
        }
        let readers: Vec<String> = info
            .columns
            .iter()
            .filter(|g| g.is_generated() && g.generated_from.contains(c))
            .map(|g| quote_ident(&g.name))
            .collect();
        if !readers.is_empty() {
            return Err(PlanError::Unsupported(format!(
                "generated column {} of {t} is computed from {q}: after the swap it would keep \
                 reading the old column. Drop the generated column for the migration and add \
                 it back after `complete`, or keep its values as a plain column (ALTER COLUMN \
                 … DROP EXPRESSION)",
                readers.join(", ")
            )));
        }
    }
    Ok(())
}
