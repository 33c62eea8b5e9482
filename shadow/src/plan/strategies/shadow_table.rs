//! Type changes through a shadow table `t__duet`: the whole table rebuilt in the new shape with
//! the table's column order (so no `__duet` column is ever visible and positional writes keep
//! their meaning), filled by the keyset copier, the dual-writes and the safety net; its
//! constraints, indexes, `NOT NULL`s, defaults, sequences and identity columns ([`super::identity`])
//! prepared beside it; swapped by renames in the flip's transaction together with everything
//! bound to the table ([`crate::plan::carried`], [`crate::plan::referencing`]).

use tokio_postgres::Client;

use crate::ident::{quote_ident, DELETED_COLUMN};
use crate::migrate::expand::{shadow_table_ddl_with_generated, GeneratedColumn};
use crate::migrate::key::CopyKey;
use crate::migrate::{ColumnMapping, CopyTarget};
use crate::rewrite::{TableRoute, Target};

use super::super::catalog::TableInfo;
use super::super::names::{old_table, pkey_name, with_suffix, OLD_SUFFIX, TEMP_SUFFIX};
use super::super::steps::{
    concurrent, narrowing_predicate, not_null_steps, refuse_revert_while,
    rename_catalogued_not_nulls, route_columns, step, ShadowSteps, TypeChange, BRIEF,
};
use super::super::{CopySpec, Plan, PlanError, PlanInput, PlanKind, StepLock};
use super::empty_plan;
use super::identity::identity_steps;
use crate::check::LockMode;

