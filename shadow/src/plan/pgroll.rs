//! pgroll's migration format (YAML or JSON: `{"name", "operations": [ {"<op>": {…}} ]}`) reduced
//! to the same [`Change`]s as SQL input. Each operation is written as the equivalent SQL
//! statement, with every name quoted and every type and expression checked by the grammar to be
//! exactly one type or one expression, and then parsed like SQL input — so both inputs share one
//! path to a plan.
//!
//! Supported operations: `add_column`, `alter_column` (`type` with `up`/`down`, `nullable:
//! false`, `name` for a rename), `rename_column`, `drop_column`, `create_index`, `drop_index`,
//! `create_constraint` (`check`, `unique`, `foreign_key`).

use serde_json::{Map, Value};

use super::input::{parse_expr_text, parse_sql, parse_type_text, Change, Changes};
use super::PlanError;
use crate::ident::quote_ident;

/// Parse a pgroll migration file (JSON when it starts with `{`, else YAML).
pub fn parse(text: &str, file_name: &str) -> Result<Changes, PlanError> {
    let shown = if file_name.is_empty() {
        "the pgroll migration".to_string()
    } else {
        file_name.to_string()
    };
    let doc: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| PlanError::Invalid(format!("{shown} is not valid JSON: {e}")))?
    } else {
        serde_norway::from_str(text)
            .map_err(|e| PlanError::Invalid(format!("{shown} is not valid YAML: {e}")))?
    };
    let ops = doc
        .get("operations")
        .and_then(Value::as_array)
        .ok_or_else(|| PlanError::Invalid(format!("{shown} has no \"operations\" list")))?;
    let mut statements = Vec::new();
    let mut downs: Vec<(String, String)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let obj = op.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
            PlanError::Invalid(format!(
                "operation {} of {shown} must be an object with one key (the operation)",
                i + 1
            ))
        })?;
        for (name, body) in obj {
            let body = body.as_object().ok_or_else(|| {
                PlanError::Invalid(format!("operation {} ({name}) must be an object", i + 1))
            })?;
            let mut down = None;
            let sql = operation(name, body, &mut down)
                .map_err(|e| prefix(e, &format!("operation {} ({name}) of {shown}", i + 1)))?;
            if let Some(d) = down {
                downs.push(d);
            }
            statements.extend(sql);
        }
    }
    let mut changes = parse_sql(&statements.join(";\n"))?;
    for c in &mut changes.changes {
        if let Change::AlterType { column, down, .. } = c {
            if let Some((_, d)) = downs.iter().find(|(col, _)| col == column) {
                *down = Some(d.clone());
            }
        }
    }
    Ok(changes)
}

fn prefix(e: PlanError, at: &str) -> PlanError {
    match e {
        PlanError::Invalid(m) => PlanError::Invalid(format!("{at}: {m}")),
        PlanError::Unsupported(m) => PlanError::Unsupported(format!("{at}: {m}")),
        other => other,
    }
}

fn field<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, PlanError> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| PlanError::Invalid(format!("\"{key}\" is missing or not a string")))
}

fn opt<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `"schema"."table"` or `"table"` from pgroll's `table` field.
fn table_sql(name: &str) -> String {
    match name.split_once('.') {
        Some((s, t)) => format!("{}.{}", quote_ident(s), quote_ident(t)),
        None => quote_ident(name),
    }
}

fn strings(body: &Map<String, Value>, key: &str) -> Result<Vec<String>, PlanError> {
    body.get(key)
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PlanError::Invalid(format!("\"{key}\" must be a list of names")))
}

