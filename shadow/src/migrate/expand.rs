//! Expand: create the shadow table in the target shape, per the conventions: the mapped columns
//! (types from the mapping expressions), every non-key column nullable, the same key as arbiter,
//! the tombstone column, and no other constraints or indexes until after the backfill — except a
//! partial index over the tombstones, so that the flip's `DELETE … WHERE "__duet_deleted"` (run
//! while clients are held) reads a few index entries instead of scanning the whole table. It
//! holds only tombstone rows, costs nothing on other writes, and goes away with the column.

use crate::ident::{quote_ident, DELETED_COLUMN};
use crate::migrate::error::MigrateError;
use crate::migrate::guard::{GuardedConnection, PhaseStep};
use crate::migrate::target::CopyTarget;

/// A generated column of the shadow: not in the mapping (nothing writes it; the shadow
/// computes it from the copied columns), but in the shadow's column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedColumn {
    /// Its position among the shadow's columns (0-based, the tombstone column not counted).
    pub position: usize,
    /// Column name (unquoted).
    pub name: String,
    /// Its type, with typmod (`integer`, `character varying(20)`).
    pub sql_type: String,
    /// The generation expression, as `pg_get_expr` prints it.
    pub expression: String,
    /// `STORED`; otherwise `VIRTUAL` (PostgreSQL 18+).
    pub stored: bool,
}

/// The DDL creating `target.shadow` (one transaction; only ACCESS SHARE on the source).
pub fn shadow_table_ddl(target: &CopyTarget) -> String {
    shadow_table_ddl_with_generated(target, &[])
}

/// [`shadow_table_ddl`] for a table with generated columns: the shadow computes them
/// itself, in their place among the mapped columns. `CREATE TABLE … AS` cannot declare a
/// generated column and `ALTER TABLE … ADD COLUMN` would put it last (and could not add one that
/// reads a later column), so the shape is made by `CREATE TABLE … AS` with a typed `NULL` in each
/// generated column's place, then read back from the catalog (types, typmods and collations as
/// the mapping produced them) into a `CREATE TABLE` that declares the generated columns; the
/// table is still empty.
pub fn shadow_table_ddl_with_generated(
    target: &CopyTarget,
    generated: &[GeneratedColumn],
) -> String {
    let mut items: Vec<String> = target
        .mapping
        .iter()
        .map(|m| format!("{} AS {}", m.expr, quote_ident(&m.target)))
        .collect();
    let mut sorted: Vec<&GeneratedColumn> = generated.iter().collect();
    sorted.sort_by_key(|g| g.position);
    for g in &sorted {
        let at = g.position.min(items.len());
        items.insert(
            at,
            format!("NULL::{} AS {}", g.sql_type, quote_ident(&g.name)),
        );
    }
    let select = items.join(", ");
    let redeclare = if generated.is_empty() {
        String::new()
    } else {
        redeclare_with_generated(&target.shadow.sql(), generated)
    };
    let key = target.key_list(None);
    let not_null = target
        .key
        .columns
        .iter()
        .map(|c| format!("ALTER COLUMN {} SET NOT NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let create = format!(
        "CREATE TABLE {shadow} AS SELECT {select} FROM {source} WITH NO DATA;{redeclare}
         ALTER TABLE {shadow} ADD COLUMN {deleted} boolean NOT NULL DEFAULT false, {not_null};
         ALTER TABLE {shadow} ADD PRIMARY KEY ({key});
         CREATE INDEX ON {shadow} ({key}) WHERE {deleted};",
        shadow = target.shadow.sql(),
        source = target.source.sql(),
        deleted = quote_ident(DELETED_COLUMN),
    );
    unless_made_already(&target.shadow.sql(), &create)
}

/// `create` (the shadow's whole DDL, one transaction) unless `shadow` (SQL name) exists already
/// with duet's tombstone column: then an earlier run of the same step committed it whole, and
/// `expand` runs again after an interruption (a failed later step, a restart) without failing on
/// its own table. The plan refused names already taken (`crate::plan`), so a table found here is
/// duet's; one without the tombstone column is not, and `create` fails on it ("already exists").
/// Keeping the table, rather than making it again, can never throw away rows mirrored into it.
fn unless_made_already(shadow: &str, create: &str) -> String {
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!(
        "DO $duet_expand$
         BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                           WHERE attrelid = pg_catalog.to_regclass({shadow})
                             AND attname = {deleted} AND NOT attisdropped) THEN
             EXECUTE {create};
           END IF;
         END $duet_expand$",
        shadow = literal(shadow),
        deleted = literal(DELETED_COLUMN),
        create = literal(create),
    )
}

/// A `DO` block that re-creates the empty `shadow` (SQL name) from its own catalog shape, each
/// of `generated` declared `GENERATED ALWAYS AS (…) STORED` (or `VIRTUAL`).
fn redeclare_with_generated(shadow: &str, generated: &[GeneratedColumn]) -> String {
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let cases = generated
        .iter()
        .map(|g| {
            format!(
                "WHEN {} THEN {}",
                literal(&g.name),
                literal(&format!(
                    " GENERATED ALWAYS AS ({}) {}",
                    g.expression,
                    if g.stored { "STORED" } else { "VIRTUAL" }
                ))
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let shadow_literal = literal(shadow);
    format!(
        "
         DO $duet$
         DECLARE columns text;
         BEGIN
           SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod))
                    || CASE a.attname {cases}
                       ELSE CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
                            THEN ' COLLATE ' || (SELECT format('%I.%I', cn.nspname, co.collname)
                                 FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                                 WHERE co.oid = a.attcollation)
                            ELSE '' END END,
                    ', ' ORDER BY a.attnum)
             INTO columns
             FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
            WHERE a.attrelid = {shadow_literal}::regclass AND a.attnum > 0 AND NOT a.attisdropped;
           EXECUTE 'DROP TABLE ' || {shadow_literal};
           EXECUTE 'CREATE TABLE ' || {shadow_literal} || ' (' || columns || ')';
         END $duet$;"
    )
}

/// Create the shadow through a guarded connection, recording `step` in the same transaction,
/// then read back the shadow's key types into `target`. Returns the attempts made.
pub async fn create_shadow_table(
    guard: &mut GuardedConnection,
    target: &mut CopyTarget,
    step: Option<&PhaseStep>,
) -> Result<u32, MigrateError> {
    let ddl = shadow_table_ddl(target);
    let attempts = guard
        .run_step(&format!("creating shadow {}", target.shadow), &ddl, step)
        .await?;
    target.refresh_shadow_types(guard.client()).await?;
    Ok(attempts)
}
