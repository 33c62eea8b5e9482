//! Utility statements (DDL, GRANT, COMMENT, …) that name a table under migration.
//!
//! While a table is migrated, two shapes of it exist side by side and the last step drops one of
//! them (`complete` the old, `revert`/`abort` the new). A new object that depends on the table —
//! a foreign key referencing it, a view or materialized view reading it, a rule, trigger, policy,
//! index, statistics object, comment on it, a function whose SQL-standard body reads it, a column
//! or function of its row type — would be attached to whichever shape the server resolves the name
//! to now: it would be lost with that shape, or make the drop fail (the migration stuck in its
//! last step). So such statements are refused (55000) with a hint saying when they can run.
//!
//! A GRANT or REVOKE on the table is carried over instead: for a shadow-table route it becomes
//! `… ON t, <schema>.<shadow>`, so whichever shape survives has the privilege; for a shadow
//! column or a rename the table is the same one and the statement passes.
//!
//! Statements that only read the table's rows once and keep no link to it (`CREATE TABLE … AS
//! SELECT`) pass as before, and so does SQL-level `PREPARE` (of a read or a write): a prepared
//! statement is no object of the schema, and each `EXECUTE` of a write is mirrored by the safety
//! net ([`super::net`]).

use pg_query::protobuf::{node::Node as NodeEnum, GrantStmt, Node, ObjectType, Token};
use pg_query::{Context, NodeRef};

use super::names::{quote_ident, string_value};
use super::outcome::Refusal;
use super::route::{Routes, TableRoute, Target};
use super::shadow_table::Span;
use super::statement::Decision;
use super::tokens::Tokens;

/// Decides a utility statement: pass, the GRANT/REVOKE carried over to the shadow, or a refusal.
pub fn decide(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    node: &NodeEnum,
    routes: &Routes,
) -> Result<Decision, Refusal> {
    if let NodeEnum::GrantStmt(grant) = node {
        return self::grant(sql, tokens, span, node, grant, routes);
    }
    if let NodeEnum::PrepareStmt(_) = node {
        return Ok(Decision::Pass);
    }
    if let Some(route) = object_tables(node)
        .into_iter()
        .find_map(|(schema, name)| routes.find(&schema, &name))
    {
        return Err(refusal(node, route));
    }
    let route = if creates_dependency(node) {
        let mut names = references(node);
        // The name a CREATE TABLE defines is a new table (in the first schema of the session's
        // search_path, or pg_temp), never the migrating one, which exists already: the server
        // resolves a clash itself.
        if let NodeEnum::CreateStmt(s) = node {
            if let Some(rv) = &s.relation {
                if let Some(at) = names
                    .iter()
                    .position(|(schema, name)| *schema == rv.schemaname && *name == rv.relname)
                {
                    names.remove(at);
                }
            }
        }
        names
            .into_iter()
            .find_map(|(schema, name)| routes.find(&schema, &name))
    } else {
        // Only the objects it defines, changes or writes.
        node.nodes()
            .into_iter()
            .find_map(|(child, _, context, _)| match child {
                NodeRef::RangeVar(rv) if matches!(context, Context::DDL | Context::DML) => {
                    routes.find(&rv.schemaname, &rv.relname)
                }
                _ => None,
            })
    };
    match route {
        Some(route) => Err(refusal(node, route)),
        None => Ok(Decision::Pass),
    }
}

