//! The safety net: PostgreSQL itself mirrors every write that duet's rewrite did not.
//!
//! The rewrite is the fast path, but it only sees what one duet receives and can parse. Writes
//! that arrive another way — a direct connection (cron, psql, a second proxy), SQL-level
//! `PREPARE`/`EXECUTE`, a function, a `DO` block, a trigger or rule on another table, a foreign-key
//! cascade, a statement duet passes unchanged — are mirrored by a trigger on the table under
//! migration, in the writer's own transaction, with exactly the SQL the rewrite would have used
//! (the same [`super::shadow_table`] upsert, tombstones and plain deletes, or the same shadow-column
//! expression). So whoever writes, the shadow is right when the transaction commits, and the
//! cutover and `revert` have nothing to repair.
//!
//! - **Shadow column**: a `BEFORE INSERT OR UPDATE` row trigger sets the shadow column from the
//!   row being written, every time (after the flip, an `INSERT` that filled the parked old column
//!   instead of the new one first gets the new one back from it: [`ParkedValue`]). It is cheaper
//!   than any test of whether the rewrite already did (an assignment, no table access) and it
//!   sees the row after the application's own `BEFORE` triggers (its name sorts after theirs).
//! - **Shadow table**: an `AFTER` row trigger mirrors each key the write touched as the table holds
//!   it when the trigger fires — the current row upserted, or a tombstone or plain delete for a key
//!   with no row any more (a deleted row, the old key of a key-changing `UPDATE`); an `AFTER
//!   TRUNCATE` statement trigger truncates the shadow. Reading the row back, not mirroring `NEW`,
//!   keeps a write nested in the application's own `AFTER` trigger (which fires first and is
//!   mirrored first) from being overwritten by the older version. A statement duet rewrote has already written
//!   the shadow, so its rows are skipped: the rewritten statement sets the transaction-local
//!   setting [`DUAL_WRITTEN_SETTING`] after its own write to the table is complete (and only when
//!   rows of *this* table were written), the row triggers fired directly by that top-level statement
//!   (`pg_trigger_depth() = 1`) see it and return, and an `AFTER` statement trigger — which fires
//!   after the statement's row triggers — clears it, so the next statement of the transaction is
//!   checked again. Writes nested in a trigger run at depth 2 or more and are always mirrored;
//!   writes by functions the statement calls happen before the marker is set. A marker that is
//!   missing only costs a second, identical upsert; a marker is never set for rows the rewrite did
//!   not mirror.
//!
//! The shadow table's writes run in a `SECURITY DEFINER` function as the role that created it
//! (duet's control role, owner of the shadow), so an application role that may write the table
//! needs no privilege on the shadow for the net's writes, and with the `search_path` of the
//! control connection that created it (the one the copier evaluates the same mapping under), so
//! a session's own path cannot redirect them; the trigger function that decides whether to call it
//! runs with the writer's rights, so a rewritten row pays for neither. Names are schema-qualified
//! throughout. The triggers are `ENABLE ALWAYS`: they fire under `session_replication_role =
//! replica` too (logical-replication apply, restores).
//!
//! The function is replaced (`CREATE OR REPLACE`, no table lock) when the route changes: plain
//! deletes once the copy is done, the reverse direction at the flip. The triggers are created with
//! the shadow (`expand`), moved to the new table in the flip's transaction, and dropped by
//! `complete`, `abort` and `revert`.

use crate::ident::with_suffix;
use crate::ident::{quote_ident, QualifiedName};

use super::outcome::TagVerb;
use super::route::{ParkedValue, TableRoute, Target};
use super::shadow_table::{shadow_upsert, Shadow};

/// The transaction-local setting a rewritten statement sets once its rows are in the shadow.
pub const DUAL_WRITTEN_SETTING: &str = "duet.dual_written";
/// The row trigger's name: `~` sorts after letters and digits, so it fires after the
/// application's own triggers of the same kind and sees the row they made.
pub const ROW_TRIGGER: &str = "~duet_net";
/// The statement trigger's name (shadow tables: clears the marker, mirrors `TRUNCATE`).
pub const STATEMENT_TRIGGER: &str = "~duet_net_statement";
/// Suffix of the net's trigger function's name (in schema `duet`).
const FUNCTION_SUFFIX: &str = "__net";
/// Suffix of the net's mirror function's name (in schema `duet`).
const MIRROR_SUFFIX: &str = "__net_mirror";