/// The plan of type changes `types` through a shadow table keyed on `key`; `why` says why a
/// shadow table (for the plan's reason).
pub(in crate::plan) async fn plan(
    client: &Client,
    info: &TableInfo,
    key: &CopyKey,
    types: &[TypeChange],
    why: &str,
    input: &PlanInput,
) -> Result<Plan, PlanError> {
    // Generated columns are not written: the shadow computes them (`steps`).
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
    let s = steps(info, &target, types);
    let mut plan = empty_plan(
        info,
        PlanKind::ShadowTable,
        format!(
            "changing the type of {} rewrites every row of {} under ACCESS EXCLUSIVE; {why}",
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

/// The shadow-table steps for `info` with `changes` applied through `target`.
pub(in crate::plan) fn steps(
    info: &TableInfo,
    target: &CopyTarget,
    changes: &[TypeChange],
) -> ShadowSteps {
    let t = info.name.sql();
    let shadow = target.shadow.clone();
    let sh = shadow.sql();
    let old = old_table(&info.name);
    let schema = quote_ident(&info.name.schema);
    let idx = |name: &str| format!("{schema}.{}", quote_ident(name));
    let change_of = |c: &str| changes.iter().find(|x| x.column == c);
    let key_index = target.key.index_name.clone();
    let shadow_pkey = pkey_name(&shadow.name);

    // Generated columns are computed by the shadow itself, in the new type when theirs changes
    // (the audit refused those computed from a changed column).
    let generated: Vec<GeneratedColumn> = info
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_generated())
        .map(|(position, c)| GeneratedColumn {
            position,
            name: c.name.clone(),
            sql_type: change_of(&c.name)
                .map(|x| x.new_type.clone())
                .unwrap_or_else(|| c.full_type.clone()),
            expression: c.default.clone().unwrap_or_default(),
            stored: c.generated == "s",
        })
        .collect();
    let mut expand = vec![step(
        shadow_table_ddl_with_generated(target, &generated),
        StepLock::new(LockMode::AccessShare, "on the table (CREATE TABLE … AS … WITH NO DATA reads only its shape)"),
        "create the shadow table in the new shape: same key, other columns nullable, plus the tombstone column (three statements, one transaction)",
    )];
    // Before the first dual-write: a rewritten statement writes the shadow with the
    // application's own role.
    for grant in &info.grants {
        expand.push(step(
            grant.replace("{}", &sh),
            StepLock::none("on the table (the shadow only)"),
            "the shadow has the table's privileges before any dual-write reaches it",
        ));
    }

    if info.carried.enforces_row_security() {
        // Before the first write reaches the shadow: with row-level security and no policy,
        // no application role sees or writes a row of it (the table's writes are mirrored by
        // the safety net, as duet's role, which owns the shadow); the flip gives it the
        // table's policies.
        expand.push(step(
            format!("ALTER TABLE {sh} ENABLE ROW LEVEL SECURITY"),
            BRIEF,
            "the table enforces row-level security: until the flip gives the shadow its policies, no application role may read or write its rows",
        ));
    }

    let mut prepare = vec![step(
        format!("ALTER TABLE {sh} OWNER TO {}", info.owner),
        BRIEF,
        "the new table has the old table's owner",
    )];
    let mut flip = vec![
        step(
            format!("DELETE FROM {sh} WHERE {}", quote_ident(DELETED_COLUMN)),
            StepLock::new(LockMode::RowExclusive, "on the shadow"),
            "tombstones have served their purpose once dual-writes stop at the flip",
        ),
        step(
            format!("ALTER TABLE {sh} DROP COLUMN {}", quote_ident(DELETED_COLUMN)),
            BRIEF,
            "the new table must not carry duet's tombstone column",
        ),
        step(
            format!(
                "ALTER TABLE {t} ADD COLUMN {} boolean NOT NULL DEFAULT false",
                quote_ident(DELETED_COLUMN)
            ),
            BRIEF,
            "the old table receives reverse dual-writes (with tombstones) so a revert loses nothing",
        ),
    ];
    let mut revert = vec![step(
        format!("ALTER TABLE {t} RENAME TO {}", quote_ident(&shadow.name)),
        BRIEF,
        "park the new table under the shadow name",
    )];
    let mut flip_renames_old = Vec::new();
    let mut flip_renames_new = Vec::new();
    let mut revert_park_new = Vec::new();
    let mut revert_restore_old = Vec::new();

    for ix in &info.indexes {
        let parked = with_suffix(&ix.name, OLD_SUFFIX);
        flip_renames_old.push(step(
            format!(
                "ALTER INDEX {} RENAME TO {}",
                idx(&ix.name),
                quote_ident(&parked)
            ),
            BRIEF,
            "free the index name for the new table",
        ));
        revert_restore_old.push(step(
            format!(
                "ALTER INDEX {} RENAME TO {}",
                idx(&parked),
                quote_ident(&ix.name)
            ),
            BRIEF,
            "give the old table its index name back",
        ));
        let temp = if ix.name == key_index {
            shadow_pkey.clone()
        } else {
            with_suffix(&ix.name, TEMP_SUFFIX)
        };
        revert_park_new.push(step(
            format!(
                "ALTER INDEX {} RENAME TO {}",
                idx(&ix.name),
                quote_ident(&temp)
            ),
            BRIEF,
            "free the index name for the old table",
        ));
        // The key index exists on the shadow from its creation; the others are built beside it.
        let is_key = ix.name == key_index;
        if !is_key {
            let unique = if ix.unique { "UNIQUE " } else { "" };
            prepare.push(concurrent(
                format!(
                    "CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {} ON {sh} {}",
                    quote_ident(&temp),
                    ix.tail
                ),
                StepLock::new(LockMode::ShareUpdateExclusive, "on the shadow only"),
                "build the secondary index on the shadow without blocking dual-writes",
            ));
        }
        if !is_key && ix.constraint == Some('u') {
            flip_renames_new.push(step(
                format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {} UNIQUE USING INDEX {}",
                    quote_ident(&ix.name),
                    quote_ident(&temp)
                ),
                BRIEF,
                "turn the prebuilt unique index into the constraint under its old name",
            ));
        } else {
            flip_renames_new.push(step(
                format!(
                    "ALTER INDEX {} RENAME TO {}",
                    idx(&temp),
                    quote_ident(&ix.name)
                ),
                BRIEF,
                if is_key {
                    "the new table's key index takes the old name"
                } else {
                    "the new table's index takes the old name"
                },
            ));
        }
    }
    for con in &info.constraints {
        let temp = with_suffix(&con.name, TEMP_SUFFIX);
        let parked = with_suffix(&con.name, OLD_SUFFIX);
        let def = con.def.trim_end_matches(" NOT VALID");
        // A key referencing the table itself references the shadow, which takes the table's
        // place at the flip (the old table is dropped by `complete`).
        let def = match &con.self_reference {
            Some(table) => def.replacen(
                &format!("REFERENCES {table}("),
                &format!("REFERENCES {sh}("),
                1,
            ),
            None => def.to_owned(),
        };
        let lock = if con.kind == 'f' {
            StepLock::new(
                LockMode::ShareRowExclusive,
                "on the shadow and the referenced table (brief)",
            )
        } else {
            BRIEF
        };
        prepare.push(step(
            format!(
                "ALTER TABLE {sh} DROP CONSTRAINT IF EXISTS {0};
                 ALTER TABLE {sh} ADD CONSTRAINT {0} {def} NOT VALID",
                quote_ident(&temp)
            ),
            lock,
            "the constraint on the shadow, enforced for new writes at once",
        ));
        if con.valid {
            prepare.push(step(
                format!(
                    "ALTER TABLE {sh} VALIDATE CONSTRAINT {}",
                    quote_ident(&temp)
                ),
                StepLock::new(LockMode::ShareUpdateExclusive, "on the shadow"),
                "check the copied rows without blocking",
            ));
        }
        flip_renames_old.push(step(
            format!(
                "ALTER TABLE {t} RENAME CONSTRAINT {} TO {}",
                quote_ident(&con.name),
                quote_ident(&parked)
            ),
            BRIEF,
            "free the constraint name",
        ));
        revert_restore_old.push(step(
            format!(
                "ALTER TABLE {t} RENAME CONSTRAINT {} TO {}",
                quote_ident(&parked),
                quote_ident(&con.name)
            ),
            BRIEF,
            "give the old table its constraint name back",
        ));
        flip_renames_new.push(step(
            format!(
                "ALTER TABLE {t} RENAME CONSTRAINT {} TO {}",
                quote_ident(&temp),
                quote_ident(&con.name)
            ),
            BRIEF,
            "the new table's constraint takes the old name",
        ));
        revert_park_new.push(step(
            format!(
                "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
                shadow.sql(),
                quote_ident(&con.name),
                quote_ident(&temp)
            ),
            BRIEF,
            "free the constraint name for the old table",
        ));
    }
    let mut flip_not_null = Vec::new();
    let mut flip_sequences = Vec::new();
    let mut revert_sequences = Vec::new();
    for col in &info.columns {
        let q = quote_ident(&col.name);
        if col.not_null && !target.key.columns.contains(&col.name) {
            let steps = not_null_steps((&sh, &col.name), (&t, &col.name), "table");
            prepare.extend(steps.prepare);
            flip_not_null.extend(steps.flip);
        }
        if let Some(identity) = &col.identity_sequence {
            let widened = change_of(&col.name).map(|x| x.new_base.as_str());
            let steps = identity_steps(col, identity, widened, (&t, &old.sql()));
            flip_sequences.extend(steps.flip);
            revert_sequences.extend(steps.revert);
        }
        // A generated column's expression is in `default`; the shadow declares it already.
        if let Some(def) = col.default.as_ref().filter(|_| !col.is_generated()) {
            prepare.push(step(
                format!("ALTER TABLE {sh} ALTER COLUMN {q} SET DEFAULT {def}"),
                BRIEF,
                "the new table keeps the column default (dual-writes set every column explicitly)",
            ));
        }
        if let Some(seq) = &col.owned_sequence {
            if change_of(&col.name).is_some_and(|c| c.widens_to_bigint) {
                flip_sequences.push(step(
                    format!("ALTER SEQUENCE {seq} AS bigint"),
                    StepLock::new(LockMode::AccessExclusive, "on the sequence (brief)"),
                    "the sequence must be able to pass the old type's maximum",
                ));
            }
            flip_sequences.push(step(
                format!("ALTER SEQUENCE {seq} OWNED BY {t}.{q}"),
                StepLock::new(LockMode::AccessExclusive, "on the sequence (brief)"),
                "the sequence belongs to the new table, so dropping the old one keeps it",
            ));
            if change_of(&col.name).is_some_and(|c| c.widens_to_bigint) {
                // Fails (and so refuses the revert) once the sequence has passed the old type's
                // maximum: the old column could not take its next value.
                revert_sequences.push(step(
                    format!("ALTER SEQUENCE {seq} AS {}", col.full_type),
                    StepLock::new(LockMode::AccessExclusive, "on the sequence (brief)"),
                    "the sequence goes back to the old column's type",
                ));
            }
            revert_sequences.push(step(
                format!("ALTER SEQUENCE {seq} OWNED BY {t}.{q}"),
                StepLock::new(LockMode::AccessExclusive, "on the sequence (brief)"),
                "the sequence belongs to the old table again, so dropping the new one keeps it",
            ));
        }
    }
    flip.extend(flip_renames_old);
    flip.push(step(
        format!("ALTER TABLE {t} RENAME TO {}", quote_ident(&old.name)),
        BRIEF,
        "park the old table",
    ));
    flip.push(step(
        format!(
            "ALTER TABLE {sh} RENAME TO {}",
            quote_ident(&info.name.name)
        ),
        BRIEF,
        "the new table takes the name",
    ));
    flip.extend(flip_renames_new);
    flip.extend(flip_not_null);
    flip.push(rename_catalogued_not_nulls(&t));
    flip.extend(flip_sequences);
    // Views, triggers and policies move to the new table once it has the name (the tombstone
    // purge above must not fire its triggers).
    flip.extend(info.carried.shadow_table_flip(&t, &old.sql()));

    revert.extend(revert_park_new);
    revert.push(step(
        format!(
            "ALTER TABLE {} RENAME TO {}",
            old.sql(),
            quote_ident(&info.name.name)
        ),
        BRIEF,
        "the old table takes the name back",
    ));
    revert.extend(revert_restore_old);
    revert.extend(revert_sequences);
    revert.push(step(
        format!("DELETE FROM {t} WHERE {}", quote_ident(DELETED_COLUMN)),
        StepLock::new(LockMode::RowExclusive, ""),
        "rows deleted after the flip were kept as tombstones by the reverse dual-writes",
    ));
    revert.push(step(
        format!(
            "ALTER TABLE {t} DROP COLUMN {}",
            quote_ident(DELETED_COLUMN)
        ),
        BRIEF,
        "the old table no longer needs the tombstone column",
    ));
    // After the housekeeping above, which must not fire the old table's triggers.
    revert.extend(info.carried.shadow_table_revert(&t, &sh));

    // After a widening, the new shape may hold values the old one cannot (ids past 2^31): the
    // reverse dual-writes skip those rows instead of failing the application's write, and the
    // revert refuses, first thing in its transaction, while any exist.
    let unrepresentable = narrowing_predicate(info, changes);
    let new_columns = route_columns(info.columns.iter().map(|c| {
        let base = change_of(&c.name)
            .map(|x| x.new_base.clone())
            .unwrap_or_else(|| c.base_type.clone());
        (c.name.clone(), base)
    }));
    let old_columns = route_columns(
        info.columns
            .iter()
            .map(|c| (c.name.clone(), c.base_type.clone())),
    );
    let forward: Vec<ColumnMapping> = target.mapping.clone();
    // The old table computes its generated columns itself from the mirrored values.
    let reverse: Vec<ColumnMapping> = info
        .columns
        .iter()
        .filter(|c| !c.is_generated())
        .map(|c| ColumnMapping {
            target: c.name.clone(),
            expr: change_of(&c.name)
                .map(|x| x.down.clone())
                .unwrap_or_else(|| quote_ident(&c.name)),
        })
        .collect();
    let key = target.key.columns.clone();
    // Fresh statistics for the new table before it goes live (the copy wrote every row), and for
    // the flip's tombstone DELETE to take the partial tombstone index instead of a full scan.
    prepare.push(step(
        format!("ANALYZE {sh}"),
        StepLock::new(
            LockMode::ShareUpdateExclusive,
            "on the shadow (does not block reads or writes)",
        ),
        "statistics for the new table, and an index plan for the flip's tombstone purge",
    ));
    // Foreign keys of other tables, re-created NOT VALID by the flip or the revert, are validated
    // again before the side they no longer reference is dropped.
    let validate_keys = info.carried.validate_foreign_keys();
    let mut after_revert = validate_keys.clone();
    after_revert.push(step(
        format!("DROP TABLE IF EXISTS {sh}"),
        StepLock::new(
            LockMode::AccessExclusive,
            "on the new table only (no longer used)",
        ),
        "drop the new shape after a revert",
    ));
    let mut complete = validate_keys;
    complete.push(step(
        format!("DROP TABLE IF EXISTS {}", old.sql()),
        StepLock::new(
            LockMode::AccessExclusive,
            "on the old table only (no longer used)",
        ),
        "contract: drop the old shape",
    ));
    let steps = ShadowSteps {
        expand,
        prepare_flip: prepare,
        flip,
        revert,
        after_revert,
        complete,
        abort: vec![step(
            format!("DROP TABLE IF EXISTS {sh}"),
            StepLock::new(LockMode::AccessExclusive, "on the shadow only"),
            "drop the shadow; the table was never changed",
        )],
        dual_write_route: TableRoute {
            schema: info.name.schema.clone(),
            name: info.name.name.clone(),
            columns: old_columns,
            key: key.clone(),
            target: Target::ShadowTable {
                shadow: shadow.name.clone(),
                mapping: forward,
                shadow_key: key.clone(),
                skip_when: None,
                plain_deletes: false,
            },
        },
        flipped_route: TableRoute {
            schema: info.name.schema.clone(),
            name: info.name.name.clone(),
            columns: new_columns,
            key: key.clone(),
            target: Target::ShadowTable {
                shadow: old.name.clone(),
                mapping: reverse,
                shadow_key: key,
                skip_when: unrepresentable.clone(),
                // No copier runs after the flip: deletes need no tombstones.
                plain_deletes: true,
            },
        },
    };
    let mut steps = steps;
    // First of all in the revert's transaction (before the safety net is taken off).
    if let Some(predicate) = &unrepresentable {
        steps
            .revert
            .insert(0, refuse_revert_while(&t, predicate, &info.name.sql()));
    }
    steps
}