/// Every relation and row-type name in `node`'s tree, as (schema, name) written (schema empty
/// when unqualified). pg_query's `nodes()` walks queries and expressions (FROM, joins,
/// subqueries, WHERE sublinks, CTEs) but only the target relation of most DDL, so the parts of
/// DDL that can name another table are walked here: column definitions and constraints (a
/// foreign key's referenced table), ALTER TABLE commands, INHERITS, a function's parameter and
/// result types and its SQL-standard body, rule actions, policy expressions, statistics
/// relations.
///
/// Utility statements are rare and reach here only when they mention a migrating table's name
/// (the prefilter), so the parts walked separately are cloned rather than borrowed.
fn references(node: &NodeEnum) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut pending = vec![node.clone()];
    while let Some(node) = pending.pop() {
        for (child, ..) in node.nodes() {
            let mut nodes: Vec<&Node> = Vec::new();
            match child {
                NodeRef::RangeVar(rv) => found.push((rv.schemaname.clone(), rv.relname.clone())),
                // `t.c%TYPE` is resolved once, at creation; it keeps no link.
                NodeRef::TypeName(ty) if !ty.pct_type => {
                    let names: Vec<&str> = ty.names.iter().filter_map(string_value).collect();
                    match names.as_slice() {
                        [name] => found.push((String::new(), (*name).to_owned())),
                        [.., schema, name] => {
                            found.push(((*schema).to_owned(), (*name).to_owned()))
                        }
                        [] => {}
                    }
                }
                NodeRef::CreateStmt(s) => {
                    nodes.extend(&s.table_elts);
                    nodes.extend(&s.constraints);
                    nodes.extend(&s.inh_relations);
                    if let Some(ty) = &s.of_typename {
                        pending.push(NodeEnum::TypeName(ty.clone()));
                    }
                }
                NodeRef::AlterTableStmt(s) => nodes.extend(&s.cmds),
                NodeRef::AlterTableCmd(s) => nodes.extend(s.def.as_deref()),
                NodeRef::ColumnDef(s) => {
                    nodes.extend(&s.constraints);
                    if let Some(ty) = &s.type_name {
                        pending.push(NodeEnum::TypeName(ty.clone()));
                    }
                }
                NodeRef::Constraint(s) => {
                    if let Some(rv) = &s.pktable {
                        pending.push(NodeEnum::RangeVar(rv.clone()));
                    }
                    nodes.extend(s.raw_expr.as_deref());
                }
                NodeRef::CreateFunctionStmt(s) => {
                    nodes.extend(&s.parameters);
                    nodes.extend(s.sql_body.as_deref());
                    if let Some(ty) = &s.return_type {
                        pending.push(NodeEnum::TypeName(ty.clone()));
                    }
                }
                NodeRef::FunctionParameter(s) => {
                    if let Some(ty) = &s.arg_type {
                        pending.push(NodeEnum::TypeName(ty.clone()));
                    }
                }
                NodeRef::ReturnStmt(s) => nodes.extend(s.returnval.as_deref()),
                NodeRef::List(s) => nodes.extend(&s.items),
                NodeRef::RuleStmt(s) => {
                    nodes.extend(&s.actions);
                    nodes.extend(s.where_clause.as_deref());
                }
                NodeRef::CreatePolicyStmt(s) => {
                    if let Some(rv) = &s.table {
                        pending.push(NodeEnum::RangeVar(rv.clone()));
                    }
                    nodes.extend(s.qual.as_deref());
                    nodes.extend(s.with_check.as_deref());
                }
                NodeRef::AlterPolicyStmt(s) => {
                    if let Some(rv) = &s.table {
                        pending.push(NodeEnum::RangeVar(rv.clone()));
                    }
                    nodes.extend(s.qual.as_deref());
                    nodes.extend(s.with_check.as_deref());
                }
                NodeRef::CreateTrigStmt(s) => nodes.extend(s.when_clause.as_deref()),
                NodeRef::CreateStatsStmt(s) => nodes.extend(&s.relations),
                NodeRef::CompositeTypeStmt(s) => nodes.extend(&s.coldeflist),
                NodeRef::CreateDomainStmt(s) => {
                    if let Some(ty) = &s.type_name {
                        pending.push(NodeEnum::TypeName(ty.clone()));
                    }
                }
                _ => {}
            }
            pending.extend(nodes.into_iter().filter_map(|n| n.node.clone()));
        }
    }
    found
}

