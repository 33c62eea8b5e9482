//! `DROP …` of every object kind.

use pg_query::protobuf::{self, node::Node as N, ObjectType};

use crate::check::ast::{self};
use crate::check::facts::ChangePhase;
use crate::check::schema::ConstraintKind;

use super::{object_type_name, Builder};

pub(super) fn drop(b: &mut Builder<'_>, d: &protobuf::DropStmt) {
    let objtype = d.remove_type();
    let names: Vec<Vec<String>> = d
        .objects
        .iter()
        .filter_map(|o| match o.node.as_ref() {
            Some(N::List(l)) => Some(ast::strings(&l.items)),
            Some(N::String(s)) => Some(vec![s.sval.clone()]),
            Some(N::TypeName(t)) => Some(ast::strings(&t.names)),
            Some(N::ObjectWithArgs(o)) => Some(ast::strings(&o.objname)),
            _ => None,
        })
        .collect();
    b.out.kind = format!("drop_{}", object_type_name(objtype));
    match objtype {
        ObjectType::ObjectTable | ObjectType::ObjectMatview | ObjectType::ObjectView => {
            for n in &names {
                let key = ast::qualified_key(n);
                let referenced: Vec<String> = b
                    .cx
                    .schema
                    .table(&key)
                    .map(|t| {
                        t.constraints
                            .iter()
                            .filter_map(|c| match &c.kind {
                                ConstraintKind::ForeignKey { referenced } if *referenced != key => {
                                    Some(referenced.clone())
                                }
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                b.apply("drop_table", Some(&key), &referenced);
            }
        }
        ObjectType::ObjectIndex => {
            for n in &names {
                let key = ast::qualified_key(n);
                let table = b.cx.schema.indexes.get(&key).map(|i| i.table.clone());
                let id = if d.concurrent {
                    "drop_index.concurrently"
                } else {
                    "drop_index"
                };
                match table {
                    Some(t) => {
                        b.apply(id, Some(&t), std::slice::from_ref(&key));
                        // An index of a table created in this transaction is as invisible as
                        // its table.
                        if b.fresh(&t) && !b.out.fresh.contains(&key) {
                            b.out.fresh.push(key.clone());
                        }
                    }
                    None => {
                        b.apply(id, None, std::slice::from_ref(&key));
                        b.out.touch(&key);
                        b.note(format!(
                            "the table of index {key} is unknown; it is locked like the index"
                        ));
                    }
                }
            }
        }
        ObjectType::ObjectTrigger | ObjectType::ObjectPolicy | ObjectType::ObjectRule => {
            for n in &names {
                let table = ast::qualified_key(&n[..n.len().saturating_sub(1)]);
                b.apply("access_exclusive_catalog", Some(&table), &[]);
                b.out.phase = b.out.phase.max(ChangePhase::Contract);
            }
        }
        _ => {
            b.apply("no_table_lock", None, &[]);
            b.out.phase = ChangePhase::Contract;
        }
    }
}
