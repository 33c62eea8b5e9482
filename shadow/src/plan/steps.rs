//! Step SQL per strategy (see CONTRACT "Semantics" and shadow/docs/planning.md). Every identifier
//! is quoted; every step says what it locks and why.

use crate::ident::{quote_ident, DELETED_COLUMN};
use crate::migrate::expand::{shadow_table_ddl_with_generated, GeneratedColumn};
use crate::migrate::ColumnMapping;
use crate::migrate::CopyTarget;
use crate::rewrite::{net, Column, TableRoute, Target};

use super::catalog::{ColumnInfo, IdentitySequence, TableInfo};
use super::names::{old_table, pkey_name, with_suffix, NOT_NULL_SUFFIX, OLD_SUFFIX, TEMP_SUFFIX};
use super::{Plan, PlanKind, Step};

/// A step inside a transaction.
pub fn step(sql: impl Into<String>, lock: &str, why: &str) -> Step {
    Step {
        sql: sql.into(),
        lock: lock.to_string(),
        why: why.to_string(),
        outside_transaction: false,
    }
}

/// A step that must run outside a transaction block (CONCURRENTLY).
pub fn concurrent(sql: impl Into<String>, lock: &str, why: &str) -> Step {
    Step {
        outside_transaction: true,
        ..step(sql, lock, why)
    }
}

const BRIEF: &str = "ACCESS EXCLUSIVE (brief, metadata only)";

/// One column's change of type in a shadow plan.
#[derive(Debug, Clone)]
pub struct TypeChange {
    /// The column.
    pub column: String,
    /// New type (SQL, with typmod).
    pub new_type: String,
    /// New base type (no typmod, usable in a cast).
    pub new_base: String,
    /// Expression over the old row computing the new value.
    pub up: String,
    /// Expression over the new row computing the old value.
    pub down: String,
    /// int4/int2 → int8: an owned sequence must become `AS bigint`.
    pub widens_to_bigint: bool,
}

/// The route's column list: `(name, base type)` in attribute order.
pub fn route_columns(cols: impl Iterator<Item = (String, String)>) -> Vec<Column> {
    cols.map(|(name, base_type)| Column { name, base_type })
        .collect()
}

/// `SET NOT NULL` without a blocking scan: before the flip, a `NOT VALID` CHECK on `checked` is
/// added and validated (`prepare`); at the flip, `flipped` (the same column by its name after the
/// flip, in `table` as named then) gets `SET NOT NULL` and the CHECK goes (`flip`).
struct NotNullSteps {
    prepare: [Step; 2],
    flip: [Step; 2],
}

fn not_null_steps(
    (table, checked): (&str, &str),
    (flipped_table, flipped): (&str, &str),
    what: &str,
) -> NotNullSteps {
    let (name, add, validate) = not_null_check(table, checked);
    NotNullSteps {
        prepare: [add, validate],
        flip: [
            step(
                format!(
                    "ALTER TABLE {flipped_table} ALTER COLUMN {} SET NOT NULL",
                    quote_ident(flipped)
                ),
                BRIEF,
                &format!("NOT NULL on the new {what}; the validated CHECK lets it skip the scan"),
            ),
            step(
                format!(
                    "ALTER TABLE {flipped_table} DROP CONSTRAINT IF EXISTS {}",
                    quote_ident(&name)
                ),
                BRIEF,
                "the CHECK only existed to make SET NOT NULL instant",
            ),
        ],
    }
}

fn not_null_check(table: &str, col: &str) -> (String, Step, Step) {
    let name = with_suffix(col, NOT_NULL_SUFFIX);
    // Dropping a leftover of an interrupted run first makes the step safe to re-run.
    let add = step(
        format!(
            "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {0};
             ALTER TABLE {table} ADD CONSTRAINT {0} CHECK ({1} IS NOT NULL) NOT VALID",
            quote_ident(&name),
            quote_ident(col)
        ),
        BRIEF,
        "prove the column non-null without a scan under a blocking lock (NOT VALID: new rows only)",
    );
    let validate = step(
        format!(
            "ALTER TABLE {table} VALIDATE CONSTRAINT {}",
            quote_ident(&name)
        ),
        "SHARE UPDATE EXCLUSIVE (does not block reads or writes)",
        "check the existing rows; SET NOT NULL can then skip its scan",
    );
    (name, add, validate)
}

