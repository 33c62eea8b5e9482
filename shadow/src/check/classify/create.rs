//! Creating tables: `CREATE TABLE` (with its partitioning and foreign keys).

use pg_query::protobuf::{self, node::Node as N, ConstrType};

use crate::check::ast::{self};

use super::{range_vars, Builder};

pub(super) fn create_table(b: &mut Builder<'_>, c: &protobuf::CreateStmt) {
    b.out.kind = "create_table".into();
    let rel = ast::optional_range_var_key(c.relation.as_ref());
    b.out.touch(&rel);
    let mut referenced = Vec::new();
    let mut collect = |con: &protobuf::Constraint| {
        if con.contype() == ConstrType::ConstrForeign {
            if let Some(pk) = con.pktable.as_ref() {
                let key = ast::range_var_key(pk);
                if key != rel {
                    referenced.push(key);
                }
            }
        }
    };
    for elt in &c.table_elts {
        match elt.node.as_ref() {
            Some(N::ColumnDef(col)) => ast::column_constraints(col).for_each(&mut collect),
            Some(N::Constraint(con)) => collect(con),
            _ => {}
        }
    }
    b.apply("create_table", None, &[]);
    if !referenced.is_empty() {
        b.apply("create_table.references", None, &referenced);
        for r in &referenced {
            b.out.touch(r);
        }
    }
    let like: Vec<String> = c
        .table_elts
        .iter()
        .filter_map(|e| match e.node.as_ref() {
            Some(N::TableLikeClause(l)) => l.relation.as_ref().map(ast::range_var_key),
            _ => None,
        })
        .collect();
    if !like.is_empty() {
        b.apply("create_table.like", None, &like);
        for l in &like {
            b.out.touch(l);
        }
    }
    let parents = range_vars(&c.inh_relations);
    if !parents.is_empty() {
        let id = if c.partbound.is_some() {
            "create_table.partition_of"
        } else {
            "create_table.inherits"
        };
        b.apply(id, None, &parents);
        for p in &parents {
            b.out.touch(p);
        }
    }
}
