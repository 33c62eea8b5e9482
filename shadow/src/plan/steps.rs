//! The pieces every strategy (`plan::strategies`) builds its steps with: a step and what it
//! locks, `NOT NULL` without a blocking scan, the parts of a shadow plan, the revert's refusal
//! for values the old types cannot hold, and the safety net added to every shadow plan. Every
//! identifier is quoted; every step says what it locks and why (see shadow/docs/planning.md).

use crate::ident::quote_ident;
use crate::rewrite::{net, Column, TableRoute};

use super::catalog::TableInfo;
use super::names::{with_suffix, NOT_NULL_SUFFIX};
use super::{Plan, PlanKind, Step, StepLock};
use crate::check::LockMode;

/// A step inside a transaction.
pub fn step(sql: impl Into<String>, lock: StepLock, why: &str) -> Step {
    Step {
        sql: sql.into(),
        lock,
        why: why.to_string(),
        outside_transaction: false,
    }
}

/// A step that must run outside a transaction block (CONCURRENTLY).
pub fn concurrent(sql: impl Into<String>, lock: StepLock, why: &str) -> Step {
    Step {
        outside_transaction: true,
        ..step(sql, lock, why)
    }
}

/// The lock of a catalog-only change: ACCESS EXCLUSIVE, held for a moment.
pub(super) const BRIEF: StepLock =
    StepLock::new(LockMode::AccessExclusive, "(brief, metadata only)");

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
pub(super) struct NotNullSteps {
    pub(super) prepare: [Step; 2],
    pub(super) flip: [Step; 2],
}

pub(super) fn not_null_steps(
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
        StepLock::new(
            LockMode::ShareUpdateExclusive,
            "(does not block reads or writes)",
        ),
        "check the existing rows; SET NOT NULL can then skip its scan",
    );
    (name, add, validate)
}

/// PostgreSQL 18 catalogs NOT NULL as constraints (`contype = 'n'`) named after the table they
/// were made on: the shadow's key column carries `<shadow>_<column>_not_null` into the flipped
/// table. This step gives each such constraint of `table` (SQL name) whose name holds `__duet` the
/// name PostgreSQL would have given it there; before 18 there are none and it does nothing.
pub(super) fn rename_catalogued_not_nulls(table: &str) -> Step {
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

/// Whether `plan` mirrors writes but was built without the safety net (by a duet before it):
/// [`add_safety_net`] would change it.
pub fn lacks_safety_net(plan: &Plan) -> bool {
    let mut netted = plan.clone();
    add_safety_net(&mut netted);
    netted != *plan
}

/// Adds the safety net ([`crate::rewrite::net`]) to a shadow plan: installed at the end of
/// `expand` (before dual-writes start), turned around in the flip's transaction, removed first
/// thing by `revert` (after its refusal checks), `complete` and `abort`, its function last, once
/// nothing uses it. Idempotent, and a no-op for plans that mirror nothing (in place, rename):
/// `duet_proxy::control::start` applies it to every plan, so a plan built by hand is netted too.
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
        StepLock::new(LockMode::ShareRowExclusive, "(CREATE TRIGGER: brief, waits for running writes)"),
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
            StepLock::none(""),
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
            StepLock::none(""),
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
pub(super) fn refuse_revert_while(table: &str, predicate: &str, label: &str) -> Step {
    step(
        format!(
            "DO $duet$ BEGIN IF EXISTS (SELECT 1 FROM {table} WHERE {predicate}) THEN RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'revert refused: {} holds values the old column types cannot hold (written after the cutover); complete the migration instead, or remove those rows first'; END IF; END $duet$",
            label.replace('\'', "''")
        ),
        StepLock::new(LockMode::AccessShare, "(reads the rows beyond the old types' range)"),
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
