//! Several tables in one migration: SQL statements (or a pgroll file's operations) on more than
//! one table are planned table by table (each a [`Plan`] of its own, with its own copy), and run
//! together — the flip of every table in one transaction, a revert of all of them in one
//! transaction, `complete` and `abort` of all of them — so the application never sees one table's
//! new shape beside another's old one. The typical case: a key widened together with the columns
//! of other tables that reference it.
//!
//! The order matters where the tables reference each other. A table whose foreign key references
//! another of the migration flips first: its new table takes its name with the key re-created on
//! it, and the referenced table's flip, later in the same transaction, re-points that key (by
//! name, on the table that has the name: the new one) at its own new table
//! ([`super::referencing`]). `complete` then drops the referencing table's old table before the
//! referenced one's (whose old key the former references), and a revert runs in the reverse order.

use tokio_postgres::Client;

use crate::ident::{quote_ident, QualifiedName};

use super::input::parse_sql;
use super::{plan, Plan, PlanError, PlanInput};

/// How [`plan_group`] treats columns of other tables that reference a changed key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupOptions {
    /// Leave them as they are. By default an integer column of another table whose foreign key
    /// references an integer key that is widened (`integer` → `bigint`) is widened with it, in the
    /// same migration: a referencing column narrower than the key overflows as soon as the key
    /// does, which is what the widening is for. Leaving them costs no copy of those tables now;
    /// `plan` then names each with the migration to run later.
    pub keep_referencing_types: bool,
}

/// Plans `input`: one plan for input on one table, one per table (in flip order, each knowing
/// the group) for input on several — including, unless `options` say otherwise, the integer
/// columns of other tables that reference a key it widens. Reads only; any refusal refuses all
/// of it.
pub async fn plan_group(
    client: &Client,
    input: &PlanInput,
    options: GroupOptions,
) -> Result<Vec<Plan>, PlanError> {
    let parts: Vec<PlanInput> = match input {
        PlanInput::Sql { sql, shadow_column } => split_by_table(sql)?
            .into_iter()
            .map(|sql| PlanInput::Sql {
                sql,
                shadow_column: *shadow_column,
            })
            .collect(),
        PlanInput::Pgroll {
            text,
            file_name,
            shadow_column,
        } => split_pgroll(text)
            .into_iter()
            .map(|(table, text)| PlanInput::Pgroll {
                text,
                file_name: if file_name.is_empty() {
                    format!("operations on {table}")
                } else {
                    format!("{file_name} (operations on {table})")
                },
                shadow_column: *shadow_column,
            })
            .collect(),
    };
    let mut plans: Vec<Plan> = Vec::new();
    if parts.len() < 2 {
        plans.push(plan(client, input).await?);
    } else {
        for part in &parts {
            let p = plan(client, part).await?;
            if let Some(other) = plans.iter().find(|o| o.table == p.table) {
                return Err(PlanError::Invalid(format!(
                    "{} is named twice ({} and {}): write all its changes in one place",
                    p.table,
                    statement_of(other),
                    statement_of(&p)
                )));
            }
            plans.push(p);
        }
    }
    if !options.keep_referencing_types {
        // Each widening may widen a key that is referenced in turn: until nothing is added (a
        // bound, should a plan not widen what it was asked to).
        for _ in 0..64 {
            let Some((table, column, new_type, because)) = narrower_referencing(&plans) else {
                break;
            };
            let statement = format!(
                "ALTER TABLE {} ALTER COLUMN {} TYPE {new_type}",
                table,
                quote_ident(&column)
            );
            let shadow_column = match input {
                PlanInput::Sql { shadow_column, .. } | PlanInput::Pgroll { shadow_column, .. } => {
                    *shadow_column
                }
            };
            let part = match plans.iter().position(|p| p.table == table) {
                Some(i) => match &plans[i].input {
                    PlanInput::Sql { sql, .. } => {
                        let input = PlanInput::Sql {
                            sql: format!("{sql};\n{statement}"),
                            shadow_column,
                        };
                        plans.remove(i);
                        input
                    }
                    // A pgroll file's own operations on that table: left as written.
                    PlanInput::Pgroll { .. } => break,
                },
                None => PlanInput::Sql {
                    sql: statement.clone(),
                    shadow_column,
                },
            };
            let mut p = plan(client, &part).await?;
            p.warnings.push(format!(
                "{because}: widened to {new_type} in the same migration (plan with \
                 --keep-referencing-types to leave it)"
            ));
            plans.push(p);
        }
    }
    if plans.len() < 2 {
        return Ok(plans);
    }
    let mut plans = flip_order(plans)?;
    forget_warnings_about_members(&mut plans);
    let group: Vec<QualifiedName> = plans.iter().map(|p| p.table.clone()).collect();
    for p in &mut plans {
        p.group = group.clone();
    }
    Ok(plans)
}