/// The net function of `table` (its name before any flip), schema-qualified and quoted. One per
/// table: a table has one migration at a time, and the function keeps its name when the flip
/// renames the tables.
pub fn function_name(table: &QualifiedName) -> String {
    let name = with_suffix(&format!("{}.{}", table.schema, table.name), FUNCTION_SUFFIX);
    format!("\"duet\".{}", quote_ident(&name))
}

/// The function that writes the shadow for the net (`SECURITY DEFINER`, called only for rows the
/// rewrite did not mirror), schema-qualified and quoted, with its argument types.
fn mirror_name(table: &QualifiedName) -> String {
    let name = with_suffix(&format!("{}.{}", table.schema, table.name), MIRROR_SUFFIX);
    format!("\"duet\".{}", quote_ident(&name))
}

/// `CREATE OR REPLACE FUNCTION` of the net for `route` (no lock on any table); `None` for a route
/// that mirrors nothing (a rename's translation).
///
/// A shadow column's trigger function only assigns, with the writer's rights. A shadow table's
/// trigger function is split in two: the trigger itself (the writer's rights, no `SET` clause)
/// tests the marker and returns — the path of every rewritten row, where a `SECURITY DEFINER`
/// function's switch of user and `search_path` cost measurably — and only other rows call the
/// mirror function, which runs as duet's control role with its `search_path`.
pub fn function_sql(table: &QualifiedName, route: &TableRoute) -> Option<String> {
    let trigger_function = |body: &str| {
        format!(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $duet_net$
#variable_conflict use_column
BEGIN
  {body}
END
$duet_net$",
            function_name(table)
        )
    };
    match &route.target {
        Target::ShadowColumn {
            column,
            expr,
            skip_when,
            recover,
        } => {
            let assign = format!(
                "NEW.{} := (SELECT {expr} FROM (SELECT NEW.*) AS __duet_o);",
                quote_ident(column)
            );
            // A test of its own before the assignment: inside one statement the planner could
            // fold the cast of the row's constant values and fail before a CASE chose NULL.
            let mut body = match skip_when {
                None => assign,
                Some(p) => format!(
                    "IF (SELECT coalesce(({p}), false) FROM (SELECT NEW.*) AS __duet_o) THEN\n    NEW.{} := NULL;\n  ELSE\n    {assign}\n  END IF;",
                    quote_ident(column)
                ),
            };
            if let Some(parked) = recover {
                body = format!("{}\n  {body}", recover_sql(route, column, parked));
            }
            Some(trigger_function(&format!("{body}\n  RETURN NEW;")))
        }
        Target::ShadowTable { .. } => {
            let side = Shadow::of(&route.target)?;
            let shadow_sql = format!("{}.{}", quote_ident(&route.schema), quote_ident(side.name));
            // Rows the shadow cannot hold are skipped by a test of their own, before the write:
            // inside it, a trigger row's values are constants to the planner, which may fold the
            // mapping's cast (and fail on the very value the predicate excludes) before any
            // WHERE filters it.
            let skip_when = side.skip_when;
            // Rows read back from the table are not constants: the upsert's own filter is safe.
            let with_skip = side;
            let side = Shadow {
                skip_when: None,
                ..side
            };
            let guarded = |row: &str, write: String| {
                match skip_when {
                None => write,
                Some(p) => format!(
                    "IF (SELECT NOT coalesce(({p}), false) FROM (SELECT {row}.*) AS __duet_o) THEN\n      {write};\n    END IF"
                ),
            }
            };
            let table_sql = format!(
                "{}.{}",
                quote_ident(&route.schema),
                quote_ident(&route.name)
            );
            // The row the table holds now under `row`'s key, which may be newer than `row`: a
            // write nested in the application's own `AFTER` trigger (which fires before this one)
            // may have changed or removed it since, and its mirror has already run.
            let current = |row: &str| {
                let matches = route
                    .key
                    .iter()
                    .map(|k| {
                        let k = quote_ident(k);
                        format!("__duet_cur.{k} = {row}.{k}")
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!("FROM {table_sql} AS __duet_cur WHERE {matches}")
            };
            // Mirror the key of `row` as the table holds it now: its current row, or its removal.
            let sync = |row: &str| -> Option<String> {
                let upsert = shadow_upsert(
                    &shadow_sql,
                    with_skip,
                    &format!("SELECT __duet_cur.* {}", current(row)),
                    TagVerb::Insert,
                )
                .ok()?;
                let delete = guarded(
                    row,
                    shadow_upsert(
                        &shadow_sql,
                        side,
                        &format!("SELECT {row}.*"),
                        TagVerb::Delete,
                    )
                    .ok()?,
                );
                Some(format!(
                    "IF EXISTS (SELECT 1 {}) THEN\n      {upsert};\n    ELSE\n      {delete};\n    END IF",
                    current(row)
                ))
            };
            let key_of = |row: &str| {
                route
                    .key
                    .iter()
                    .map(|k| format!("{row}.{}", quote_ident(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let sync_old = sync("duet_old")?;
            let sync_new = sync("duet_new")?;
            let mirror = format!(
                "CREATE OR REPLACE FUNCTION {mirror}(duet_op text, duet_old anyelement, duet_new anyelement)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $duet_net$
#variable_conflict use_column
BEGIN
  IF duet_op = 'TRUNCATE' THEN
    TRUNCATE {shadow_sql};
    RETURN;
  END IF;
  IF duet_op = 'DELETE' OR (duet_op = 'UPDATE' AND ROW({old_key}) IS DISTINCT FROM ROW({new_key})) THEN
    {sync_old};
  END IF;
  IF duet_op <> 'DELETE' THEN
    {sync_new};
  END IF;
END
$duet_net$",
                mirror = mirror_name(table),
                old_key = key_of("duet_old"),
                new_key = key_of("duet_new"),
            );
            let row_type = format!(
                "{}.{}",
                quote_ident(&route.schema),
                quote_ident(&route.name)
            );
            let trigger = trigger_function(&format!(
                "IF TG_LEVEL = 'STATEMENT' THEN
    IF TG_OP = 'TRUNCATE' THEN
      PERFORM {mirror}(TG_OP, NULL::{row_type}, NULL::{row_type});
    END IF;
    PERFORM pg_catalog.set_config('{DUAL_WRITTEN_SETTING}', '', true);
    RETURN NULL;
  END IF;
  IF pg_catalog.pg_trigger_depth() = 1
     AND pg_catalog.current_setting('{DUAL_WRITTEN_SETTING}', true) = 'on' THEN
    RETURN NULL;
  END IF;
  PERFORM {mirror}(TG_OP, OLD, NEW);
  RETURN NULL;",
                mirror = mirror_name(table),
            ));
            Some(format!("{mirror};\n{trigger}"))
        }
        Target::Renamed { .. } => None,
    }
}

/// After a shadow column's flip: an `INSERT` row whose value went into the parked column
/// (`parked_column`) while the new one is NULL gets the new column computed from it, before the
/// parked column is set from the new one ([`ParkedValue`]).
fn recover_sql(route: &TableRoute, parked_column: &str, parked: &ParkedValue) -> String {
    let new = quote_ident(&parked.column);
    let old = quote_ident(parked_column);
    let row = route
        .columns
        .iter()
        .map(|c| {
            let name = quote_ident(&c.name);
            if c.name == parked.column {
                format!("NEW.{old} AS {name}")
            } else {
                format!("NEW.{name} AS {name}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "IF TG_OP = 'INSERT' AND NEW.{old} IS NOT NULL AND NEW.{new} IS NULL THEN\n    NEW.{new} := (SELECT {} FROM (SELECT {row}) AS __duet_o);\n  END IF;",
        parked.expr
    )
}

/// The net's function and triggers on `on` (the table as named when the statement runs) for
/// `route`; idempotent (an interrupted step can run again). `CREATE TRIGGER` takes SHARE ROW
/// EXCLUSIVE on `on`: run it guarded (short `lock_timeout`, retries).
pub fn install_sql(
    table: &QualifiedName,
    on: &QualifiedName,
    route: &TableRoute,
) -> Option<String> {
    let function = function_sql(table, route)?;
    let name = function_name(table);
    let on_sql = on.sql();
    let mut sql = format!("{function};\n{}", uninstall_sql(on));
    let triggers: &[&str] = match route.target {
        Target::ShadowColumn { .. } => {
            sql.push_str(&format!(
                ";\nCREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {on_sql} FOR EACH ROW EXECUTE FUNCTION {name}()",
                quote_ident(ROW_TRIGGER)
            ));
            &[ROW_TRIGGER]
        }
        _ => {
            sql.push_str(&format!(
                ";\nCREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {on_sql} FOR EACH ROW EXECUTE FUNCTION {name}();
CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {on_sql} FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
                quote_ident(ROW_TRIGGER),
                quote_ident(STATEMENT_TRIGGER)
            ));
            &[ROW_TRIGGER, STATEMENT_TRIGGER]
        }
    };
    // Also under `session_replication_role = replica` (a logical-replication apply worker, a
    // restore), which skips ordinary triggers.
    for trigger in triggers {
        sql.push_str(&format!(
            ";\nALTER TABLE {on_sql} ENABLE ALWAYS TRIGGER {}",
            quote_ident(trigger)
        ));
    }
    Some(sql)
}

/// Drops the net's triggers from `on` (the table as named when the statement runs), if there.
pub fn uninstall_sql(on: &QualifiedName) -> String {
    let on_sql = on.sql();
    format!(
        "DROP TRIGGER IF EXISTS {} ON {on_sql};\nDROP TRIGGER IF EXISTS {} ON {on_sql}",
        quote_ident(ROW_TRIGGER),
        quote_ident(STATEMENT_TRIGGER)
    )
}

/// Drops the net's functions (its triggers must be gone: no `CASCADE`, which could reach an
/// object the application made depend on them).
pub fn drop_function_sql(table: &QualifiedName) -> String {
    format!(
        "DROP FUNCTION IF EXISTS {}();\nDROP FUNCTION IF EXISTS {}(text, anyelement, anyelement)",
        function_name(table),
        mirror_name(table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::route::{Column, ColumnMapping};

    fn table_route(plain_deletes: bool) -> TableRoute {
        TableRoute {
            schema: "public".into(),
            name: "t".into(),
            columns: vec![
                Column {
                    name: "id".into(),
                    base_type: "int4".into(),
                },
                Column {
                    name: "v".into(),
                    base_type: "text".into(),
                },
            ],
            key: vec!["id".into()],
            target: Target::ShadowTable {
                shadow: "t__duet".into(),
                mapping: vec![
                    ColumnMapping {
                        target: "id".into(),
                        expr: "\"id\"::bigint".into(),
                    },
                    ColumnMapping {
                        target: "v".into(),
                        expr: "\"v\"".into(),
                    },
                ],
                shadow_key: vec!["id".into()],
                skip_when: None,
                plain_deletes,
            },
        }
    }

    #[test]
    fn the_shadow_table_net_uses_the_rewrites_own_writes() {
        let t = QualifiedName::new("public", "t");
        let sql = install_sql(&t, &t, &table_route(false)).expect("a net");
        assert!(sql.contains("SECURITY DEFINER"));
        assert!(sql.contains("ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\""));
        assert!(sql.contains("SET \"__duet_deleted\" = true"), "{sql}");
        assert!(sql.contains("AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"));
        let plain = function_sql(&t, &table_route(true)).expect("a function");
        assert!(
            plain.contains("DELETE FROM \"public\".\"t__duet\""),
            "{plain}"
        );
    }

    #[test]
    fn a_rename_needs_no_net() {
        let mut route = table_route(false);
        route.target = Target::Renamed {
            columns: vec![("a".into(), "b".into())],
        };
        let t = QualifiedName::new("public", "t");
        assert!(install_sql(&t, &t, &route).is_none());
    }

    #[test]
    fn long_names_fit() {
        let long = "x".repeat(63);
        let name = function_name(&QualifiedName::new(long.clone(), long));
        assert!(name.len() <= "\"duet\".".len() + 65, "{name}");
    }
}
