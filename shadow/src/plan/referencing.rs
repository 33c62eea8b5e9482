//! Foreign keys of other tables that reference the table a shadow table replaces — the key
//! migration people need most (an `int` primary key running out, referenced from everywhere).
//!
//! A foreign key is bound to the referenced table by OID, so the flip's renames alone would leave
//! every referencing key pointing at the old table. The keys stay enforced for every write at
//! every moment:
//!
//! - **before the flip** the application writes the old table (the shadow is filled by the
//!   copier, the dual-writes and the safety net), and the keys, on the old table, check every
//!   write of either side as they always did; a referencing key's own actions (`ON DELETE
//!   CASCADE`, `SET NULL`) write the referencing table, which is not under migration;
//! - **the flip's transaction** (clients held) drops each key and adds it again under its name
//!   with its definition — which names the table, and so now the new one — as `NOT VALID`: no
//!   scan while clients wait, and a `NOT VALID` key is enforced for every write from the moment it
//!   commits. Nothing is ever unchecked: the old key checks every write committed before, the new
//!   one every write after. Its rows need no check: they were valid against the old table, and
//!   the new table holds the same keys (the cutover verified it);
//! - **`complete`** validates each key that was valid when planned (`VALIDATE CONSTRAINT`: SHARE
//!   UPDATE EXCLUSIVE on the referencing table, which blocks no reads or writes) before it drops
//!   the old table; a key that was `NOT VALID` stays so;
//! - **a revert** points each key back at the old table in its own transaction, and validates
//!   after it (before the new table is dropped).
//!
//! The old table, written only by duet's reverse mirror after the flip, is referenced by no key
//! then, so a mirrored row the old shape cannot hold (a key past 2^31) never fails a check there.
//!
//! What cannot be carried is refused when planning (a [`super::carried::CarriedRead`] blocker):
//! a referencing table duet's role may not alter (it must be a member of its owner), and a
//! partitioned referencing table (PostgreSQL cannot add its key `NOT VALID`, so the flip would
//! scan it while clients wait).

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::ident::{quote_ident, QualifiedName};

use super::steps::step;
use super::{Step, StepLock};
use crate::check::LockMode;

/// A foreign key of another table referencing the migrated table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencingKey {
    /// The referencing table.
    pub table: QualifiedName,
    /// The constraint's name.
    pub name: String,
    /// `pg_get_constraintdef` with every name schema-qualified, without `NOT VALID`: it names the
    /// referenced table, so it binds to whichever side has the table's name when it runs.
    pub definition: String,
    /// Validated when planned (`complete` and a revert validate it again).
    pub valid: bool,
    /// The referencing columns, each with its type and the column it references.
    pub columns: Vec<ReferencingColumn>,
    /// `COMMENT ON CONSTRAINT …`, when it has a comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One column of a referencing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencingColumn {
    /// The referencing column.
    pub column: String,
    /// Its type as `format_type` prints it (`integer`).
    pub sql_type: String,
    /// Its base type's name (`int4`).
    pub base_type: String,
    /// The column of the migrated table it references.
    pub references: String,
}

impl ReferencingKey {
    /// `constraint "k" of public.child`, for plans and messages.
    pub fn label(&self) -> String {
        format!("foreign key {} of {}", quote_ident(&self.name), self.table)
    }

    /// Drops the key and adds it again, `NOT VALID`, binding to the side that has the table's
    /// name now.
    fn repoint(&self) -> String {
        let on = self.table.sql();
        let name = quote_ident(&self.name);
        let mut sql = format!(
            "ALTER TABLE {on} DROP CONSTRAINT {name};\nALTER TABLE {on} ADD CONSTRAINT {name} {} NOT VALID",
            self.definition
        );
        if let Some(comment) = &self.comment {
            sql.push_str(";\n");
            sql.push_str(comment);
        }
        sql
    }

    /// Keeps only what identifies the key (for comparing by existence, when the definitions print
    /// differently on either side of a flip).
    pub(super) fn forget_definition(&mut self) {
        self.definition.clear();
        self.valid = false;
        self.columns.clear();
        self.comment = None;
    }
}

/// The step that points every key in `keys` at the side named as the table now (the flip's and
/// the revert's transaction, after the renames), or none.
pub(super) fn repoint_steps(keys: &[ReferencingKey]) -> Vec<Step> {
    if keys.is_empty() {
        return Vec::new();
    }
    vec![step(
        keys.iter()
            .map(ReferencingKey::repoint)
            .collect::<Vec<_>>()
            .join(";\n"),
        StepLock::new(LockMode::AccessExclusive, "on each referencing table (brief: NOT VALID, no scan)"),
        "foreign keys of other tables follow the table's OID: each is re-created under its name, referencing the side that has the table's name, enforced for every write from this commit on",
    )]
}

/// The steps that validate, after the flip or the revert, the keys that were valid when planned
/// (their rows were valid against the other side, which holds the same keys).
pub(super) fn validate_steps(keys: &[ReferencingKey]) -> Vec<Step> {
    keys.iter()
        .filter(|k| k.valid)
        .map(|k| {
            step(
                format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                    k.table.sql(),
                    quote_ident(&k.name)
                ),
                StepLock::new(
                    LockMode::ShareUpdateExclusive,
                    "on the referencing table (reads and writes go on)",
                ),
                "the re-created foreign key is validated again, as it was before the migration",
            )
        })
        .collect()
}