/// The refusal of `node` naming `route`'s table: SQLSTATE 55000, the statement kind and the
/// table, and when it can run.
pub fn refusal(node: &NodeEnum, route: &TableRoute) -> Refusal {
    let table = format!("{}.{}", route.schema, route.name);
    Refusal::not_now(
        format!(
            "{} naming table {table} is refused while duet migrates that table: its old and new \
             shape exist side by side, and an object created on one of them now would be lost or \
             would block the migration's last step",
            statement_kind(node)
        ),
        format!(
            "run it after `duet admin complete` (or `abort`/`revert`) of the migration of \
             {table}; `duet admin status` shows it"
        ),
    )
}

/// Whether every mention of a table in `node` makes the new or changed object depend on it. Only
/// statements that read the rows once and keep no link are exempt (their DDL/DML targets are
/// still checked).
fn creates_dependency(node: &NodeEnum) -> bool {
    match node {
        // Their tables are named by lists (`object_table`); their other names (a function's
        // argument types, say) create nothing: a DROP removes dependencies.
        NodeEnum::DropStmt(_) | NodeEnum::CommentStmt(_) | NodeEnum::SecLabelStmt(_) => false,
        NodeEnum::CreateTableAsStmt(s) => s.objtype == ObjectType::ObjectMatview as i32,
        _ => true,
    }
}

/// For statements that name their object by a list of names (COMMENT ON, SECURITY LABEL ON,
/// DROP TRIGGER/POLICY/RULE … ON), the tables those lists name, as (schema, name).
fn object_tables(node: &NodeEnum) -> Vec<(String, String)> {
    let (objtype, objects): (i32, Vec<&Node>) = match node {
        NodeEnum::CommentStmt(s) => (s.objtype, s.object.as_deref().into_iter().collect()),
        NodeEnum::SecLabelStmt(s) => (s.objtype, s.object.as_deref().into_iter().collect()),
        NodeEnum::DropStmt(s) => (s.remove_type, s.objects.iter().collect()),
        _ => return Vec::new(),
    };
    let Ok(objtype) = ObjectType::try_from(objtype) else {
        return Vec::new();
    };
    // How many trailing names follow the table's: `t.c`, `trigger ON t` (parsed as t, trigger).
    let trailing = match objtype {
        ObjectType::ObjectTable
        | ObjectType::ObjectView
        | ObjectType::ObjectMatview
        | ObjectType::ObjectForeignTable => 0,
        ObjectType::ObjectColumn
        | ObjectType::ObjectTabconstraint
        | ObjectType::ObjectTrigger
        | ObjectType::ObjectPolicy
        | ObjectType::ObjectRule => 1,
        _ => return Vec::new(),
    };
    objects
        .into_iter()
        .filter_map(|object| {
            let Some(NodeEnum::List(list)) = object.node.as_ref() else {
                return None;
            };
            let names: Vec<&str> = list.items.iter().filter_map(string_value).collect();
            let table = names.get(..names.len().checked_sub(trailing)?)?;
            match table {
                [name] => Some((String::new(), (*name).to_owned())),
                [.., schema, name] => Some(((*schema).to_owned(), (*name).to_owned())),
                [] => None,
            }
        })
        .collect()
}

