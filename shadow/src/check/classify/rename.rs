//! `ALTER … RENAME`.

use pg_query::protobuf::{self, ObjectType};

use crate::check::ast::{self};

use super::{object_type_name, Builder};

pub(super) fn rename(b: &mut Builder<'_>, r: &protobuf::RenameStmt) {
    let t = r.rename_type();
    b.out.kind = format!("rename_{}", object_type_name(t));
    let rel = r.relation.as_ref().map(ast::range_var_key);
    match (t, rel) {
        (ObjectType::ObjectIndex, Some(idx)) => {
            if b.cx.schema.tables.contains_key(&idx) {
                // `ALTER INDEX <table> RENAME` still takes ACCESS EXCLUSIVE.
                b.apply("rename", Some(&idx), &[]);
            } else {
                b.apply("rename_index", None, std::slice::from_ref(&idx));
                b.out.touch(&idx);
            }
        }
        (
            ObjectType::ObjectTable
            | ObjectType::ObjectColumn
            | ObjectType::ObjectTabconstraint
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectSequence
            | ObjectType::ObjectTrigger
            | ObjectType::ObjectPolicy
            | ObjectType::ObjectRule
            | ObjectType::ObjectForeignTable,
            Some(rel),
        ) => b.apply("rename", Some(&rel), &[]),
        _ => b.apply("enum_rename_value", None, &[]),
    }
}
