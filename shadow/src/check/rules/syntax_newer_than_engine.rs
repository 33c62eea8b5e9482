//! Rule `syntax-newer-than-engine`: the statement uses syntax the configured PostgreSQL version cannot parse
//!
//! duet parses with the newest grammar (PostgreSQL 18's, through pg_query), so a statement written
//! for a newer server parses here even when `engine_version` names an older one — which would then
//! reject it with a syntax error in the middle of the migration. This rule names the construct and
//! the first version that has it. Covered: MERGE (15) and its RETURNING / WHEN NOT MATCHED BY SOURCE
//! (17); CREATE OR REPLACE TRIGGER, SQL-standard function bodies, column COMPRESSION, DETACH
//! PARTITION CONCURRENTLY / FINALIZE (14); NULLS NOT DISTINCT, SET ACCESS METHOD, TABLES IN SCHEMA
//! publications (15); SET EXPRESSION AS, the MAINTAIN privilege (17); virtual generated columns,
//! NOT NULL table constraints (and NOT NULL … NOT VALID), WITHOUT OVERLAPS / PERIOD, RETURNING
//! OLD/NEW (18). Syntax inside expressions (SQL/JSON functions, CTE SEARCH/CYCLE) is not gated.

use pg_query::protobuf::{
    self, node::Node as N, AlterTableType, ConstrType, MergeMatchKind, PublicationObjSpecType,
};

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "syntax-newer-than-engine",
    level: Level::Error,
    opt_in: false,
    summary: "the statement uses syntax the configured PostgreSQL version cannot parse",
    docs: "duet parses with the newest grammar (PostgreSQL 18's), so a statement written for a newer server parses here even when engine_version names an older one, which would reject it with a syntax error in the middle of the migration. The finding names the construct and the first version that has it: MERGE (15) and its RETURNING / WHEN NOT MATCHED BY SOURCE (17); CREATE OR REPLACE TRIGGER, SQL-standard function bodies, column COMPRESSION, DETACH PARTITION CONCURRENTLY (14); NULLS NOT DISTINCT, SET ACCESS METHOD, TABLES IN SCHEMA publications (15); SET EXPRESSION AS, the MAINTAIN privilege (17); virtual generated columns, NOT NULL table constraints, WITHOUT OVERLAPS / PERIOD, RETURNING OLD/NEW (18). Write the statement the old way, or set engine_version to the server you run.",
    bad: "-- engine 16
ALTER TABLE orders ALTER COLUMN total SET EXPRESSION AS (price * quantity);",
    good: "-- engine 17
ALTER TABLE orders ALTER COLUMN total SET EXPRESSION AS (price * quantity);",
    aliases: &[],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    let Some(stmt) = i.stmt else {
        return Vec::new();
    };
    newer_syntax(stmt)
        .into_iter()
        .filter(|(since, _)| !i.version.at_least(*since))
        .map(|(since, what)| {
            Hit::new(
                format!(
                    "{what} is PostgreSQL {since} syntax; PostgreSQL {} rejects the statement",
                    i.version
                ),
                format!("-- write it without {what}, or set engine_version to the server's version ({since} or later)"),
            )
        })
        .collect()
}

