//! One statement of a query string: what it does to the tables under migration, and therefore
//! whether it passes, is rewritten, or is refused (DUAL-WRITE.md §3.1, §4).

use pg_query::protobuf::{node::Node as NodeEnum, Node, OnConflictAction, RangeVar, WithClause};

use super::copy_from;
use super::ddl;
use super::outcome::{Protocol, Refusal, StatementPatch, TagVerb};
use super::renamed;
use super::route::{Routes, TableRoute, Target};
use super::shadow_table::{self, Shadow, Span, WriteStatement};
use super::tokens::Tokens;
use super::visible_columns;

/// What to do with one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward it as written.
    Pass,
    /// Replace its text; restore this verb in CommandComplete if set.
    Replace {
        /// The new statement text.
        sql: String,
        /// The verb the client expects, when the rewritten form reports another.
        verb: Option<TagVerb>,
    },
    /// Replace its text by several statements (a staged `COPY … FROM`), one patch each.
    Staged {
        /// The new statements' text.
        sql: String,
        /// One patch per statement of `sql`, in order.
        statements: Vec<StatementPatch>,
    },
}

/// Decides one parsed statement.
pub fn decide(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    node: &NodeEnum,
    routes: &Routes,
    protocol: Protocol,
) -> Result<Decision, Refusal> {
    if renamed::applies_to(node) {
        match renamed::translate(sql, tokens, span, node, routes)? {
            Decision::Pass => {}
            translated => return Ok(translated),
        }
    }
    if let NodeEnum::PrepareStmt(prepare) = node {
        return prepared_body(sql, tokens, span, prepare, routes);
    }
    match node {
        NodeEnum::InsertStmt(s) => {
            refuse_writes_in_with(s.with_clause.as_ref(), routes, s.relation.as_ref())?;
            if s.cols.is_empty() {
                if let Some(route) = shadow_column_route(s.relation.as_ref(), routes) {
                    return visible_columns::for_insert(sql, tokens, span, s, route);
                }
            }
            let Some((relation, route)) = routed(s.relation.as_ref(), routes) else {
                return Ok(Decision::Pass);
            };
            if let Some(oc) = s.on_conflict_clause.as_deref() {
                if oc.action == OnConflictAction::OnconflictUpdate as i32 {
                    refuse_key_change(&oc.target_list, route, routes)?;
                }
            }
            let write = WriteStatement {
                verb: TagVerb::Insert,
                relation,
                with_clause: s.with_clause.as_ref(),
                returning: s.returning_clause.as_ref(),
                joins_others: false,
            };
            write_on(sql, tokens, span, write, route)
        }
        NodeEnum::UpdateStmt(s) => {
            refuse_writes_in_with(s.with_clause.as_ref(), routes, s.relation.as_ref())?;
            let Some((relation, route)) = routed(s.relation.as_ref(), routes) else {
                return Ok(Decision::Pass);
            };
            refuse_key_change(&s.target_list, route, routes)?;
            let write = WriteStatement {
                verb: TagVerb::Update,
                relation,
                with_clause: s.with_clause.as_ref(),
                returning: s.returning_clause.as_ref(),
                joins_others: !s.from_clause.is_empty(),
            };
            write_on(sql, tokens, span, write, route)
        }
        NodeEnum::DeleteStmt(s) => {
            refuse_writes_in_with(s.with_clause.as_ref(), routes, s.relation.as_ref())?;
            let Some((relation, route)) = routed(s.relation.as_ref(), routes) else {
                return Ok(Decision::Pass);
            };
            let write = WriteStatement {
                verb: TagVerb::Delete,
                relation,
                with_clause: s.with_clause.as_ref(),
                returning: s.returning_clause.as_ref(),
                joins_others: !s.using_clause.is_empty(),
            };
            write_on(sql, tokens, span, write, route)
        }
        NodeEnum::SelectStmt(s) => {
            refuse_writes_in_with(s.with_clause.as_ref(), routes, None)?;
            Ok(Decision::Pass)
        }
        NodeEnum::MergeStmt(s) => {
            refuse_writes_in_with(s.with_clause.as_ref(), routes, s.relation.as_ref())?;
            let Some((_, route)) = routed(s.relation.as_ref(), routes) else {
                return Ok(Decision::Pass);
            };
            let why = if routes.server_version_num < 170000 {
                "this server (before PostgreSQL 17) cannot report the rows MERGE wrote"
            } else {
                "duet does not rewrite MERGE yet"
            };
            Err(Refusal::unsupported(
                format!(
                    "MERGE into table {} is not supported while it is being migrated: {why}",
                    route.name
                ),
                "use INSERT … ON CONFLICT, UPDATE and DELETE until the migration is complete",
            ))
        }
        // The safety net's TRUNCATE trigger empties the shadow in the same statement; a
        // rewrite naming the shadow could not know which table an unqualified name resolves to.
        NodeEnum::TruncateStmt(_) => Ok(Decision::Pass),
        NodeEnum::CopyStmt(s) => {
            if s.is_from && s.attlist.is_empty() {
                if let Some(route) = shadow_column_route(s.relation.as_ref(), routes) {
                    return visible_columns::for_copy(sql, tokens, span, route);
                }
            }
            if !s.is_from {
                return Ok(Decision::Pass);
            }
            if let Some(relation) = s.relation.as_ref() {
                if let Some(route) = routes.find(&relation.schemaname, &relation.relname) {
                    if let Target::Renamed { columns } = &route.target {
                        return copy_from::rename_columns(
                            sql, tokens, span, s, relation, route, columns,
                        );
                    }
                }
            }
            let Some((relation, route)) = routed(s.relation.as_ref(), routes) else {
                return Ok(Decision::Pass);
            };
            copy_from::stage(sql, tokens, span, s, relation, route, routes, protocol)
        }
        NodeEnum::ExplainStmt(s) => {
            let analyze = s.options.iter().any(|o| match o.node.as_ref() {
                Some(NodeEnum::DefElem(d)) => d.defname == "analyze",
                _ => false,
            });
            let inner_writes = s
                .query
                .as_deref()
                .and_then(|q| q.node.as_ref())
                .is_some_and(|q| writes_routed(q, routes));
            if analyze && inner_writes {
                return Err(Refusal::unsupported(
                    "EXPLAIN ANALYZE of a write to a table under migration is not supported",
                    "run EXPLAIN without ANALYZE, or wait until the migration is complete",
                ));
            }
            Ok(Decision::Pass)
        }
        NodeEnum::TransactionStmt(_)
        | NodeEnum::VariableSetStmt(_)
        | NodeEnum::VariableShowStmt(_)
        | NodeEnum::LockStmt(_)
        | NodeEnum::VacuumStmt(_)
        | NodeEnum::DeclareCursorStmt(_)
        | NodeEnum::FetchStmt(_)
        | NodeEnum::ClosePortalStmt(_)
        | NodeEnum::ExecuteStmt(_)
        | NodeEnum::DeallocateStmt(_)
        | NodeEnum::NotifyStmt(_)
        | NodeEnum::ListenStmt(_)
        | NodeEnum::UnlistenStmt(_)
        | NodeEnum::DiscardStmt(_) => Ok(Decision::Pass),
        // Utility statements (DDL, GRANT, COMMENT, PREPARE, CREATE RULE, …): refused when they
        // would make an object depend on a table under migration (see `ddl`).
        other => ddl::decide(sql, tokens, span, other, routes),
    }
}

