//! From parsed changes and the catalog to a [`Plan`]: the strategy (the classifier's verdict,
//! sharpened by what only the live catalog knows: the key, indexes, sequences), validation by the
//! server itself, and the steps.

use tokio_postgres::Client;

use crate::check::strategy::Strategy;
use crate::ident::{quote_ident, QualifiedName};
use crate::parse::run_on_parser_stack;

use super::audit::audit;
use super::catalog::{read_table, resolve_table, TableInfo};
use super::input::{parse_sql, Change, Changes};
use super::names::{with_suffix, TEMP_SUFFIX};
use super::steps::TypeChange;
use super::strategies::{classify, in_place, rename, shadow_column, shadow_table};
use super::{pgroll, Plan, PlanError, PlanInput, PlanKind};

pub(super) async fn plan(client: &Client, input: &PlanInput) -> Result<Plan, PlanError> {
    let changes = match input {
        PlanInput::Sql { sql, .. } => {
            let sql = sql.clone();
            run_on_parser_stack(move || parse_sql(&sql))
                .map_err(|e| PlanError::Invalid(e.to_string()))??
        }
        PlanInput::Pgroll {
            text, file_name, ..
        } => {
            let (text, file_name) = (text.clone(), file_name.clone());
            run_on_parser_stack(move || pgroll::parse(&text, &file_name))
                .map_err(|e| PlanError::Invalid(e.to_string()))??
        }
    };
    let table = table_of(client, &changes).await?;
    let info = read_table(client, &table).await?;
    active_migration(client, &table).await?;
    let mut plan = if changes
        .changes
        .iter()
        .any(|c| matches!(c, Change::AlterType { .. }))
    {
        type_plan(client, &info, &changes.changes, input).await?
    } else if changes
        .changes
        .iter()
        .any(|c| matches!(c, Change::Rename { .. }))
    {
        rename::plan(&info, &changes.changes, input)?
    } else {
        in_place::plan(&info, &changes.changes, input)?
    };
    let changed = changed_columns(&changes.changes);
    if let Err(refusal) = audit(&info, &mut plan, &changed) {
        return Err(
            suggest_shadow_column(client, &info, &changes.changes, input, &plan, refusal).await,
        );
    }
    super::taken_names::refuse_taken_names(client, &info, &plan).await?;
    Ok(plan)
}

/// The columns whose type changes (what the audit judges a shadow column by).
fn changed_columns(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::AlterType { column, .. } => Some(column.clone()),
            _ => None,
        })
        .collect()
}

/// A shadow table refused by the audit for something a shadow column does not mind (foreign
/// keys referencing the table, identity columns, row-level security, …): say that the operator
/// can ask for one, and what it costs. Before shadow tables became the default for every type
/// change, such tables silently got a shadow column; now the visible shape is the operator's call.
async fn suggest_shadow_column(
    client: &Client,
    info: &TableInfo,
    changes: &[Change],
    input: &PlanInput,
    plan: &Plan,
    refusal: PlanError,
) -> PlanError {
    if plan.kind != PlanKind::ShadowTable || allow_shadow_column(input) {
        return refusal;
    }
    let mut asked = input.clone();
    match &mut asked {
        PlanInput::Sql { shadow_column, .. } | PlanInput::Pgroll { shadow_column, .. } => {
            *shadow_column = true
        }
    }
    let Ok(mut alternative) = type_plan(client, info, changes, &asked).await else {
        return refusal;
    };
    if alternative.kind != PlanKind::ShadowColumn
        || audit(info, &mut alternative, &changed_columns(changes)).is_err()
    {
        return refusal;
    }
    let hint = " Or, if every client names the table's columns (no SELECT *, no positional \
                INSERT or COPY), plan again with --shadow-column: only the column is copied, \
                but clients see it as c__duet until the cutover and it becomes the table's last \
                column";
    match refusal {
        PlanError::Audit(m) => PlanError::Audit(format!("{}.{hint}", m.trim_end_matches('.'))),
        PlanError::Unsupported(m) => {
            PlanError::Unsupported(format!("{}.{hint}", m.trim_end_matches('.')))
        }
        other => other,
    }
}

