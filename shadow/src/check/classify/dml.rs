//! Data statements (`INSERT`, `UPDATE`, `DELETE`, `MERGE`, `SELECT … FOR UPDATE`, `COPY`, `LOCK`): the locks they take.

use pg_query::protobuf::{self, node::Node as N};

use crate::check::ast::{self};
use crate::check::lock::LockMode;
use crate::check::schema::ConstraintKind;

use super::Builder;

/// INSERT, UPDATE, DELETE and MERGE: the same steps for each — name the statement, apply the
/// write rule to the target relation, then take ACCESS SHARE on every relation it reads.
pub(super) fn dml(
    b: &mut Builder<'_>,
    stmt: &N,
    kind: &str,
    rule: &'static str,
    target: Option<&protobuf::RangeVar>,
) {
    b.out.kind = kind.into();
    let rel = ast::optional_range_var_key(target);
    b.apply(rule, Some(&rel), &[]);
    lock_read_relations(b, stmt, &rel);
    // Foreign-key triggers: new keys are looked up in the referenced tables, and removed or
    // changed keys in the referencing ones (changed there with ON DELETE/UPDATE actions).
    let table = b.cx.schema.table(&rel).cloned();
    if kind != "delete" {
        let referenced: Vec<String> = table
            .iter()
            .flat_map(|t| &t.constraints)
            .filter_map(|c| match &c.kind {
                ConstraintKind::ForeignKey { referenced } if *referenced != rel => {
                    Some(referenced.clone())
                }
                _ => None,
            })
            .collect();
        if !referenced.is_empty() {
            b.apply("dml.references", None, &referenced);
        }
    }
    if kind != "insert" {
        let referencing: Vec<String> = b.cx.schema.referencing_tables(&rel).cloned().collect();
        if !referencing.is_empty() {
            b.apply("dml.referenced_by", None, &referencing);
        }
    }
}

/// ACCESS SHARE on every relation a DML statement reads (`INSERT … SELECT … FROM`, `UPDATE …
/// FROM`, `DELETE … USING`, subqueries), which are read and so count as scanned. The written
/// table keeps its stronger lock; names of CTEs are not relations.
pub(super) fn lock_read_relations(b: &mut Builder<'_>, stmt: &N, target: &str) {
    for key in ast::read_relations(stmt) {
        if key == target {
            continue;
        }
        b.out.lock(&key, LockMode::AccessShare);
        if b.fresh(&key) {
            if !b.out.fresh.contains(&key) {
                b.out.fresh.push(key);
            }
        } else {
            // Reading a table others can see is a scan of it (INSERT … SELECT reads the
            // source rows; proven in engine_facts).
            b.out.scans_table = true;
        }
    }
}