fn write_on(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    write: WriteStatement<'_>,
    route: &TableRoute,
) -> Result<Decision, Refusal> {
    match Shadow::of(&route.target) {
        Some(shadow) => {
            let text = shadow_table::rewrite_write(sql, tokens, span, write, route, shadow)?;
            Ok(Decision::Replace {
                sql: text,
                verb: Some(write.verb),
            })
        }
        // Shadow columns are mirrored by the safety net (see `routed`); statements on renamed
        // tables are translated before dispatch (see `decide`).
        None => Ok(Decision::Pass),
    }
}

/// SQL-level `PREPARE name [(types)] AS <statement>`: after the flip of a rename, the body is
/// translated as the same statement sent on its own would be (an `EXECUTE` later runs what the
/// server prepared, which duet never sees again). Other bodies pass: a shadow strategy's writes
/// are mirrored by the safety net; a body that would make an object depend on a table is not a
/// statement PREPARE accepts.
fn prepared_body(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    prepare: &pg_query::protobuf::PrepareStmt,
    routes: &Routes,
) -> Result<Decision, Refusal> {
    let Some(body) = prepare.query.as_deref().and_then(|q| q.node.as_ref()) else {
        return Ok(Decision::Pass);
    };
    if !renamed::applies_to(body) {
        return Ok(Decision::Pass);
    }
    // The body starts at the first token after the top-level `AS`.
    let body_start = tokens
        .first_top_level(span.start, span.end, &[pg_query::protobuf::Token::As])
        .and_then(|as_keyword| tokens.next_from(as_keyword.end))
        .map(|t| t.start)
        .filter(|&start| start < span.end);
    let Some(start) = body_start else {
        return Ok(Decision::Pass);
    };
    let body_span = Span {
        start,
        end: span.end,
    };
    match renamed::translate(sql, tokens, body_span, body, routes)? {
        Decision::Replace { sql: text, .. } => {
            let head = sql.get(span.start..start).unwrap_or_default();
            Ok(Decision::Replace {
                sql: format!("{head}{text}"),
                verb: None,
            })
        }
        other => Ok(other),
    }
}

