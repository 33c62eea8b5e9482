//! Reading the schema model from a live database (`duet check --database URL`): tables, columns,
//! constraints (with validity), indexes, and real sizes (row estimate, bytes) to scale risk.
//!
//! Not to be confused with the planner's catalog reader (`plan::catalog`): this one reads
//! a summary of every table for the linter's verdicts; the planner's reads everything about the
//! one table under migration (defaults, identity, views, triggers, policies, foreign keys).

use super::ast::{self, ColumnType};
use super::schema::{Column, Constraint, ConstraintKind, Index, Schema, Table, TableStats};
use super::CheckError;

const TABLES: &str = "SELECT n.nspname, c.relname, c.relkind::text, greatest(c.reltuples, 0)::float8, pg_total_relation_size(c.oid),
       coalesce(am.amname::text, ''), coalesce(ts.spcname::text, ''), c.relpersistence::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_am am ON am.oid = c.relam LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
 WHERE c.relkind IN ('r','p','m') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'";

const COLUMNS: &str = "SELECT n.nspname, c.relname, a.attname, t.typname, a.atttypmod, a.attnotnull, a.atthasdef, a.attndims > 0 OR t.typcategory = 'A',
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN coll.collname::text END
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_collation coll ON coll.oid = a.attcollation
 WHERE c.relkind IN ('r','p','m') AND a.attnum > 0 AND NOT a.attisdropped
   AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'
 ORDER BY c.oid, a.attnum";

const CONSTRAINTS: &str = "SELECT n.nspname, c.relname, k.conname, k.contype::text, k.convalidated,
       coalesce(array(SELECT a.attname::text FROM unnest(k.conkey) u JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u), '{}'),
       coalesce(rn.nspname, ''), coalesce(rc.relname, ''), coalesce(pg_get_constraintdef(k.oid), '')
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class rc ON rc.oid = k.confrelid LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog','information_schema')";

/// Domains with constraints (adding a column of one rewrites the table).
const CONSTRAINED_DOMAINS: &str = "SELECT t.typname::text FROM pg_type t
 WHERE t.typtype = 'd' AND (t.typnotnull OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contypid = t.oid))";

const INDEXES: &str = "SELECT n.nspname, ic.relname, tc.relname, i.indisunique,
       coalesce(array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) u JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u), '{}')
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = tc.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'";

/// Reads the live schema. Runs its own small tokio runtime (the CLI is synchronous).
pub fn read_live_schema(url: &str) -> Result<Schema, CheckError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CheckError::Catalog(e.to_string()))?;
    rt.block_on(read(url))
}

async fn read(url: &str) -> Result<Schema, CheckError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| CheckError::Catalog(e.to_string()))?;
    let conn = tokio::spawn(connection);
    let schema = read_schema(&client).await;
    drop(client);
    let _ = conn.await;
    schema
}

