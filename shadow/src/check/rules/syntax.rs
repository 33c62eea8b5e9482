//! Syntax queries shared by rules: column definitions, ALTER TABLE subcommands, new constraints.

use pg_query::protobuf::{self, node::Node as N, AlterTableType};

use super::super::ast::{self, ColumnType};

/// Column definitions a statement introduces (CREATE TABLE columns, ADD COLUMN), with their table.
pub fn new_columns(stmt: Option<&N>) -> Vec<(String, &protobuf::ColumnDef)> {
    let mut out = Vec::new();
    match stmt {
        Some(N::CreateStmt(c)) => {
            let table = ast::optional_range_var_key(c.relation.as_ref());
            for e in &c.table_elts {
                if let Some(N::ColumnDef(col)) = e.node.as_ref() {
                    out.push((table.clone(), col.as_ref()));
                }
            }
        }
        Some(N::AlterTableStmt(a)) => {
            let table = ast::optional_range_var_key(a.relation.as_ref());
            for cmd in alter_cmds(stmt) {
                if cmd.subtype() == AlterTableType::AtAddColumn {
                    if let Some(N::ColumnDef(col)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
                    {
                        out.push((table.clone(), col.as_ref()));
                    }
                }
            }
            let _ = a;
        }
        _ => {}
    }
    out
}

/// Column types a statement introduces or changes to (new columns and ALTER COLUMN TYPE).
pub fn new_column_types(stmt: Option<&N>) -> Vec<(String, String, ColumnType)> {
    let mut out: Vec<(String, String, ColumnType)> = new_columns(stmt)
        .into_iter()
        .filter_map(|(t, c)| {
            c.type_name
                .as_ref()
                .map(|tn| (t, c.colname.clone(), ColumnType::from_type_name(tn)))
        })
        .collect();
    if let Some(N::AlterTableStmt(a)) = stmt {
        let table = ast::optional_range_var_key(a.relation.as_ref());
        for cmd in alter_cmds(stmt) {
            if cmd.subtype() == AlterTableType::AtAlterColumnType {
                if let Some(N::ColumnDef(col)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                    if let Some(tn) = col.type_name.as_ref() {
                        out.push((
                            table.clone(),
                            cmd.name.clone(),
                            ColumnType::from_type_name(tn),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// The subcommands of an ALTER TABLE.
pub fn alter_cmds(stmt: Option<&N>) -> Vec<&protobuf::AlterTableCmd> {
    match stmt {
        Some(N::AlterTableStmt(a)) => a
            .cmds
            .iter()
            .filter_map(|c| match c.node.as_ref() {
                Some(N::AlterTableCmd(c)) => Some(c.as_ref()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Constraints added by ALTER TABLE … ADD CONSTRAINT.
pub fn added_constraints(stmt: Option<&N>) -> Vec<&protobuf::Constraint> {
    alter_cmds(stmt)
        .into_iter()
        .filter(|c| c.subtype() == AlterTableType::AtAddConstraint)
        .filter_map(|c| match c.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(N::Constraint(con)) => Some(con.as_ref()),
            _ => None,
        })
        .collect()
}

/// The ALTER TABLE target.
pub fn alter_target(stmt: Option<&N>) -> Option<String> {
    match stmt {
        Some(N::AlterTableStmt(a)) => a.relation.as_ref().map(ast::range_var_key),
        _ => None,
    }
}