/// The route whose writes the rewriter handles. A shadow column's writes are not among them:
/// the safety net's `BEFORE` trigger ([`super::net`]) sets the new column on every row written,
/// whatever the statement's shape, so the statement is forwarded as written — which also keeps
/// it free of any assumption about which table an unqualified name resolves to. Nor are the
/// writes of a table the safety net mirrors alone (row-level security, [`Routes::net_only`]).
fn routed<'a>(
    relation: Option<&'a RangeVar>,
    routes: &'a Routes,
) -> Option<(&'a RangeVar, &'a TableRoute)> {
    let relation = relation?;
    let route = routes.find(&relation.schemaname, &relation.relname)?;
    if matches!(
        route.target,
        Target::ShadowColumn { .. } | Target::Renamed { .. }
    ) || routes.mirrored_by_net_only(route)
    {
        return None;
    }
    Some((relation, route))
}

/// The route of `relation` when it is a table with a shadow column (whose hidden column a write
/// without a column list must not reach: [`visible_columns`]).
fn shadow_column_route<'a>(
    relation: Option<&RangeVar>,
    routes: &'a Routes,
) -> Option<&'a TableRoute> {
    let relation = relation?;
    routes
        .find(&relation.schemaname, &relation.relname)
        .filter(|r| matches!(r.target, Target::ShadowColumn { .. }))
}

/// Whether a statement node is an INSERT/UPDATE/DELETE/MERGE on a routed table.
fn writes_routed(node: &NodeEnum, routes: &Routes) -> bool {
    let relation = match node {
        NodeEnum::InsertStmt(s) => s.relation.as_ref(),
        NodeEnum::UpdateStmt(s) => s.relation.as_ref(),
        NodeEnum::DeleteStmt(s) => s.relation.as_ref(),
        NodeEnum::MergeStmt(s) => s.relation.as_ref(),
        _ => None,
    };
    routed(relation, routes).is_some()
}