/// The table the changes are on; a `DROP INDEX`-only input names it through the index.
async fn table_of(client: &Client, changes: &Changes) -> Result<QualifiedName, PlanError> {
    let mut table = if changes.table.name.is_empty() {
        None
    } else {
        Some(resolve_table(client, &changes.table.schema, &changes.table.name).await?)
    };
    for c in &changes.changes {
        if let Change::DropIndex { name } = c {
            let row = client
                .query_opt(
                    "SELECT n.nspname::text, t.relname::text FROM pg_index i
                       JOIN pg_class t ON t.oid = i.indrelid
                       JOIN pg_namespace n ON n.oid = t.relnamespace
                      WHERE i.indexrelid = to_regclass($1)",
                    &[name],
                )
                .await
                .map_err(|e| PlanError::Database(e.to_string()))?
                .ok_or_else(|| PlanError::Unknown(format!("index {name} does not exist")))?;
            let of = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
            match &table {
                None => table = Some(of),
                Some(t) if *t == of => {}
                Some(t) => {
                    return Err(PlanError::Unsupported(format!(
                        "index {name} belongs to {of}, not {t}: one table per migration"
                    )))
                }
            }
        }
    }
    table.ok_or_else(|| PlanError::Invalid("the input names no table".into()))
}

/// Refuse while the table has a migration that has not finished.
async fn active_migration(client: &Client, table: &QualifiedName) -> Result<(), PlanError> {
    let db = |e: tokio_postgres::Error| PlanError::Database(e.to_string());
    let exists: bool = client
        .query_one("SELECT to_regclass('duet.migrations') IS NOT NULL", &[])
        .await
        .map_err(db)?
        .get(0);
    if !exists {
        return Ok(());
    }
    let names = vec![
        table.sql(),
        table.to_string(),
        format!("{}.{}", table.schema, table.name),
        table.name.clone(),
    ];
    let row = client
        .query_opt(
            "SELECT id, phase FROM duet.migrations
              WHERE table_name = ANY($1) AND phase NOT IN ('completed', 'aborted', 'reverted')
              ORDER BY id LIMIT 1",
            &[&names],
        )
        .await
        .map_err(db)?;
    match row {
        Some(r) => Err(PlanError::Unsupported(format!(
            "{table} already has migration {} in phase {}: complete, revert or abort it first \
             (duet admin status)",
            r.get::<_, i64>(0),
            r.get::<_, String>(1)
        ))),
        None => Ok(()),
    }
}

/// The base type (no typmod, usable in a cast) of a type given as SQL, or Unknown.
async fn base_type(client: &Client, ty: &str) -> Result<String, PlanError> {
    let row = client
        .query_one(
            "SELECT CASE WHEN n.nspname = 'pg_catalog' THEN t.typname::text
                         ELSE quote_ident(n.nspname) || '.' || quote_ident(t.typname) END
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE t.oid = to_regtype($1)",
            &[&ty],
        )
        .await;
    match row {
        Ok(r) => Ok(r.get(0)),
        Err(_) => Err(PlanError::Unknown(format!(
            "type {ty} does not exist; create it first (CREATE TYPE / CREATE DOMAIN) or check \
             the spelling"
        ))),
    }
}

/// Have the server parse and plan `select` (nothing runs, nothing is created).
async fn server_accepts(client: &Client, select: &str, what: &str) -> Result<(), PlanError> {
    match client.prepare(select).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let msg = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            Err(PlanError::Invalid(format!(
                "{what} is not valid here: {msg}"
            )))
        }
    }
}

/// Whether the operator accepted a visible shadow column for this migration (`--shadow-column`).
fn allow_shadow_column(input: &PlanInput) -> bool {
    match input {
        PlanInput::Sql { shadow_column, .. } | PlanInput::Pgroll { shadow_column, .. } => {
            *shadow_column
        }
    }
}

