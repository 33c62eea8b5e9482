//! `ALTER TABLE … ADD CONSTRAINT`: what each constraint kind locks and scans.

use pg_query::protobuf::{self, ConstrType};

use crate::check::ast::{self};
use crate::check::schema::Schema;

use super::Builder;

pub(super) fn add_constraint(b: &mut Builder<'_>, key: &str, con: &protobuf::Constraint) {
    let table = b.cx.schema.table(key).cloned();
    match con.contype() {
        ConstrType::ConstrCheck => b.apply(
            if con.skip_validation {
                "add_check.not_valid"
            } else {
                "add_check"
            },
            Some(key),
            &[],
        ),
        ConstrType::ConstrForeign => {
            let referenced: Vec<String> = con
                .pktable
                .as_ref()
                .map(ast::range_var_key)
                .into_iter()
                .filter(|r| r != key)
                .collect();
            b.apply(
                if con.skip_validation {
                    "add_foreign_key.not_valid"
                } else {
                    "add_foreign_key"
                },
                Some(key),
                &referenced,
            );
            for r in &referenced {
                b.out.touch(r);
            }
        }
        ConstrType::ConstrPrimary | ConstrType::ConstrUnique => {
            if con.indexname.is_empty() {
                b.apply("add_unique", Some(key), &[]);
            } else {
                let index_cols =
                    b.cx.schema
                        .indexes
                        .get(&Schema::index_key_on(key, &con.indexname))
                        .map(|i| i.columns.clone())
                        .unwrap_or_default();
                let nullable = con.contype() == ConstrType::ConstrPrimary
                    && match &table {
                        Some(t) if !index_cols.is_empty() => index_cols
                            .iter()
                            .any(|c| t.column(c).is_none_or(|c| !c.not_null)),
                        _ => {
                            b.note("the index columns are unknown; if any is nullable, SET NOT NULL scans the table");
                            false
                        }
                    };
                b.apply(
                    if nullable {
                        "add_primary_key.using_index_nullable"
                    } else {
                        "add_constraint.using_index"
                    },
                    Some(key),
                    &[],
                );
            }
        }
        ConstrType::ConstrExclusion => b.apply("add_exclusion", Some(key), &[]),
        ConstrType::ConstrNotnull => {
            let col = ast::strings(&con.keys)
                .into_iter()
                .next()
                .unwrap_or_default();
            if con.skip_validation {
                b.apply("add_not_null_constraint.not_valid", Some(key), &[]);
            } else if table
                .as_ref()
                .and_then(|t| t.column(&col))
                .is_some_and(|c| c.not_null)
            {
                b.apply("set_not_null.already", Some(key), &[]);
            } else if b.cx.version.at_least(12)
                && table
                    .as_ref()
                    .is_some_and(|t| t.has_valid_not_null_check(&col))
            {
                b.apply("set_not_null.proven_by_check", Some(key), &[]);
            } else {
                b.apply("set_not_null", Some(key), &[]);
            }
        }
        _ => b.apply("alter_table.other", Some(key), &[]),
    }
}