/// PostgreSQL 18 catalogs NOT NULL as constraints (`contype = 'n'`) named after the table they
/// were made on: the shadow's key column carries `<shadow>_<column>_not_null` into the flipped
/// table. This step gives each such constraint of `table` (SQL name) whose name holds `__duet` the
/// name PostgreSQL would have given it there; before 18 there are none and it does nothing.
fn rename_catalogued_not_nulls(table: &str) -> Step {
    let literal = table.replace('\'', "''");
    step(
        format!(
            "DO $duet$
             DECLARE c record;
             BEGIN
               FOR c IN SELECT k.conname, r.relname, a.attname
                          FROM pg_constraint k
                          JOIN pg_class r ON r.oid = k.conrelid
                          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
                         WHERE k.conrelid = '{literal}'::regclass AND k.contype = 'n'
                           AND strpos(k.conname, '__duet') > 0
               LOOP
                 EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', '{literal}'::regclass,
                                c.conname, left(c.relname || '_' || c.attname || '_not_null', 63));
               END LOOP;
             END $duet$"
        ),
        BRIEF,
        "NOT NULL constraints (PostgreSQL 18+) made on the shadow take the table's names",
    )
}

/// Everything of a shadow plan (table or column) besides how the rows are copied.
pub struct ShadowSteps {
    /// expand
    pub expand: Vec<Step>,
    /// prepare_flip
    pub prepare_flip: Vec<Step>,
    /// flip
    pub flip: Vec<Step>,
    /// revert
    pub revert: Vec<Step>,
    /// after_revert
    pub after_revert: Vec<Step>,
    /// complete
    pub complete: Vec<Step>,
    /// abort
    pub abort: Vec<Step>,
    /// flipped_route
    pub flipped_route: TableRoute,
    /// dual_write_route
    pub dual_write_route: TableRoute,
}

impl ShadowSteps {
    /// Puts every step and both routes into `plan` (its `kind` set), with the safety net.
    pub fn fill(self, plan: &mut Plan) {
        plan.expand = self.expand;
        plan.dual_write_route = Some(self.dual_write_route);
        plan.prepare_flip = self.prepare_flip;
        plan.flip = self.flip;
        plan.flipped_route = Some(self.flipped_route);
        plan.revert = self.revert;
        plan.after_revert = self.after_revert;
        plan.complete = self.complete;
        plan.abort = self.abort;
        add_safety_net(plan);
    }
}