/// The constructs of `stmt` that only newer servers parse: (first major, what).
pub fn newer_syntax(stmt: &N) -> Vec<(u32, &'static str)> {
    let mut out = Vec::new();
    match stmt {
        N::CreateStmt(c) => {
            for element in &c.table_elts {
                match element.node.as_ref() {
                    Some(N::ColumnDef(col)) => column_def(col, &mut out),
                    Some(N::Constraint(con)) => constraint(con, true, &mut out),
                    _ => {}
                }
            }
        }
        N::AlterTableStmt(_) => {
            for cmd in syntax::alter_cmds(Some(stmt)) {
                let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
                match cmd.subtype() {
                    AlterTableType::AtSetAccessMethod => out.push((15, "SET ACCESS METHOD")),
                    AlterTableType::AtSetExpression => out.push((17, "SET EXPRESSION AS")),
                    AlterTableType::AtSetCompression => out.push((14, "SET COMPRESSION")),
                    AlterTableType::AtDetachPartitionFinalize => {
                        out.push((14, "DETACH PARTITION … FINALIZE"));
                    }
                    AlterTableType::AtDetachPartition => {
                        if matches!(def, Some(N::PartitionCmd(p)) if p.concurrent) {
                            out.push((14, "DETACH PARTITION … CONCURRENTLY"));
                        }
                    }
                    _ => {}
                }
                match def {
                    Some(N::ColumnDef(col)) => column_def(col, &mut out),
                    Some(N::Constraint(con)) => constraint(con, true, &mut out),
                    _ => {}
                }
            }
        }
        N::IndexStmt(idx) if idx.nulls_not_distinct => out.push((15, "NULLS NOT DISTINCT")),
        N::CreateTrigStmt(t) if t.replace => out.push((14, "CREATE OR REPLACE TRIGGER")),
        N::CreateFunctionStmt(f) if f.sql_body.is_some() => {
            out.push((14, "a SQL-standard function body (BEGIN ATOMIC / RETURN)"));
        }
        N::GrantStmt(g) => {
            let maintain = g.privileges.iter().any(|p| {
                matches!(p.node.as_ref(), Some(N::AccessPriv(a)) if a.priv_name.eq_ignore_ascii_case("maintain"))
            });
            if maintain {
                out.push((17, "the MAINTAIN privilege"));
            }
        }
        N::CreatePublicationStmt(p) => {
            let in_schema = p.pubobjects.iter().any(|o| {
                matches!(o.node.as_ref(), Some(N::PublicationObjSpec(s)) if matches!(
                    s.pubobjtype(),
                    PublicationObjSpecType::PublicationobjTablesInSchema
                        | PublicationObjSpecType::PublicationobjTablesInCurSchema
                ))
            });
            if in_schema {
                out.push((15, "FOR TABLES IN SCHEMA"));
            }
        }
        N::MergeStmt(m) => {
            out.push((15, "MERGE"));
            if m.returning_clause.is_some() {
                out.push((17, "MERGE … RETURNING"));
            }
            let by_source = m.merge_when_clauses.iter().any(|w| {
                matches!(w.node.as_ref(), Some(N::MergeWhenClause(c)) if c.match_kind() == MergeMatchKind::MergeWhenNotMatchedBySource)
            });
            if by_source {
                out.push((17, "WHEN NOT MATCHED BY SOURCE"));
            }
            returning(m.relation.as_ref(), m.returning_clause.as_ref(), &mut out);
        }
        N::InsertStmt(s) => returning(s.relation.as_ref(), s.returning_clause.as_ref(), &mut out),
        N::UpdateStmt(s) => returning(s.relation.as_ref(), s.returning_clause.as_ref(), &mut out),
        N::DeleteStmt(s) => returning(s.relation.as_ref(), s.returning_clause.as_ref(), &mut out),
        _ => {}
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn column_def(col: &protobuf::ColumnDef, out: &mut Vec<(u32, &'static str)>) {
    if !col.compression.is_empty() {
        out.push((14, "column COMPRESSION"));
    }
    for con in &col.constraints {
        if let Some(N::Constraint(con)) = con.node.as_ref() {
            constraint(con, false, out);
        }
    }
}

fn constraint(con: &protobuf::Constraint, table_level: bool, out: &mut Vec<(u32, &'static str)>) {
    if con.nulls_not_distinct {
        out.push((15, "NULLS NOT DISTINCT"));
    }
    match con.contype() {
        ConstrType::ConstrGenerated if con.generated_kind == "v" => {
            out.push((18, "a virtual generated column"));
        }
        ConstrType::ConstrNotnull if table_level => out.push((18, "a NOT NULL table constraint")),
        _ => {}
    }
    if con.without_overlaps {
        out.push((18, "WITHOUT OVERLAPS"));
    }
    if con.fk_with_period || con.pk_with_period {
        out.push((18, "PERIOD in a foreign key"));
    }
}

/// `RETURNING WITH (OLD AS …)` or `old.` / `new.` in a RETURNING list (unless the target is aliased
/// so, where they are plain column references).
fn returning(
    target: Option<&protobuf::RangeVar>,
    clause: Option<&protobuf::ReturningClause>,
    out: &mut Vec<(u32, &'static str)>,
) {
    let Some(clause) = clause else {
        return;
    };
    if !clause.options.is_empty() {
        out.push((18, "RETURNING WITH (OLD/NEW AS …)"));
        return;
    }
    let alias = target
        .and_then(|t| t.alias.as_ref())
        .map(|a| a.aliasname.to_ascii_lowercase());
    let old_or_new = clause.exprs.iter().any(|e| {
        let Some(N::ResTarget(rt)) = e.node.as_ref() else {
            return false;
        };
        let Some(N::ColumnRef(c)) = rt.val.as_ref().and_then(|v| v.node.as_ref()) else {
            return false;
        };
        let first = c.fields.first().and_then(|f| match f.node.as_ref() {
            Some(N::String(s)) => Some(s.sval.to_ascii_lowercase()),
            _ => None,
        });
        c.fields.len() > 1
            && first.is_some_and(|f| (f == "old" || f == "new") && alias.as_deref() != Some(&f))
    });
    if old_or_new {
        out.push((18, "RETURNING old/new"));
    }
}