/// Reads the foreign keys referencing `table` (in a session whose `search_path` is empty, so the
/// definitions name every table with its schema): what can be carried, and why the others
/// cannot (one sentence each, saying what to do).
pub(super) async fn read<C: GenericClient>(
    client: &C,
    table: &str,
) -> Result<(Vec<ReferencingKey>, Vec<String>), tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, k.conname::text,
                    pg_catalog.pg_get_constraintdef(k.oid), k.convalidated, c.relkind::text,
                    pg_catalog.pg_has_role(c.relowner, 'USAGE'),
                    (SELECT 'COMMENT ON CONSTRAINT ' || pg_catalog.quote_ident(k.conname) || ' ON '
                            || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
                            || ' IS ' || pg_catalog.quote_literal(d.description)
                       FROM pg_catalog.pg_description d
                      WHERE d.classoid = 'pg_catalog.pg_constraint'::regclass AND d.objoid = k.oid),
                    array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY x(n, i)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n
                           ORDER BY x.i),
                    array(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod)
                            FROM unnest(k.conkey) WITH ORDINALITY x(n, i)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n
                           ORDER BY x.i),
                    array(SELECT t.typname::text FROM unnest(k.conkey) WITH ORDINALITY x(n, i)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n
                            JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                           ORDER BY x.i),
                    array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY x(n, i)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.n
                           ORDER BY x.i)
               FROM pg_catalog.pg_constraint k
               JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE k.confrelid = $1::text::regclass AND k.contype = 'f'
                AND k.conrelid <> k.confrelid
                -- A partition's copy of its parent's key goes with the parent's.
                AND k.conparentid = 0
              ORDER BY 1, 2, 3",
            &[&table],
        )
        .await?;
    let mut keys = Vec::new();
    let mut blockers = Vec::new();
    for row in &rows {
        let referencing = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        let name: String = row.get(2);
        let label = format!("foreign key {} of {referencing}", quote_ident(&name));
        if row.get::<_, String>(5) == "p" {
            blockers.push(format!(
                "{label} references {table}, and {referencing} is partitioned: PostgreSQL cannot \
                 add its key NOT VALID, so the cutover would check every row of it while clients \
                 wait. Drop the key for the migration and add it again after `complete`"
            ));
            continue;
        }
        if !row.get::<_, bool>(6) {
            blockers.push(format!(
                "{label} references {table}, and duet's role cannot re-create it at the cutover \
                 (it must be a member of the owner of {referencing}): grant that to duet's \
                 role, or drop the key for the migration and add it again after `complete`"
            ));
            continue;
        }
        let names: Vec<String> = row.get(8);
        let types: Vec<String> = row.get(9);
        let bases: Vec<String> = row.get(10);
        let referenced: Vec<String> = row.get(11);
        let columns = names
            .into_iter()
            .zip(types)
            .zip(bases)
            .zip(referenced)
            .map(
                |(((column, sql_type), base_type), references)| ReferencingColumn {
                    column,
                    sql_type,
                    base_type,
                    references,
                },
            )
            .collect();
        let definition: String = row.get(3);
        keys.push(ReferencingKey {
            table: referencing,
            name,
            definition: definition.trim_end_matches(" NOT VALID").to_owned(),
            valid: row.get(4),
            columns,
            comment: row.get(7),
        });
    }
    Ok((keys, blockers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(valid: bool) -> ReferencingKey {
        ReferencingKey {
            table: QualifiedName::new("app", "Order Lines"),
            name: "lines_order_fkey".into(),
            definition: "FOREIGN KEY (order_id) REFERENCES app.orders(id) ON DELETE CASCADE".into(),
            valid,
            columns: vec![ReferencingColumn {
                column: "order_id".into(),
                sql_type: "integer".into(),
                base_type: "int4".into(),
                references: "id".into(),
            }],
            comment: Some(
                "COMMENT ON CONSTRAINT lines_order_fkey ON app.\"Order Lines\" IS 'x'".into(),
            ),
        }
    }

    #[test]
    fn a_key_is_re_created_not_valid_under_its_name_with_its_comment() {
        let steps = repoint_steps(&[key(true)]);
        assert_eq!(steps.len(), 1);
        assert_eq!(
            steps[0].sql,
            "ALTER TABLE \"app\".\"Order Lines\" DROP CONSTRAINT \"lines_order_fkey\";\n\
             ALTER TABLE \"app\".\"Order Lines\" ADD CONSTRAINT \"lines_order_fkey\" FOREIGN KEY (order_id) REFERENCES app.orders(id) ON DELETE CASCADE NOT VALID;\n\
             COMMENT ON CONSTRAINT lines_order_fkey ON app.\"Order Lines\" IS 'x'"
        );
        assert!(repoint_steps(&[]).is_empty());
    }

    #[test]
    fn only_keys_valid_when_planned_are_validated_again() {
        let steps = validate_steps(&[key(true), key(false)]);
        assert_eq!(steps.len(), 1);
        assert_eq!(
            steps[0].sql,
            "ALTER TABLE \"app\".\"Order Lines\" VALIDATE CONSTRAINT \"lines_order_fkey\""
        );
    }
}