fn column_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn operation(
    name: &str,
    body: &Map<String, Value>,
    down: &mut Option<(String, String)>,
) -> Result<Vec<String>, PlanError> {
    match name {
        "add_column" => {
            let t = table_sql(field(body, "table")?);
            let col = body
                .get("column")
                .and_then(Value::as_object)
                .ok_or_else(|| PlanError::Invalid("\"column\" must be an object".into()))?;
            if opt(body, "up").is_some() {
                return Err(PlanError::Unsupported(
                    "\"up\" (computing existing rows of a new column) is not supported: give a \
                     constant \"default\", or add the column nullable and fill it in batches"
                        .into(),
                ));
            }
            let mut sql = format!(
                "ALTER TABLE {t} ADD COLUMN {} {}",
                quote_ident(field(col, "name")?),
                parse_type_text(field(col, "type")?)?
            );
            if let Some(d) = opt(col, "default") {
                sql.push_str(&format!(" DEFAULT {}", parse_expr_text(d)?));
            }
            if col.get("nullable").and_then(Value::as_bool) == Some(false) {
                sql.push_str(" NOT NULL");
            }
            if col.get("unique").and_then(Value::as_bool) == Some(true)
                || col.get("pk").and_then(Value::as_bool) == Some(true)
                || col.get("references").is_some()
                || col.get("check").is_some()
            {
                return Err(PlanError::Unsupported(
                    "add_column with pk/unique/references/check: add the column first, then the \
                     constraint with create_constraint"
                        .into(),
                ));
            }
            Ok(vec![sql])
        }
        "alter_column" => {
            let t = table_sql(field(body, "table")?);
            let column = field(body, "column")?;
            let q = quote_ident(column);
            let mut out = Vec::new();
            let mut did = 0;
            if let Some(ty) = opt(body, "type") {
                did += 1;
                let ty = parse_type_text(ty)?;
                let using = match opt(body, "up") {
                    Some(up) => format!(" USING {}", parse_expr_text(up)?),
                    None => String::new(),
                };
                if let Some(d) = opt(body, "down") {
                    *down = Some((column.to_string(), parse_expr_text(d)?));
                }
                out.push(format!("ALTER TABLE {t} ALTER COLUMN {q} TYPE {ty}{using}"));
            }
            if body.get("nullable").and_then(Value::as_bool) == Some(false) {
                did += 1;
                out.push(format!("ALTER TABLE {t} ALTER COLUMN {q} SET NOT NULL"));
            }
            if let Some(new) = opt(body, "name") {
                did += 1;
                out.push(format!(
                    "ALTER TABLE {t} RENAME COLUMN {q} TO {}",
                    quote_ident(new)
                ));
            }
            for unsupported in ["check", "unique", "references", "default", "comment"] {
                if body.contains_key(unsupported) {
                    return Err(PlanError::Unsupported(format!(
                        "alter_column with \"{unsupported}\" is not planned: use create_constraint \
                         for constraints; run SET DEFAULT / COMMENT directly"
                    )));
                }
            }
            if body.get("nullable").and_then(Value::as_bool) == Some(true) {
                return Err(PlanError::Unsupported(
                    "alter_column nullable: true (DROP NOT NULL) is instant: run it directly"
                        .into(),
                ));
            }
            if did == 0 {
                return Err(PlanError::Invalid("alter_column changes nothing".into()));
            }
            if did > 1 {
                return Err(PlanError::Unsupported(
                    "alter_column changes several things at once: split it into one operation \
                     (and one migration) per change"
                        .into(),
                ));
            }
            Ok(out)
        }
        "rename_column" => Ok(vec![format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            table_sql(field(body, "table")?),
            quote_ident(field(body, "from")?),
            quote_ident(field(body, "to")?)
        )]),
        "drop_column" => Ok(vec![format!(
            "ALTER TABLE {} DROP COLUMN {}",
            table_sql(field(body, "table")?),
            quote_ident(field(body, "column")?)
        )]),
        "create_index" => {
            let unique = if body.get("unique").and_then(Value::as_bool) == Some(true) {
                "UNIQUE "
            } else {
                ""
            };
            let method = match opt(body, "method") {
                Some(m @ ("btree" | "hash" | "gist" | "spgist" | "gin" | "brin")) => {
                    format!(" USING {m}")
                }
                Some(other) => {
                    return Err(PlanError::Invalid(format!(
                        "unknown index method {other:?}"
                    )))
                }
                None => String::new(),
            };
            let predicate = match opt(body, "predicate") {
                Some(p) => format!(" WHERE {}", parse_expr_text(p)?),
                None => String::new(),
            };
            Ok(vec![format!(
                "CREATE {unique}INDEX {} ON {}{method} ({}){predicate}",
                quote_ident(field(body, "name")?),
                table_sql(field(body, "table")?),
                column_list(&strings(body, "columns")?)
            )])
        }
        "drop_index" => Ok(vec![format!(
            "DROP INDEX {}",
            table_sql(field(body, "name")?)
        )]),
        "create_constraint" => {
            let t = table_sql(field(body, "table")?);
            let cname = quote_ident(field(body, "name")?);
            match field(body, "type")? {
                "check" => Ok(vec![format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {cname} CHECK ({})",
                    parse_expr_text(field(body, "check")?)?
                )]),
                "unique" => Ok(vec![format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {cname} UNIQUE ({})",
                    column_list(&strings(body, "columns")?)
                )]),
                "foreign_key" => {
                    let r = body
                        .get("references")
                        .and_then(Value::as_object)
                        .ok_or_else(|| {
                            PlanError::Invalid("\"references\" must be an object".into())
                        })?;
                    let on_delete = match opt(r, "on_delete") {
                        Some(
                            a @ ("NO ACTION" | "RESTRICT" | "CASCADE" | "SET NULL" | "SET DEFAULT"),
                        ) => format!(" ON DELETE {a}"),
                        Some(other) => {
                            return Err(PlanError::Invalid(format!("unknown on_delete {other:?}")))
                        }
                        None => String::new(),
                    };
                    Ok(vec![format!(
                        "ALTER TABLE {t} ADD CONSTRAINT {cname} FOREIGN KEY ({}) REFERENCES {} ({}){on_delete}",
                        column_list(&strings(body, "columns")?),
                        table_sql(field(r, "table")?),
                        column_list(&strings(r, "columns")?)
                    )])
                }
                other => Err(PlanError::Unsupported(format!(
                    "constraint type {other:?} is not planned (check, unique, foreign_key are)"
                ))),
            }
        }
        other => Err(PlanError::Unsupported(format!(
            "pgroll operation {other:?} is not planned by duet (add_column, alter_column, \
             rename_column, drop_column, create_index, drop_index, create_constraint are); run \
             it directly or as SQL"
        ))),
    }
}
