//! Whether `ATTACH PARTITION` must scan the new partition.
//!
//! PostgreSQL skips the scan when the partition's valid CHECK constraints and NOT NULL columns
//! imply the partition bound (`PartConstraintImpliedByRelConstraint`, a *weak* implication: a
//! CHECK passes on NULL, so the key must also be NOT NULL — or have a valid
//! `CHECK (key IS NOT NULL)` — for a range or a NULL-free list bound). This module reads the
//! bounds a CHECK expression puts on a column and proves the common cases the way the server
//! does: a single-column RANGE or LIST key with constant bounds. Anything else (expressions,
//! several key columns, HASH, DEFAULT, non-constant bounds, values whose order duet cannot tell)
//! is answered "scan", which is the safe side.

use std::cmp::Ordering;

use pg_query::protobuf::{self, a_const::Val, node::Node as N, AExprKind, BoolExprType};

use super::ast;

/// How a table is partitioned, as far as the ATTACH check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKey {
    /// `range`, `list` or `hash`.
    pub strategy: Strategy,
    /// The key column when the key is exactly one plain column.
    pub column: Option<String>,
}

/// Partitioning strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `PARTITION BY RANGE`.
    Range,
    /// `PARTITION BY LIST`.
    List,
    /// `PARTITION BY HASH`.
    Hash,
}

/// One thing a CHECK constraint guarantees about a column (for rows where it is not NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBound {
    /// `col <op> constant`, normalised with the column on the left.
    Compare {
        /// Column.
        column: String,
        /// `<`, `<=`, `=`, `>=` or `>`.
        op: CompareOp,
        /// The constant as written (numbers and strings alike).
        value: String,
    },
    /// `col IS NOT NULL` (as a conjunct: a CHECK that is false for NULL proves NOT NULL).
    NotNull {
        /// Column.
        column: String,
    },
    /// `col IN (constants…)`.
    In {
        /// Column.
        column: String,
        /// The constants.
        values: Vec<String>,
    },
}

/// A comparison operator of a CHECK bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=`
    Eq,
    /// `>=`
    Ge,
    /// `>`
    Gt,
}

impl CompareOp {
    fn parse(op: &str) -> Option<CompareOp> {
        Some(match op {
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            "=" => CompareOp::Eq,
            ">=" => CompareOp::Ge,
            ">" => CompareOp::Gt,
            _ => return None,
        })
    }

    /// The operator with its operands swapped (`5 < col` is `col > 5`).
    fn flipped(self) -> CompareOp {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Le => CompareOp::Ge,
            CompareOp::Eq => CompareOp::Eq,
            CompareOp::Ge => CompareOp::Le,
            CompareOp::Gt => CompareOp::Lt,
        }
    }
}

/// The partition key of `PARTITION BY …`.
pub fn partition_key(spec: &protobuf::PartitionSpec) -> PartitionKey {
    let strategy = match spec.strategy() {
        protobuf::PartitionStrategy::List => Strategy::List,
        protobuf::PartitionStrategy::Hash => Strategy::Hash,
        _ => Strategy::Range,
    };
    let column = match spec.part_params.as_slice() {
        [param] => match param.node.as_ref() {
            Some(N::PartitionElem(e)) if !e.name.is_empty() && e.expr.is_none() => {
                Some(e.name.clone())
            }
            _ => None,
        },
        _ => None,
    };
    PartitionKey { strategy, column }
}

/// The bounds a CHECK expression guarantees (its top-level AND conjuncts that compare a column
/// with a constant). Conjuncts it cannot read are ignored: they only add guarantees.
pub fn check_bounds(expr: &protobuf::Node) -> Vec<KeyBound> {
    let mut out = Vec::new();
    collect_bounds(expr, &mut out);
    out
}

