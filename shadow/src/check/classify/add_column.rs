//! `ALTER TABLE … ADD COLUMN`: its default, its constraints, whether it rewrites.

use pg_query::protobuf::{self, ConstrType};

use crate::check::ast::{self, ColumnType, DefaultKind};

use super::Builder;

pub(super) fn add_column(b: &mut Builder<'_>, key: &str, col: &protobuf::ColumnDef) {
    let v = b.cx.version;
    let ty = col.type_name.as_ref().map(ColumnType::from_type_name);
    let mut default = col.raw_default.as_deref().map(ast::default_kind);
    let mut not_null = col.is_not_null;
    let mut applied = false;
    let mut generates_values = ty.as_ref().is_some_and(|t| t.is_serial());
    let mut referenced: Vec<String> = Vec::new();
    for con in ast::column_constraints(col) {
        match con.contype() {
            ConstrType::ConstrDefault => default = con.raw_expr.as_deref().map(ast::default_kind),
            ConstrType::ConstrNotnull => not_null = true,
            ConstrType::ConstrIdentity => generates_values = true,
            ConstrType::ConstrGenerated => {
                applied = true;
                if con.generated_kind == "v" && v.at_least(18) {
                    b.apply("add_column.generated_virtual", Some(key), &[]);
                } else {
                    b.apply("add_column.generated_stored", Some(key), &[]);
                }
            }
            ConstrType::ConstrCheck => {
                applied = true;
                b.apply("add_column.check", Some(key), &[]);
            }
            ConstrType::ConstrForeign => {
                applied = true;
                referenced.extend(con.pktable.as_ref().map(ast::range_var_key));
            }
            ConstrType::ConstrPrimary | ConstrType::ConstrUnique => {
                applied = true;
                not_null |= con.contype() == ConstrType::ConstrPrimary;
                b.apply("add_column.unique", Some(key), &[]);
            }
            _ => {}
        }
    }
    if generates_values {
        applied = true;
        b.apply("add_column.serial_or_identity", Some(key), &[]);
    }
    if !referenced.is_empty() {
        // With any DEFAULT clause (even DEFAULT NULL) or generated values PostgreSQL validates
        // the new foreign key by reading both tables; without one the column is all NULL and
        // the check is skipped (measured in tests/engine_facts.rs).
        let validated =
            default.is_some() || generates_values || b.out.has_fact("add_column.generated_stored");
        b.apply(
            if validated {
                "add_column.references_validated"
            } else {
                "add_column.references"
            },
            Some(key),
            &referenced,
        );
        for r in &referenced {
            b.out.touch(r);
        }
    }
    if ty
        .as_ref()
        .is_some_and(|t| b.cx.schema.is_constrained_domain(t))
    {
        applied = true;
        b.apply("add_column.constrained_domain", Some(key), &[]);
    }
    match default {
        Some(DefaultKind::Volatile) => {
            applied = true;
            b.apply("add_column.volatile_default", Some(key), &[]);
        }
        Some(DefaultKind::NonVolatile) => {
            applied = true;
            b.apply(
                if v.at_least(11) {
                    "add_column.default"
                } else {
                    "add_column.default_before_11"
                },
                Some(key),
                &[],
            );
        }
        Some(DefaultKind::Null) | None => {
            if not_null && !generates_values && !b.out.has_fact("add_column.generated_stored") {
                applied = true;
                b.apply("add_column.not_null_without_default", Some(key), &[]);
            }
        }
    }
    if !applied {
        b.apply("add_column.plain", Some(key), &[]);
    }
}
