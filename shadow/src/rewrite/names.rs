//! Identifier quoting and the names PostgreSQL gives to result columns.
//!
//! A re-projected `RETURNING` list must report the same column names as the original statement.
//! [`result_column_name`] follows PostgreSQL's `FigureColname` (parse_target.c) for the node kinds
//! that matter; everything it does not know is `?column?`, as in PostgreSQL.

use pg_query::protobuf::{node::Node as NodeEnum, Node, ResTarget};

pub use crate::ident::quote_ident;

/// The string value of a `String` node.
pub fn string_value(node: &Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.as_str()),
        _ => None,
    }
}

/// The output column name of one target-list entry (`AS name`, else figured from the expression).
pub fn result_column_name(target: &ResTarget) -> String {
    if !target.name.is_empty() {
        return target.name.clone();
    }
    target
        .val
        .as_deref()
        .and_then(|v| figure(v).map(|(name, _)| name))
        .unwrap_or_else(|| "?column?".to_string())
}

/// `(name, strength)`: strength 2 for names taken from the expression, 1 for type-name fallbacks.
fn figure(node: &Node) -> Option<(String, u8)> {
    match node.node.as_ref()? {
        NodeEnum::ColumnRef(c) => c
            .fields
            .iter()
            .rev()
            .find_map(string_value)
            .map(|s| (s.to_string(), 2)),
        NodeEnum::AIndirection(ind) => ind
            .indirection
            .iter()
            .rev()
            .find_map(string_value)
            .map(|s| (s.to_string(), 2))
            .or_else(|| ind.arg.as_deref().and_then(figure)),
        NodeEnum::FuncCall(f) => f
            .funcname
            .last()
            .and_then(string_value)
            .map(|s| (s.to_string(), 2)),
        NodeEnum::TypeCast(tc) => {
            let inner = tc.arg.as_deref().and_then(figure);
            match inner {
                Some((name, 2)) => Some((name, 2)),
                _ => tc
                    .type_name
                    .as_ref()
                    .and_then(|t| t.names.last())
                    .and_then(string_value)
                    .map(|s| (s.to_string(), 1)),
            }
        }
        NodeEnum::CollateClause(c) => c.arg.as_deref().and_then(figure),
        NodeEnum::CaseExpr(c) => {
            let inner = c.defresult.as_deref().and_then(figure);
            match inner {
                Some((name, 2)) => Some((name, 2)),
                _ => Some(("case".to_string(), 1)),
            }
        }
        NodeEnum::CoalesceExpr(_) => Some(("coalesce".to_string(), 2)),
        NodeEnum::AArrayExpr(_) => Some(("array".to_string(), 2)),
        NodeEnum::RowExpr(_) => Some(("row".to_string(), 2)),
        NodeEnum::MinMaxExpr(m) => {
            Some((if m.op == 1 { "greatest" } else { "least" }.to_string(), 2))
        }
        NodeEnum::NullTest(_) | NodeEnum::BooleanTest(_) => None,
        _ => None,
    }
}