fn collect_bounds(expr: &protobuf::Node, out: &mut Vec<KeyBound>) {
    match expr.node.as_ref() {
        Some(N::BoolExpr(b)) if b.boolop() == BoolExprType::AndExpr => {
            for arg in &b.args {
                collect_bounds(arg, out);
            }
        }
        Some(N::NullTest(t)) if t.nulltesttype() == protobuf::NullTestType::IsNotNull => {
            if let Some(column) = t.arg.as_deref().and_then(ast::column_ref_name) {
                out.push(KeyBound::NotNull { column });
            }
        }
        Some(N::AExpr(a)) => {
            let op = ast::strings(&a.name);
            let (Some(l), Some(r)) = (a.lexpr.as_deref(), a.rexpr.as_deref()) else {
                return;
            };
            match a.kind() {
                AExprKind::AexprOp => {
                    let Some(op) = op.last().and_then(|o| CompareOp::parse(o)) else {
                        return;
                    };
                    if let (Some(column), Some(value)) = (ast::column_ref_name(l), constant(r)) {
                        out.push(KeyBound::Compare { column, op, value });
                    } else if let (Some(value), Some(column)) =
                        (constant(l), ast::column_ref_name(r))
                    {
                        out.push(KeyBound::Compare {
                            column,
                            op: op.flipped(),
                            value,
                        });
                    }
                }
                AExprKind::AexprIn if op.last().map(String::as_str) == Some("=") => {
                    let (Some(column), Some(N::List(list))) =
                        (ast::column_ref_name(l), r.node.as_ref())
                    else {
                        return;
                    };
                    let values: Option<Vec<String>> = list.items.iter().map(constant).collect();
                    if let Some(values) = values {
                        out.push(KeyBound::In { column, values });
                    }
                }
                AExprKind::AexprBetween => {
                    let (Some(column), Some(N::List(list))) =
                        (ast::column_ref_name(l), r.node.as_ref())
                    else {
                        return;
                    };
                    if let [lo, hi] = list.items.as_slice() {
                        if let (Some(lo), Some(hi)) = (constant(lo), constant(hi)) {
                            out.push(KeyBound::Compare {
                                column: column.clone(),
                                op: CompareOp::Ge,
                                value: lo,
                            });
                            out.push(KeyBound::Compare {
                                column,
                                op: CompareOp::Le,
                                value: hi,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// The text of a constant (`42`, `'2024-01-01'`, `'x'::date`, `DATE '2024-01-01'`, `-5`).
fn constant(node: &protobuf::Node) -> Option<String> {
    match node.node.as_ref()? {
        N::AConst(c) => match c.val.as_ref()? {
            Val::Ival(i) => Some(i.ival.to_string()),
            Val::Fval(f) => Some(f.fval.clone()),
            // Quoted, so that only numeric literals are ordered as numbers (on a text key '10'
            // sorts before '2').
            Val::Sval(s) => Some(format!("'{}'", s.sval)),
            Val::Boolval(b) => Some(b.boolval.to_string()),
            Val::Bsval(_) => None,
        },
        N::TypeCast(t) => constant(t.arg.as_deref()?),
        _ => None,
    }
}

/// Orders two constants when duet can: numeric literals numerically, quoted ISO dates and
/// timestamps of the same shape as text (their text order is their time order, and the same on a
/// text key), anything else only when equal.
fn compare(a: &str, b: &str) -> Option<Ordering> {
    let unquote = |s: &str| {
        s.strip_prefix('\'')
            .and_then(|x| x.strip_suffix('\''))
            .map_or((false, s.to_string()), |x| (true, x.to_string()))
    };
    let ((qa, a), (qb, b)) = (unquote(a), unquote(b));
    let (a, b) = (a.as_str(), b.as_str());
    if !qa && !qb {
        if let (Ok(x), Ok(y)) = (a.trim().parse::<i128>(), b.trim().parse::<i128>()) {
            return Some(x.cmp(&y));
        }
        if let (Ok(x), Ok(y)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            return x.partial_cmp(&y);
        }
    }
    if a == b && qa == qb {
        return Some(Ordering::Equal);
    }
    if !(qa && qb) {
        return None;
    }
    let iso = |s: &str| {
        let b = s.as_bytes();
        b.len() >= 10
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && b[7] == b'-'
            && b[8..10].iter().all(u8::is_ascii_digit)
    };
    // A bare date equals midnight: compare only same-shape values, where text order is time order.
    (iso(a) && iso(b) && a.len() == b.len() && !a.contains('+') && !b.contains('+'))
        .then(|| a.cmp(b))
}

/// A bound of `FOR VALUES` (a constant, or MINVALUE/MAXVALUE).
fn bound_datum(node: &protobuf::Node) -> Option<Datum> {
    if let Some(name) = ast::column_ref_name(node) {
        return match name.as_str() {
            "minvalue" => Some(Datum::Min),
            "maxvalue" => Some(Datum::Max),
            _ => None,
        };
    }
    constant(node).map(Datum::Value)
}

enum Datum {
    Min,
    Max,
    Value(String),
}

/// Whether the partition's valid CHECK constraints (and NOT NULL on the key) imply the bound, so
/// ATTACH PARTITION skips its scan.
pub fn bound_implied(
    key: &PartitionKey,
    bound: &protobuf::PartitionBoundSpec,
    facts: &[KeyBound],
    key_not_null: bool,
) -> bool {
    let Some(column) = key.column.as_deref() else {
        return false;
    };
    if bound.is_default {
        return false;
    }
    let on_key = |b: &&KeyBound| match b {
        KeyBound::Compare { column: c, .. }
        | KeyBound::In { column: c, .. }
        | KeyBound::NotNull { column: c } => c == column,
    };
    let bounds: Vec<&KeyBound> = facts.iter().filter(on_key).collect();
    let key_not_null = key_not_null || bounds.iter().any(|b| matches!(b, KeyBound::NotNull { .. }));
    match key.strategy {
        Strategy::Hash => false,
        Strategy::Range => {
            let (Some(lower), Some(upper)) = (
                bound.lowerdatums.first().and_then(bound_datum),
                bound.upperdatums.first().and_then(bound_datum),
            ) else {
                return false;
            };
            key_not_null && lower_implied(&bounds, &lower) && upper_implied(&bounds, &upper)
        }
        Strategy::List => {
            let values: Option<Vec<String>> = bound.listdatums.iter().map(constant).collect();
            let Some(values) = values else {
                return false;
            };
            let listed = |v: &String| {
                values
                    .iter()
                    .any(|x| compare(x, v) == Some(Ordering::Equal))
            };
            key_not_null
                && bounds.iter().any(|b| match b {
                    KeyBound::In { values: vs, .. } => !vs.is_empty() && vs.iter().all(listed),
                    KeyBound::Compare {
                        op: CompareOp::Eq,
                        value,
                        ..
                    } => listed(value),
                    KeyBound::Compare { .. } | KeyBound::NotNull { .. } => false,
                })
        }
    }
}

/// `key >= from` follows from the bounds.
fn lower_implied(bounds: &[&KeyBound], from: &Datum) -> bool {
    let from = match from {
        Datum::Min => return true,
        Datum::Max => return false,
        Datum::Value(v) => v,
    };
    bounds.iter().any(|b| match b {
        KeyBound::Compare {
            op: CompareOp::Ge | CompareOp::Gt | CompareOp::Eq,
            value,
            ..
        } => {
            matches!(
                compare(value, from),
                Some(Ordering::Greater | Ordering::Equal)
            )
        }
        KeyBound::In { values, .. } => {
            !values.is_empty()
                && values
                    .iter()
                    .all(|v| matches!(compare(v, from), Some(Ordering::Greater | Ordering::Equal)))
        }
        _ => false,
    })
}

/// `key < to` follows from the bounds.
fn upper_implied(bounds: &[&KeyBound], to: &Datum) -> bool {
    let to = match to {
        Datum::Max => return true,
        Datum::Min => return false,
        Datum::Value(v) => v,
    };
    bounds.iter().any(|b| match b {
        KeyBound::Compare {
            op: CompareOp::Lt,
            value,
            ..
        } => {
            matches!(compare(value, to), Some(Ordering::Less | Ordering::Equal))
        }
        KeyBound::Compare {
            op: CompareOp::Le | CompareOp::Eq,
            value,
            ..
        } => compare(value, to) == Some(Ordering::Less),
        KeyBound::In { values, .. } => {
            !values.is_empty()
                && values
                    .iter()
                    .all(|v| compare(v, to) == Some(Ordering::Less))
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_expr(sql: &str) -> Vec<KeyBound> {
        let parsed = pg_query::parse(&format!("SELECT 1 WHERE {sql}"), 0).ok();
        let stmt = parsed.and_then(|p| p.protobuf.stmts.into_iter().next());
        match stmt.and_then(|s| s.stmt).and_then(|n| n.node) {
            Some(N::SelectStmt(s)) => s
                .where_clause
                .as_deref()
                .map(check_bounds)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn attach(sql: &str) -> protobuf::PartitionBoundSpec {
        let parsed = pg_query::parse(sql, 0).ok();
        let stmt = parsed.and_then(|p| p.protobuf.stmts.into_iter().next());
        let Some(N::AlterTableStmt(a)) = stmt.and_then(|s| s.stmt).and_then(|n| n.node) else {
            return protobuf::PartitionBoundSpec::default();
        };
        let cmd = a.cmds.first().and_then(|c| match c.node.as_ref() {
            Some(N::AlterTableCmd(c)) => Some(c.clone()),
            _ => None,
        });
        match cmd.and_then(|c| c.def).and_then(|d| d.node) {
            Some(N::PartitionCmd(p)) => p.bound.unwrap_or_default(),
            _ => protobuf::PartitionBoundSpec::default(),
        }
    }

    fn range() -> PartitionKey {
        PartitionKey {
            strategy: Strategy::Range,
            column: Some("k".into()),
        }
    }

    #[test]
    fn range_bounds_are_implied_by_a_matching_or_narrower_check() {
        let b = attach("ALTER TABLE p ATTACH PARTITION c FOR VALUES FROM (0) TO (100)");
        assert!(bound_implied(
            &range(),
            &b,
            &check_expr("k >= 0 AND k < 100"),
            true
        ));
        assert!(bound_implied(
            &range(),
            &b,
            &check_expr("k > 5 AND 99 >= k"),
            true
        ));
        assert!(bound_implied(
            &range(),
            &b,
            &check_expr("k BETWEEN 1 AND 99"),
            true
        ));
        // Without NOT NULL on the key a NULL would pass the CHECK but not the bound.
        assert!(!bound_implied(
            &range(),
            &b,
            &check_expr("k >= 0 AND k < 100"),
            false
        ));
        assert!(!bound_implied(
            &range(),
            &b,
            &check_expr("k >= 0 AND k <= 100"),
            true
        ));
        assert!(!bound_implied(&range(), &b, &check_expr("k >= 0"), true));
        assert!(!bound_implied(
            &range(),
            &b,
            &check_expr("k >= -1 AND k < 100"),
            true
        ));
        let dates = attach(
            "ALTER TABLE p ATTACH PARTITION c FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')",
        );
        assert!(bound_implied(
            &range(),
            &dates,
            &check_expr("k >= DATE '2024-01-01' AND k < '2024-02-01'::date"),
            true
        ));
        // Quoted numbers are not ordered as numbers: on a text key '2' sorts after '10'.
        let text = attach("ALTER TABLE p ATTACH PARTITION c FOR VALUES FROM ('1') TO ('10')");
        assert!(!bound_implied(
            &range(),
            &text,
            &check_expr("k >= '1' AND k < '2'"),
            true
        ));
        assert!(bound_implied(
            &range(),
            &text,
            &check_expr("k >= '1' AND k < '10'"),
            true
        ));
        let open = attach("ALTER TABLE p ATTACH PARTITION c FOR VALUES FROM (MINVALUE) TO (10)");
        assert!(bound_implied(&range(), &open, &check_expr("k < 10"), true));
    }

    #[test]
    fn list_hash_and_default_bounds() {
        let list = PartitionKey {
            strategy: Strategy::List,
            column: Some("k".into()),
        };
        let b = attach("ALTER TABLE p ATTACH PARTITION c FOR VALUES IN ('a', 'b')");
        assert!(bound_implied(
            &list,
            &b,
            &check_expr("k IN ('a', 'b')"),
            true
        ));
        assert!(bound_implied(&list, &b, &check_expr("k = 'a'"), true));
        assert!(!bound_implied(
            &list,
            &b,
            &check_expr("k IN ('a', 'c')"),
            true
        ));
        let d = attach("ALTER TABLE p ATTACH PARTITION c DEFAULT");
        assert!(!bound_implied(&list, &d, &check_expr("k = 'a'"), true));
        let hash = PartitionKey {
            strategy: Strategy::Hash,
            column: Some("k".into()),
        };
        let h = attach("ALTER TABLE p ATTACH PARTITION c FOR VALUES WITH (MODULUS 2, REMAINDER 0)");
        assert!(!bound_implied(&hash, &h, &check_expr("k = 1"), true));
    }
}