/// The first integer column of another table whose foreign key references an integer key column
/// of a plan that widens it, and is not widened as far already (by the input, or a plan of it):
/// the table, the column, the key's new type, and why (for the plan's warning).
fn narrower_referencing(plans: &[Plan]) -> Option<(QualifiedName, String, &'static str, String)> {
    for p in plans {
        let (Some(before), Some(after)) = (p.dual_write_route.as_ref(), p.flipped_route.as_ref())
        else {
            continue;
        };
        for key in &p.carried.foreign_keys {
            for column in &key.columns {
                let old = before
                    .column(&column.references)
                    .map(|c| c.base_type.as_str());
                let new = after
                    .column(&column.references)
                    .map(|c| c.base_type.as_str());
                let (Some(old), Some(new)) = (old, new) else {
                    continue;
                };
                let (Some(old_width), Some(new_width), Some(width)) = (
                    integer_width(old),
                    integer_width(new),
                    integer_width(&column.base_type),
                ) else {
                    continue;
                };
                if new_width <= old_width || width >= new_width {
                    continue;
                }
                // Already widened by a plan of the group?
                let widened = plans.iter().any(|o| {
                    o.table == key.table
                        && o.flipped_route
                            .as_ref()
                            .and_then(|r| r.column(&column.column))
                            .and_then(|c| integer_width(&c.base_type))
                            .is_some_and(|w| w >= new_width)
                });
                if widened {
                    continue;
                }
                let new_type = match new_width {
                    8 => "bigint",
                    _ => "integer",
                };
                let because = format!(
                    "{}.{} ({}) references {}.{}, which becomes {new_type}",
                    key.table,
                    quote_ident(&column.column),
                    column.sql_type,
                    p.table,
                    quote_ident(&column.references)
                );
                return Some((key.table.clone(), column.column.clone(), new_type, because));
            }
        }
    }
    None
}

/// The width in bytes of an integer base type.
fn integer_width(base: &str) -> Option<u8> {
    match base {
        "int2" => Some(2),
        "int4" => Some(4),
        "int8" => Some(8),
        _ => None,
    }
}

/// The input's SQL for one member, for messages.
fn statement_of(p: &Plan) -> String {
    match &p.input {
        PlanInput::Sql { sql, .. } => format!("{:?}", sql.trim()),
        PlanInput::Pgroll { file_name, .. } => file_name.clone(),
    }
}

/// The statements of `sql` grouped by the table each changes, in the order the tables first
/// appear; a single group (the whole text) when all change one table or a statement names none
/// by itself (`DROP INDEX`: the planner resolves it).
fn split_by_table(sql: &str) -> Result<Vec<String>, PlanError> {
    let statements = pg_query::split_with_parser(sql)
        .map_err(|e| PlanError::Invalid(format!("the SQL does not parse: {e}")))?;
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    for statement in statements {
        let changes = parse_sql(statement)?;
        if changes.table.name.is_empty() {
            return Ok(vec![sql.to_owned()]);
        }
        let (schema, name) = (changes.table.schema, changes.table.name);
        match groups
            .iter_mut()
            .find(|(s, n, _)| *n == name && (s.is_empty() || schema.is_empty() || *s == schema))
        {
            Some((_, _, texts)) => texts.push(statement.trim().to_owned()),
            None => groups.push((schema, name, vec![statement.trim().to_owned()])),
        }
    }
    Ok(groups
        .into_iter()
        .map(|(_, _, texts)| texts.join(";\n"))
        .collect())
}

