//! Maintenance statements: `VACUUM`/`ANALYZE` and `REINDEX`.

use pg_query::protobuf::{self, node::Node as N};

use crate::check::ast::{self};

use super::Builder;

pub(super) fn vacuum(b: &mut Builder<'_>, v: &protobuf::VacuumStmt) {
    let full = v.options.iter().any(|o| match o.node.as_ref() {
        Some(N::DefElem(d)) => d.defname == "full",
        _ => false,
    });
    b.out.kind = if !v.is_vacuumcmd {
        "analyze"
    } else if full {
        "vacuum_full"
    } else {
        "vacuum"
    }
    .into();
    let rels: Vec<String> = v
        .rels
        .iter()
        .filter_map(|r| match r.node.as_ref() {
            Some(N::VacuumRelation(vr)) => vr.relation.as_ref().map(ast::range_var_key),
            _ => None,
        })
        .collect();
    let id = if full { "table_rewrite" } else { "vacuum" };
    if rels.is_empty() {
        b.apply(id, None, &[]);
    }
    for r in rels {
        b.apply(id, Some(&r), &[]);
    }
    if v.is_vacuumcmd {
        b.out.no_transaction_block = true;
    }
}

pub(super) fn reindex(b: &mut Builder<'_>, r: &protobuf::ReindexStmt) {
    b.out.kind = "reindex".into();
    let concurrent = r.params.iter().any(|p| match p.node.as_ref() {
        Some(N::DefElem(d)) => d.defname == "concurrently",
        _ => false,
    });
    let id = if concurrent {
        "reindex.concurrently"
    } else {
        "reindex"
    };
    let rel = r.relation.as_ref().map(ast::range_var_key);
    match (r.kind(), rel) {
        (protobuf::ReindexObjectType::ReindexObjectIndex, Some(idx)) => {
            let table = b.cx.schema.indexes.get(&idx).map(|i| i.table.clone());
            match table {
                Some(t) => b.apply(id, Some(&t), std::slice::from_ref(&idx)),
                None => {
                    b.apply(id, None, std::slice::from_ref(&idx));
                    b.out.touch(&idx);
                    b.note(format!("the table of index {idx} is unknown"));
                }
            }
        }
        (protobuf::ReindexObjectType::ReindexObjectTable, Some(t)) => {
            let idx: Vec<String> = b.cx.schema.indexes_of(&t).cloned().collect();
            b.apply(id, Some(&t), &idx);
        }
        _ => b.apply(id, None, &[]),
    }
}