/// The shadow-table steps for `info` with `changes` applied through `target`.
pub fn shadow_table(info: &TableInfo, target: &CopyTarget, changes: &[TypeChange]) -> ShadowSteps {
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
        "ACCESS SHARE on the table (CREATE TABLE … AS … WITH NO DATA reads only its shape)",
        "create the shadow table in the new shape: same key, other columns nullable, plus the tombstone column (three statements, one transaction)",
    )];
    // Before the first dual-write: a rewritten statement writes the shadow with the
    // application's own role.
    for grant in &info.grants {
        expand.push(step(
            grant.replace("{}", &sh),
            "none on the table (the shadow only)",
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
            "ROW EXCLUSIVE on the shadow",
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
        if ix.name == key_index {
            flip_renames_new.push(step(
                format!(
                    "ALTER INDEX {} RENAME TO {}",
                    idx(&temp),
                    quote_ident(&ix.name)
                ),
                BRIEF,
                "the new table's key index takes the old name",
            ));
            continue;
        }
        let unique = if ix.unique { "UNIQUE " } else { "" };
        prepare.push(concurrent(
            format!(
                "CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {} ON {sh} {}",
                quote_ident(&temp),
                ix.tail
            ),
            "SHARE UPDATE EXCLUSIVE on the shadow only",
            "build the secondary index on the shadow without blocking dual-writes",
        ));
        if ix.constraint == Some('u') {
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
                "the new table's index takes the old name",
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
            "SHARE ROW EXCLUSIVE on the shadow and the referenced table (brief)"
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
                "SHARE UPDATE EXCLUSIVE on the shadow",
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
                    "ACCESS EXCLUSIVE on the sequence (brief)",
                    "the sequence must be able to pass the old type's maximum",
                ));
            }
            flip_sequences.push(step(
                format!("ALTER SEQUENCE {seq} OWNED BY {t}.{q}"),
                "ACCESS EXCLUSIVE on the sequence (brief)",
                "the sequence belongs to the new table, so dropping the old one keeps it",
            ));
            if change_of(&col.name).is_some_and(|c| c.widens_to_bigint) {
                // Fails (and so refuses the revert) once the sequence has passed the old type's
                // maximum: the old column could not take its next value.
                revert_sequences.push(step(
                    format!("ALTER SEQUENCE {seq} AS {}", col.full_type),
                    "ACCESS EXCLUSIVE on the sequence (brief)",
                    "the sequence goes back to the old column's type",
                ));
            }
            revert_sequences.push(step(
                format!("ALTER SEQUENCE {seq} OWNED BY {t}.{q}"),
                "ACCESS EXCLUSIVE on the sequence (brief)",
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
        "ROW EXCLUSIVE",
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
        "SHARE UPDATE EXCLUSIVE on the shadow (does not block reads or writes)",
        "statistics for the new table, and an index plan for the flip's tombstone purge",
    ));
    // Foreign keys of other tables, re-created NOT VALID by the flip or the revert, are validated
    // again before the side they no longer reference is dropped.
    let validate_keys = info.carried.validate_foreign_keys();
    let mut after_revert = validate_keys.clone();
    after_revert.push(step(
        format!("DROP TABLE IF EXISTS {sh}"),
        "ACCESS EXCLUSIVE on the new table only (no longer used)",
        "drop the new shape after a revert",
    ));
    let mut complete = validate_keys;
    complete.push(step(
        format!("DROP TABLE IF EXISTS {}", old.sql()),
        "ACCESS EXCLUSIVE on the old table only (no longer used)",
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
            "ACCESS EXCLUSIVE on the shadow only",
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

/// The flip's and the revert's steps for one identity column of a shadow-table plan.
struct IdentitySteps {
    flip: Vec<Step>,
    revert: Vec<Step>,
}

/// The bounds of an identity sequence's data type (as `format_type` prints it).
fn sequence_type_range(data_type: &str) -> Option<(i64, i64)> {
    match data_type {
        "smallint" => Some((i16::MIN.into(), i16::MAX.into())),
        "integer" => Some((i32::MIN.into(), i32::MAX.into())),
        "bigint" => Some((i64::MIN, i64::MAX)),
        _ => None,
    }
}

/// The sequence type of an identity column of base type `base` (`int4` → `integer`).
fn sequence_type_of(base: &str) -> Option<&'static str> {
    match base {
        "int2" => Some("smallint"),
        "int4" => Some("integer"),
        "int8" => Some("bigint"),
        _ => None,
    }
}

/// `SELECT setval(target, …)` to the state of whichever of `sources` (sequences, SQL names) is
/// furthest along in the direction of `increment`: the next value it would hand out is the
/// furthest, and the target then hands out exactly what that one would have. A sequence's state
/// is not transactional, so this runs in the flip's or revert's transaction, while clients are
/// held, and reads the state of that moment.
fn sync_sequence(target: &str, sources: &[&str], increment: i64) -> String {
    let sign = if increment < 0 { -1 } else { 1 };
    let states = sources
        .iter()
        .map(|s| {
            format!(
                "SELECT last_value, is_called, (CASE WHEN is_called THEN last_value::numeric +                  ({increment}) ELSE last_value::numeric END) * ({sign}) AS progress FROM {s}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    format!(
        "SELECT pg_catalog.setval('{}'::regclass, s.last_value, s.is_called) FROM ({states}) AS s \
         ORDER BY s.progress DESC LIMIT 1",
        target.replace('\'', "''")
    )
}

/// An identity column through the flip and the revert (see shadow/docs/online-migrations.md,
/// "Identity and generated columns"). The shadow holds the column as a plain one, so the
/// dual-writes, the safety net and the copier write the values the old table generated. In the
/// flip (`t` is the new table by then, `old` the parked old one): the old sequence is parked
/// under `<name>__duet_old`, the new table's column gets its identity back — same kind, same
/// options, the sequence under the old name — and the sequence is set to the old one's state of
/// that moment; an `ALWAYS` identity on the old table becomes `BY DEFAULT`, so the reverse
/// mirror's explicit values are taken. The revert (old table back as `t`, new one at the shadow
/// name) sets the old sequence to whichever sequence is further along, swaps the names back and
/// restores `ALWAYS`. `new_base` is the column's new base type when it changes.
fn identity_steps(
    col: &ColumnInfo,
    seq: &IdentitySequence,
    new_base: Option<&str>,
    (t, old): (&str, &str),
) -> IdentitySteps {
    let q = quote_ident(&col.name);
    let always = col.identity == "a";
    let kind = if always { "ALWAYS" } else { "BY DEFAULT" };
    let schema = quote_ident(&seq.name.schema);
    let current = seq.name.sql();
    let parked_name = with_suffix(&seq.name.name, OLD_SUFFIX);
    let parked = format!("{schema}.{}", quote_ident(&parked_name));
    let temp_name = with_suffix(&seq.name.name, TEMP_SUFFIX);
    // A type change re-bases the bounds the way `ALTER SEQUENCE … AS` (and PostgreSQL's own
    // ALTER COLUMN … TYPE of an identity column) does: a bound that was the old type's own
    // becomes the new type's; an explicit one stays.
    let new_type = new_base.and_then(sequence_type_of);
    let retyped = new_type.is_some_and(|n| n != seq.data_type);
    let old_range = sequence_type_range(&seq.data_type);
    let bound = |value: i64, default_of: fn((i64, i64)) -> i64, word: &str| match old_range {
        Some(range) if retyped && value == default_of(range) => format!("NO {word}"),
        _ => format!("{word} {value}"),
    };
    let options = format!(
        "SEQUENCE NAME {current} START WITH {} INCREMENT BY {} {} {} CACHE {} {}",
        seq.start,
        seq.increment,
        bound(seq.min, |r| r.0, "MINVALUE"),
        bound(seq.max, |r| r.1, "MAXVALUE"),
        seq.cache,
        if seq.cycle { "CYCLE" } else { "NO CYCLE" }
    );
    let mut flip = vec![
        step(
            format!(
                "ALTER SEQUENCE {current} RENAME TO {}",
                quote_ident(&parked_name)
            ),
            "ACCESS EXCLUSIVE on the sequence (brief)",
            "free the identity sequence's name for the new table",
        ),
        step(
            format!("ALTER TABLE {t} ALTER COLUMN {q} ADD GENERATED {kind} AS IDENTITY ({options})"),
            BRIEF,
            "the new table generates the column as the old one did: same kind, same sequence options, the sequence under the old name",
        ),
        step(
            sync_sequence(&current, &[&parked], seq.increment),
            "none (the sequence's state)",
            "the new sequence continues after the last value the old one handed out (read now, while clients are held)",
        ),
    ];
    flip.extend(seq.grants.iter().map(|g| {
        step(
            g.replace("{}", &current),
            "none",
            "the new sequence has the old one's privileges",
        )
    }));
    let mut revert = vec![
        step(
            sync_sequence(&parked, &[&current, &parked], seq.increment),
            "none (the sequence's state)",
            "the old table continues after the highest value either table handed out (fails, refusing the revert, when that does not fit the old sequence's type)",
        ),
        step(
            format!(
                "ALTER SEQUENCE {current} RENAME TO {}",
                quote_ident(&temp_name)
            ),
            "ACCESS EXCLUSIVE on the sequence (brief)",
            "the new table's sequence leaves the name (it is dropped with the new table)",
        ),
        step(
            format!(
                "ALTER SEQUENCE {parked} RENAME TO {}",
                quote_ident(&seq.name.name)
            ),
            "ACCESS EXCLUSIVE on the sequence (brief)",
            "the old sequence takes its name back",
        ),
    ];
    if always {
        flip.push(step(
            format!("ALTER TABLE {old} ALTER COLUMN {q} SET GENERATED BY DEFAULT"),
            BRIEF,
            "the reverse mirror writes the new table's values into the old one explicitly, which GENERATED ALWAYS would reject",
        ));
        revert.push(step(
            format!("ALTER TABLE {t} ALTER COLUMN {q} SET GENERATED ALWAYS"),
            BRIEF,
            "the old table's identity is ALWAYS again",
        ));
    }
    IdentitySteps { flip, revert }
}

/// Adds the safety net ([`crate::rewrite::net`]) to a shadow plan: installed at the end of
/// `expand` (before dual-writes start), turned around in the flip's transaction, removed first
/// thing by `revert` (after its refusal checks), `complete` and `abort`, its function last, once
/// nothing uses it. Idempotent, and a no-op for plans that mirror nothing (in place, rename):
/// `duet::migration::start` applies it to every plan, so a plan built by hand is netted too.
pub fn add_safety_net(plan: &mut Plan) {
    let moves_to_new_table = match plan.kind {
        PlanKind::ShadowTable => true,
        PlanKind::ShadowColumn => false,
        PlanKind::InPlace | PlanKind::Rename => return,
    };
    let (Some(dual_write), Some(flipped)) = (&plan.dual_write_route, &plan.flipped_route) else {
        return;
    };
    let table = plan.table.clone();
    let Some(install) = net::install_sql(&table, &table, dual_write) else {
        return;
    };
    if plan.expand.iter().any(|s| s.sql == install) {
        return;
    }
    plan.expand.push(step(
        install,
        "SHARE ROW EXCLUSIVE (CREATE TRIGGER: brief, waits for running writes)",
        "the safety net: every write to the table that duet does not dual-write itself (other connections, functions, PREPARE, …) is mirrored by PostgreSQL in the writer's transaction",
    ));
    let uninstall = || {
        step(
            net::uninstall_sql(&table),
            BRIEF,
            "remove the safety net's triggers",
        )
    };
    let drop_function = || {
        step(
            net::drop_function_sql(&table),
            "none",
            "the safety net's function is no longer used",
        )
    };
    if moves_to_new_table {
        // First in the flip: its ACCESS EXCLUSIVE on the old table is taken before any lock on
        // the shadow, in the order a writer mirrored by the net takes them.
        plan.flip.insert(0, uninstall());
        if let Some(sql) = net::install_sql(&table, &table, flipped) {
            plan.flip.push(step(
                sql,
                BRIEF,
                "the safety net moves to the new table and mirrors every write back into the old one, so a revert loses nothing",
            ));
        }
    } else if let Some(sql) = net::function_sql(&table, flipped) {
        plan.flip.push(step(
            sql,
            "none",
            "the safety net now mirrors every write back into the old column, so a revert loses nothing",
        ));
    }
    // A revert's refusal checks (`DO $duet$ … RAISE`) stay first: a refused revert changes nothing.
    let checks = plan
        .revert
        .iter()
        .take_while(|s| s.sql.starts_with("DO $duet$"))
        .count();
    plan.revert.insert(checks, uninstall());
    plan.after_revert.push(drop_function());
    plan.complete.insert(0, uninstall());
    plan.complete.insert(1, drop_function());
    plan.abort.insert(0, uninstall());
    plan.abort.push(drop_function());
}

/// The revert's first step when the new shape may hold values the old one cannot: it refuses
/// (55000) while any row of `table` matches `predicate`, so a revert never drops them silently.
fn refuse_revert_while(table: &str, predicate: &str, label: &str) -> Step {
    step(
        format!(
            "DO $duet$ BEGIN IF EXISTS (SELECT 1 FROM {table} WHERE {predicate}) THEN RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'revert refused: {} holds values the old column types cannot hold (written after the cutover); complete the migration instead, or remove those rows first'; END IF; END $duet$",
            label.replace('\'', "''")
        ),
        "ACCESS SHARE (reads the rows beyond the old types' range)",
        "a revert must not silently drop rows the old shape cannot hold",
    )
}

/// The range of an integer type (`int2`, `int4`), for values that must fit when narrowing back.
fn integer_range(base: &str) -> Option<(i64, i64)> {
    match base {
        "int2" => Some((i16::MIN.into(), i16::MAX.into())),
        "int4" => Some((i32::MIN.into(), i32::MAX.into())),
        _ => None,
    }
}

fn integer_width(base: &str) -> u8 {
    match base {
        "int2" => 2,
        "int4" => 4,
        "int8" => 8,
        _ => 0,
    }
}

/// A predicate over the new row that is true when a widened integer column holds a value its old
/// type cannot (so the reverse cast would fail); `None` when no column is widened.
pub fn narrowing_predicate(info: &TableInfo, changes: &[TypeChange]) -> Option<String> {
    let parts: Vec<String> = changes
        .iter()
        .filter_map(|change| {
            let old = info.columns.iter().find(|c| c.name == change.column)?;
            let (min, max) = integer_range(&old.base_type)?;
            (integer_width(&change.new_base) > integer_width(&old.base_type)).then(|| {
                format!(
                    "{} NOT BETWEEN {min} AND {max}",
                    quote_ident(&change.column)
                )
            })
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" OR "))
}

/// The shadow-column steps for one column, and the shadow column's name.
pub fn shadow_column(
    info: &TableInfo,
    key: &[String],
    change: &TypeChange,
) -> (ShadowSteps, String) {
    let t = info.name.sql();
    let c = &change.column;
    let qc = quote_ident(c);
    let shadow = with_suffix(c, TEMP_SUFFIX);
    let qs = quote_ident(&shadow);
    let parked = with_suffix(c, OLD_SUFFIX);
    let qp = quote_ident(&parked);
    let col = info.column(c);
    let mut prepare = Vec::new();
    let mut flip = vec![
        step(
            format!("ALTER TABLE {t} RENAME COLUMN {qc} TO {qp}"),
            BRIEF,
            "park the old column",
        ),
        step(
            format!("ALTER TABLE {t} RENAME COLUMN {qs} TO {qc}"),
            BRIEF,
            "the new column takes the name",
        ),
    ];
    let mut revert = vec![
        step(
            format!("ALTER TABLE {t} RENAME COLUMN {qc} TO {qs}"),
            BRIEF,
            "park the new column under the shadow name",
        ),
        step(
            format!("ALTER TABLE {t} RENAME COLUMN {qp} TO {qc}"),
            BRIEF,
            "the old column takes the name back",
        ),
    ];
    if let Some(col) = col {
        if col.not_null {
            let steps = not_null_steps((&t, &shadow), (&t, c), "column");
            prepare.extend(steps.prepare);
            flip.extend(steps.flip);
        }
        if let Some(def) = &col.default {
            prepare.push(step(
                format!("ALTER TABLE {t} ALTER COLUMN {qs} SET DEFAULT {def}"),
                BRIEF,
                "the new column keeps the default (the old one keeps it too, for a revert)",
            ));
        }
        if let Some(seq) = &col.owned_sequence {
            if change.widens_to_bigint {
                flip.push(step(
                    format!("ALTER SEQUENCE {seq} AS bigint"),
                    "ACCESS EXCLUSIVE on the sequence (brief)",
                    "the sequence must be able to pass the old type's maximum",
                ));
            }
            flip.push(step(
                format!("ALTER SEQUENCE {seq} OWNED BY {t}.{qc}"),
                "ACCESS EXCLUSIVE on the sequence (brief)",
                "dropping the old column must not drop the sequence",
            ));
            revert.push(step(
                format!("ALTER SEQUENCE {seq} OWNED BY {t}.{qc}"),
                "ACCESS EXCLUSIVE on the sequence (brief)",
                "dropping the new column must not drop the sequence",
            ));
        }
    }
    // Views, triggers and policies name columns by number: created again once the swapped
    // column has the name, so they read and test the column that has it.
    flip.extend(info.carried.shadow_column_swap(&t));
    revert.extend(info.carried.shadow_column_swap(&t));
    let before = route_columns(
        info.columns
            .iter()
            .map(|x| (x.name.clone(), x.base_type.clone())),
    );
    // After the flip the new column sits where the shadow column was added (last); the parked
    // old column is hidden from the application like the shadow column was.
    let after = route_columns(
        info.columns
            .iter()
            .filter(|x| &x.name != c)
            .map(|x| (x.name.clone(), x.base_type.clone()))
            .chain(std::iter::once((c.clone(), change.new_base.clone()))),
    );
    // After a widening, the new column may hold values the old one cannot: the mirror back sets
    // NULL there instead of failing the application's write, and the revert refuses while any
    // exist. Not for a NOT NULL column: its parked old column cannot take the NULL (such a write
    // fails with the old type's range error, as before).
    let unrepresentable = match col {
        Some(col) if col.not_null => None,
        _ => narrowing_predicate(info, std::slice::from_ref(change)),
    };
    if let Some(predicate) = &unrepresentable {
        revert.insert(0, refuse_revert_while(&t, predicate, &info.name.sql()));
    }
    let steps = ShadowSteps {
        expand: vec![step(
            format!("ALTER TABLE {t} ADD COLUMN {qs} {}", change.new_type),
            BRIEF,
            "the shadow column in the new type, nullable and without default (no rewrite)",
        )],
        prepare_flip: prepare,
        flip,
        revert,
        after_revert: vec![step(
            format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {qs}"),
            BRIEF,
            "drop the new column after a revert",
        )],
        complete: vec![step(
            format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {qp}"),
            BRIEF,
            "contract: drop the old column",
        )],
        abort: vec![step(
            format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {qs}"),
            BRIEF,
            "drop the shadow column; the table was never changed otherwise",
        )],
        dual_write_route: TableRoute {
            schema: info.name.schema.clone(),
            name: info.name.name.clone(),
            columns: before,
            key: key.to_vec(),
            target: Target::ShadowColumn {
                column: shadow.clone(),
                expr: change.up.clone(),
                skip_when: None,
            },
        },
        flipped_route: TableRoute {
            schema: info.name.schema.clone(),
            name: info.name.name.clone(),
            columns: after,
            key: key.to_vec(),
            target: Target::ShadowColumn {
                column: parked,
                expr: change.down.clone(),
                skip_when: unrepresentable.clone(),
            },
        },
    };
    (steps, shadow)
}