/// The operations of a pgroll migration grouped by the table each names (`"table"`), each group
/// as a migration of its own (JSON) with the table's name; the whole text as one group when the
/// operations name one table, or an operation names none (`drop_index`) or the text does not
/// read (the pgroll planner then says why).
fn split_pgroll(text: &str) -> Vec<(String, String)> {
    let whole = || vec![(String::new(), text.to_owned())];
    let doc: serde_json::Value = if text.trim_start().starts_with('{') {
        match serde_json::from_str(text) {
            Ok(doc) => doc,
            Err(_) => return whole(),
        }
    } else {
        match serde_norway::from_str(text) {
            Ok(doc) => doc,
            Err(_) => return whole(),
        }
    };
    let Some(operations) = doc.get("operations").and_then(|o| o.as_array()) else {
        return whole();
    };
    let mut groups: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for operation in operations {
        let table = operation
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|body| body.get("table"))
            .and_then(|t| t.as_str());
        let Some(table) = table else {
            return whole();
        };
        match groups.iter_mut().find(|(t, _)| t == table) {
            Some((_, ops)) => ops.push(operation.clone()),
            None => groups.push((table.to_owned(), vec![operation.clone()])),
        }
    }
    if groups.len() < 2 {
        return whole();
    }
    let name = doc.get("name").cloned().unwrap_or(serde_json::Value::Null);
    groups
        .into_iter()
        .map(|(table, operations)| {
            let part = serde_json::json!({"name": name, "operations": operations});
            (table, part.to_string())
        })
        .collect()
}

/// `plans` ordered so that a table comes before every member whose key it references (see the
/// module's docs); refused when members reference each other in a cycle.
fn flip_order(mut plans: Vec<Plan>) -> Result<Vec<Plan>, PlanError> {
    // `referencing(p)`: the members with a foreign key to `p`'s table.
    let referencing = |p: &Plan, all: &[Plan]| -> Vec<QualifiedName> {
        p.carried
            .foreign_keys
            .iter()
            .map(|k| k.table.clone())
            .filter(|t| all.iter().any(|o| &o.table == t))
            .collect()
    };
    let mut ordered: Vec<Plan> = Vec::new();
    while !plans.is_empty() {
        let ready = plans.iter().position(|p| {
            referencing(p, &plans)
                .iter()
                .all(|t| ordered.iter().any(|o| &o.table == t) || *t == p.table)
        });
        match ready {
            Some(i) => ordered.push(plans.remove(i)),
            None => {
                return Err(PlanError::Unsupported(format!(
                    "{} reference each other through foreign keys: duet cannot flip them in an \
                     order that keeps every key on a table of the same shape. Migrate them one \
                     at a time",
                    plans
                        .iter()
                        .map(|p| p.table.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
    }
    Ok(ordered)
}

/// Drops each member's warning that a referencing column keeps the old type when that column's
/// own change is in the migration too.
fn forget_warnings_about_members(plans: &mut [Plan]) {
    let changed: Vec<(QualifiedName, Vec<String>)> = plans
        .iter()
        .map(|p| {
            let columns = p
                .flipped_route
                .as_ref()
                .zip(p.dual_write_route.as_ref())
                .map(|(after, before)| {
                    after
                        .columns
                        .iter()
                        .filter(|c| {
                            before
                                .column(&c.name)
                                .is_some_and(|b| b.base_type != c.base_type)
                        })
                        .map(|c| c.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            (p.table.clone(), columns)
        })
        .collect();
    for p in plans.iter_mut() {
        let covered: Vec<String> = p
            .carried
            .foreign_keys
            .iter()
            .flat_map(|k| {
                let columns = changed
                    .iter()
                    .find(|(t, _)| *t == k.table)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_default();
                k.columns
                    .iter()
                    .filter(move |c| columns.contains(&c.column))
                    .map(move |c| format!("{}.{} (", k.table, quote_ident(&c.column)))
                    .collect::<Vec<_>>()
            })
            .collect();
        p.warnings
            .retain(|w| !covered.iter().any(|prefix| w.starts_with(prefix)));
    }
}