/// Writes to a routed table inside a `WITH` clause are refused: when the main statement writes
/// the same table, two arms would write the shadow (possibly the same row twice); otherwise the
/// CTE arm is not rewritten yet.
fn refuse_writes_in_with(
    with: Option<&WithClause>,
    routes: &Routes,
    main: Option<&RangeVar>,
) -> Result<(), Refusal> {
    let Some(with) = with else { return Ok(()) };
    for cte in &with.ctes {
        let Some(NodeEnum::CommonTableExpr(cte)) = cte.node.as_ref() else {
            continue;
        };
        let Some(query) = cte.ctequery.as_deref().and_then(|q| q.node.as_ref()) else {
            continue;
        };
        if writes_routed(query, routes) {
            let also_main = routed(main, routes).is_some();
            let message = if also_main {
                "a statement that writes a table under migration twice (in a WITH clause and in the main statement) cannot be dual-written"
            } else {
                "writes to a table under migration inside a WITH clause are not supported yet"
            };
            return Err(Refusal::unsupported(
                message,
                "split the statement into one write per statement until the migration is complete",
            ));
        }
    }
    Ok(())
}

/// `UPDATE … SET key = …` moves the row: the shadow would need the old key, which only
/// `RETURNING OLD` (PostgreSQL 18) reports.
fn refuse_key_change(targets: &[Node], route: &TableRoute, routes: &Routes) -> Result<(), Refusal> {
    if !matches!(route.target, Target::ShadowTable { .. }) {
        return Ok(());
    }
    let changes_key = targets.iter().any(|t| match t.node.as_ref() {
        Some(NodeEnum::ResTarget(rt)) => route.key.contains(&rt.name),
        _ => false,
    });
    if !changes_key {
        return Ok(());
    }
    let why = if routes.server_version_num < 180000 {
        "this server (before PostgreSQL 18) cannot report the old key (RETURNING OLD)"
    } else {
        "duet does not rewrite key-changing updates yet"
    };
    Err(Refusal::unsupported(
        format!(
            "an UPDATE of the key of table {} is not supported while it is being migrated: {why}",
            route.name
        ),
        "delete the row and insert it under its new key, or wait until the migration is complete",
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{rewrite, Protocol, Rewrite};
    use super::*;
    use crate::ident::QualifiedName;
    use crate::rewrite::route::{Column, ColumnMapping};

    fn routes(net_only: bool) -> Routes {
        let column = |name: &str| Column {
            name: name.into(),
            base_type: "int4".into(),
        };
        Routes {
            tables: vec![TableRoute {
                schema: "app".into(),
                name: "t".into(),
                columns: vec![column("id"), column("v")],
                key: vec!["id".into()],
                target: Target::ShadowTable {
                    shadow: "t__duet".into(),
                    mapping: vec![
                        ColumnMapping::new("id", "\"id\"::bigint"),
                        ColumnMapping::new("v", "\"v\""),
                    ],
                    shadow_key: vec!["id".into()],
                    skip_when: None,
                    plain_deletes: false,
                },
            }],
            server_version_num: 150000,
            net_only: if net_only {
                vec![QualifiedName::new("app", "t")]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn writes_of_a_net_only_table_pass_as_written_but_ddl_is_still_refused() {
        for sql in [
            "INSERT INTO app.t (id, v) VALUES (1, 2) RETURNING *",
            "UPDATE app.t SET v = 3 WHERE id = 1",
            "DELETE FROM app.t WHERE id = 1",
            "WITH d AS (DELETE FROM app.t WHERE id = 2 RETURNING id) SELECT count(*) FROM d",
        ] {
            assert_eq!(
                rewrite(sql, &routes(true), Protocol::Simple),
                Ok(Rewrite::Unchanged),
                "{sql}"
            );
        }
        assert!(matches!(
            rewrite(
                "INSERT INTO app.t (id, v) VALUES (1, 2)",
                &routes(false),
                Protocol::Simple
            ),
            Ok(Rewrite::Changed { .. })
        ));
        let refused = rewrite(
            "ALTER TABLE app.t ADD COLUMN w int",
            &routes(true),
            Protocol::Simple,
        )
        .expect_err("DDL on the table is refused");
        assert!(!refused.is_write(), "{refused:?}");
        assert!(matches!(
            rewrite(
                "GRANT SELECT ON app.t TO PUBLIC",
                &routes(true),
                Protocol::Simple
            ),
            Ok(Rewrite::Changed { .. })
        ));
    }
}