/// Reads the live schema over a connection the caller opened (and drives), for callers that
/// connect in their own way (duet's `check` uses the backend URL's TLS settings).
pub async fn read_schema(client: &tokio_postgres::Client) -> Result<Schema, CheckError> {
    let err = |e: tokio_postgres::Error| CheckError::Catalog(e.to_string());
    let mut schema = Schema::default();
    for row in client.query(TABLES, &[]).await.map_err(err)? {
        let key = ast::relation_key(row.get(0), row.get(1));
        let kind: String = row.get(2);
        schema.tables.insert(
            key,
            Table {
                partitioned: kind == "p",
                stats: Some(TableStats {
                    rows: row.get(3),
                    bytes: row.get(4),
                }),
                access_method: ast::access_method(row.get(5)),
                tablespace: ast::tablespace(row.get(6)),
                unlogged: row.get::<_, &str>(7) == "u",
                ..Table::default()
            },
        );
    }
    for row in client.query(COLUMNS, &[]).await.map_err(err)? {
        let key = ast::relation_key(row.get(0), row.get(1));
        let typname: String = row.get(3);
        let typmod: i32 = row.get(4);
        let is_array: bool = row.get(7);
        let mut ty = ColumnType::named(typname.trim_start_matches('_'));
        ty.array = is_array;
        ty.mods = type_mods(&ty.name, typmod);
        if let Some(t) = schema.tables.get_mut(&key) {
            t.columns.push(Column {
                name: row.get(2),
                ty: Some(ty),
                not_null: row.get(5),
                has_default: row.get(6),
                collation: row
                    .get::<_, Option<String>>(8)
                    .map(|c| c.to_ascii_lowercase()),
            });
        }
    }
    for row in client.query(CONSTRAINTS, &[]).await.map_err(err)? {
        let key = ast::relation_key(row.get(0), row.get(1));
        let contype: String = row.get(3);
        let columns: Vec<String> = row.get(5);
        let def: String = row.get(8);
        let kind = match contype.as_str() {
            "c" => ConstraintKind::Check {
                not_null_of: not_null_check_column(&def),
            },
            "f" => ConstraintKind::ForeignKey {
                referenced: ast::relation_key(row.get(6), row.get(7)),
            },
            "u" => ConstraintKind::Unique,
            "p" => ConstraintKind::PrimaryKey,
            "x" => ConstraintKind::Exclusion,
            "n" => ConstraintKind::NotNull,
            _ => continue,
        };
        if let ConstraintKind::ForeignKey { referenced } = &kind {
            if schema.tables.contains_key(&key) {
                schema.note_foreign_key(&key, referenced);
            }
        }
        if let Some(t) = schema.tables.get_mut(&key) {
            t.constraints.push(Constraint {
                name: row.get(2),
                kind,
                columns,
                valid: row.get(4),
                // Partition-bound proofs need the CHECK expression, which is not read here:
                // ATTACH PARTITION is then judged as scanning (the safe side).
                bounds: Vec::new(),
            });
        }
    }
    for row in client.query(CONSTRAINED_DOMAINS, &[]).await.map_err(err)? {
        schema
            .constrained_domains
            .insert(row.get::<_, String>(0).to_ascii_lowercase());
    }
    for row in client.query(INDEXES, &[]).await.map_err(err)? {
        let schema_name: &str = row.get(0);
        schema.insert_index(
            ast::relation_key(schema_name, row.get(1)),
            Index {
                table: ast::relation_key(schema_name, row.get(2)),
                unique: row.get(3),
                columns: row.get(4),
            },
        );
    }
    Ok(schema)
}

fn type_mods(name: &str, typmod: i32) -> Vec<i64> {
    if typmod < 0 {
        return Vec::new();
    }
    let m = i64::from(typmod);
    match name {
        "varchar" | "bpchar" => vec![m - 4],
        "numeric" => vec![((m - 4) >> 16) & 0xffff, (m - 4) & 0xffff],
        "timestamp" | "timestamptz" | "time" | "timetz" | "interval" | "varbit" | "bit" => vec![m],
        _ => Vec::new(),
    }
}

/// `CHECK ((c IS NOT NULL))` as printed by pg_get_constraintdef → `c`.
fn not_null_check_column(def: &str) -> Option<String> {
    let inner = def.strip_prefix("CHECK ")?.trim();
    let inner = inner.trim_start_matches('(').trim_end_matches(')').trim();
    let col = inner.strip_suffix(" IS NOT NULL")?.trim();
    if col.is_empty() || col.contains(' ') {
        return None;
    }
    Some(col.trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_type_modifiers_and_not_null_checks() {
        assert_eq!(type_mods("varchar", 24), vec![20]);
        assert_eq!(type_mods("numeric", ((10 << 16) | 2) + 4), vec![10, 2]);
        assert_eq!(
            not_null_check_column("CHECK ((email IS NOT NULL))"),
            Some("email".into())
        );
        assert_eq!(not_null_check_column("CHECK ((a > 0))"), None);
    }
}