/// GRANT/REVOKE on a table under migration: carried over to the shadow table (inserted before
/// `TO`/`FROM`), passed for routes that keep one table; column privileges are refused (the
/// shadow's columns are not the table's one for one in every migration).
fn grant(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    node: &NodeEnum,
    grant: &GrantStmt,
    routes: &Routes,
) -> Result<Decision, Refusal> {
    if grant.objtype != ObjectType::ObjectTable as i32 {
        return Ok(Decision::Pass);
    }
    let columns = grant.privileges.iter().any(|p| match p.node.as_ref() {
        Some(NodeEnum::AccessPriv(p)) => !p.cols.is_empty(),
        _ => false,
    });
    let mut extra = Vec::new();
    let mut first_route = None;
    let mut last_location = None;
    for object in &grant.objects {
        let Some(NodeEnum::RangeVar(rv)) = object.node.as_ref() else {
            continue;
        };
        last_location = Some(rv.location);
        let Some(route) = routes.find(&rv.schemaname, &rv.relname) else {
            continue;
        };
        if columns {
            return Err(refusal(node, route));
        }
        first_route.get_or_insert(route);
        if let Target::ShadowTable { shadow, .. } = &route.target {
            extra.push(format!(
                "{}.{}",
                quote_ident(&route.schema),
                quote_ident(shadow)
            ));
        }
    }
    if extra.is_empty() {
        return Ok(Decision::Pass);
    }
    let from = last_location
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(span.start)
        .max(span.start);
    let keyword = if grant.is_grant {
        Token::To
    } else {
        Token::From
    };
    // Without the keyword the statement is not one the server would accept; refuse rather than
    // guess where the shadow's name goes.
    let Some(at) = tokens.first_top_level(from, span.end, &[keyword]) else {
        return match first_route {
            Some(route) => Err(refusal(node, route)),
            None => Ok(Decision::Pass),
        };
    };
    let head = sql.get(span.start..at.start).unwrap_or("").trim_end();
    let tail = sql.get(at.start..span.end).unwrap_or("");
    Ok(Decision::Replace {
        sql: format!("{head}, {} {tail}", extra.join(", ")),
        verb: None,
    })
}

/// The statement's kind as the operator would write it (`CREATE VIEW`, `ALTER TABLE`, …).
fn statement_kind(node: &NodeEnum) -> &'static str {
    match node {
        NodeEnum::AlterTableStmt(_) => "ALTER TABLE",
        NodeEnum::CreateStmt(_) => "CREATE TABLE",
        NodeEnum::ViewStmt(_) => "CREATE VIEW",
        NodeEnum::CreateTableAsStmt(s) if s.objtype == ObjectType::ObjectMatview as i32 => {
            "CREATE MATERIALIZED VIEW"
        }
        NodeEnum::CreateTableAsStmt(_) => "CREATE TABLE AS",
        NodeEnum::RuleStmt(_) => "CREATE RULE",
        NodeEnum::CreateTrigStmt(_) => "CREATE TRIGGER",
        NodeEnum::CreatePolicyStmt(_) => "CREATE POLICY",
        NodeEnum::AlterPolicyStmt(_) => "ALTER POLICY",
        NodeEnum::IndexStmt(_) => "CREATE INDEX",
        NodeEnum::CreateStatsStmt(_) => "CREATE STATISTICS",
        NodeEnum::CommentStmt(_) => "COMMENT",
        NodeEnum::SecLabelStmt(_) => "SECURITY LABEL",
        NodeEnum::GrantStmt(s) if s.is_grant => "GRANT",
        NodeEnum::GrantStmt(_) => "REVOKE",
        NodeEnum::DropStmt(_) => "DROP",
        NodeEnum::CreateFunctionStmt(s) if s.is_procedure => "CREATE PROCEDURE",
        NodeEnum::CreateFunctionStmt(_) => "CREATE FUNCTION",
        NodeEnum::RenameStmt(_) => "ALTER … RENAME",
        NodeEnum::AlterObjectSchemaStmt(_) => "ALTER … SET SCHEMA",
        NodeEnum::AlterOwnerStmt(_) => "ALTER … OWNER",
        NodeEnum::ClusterStmt(_) => "CLUSTER",
        NodeEnum::ReindexStmt(_) => "REINDEX",
        NodeEnum::PrepareStmt(_) => "PREPARE",
        NodeEnum::CompositeTypeStmt(_) => "CREATE TYPE",
        NodeEnum::CreateDomainStmt(_) => "CREATE DOMAIN",
        _ => "this statement",
    }
}