async fn type_plan(
    client: &Client,
    info: &TableInfo,
    changes: &[Change],
    input: &PlanInput,
) -> Result<Plan, PlanError> {
    let t = info.name.sql();
    let mut types = Vec::new();
    let mut statements = Vec::new();
    let mut rewrites = Vec::new();
    for c in changes {
        let Change::AlterType {
            column,
            new_type,
            using,
            down,
        } = c
        else {
            return Err(PlanError::Unsupported(
                "a column type change is planned on its own: split the other changes into a \
                 separate migration"
                    .into(),
            ));
        };
        if types.iter().any(|x: &TypeChange| &x.column == column) {
            return Err(PlanError::Invalid(format!(
                "column {} is changed twice",
                quote_ident(column)
            )));
        }
        let col = info.require_column(column)?;
        let new_base = base_type(client, new_type).await?;
        let q = quote_ident(column);
        let up = match using {
            Some(u) => format!("({u})::{new_type}"),
            None => format!("{q}::{new_type}"),
        };
        server_accepts(
            client,
            &format!("SELECT {up} FROM {t} LIMIT 0"),
            &format!("the conversion {up} of {q}"),
        )
        .await?;
        let down = match down {
            Some(d) => format!("({d})::{}", col.full_type),
            None => format!("{q}::{}", col.full_type),
        };
        let widens = matches!(col.base_type.as_str(), "int4" | "int2") && new_base == "int8";
        let using_sql = using
            .as_ref()
            .map(|u| format!(" USING {u}"))
            .unwrap_or_default();
        let stmt = format!("ALTER TABLE {t} ALTER COLUMN {q} TYPE {new_type}{using_sql}");
        let (verdict, reason) = classify(info, &stmt)?;
        rewrites.push((column.clone(), verdict, reason));
        statements.push(stmt);
        types.push(TypeChange {
            column: column.clone(),
            new_type: new_type.clone(),
            new_base,
            up,
            down,
            widens_to_bigint: widens,
        });
    }
    // The reverse conversions, checked over the new shape.
    let new_row = info
        .columns
        .iter()
        .map(|c| {
            let q = quote_ident(&c.name);
            match types.iter().find(|x| x.column == c.name) {
                Some(x) => format!("{} AS {q}", x.up),
                None => q,
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    for x in &types {
        server_accepts(
            client,
            &format!(
                "SELECT {} FROM (SELECT {new_row} FROM {t}) AS {} LIMIT 0",
                x.down,
                quote_ident(&info.name.name)
            ),
            &format!(
                "the reverse conversion {} of {}",
                x.down,
                quote_ident(&x.column)
            ),
        )
        .await?;
    }
    let all_in_place = rewrites
        .iter()
        .all(|(c, s, _)| *s == Strategy::InPlaceGuarded && !info.is_key_column(c));
    if all_in_place {
        let reasons: Vec<&str> = rewrites.iter().map(|(_, _, r)| r.as_str()).collect();
        return Ok(in_place::binary_compatible(
            info, statements, &reasons, input,
        ));
    }
    // Both copying strategies need the key (the copy's order, the dual-writes' arbiter); there
    // is no keyless fallback, so this refusal comes before anything is created.
    let key = info.key.clone().map_err(|why| {
        PlanError::Unsupported(format!(
            "{} cannot be migrated online: {why}. Add a primary key or a unique index over NOT \
             NULL columns (CREATE UNIQUE INDEX CONCURRENTLY, then ADD PRIMARY KEY USING INDEX) \
             and plan again",
            info.name
        ))
    })?;
    // The shadow computes generated columns, so no dual-write could name a row by one.
    if let Some(c) = key
        .columns
        .iter()
        .find(|c| info.column(c).is_some_and(|c| c.is_generated()))
    {
        return Err(PlanError::Unsupported(format!(
            "generated column {} of {} is part of the copy key: the shadow computes it, so no \
             dual-write could name the row by it. Key the table on stored columns (a primary \
             key or a unique index over NOT NULL columns that are not generated)",
            quote_ident(c),
            info.name
        )));
    }
    let key_changed: Vec<&str> = types
        .iter()
        .filter(|x| key.columns.contains(&x.column))
        .map(|x| x.column.as_str())
        .collect();
    let single_plain = types.len() == 1 && key_changed.is_empty() && {
        let c = &types[0].column;
        !info.indexes.iter().any(|i| i.columns.contains(c))
            && !info.constraints.iter().any(|k| k.columns.contains(c))
    };
    // A shadow column is visible to every client (`SELECT *`, `RETURNING *`, positional
    // `INSERT`/`COPY`) and, after `complete`, leaves the column last for good: PostgreSQL cannot
    // reorder columns, and duet does not see every reader (direct connections, functions). So it
    // is used only when the operator asked for it; the shadow table keeps the column order.
    if single_plain && allow_shadow_column(input) {
        return Ok(shadow_column::plan(info, &key.columns, &types[0], input));
    }
    let why_table = if !key_changed.is_empty() {
        format!(
            "key column {} changes type: the key is the arbiter of every dual-write, so the whole \
             table is rebuilt as a shadow table",
            key_changed.join(", ")
        )
    } else if types.len() > 1 {
        "several columns change type: one shadow table carries them all".to_string()
    } else if !single_plain {
        "the column has indexes or constraints that must be rebuilt for the new type: a shadow \
         table rebuilds them concurrently"
            .to_string()
    } else {
        format!(
            "a shadow table keeps the column order: the whole table is copied rather than one \
             column, because a shadow column would show {0} to SELECT *, RETURNING * and COPY \
             while it runs and leave {1} as the last column after complete, so positional INSERT \
             and COPY would store values in the wrong columns (`--shadow-column` accepts that to \
             copy one column only)",
            quote_ident(&with_suffix(&types[0].column, TEMP_SUFFIX)),
            quote_ident(&types[0].column)
        )
    };
    shadow_table::plan(client, info, &key, &types, &why_table, input).await
}
