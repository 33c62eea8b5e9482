//! From parsed changes and the catalog to a [`Plan`]: the strategy (the classifier's verdict,
//! sharpened by what only the live catalog knows: the key, indexes, sequences), validation by the
//! server itself, and the steps.

use tokio_postgres::Client;

use crate::check::ast::{self, ColumnType};
use crate::check::parse::run_on_parser_stack;
use crate::check::schema::{Column as SchemaColumn, Schema, Table};
use crate::check::strategy::{strategy, Strategy};
use crate::check::version::EngineVersion;
use crate::ident::{quote_ident, QualifiedName};
use crate::migrate::{ColumnMapping, CopyTarget};
use crate::rewrite::{TableRoute, Target};

use super::audit::audit;
use super::catalog::{read_table, resolve_table, TableInfo};
use super::input::{parse_sql, qualify, Change, Changes};
use super::names::{with_suffix, NOT_NULL_SUFFIX, OLD_SUFFIX, TEMP_SUFFIX};
use super::steps::{concurrent, route_columns, shadow_column, shadow_table, step, TypeChange};
use super::{pgroll, BackfillSpec, CopySpec, Plan, PlanError, PlanInput, PlanKind, Step};

const BRIEF: &str = "ACCESS EXCLUSIVE (brief, metadata only)";

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
        rename_plan(&info, &changes.changes, input)?
    } else {
        in_place_plan(&info, &changes.changes, input)?
    };
    let changed = changed_columns(&changes.changes);
    if let Err(refusal) = audit(&info, &mut plan, &changed) {
        return Err(
            suggest_shadow_column(client, &info, &changes.changes, input, &plan, refusal).await,
        );
    }
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

fn empty_plan(info: &TableInfo, kind: PlanKind, reason: String, input: &PlanInput) -> Plan {
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

fn classify(info: &TableInfo, sql: &str) -> Result<(Strategy, String), PlanError> {
    let schema = schema_of(info);
    let version = EngineVersion::major(info.server_version_num / 10_000);
    let sql = sql.to_string();
    let verdict = run_on_parser_stack(move || strategy(&sql, &schema, version))
        .map_err(|e| PlanError::Invalid(e.to_string()))?
        .map_err(|e| PlanError::Invalid(e.to_string()))?;
    Ok((verdict.strategy, verdict.reason))
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
        let reason = rewrites
            .iter()
            .map(|(_, _, r)| r.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let mut plan = empty_plan(info, PlanKind::InPlace, reason, input);
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
        return Ok(plan);
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
        let x = &types[0];
        let (s, column) = shadow_column(info, &key.columns, x);
        let reason = format!(
            "changing the type of {0} rewrites every row of {1} under ACCESS EXCLUSIVE; a shadow \
             column was asked for: only {0} is copied, but clients see {2} until the cutover and \
             {3} after it, and {0} is the last column of {1} after complete, so SELECT * and \
             positional INSERT and COPY change meaning",
            quote_ident(&x.column),
            info.name,
            quote_ident(&column),
            quote_ident(&with_suffix(&x.column, OLD_SUFFIX))
        );
        let mut plan = empty_plan(info, PlanKind::ShadowColumn, reason, input);
        plan.copy = Some(CopySpec::Column(BackfillSpec {
            table: info.name.clone(),
            key: key.columns.clone(),
            column,
            expr: x.up.clone(),
        }));
        s.fill(&mut plan);
        plan.carried = info.carried.clone();
        return Ok(plan);
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
    // Generated columns are not written: the shadow computes them (`shadow_table`).
    let mapping = info
        .columns
        .iter()
        .filter(|c| !c.is_generated())
        .map(|c| {
            let expr = types
                .iter()
                .find(|x| x.column == c.name)
                .map(|x| x.up.clone())
                .unwrap_or_else(|| quote_ident(&c.name));
            ColumnMapping::new(c.name.clone(), expr)
        })
        .collect();
    let mut target = CopyTarget::plan(client, info.name.clone(), mapping)
        .await
        .map_err(|e| PlanError::Unsupported(e.to_string()))?;
    target.shadow_key_types = key
        .columns
        .iter()
        .zip(&key.source_types)
        .map(|(c, old)| {
            types
                .iter()
                .find(|x| &x.column == c)
                .map(|x| x.new_base.clone())
                .unwrap_or_else(|| old.clone())
        })
        .collect();
    let s = shadow_table(info, &target, &types);
    let mut plan = empty_plan(
        info,
        PlanKind::ShadowTable,
        format!(
            "changing the type of {} rewrites every row of {} under ACCESS EXCLUSIVE; {why_table}",
            types
                .iter()
                .map(|x| quote_ident(&x.column))
                .collect::<Vec<_>>()
                .join(", "),
            info.name
        ),
        input,
    );
    plan.copy = Some(CopySpec::Table(target));
    s.fill(&mut plan);
    plan.carried = info.carried.clone();
    Ok(plan)
}

fn rename_plan(info: &TableInfo, changes: &[Change], input: &PlanInput) -> Result<Plan, PlanError> {
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

fn in_place_plan(
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
                    "SHARE UPDATE EXCLUSIVE (does not block reads or writes)",
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
                    "ACCESS EXCLUSIVE or SHARE ROW EXCLUSIVE (brief, no scan)",
                    "enforce the constraint for new writes at once",
                ));
                steps.push(step(
                    format!("ALTER TABLE {t} VALIDATE CONSTRAINT {}", quote_ident(name)),
                    "SHARE UPDATE EXCLUSIVE (does not block reads or writes)",
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
                    "SHARE UPDATE EXCLUSIVE (does not block reads or writes)",
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
                    "SHARE UPDATE EXCLUSIVE (does not block reads or writes)",
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
                    "SHARE UPDATE EXCLUSIVE (does not block reads or writes)",
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
