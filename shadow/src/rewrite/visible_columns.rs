//! Writes without a column list on a table with a shadow column: the table's own columns, in
//! the application's order, are written out.
//!
//! Before the flip the shadow column is the table's last, so a positional write of the
//! application's columns lands right anyway; after it, the parked old column sits where the old
//! column was and the new one is last, so a positional `INSERT … VALUES (1, 5, 'x')` would put
//! `5` into the parked column — which the safety net then overwrites from the new column, still
//! NULL: the value would be lost. With the list, every value lands in the column the client
//! meant, and the safety net sets the other one. An `INSERT` is listed only when it writes
//! exactly as many values as the application's columns (a `VALUES` row, or a `SELECT` list
//! without `*`): one that writes the extra column too (`INSERT INTO t SELECT * FROM t`) means
//! the table as it is and passes as written. A `COPY` cannot be counted; it is always listed.
//!
//! ```text
//! INSERT INTO t VALUES (1, 5, 'x')      →  INSERT INTO t ("id", "amount", "label") VALUES (1, 5, 'x')
//! COPY t FROM STDIN                     →  COPY t ("id", "amount", "label") FROM STDIN
//! ```

use pg_query::protobuf::{node::Node as NodeEnum, InsertStmt, SetOperation, Token};

use super::names::quote_ident;
use super::outcome::Refusal;
use super::route::TableRoute;
use super::shadow_table::Span;
use super::statement::Decision;
use super::tokens::Tokens;

/// `COPY t FROM …` without a column list: the list goes before `FROM`.
pub fn for_copy(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    route: &TableRoute,
) -> Result<Decision, Refusal> {
    let from = tokens
        .first_top_level(span.start, span.end, &[Token::From])
        .ok_or_else(|| internal("cannot find FROM in the COPY"))?;
    listed_before(sql, span, from.start, route)
}

/// `INSERT INTO t [AS a] {VALUES | SELECT | WITH … | (SELECT …) | OVERRIDING …}` without a
/// column list: the list goes before its source. `DEFAULT VALUES` names no column and passes.
pub fn for_insert(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    insert: &InsertStmt,
    route: &TableRoute,
) -> Result<Decision, Refusal> {
    let relation_at = insert
        .relation
        .as_ref()
        .and_then(|r| usize::try_from(r.location).ok())
        .ok_or_else(|| internal("the INSERT's table has no location"))?;
    let source = tokens
        .first_top_level(
            relation_at,
            span.end,
            &[
                Token::Values,
                Token::Select,
                Token::With,
                Token::Ascii40,
                Token::Overriding,
                Token::Default,
            ],
        )
        .ok_or_else(|| internal("cannot find the INSERT's source"))?;
    if source.kind == Token::Default || values_written(insert) != Some(route.columns.len()) {
        return Ok(Decision::Pass);
    }
    listed_before(sql, span, source.start, route)
}

/// How many values each row of the INSERT's source has, when that can be told from the text: a
/// `VALUES` list's first row, or a plain `SELECT`'s list when it has no `*`.
fn values_written(insert: &InsertStmt) -> Option<usize> {
    let Some(NodeEnum::SelectStmt(select)) = insert.select_stmt.as_ref()?.node.as_ref() else {
        return None;
    };
    if let Some(first) = select.values_lists.first() {
        return match first.node.as_ref() {
            Some(NodeEnum::List(row)) => Some(row.items.len()),
            _ => None,
        };
    }
    if select.target_list.is_empty() || select.op != SetOperation::SetopNone as i32 {
        return None;
    }
    let has_star = select.target_list.iter().any(|target| {
        target.node.as_ref().is_some_and(|node| {
            node.nodes()
                .into_iter()
                .any(|(child, ..)| matches!(child, pg_query::NodeRef::AStar(_)))
        })
    });
    (!has_star).then_some(select.target_list.len())
}

/// The statement at `span` with the route's visible columns listed before offset `at`.
fn listed_before(
    sql: &str,
    span: Span,
    at: usize,
    route: &TableRoute,
) -> Result<Decision, Refusal> {
    let head = sql
        .get(span.start..at)
        .ok_or_else(|| internal("statement offsets outside the query"))?
        .trim_end();
    let tail = sql
        .get(at..span.end)
        .ok_or_else(|| internal("statement offsets outside the query"))?;
    let columns: Vec<String> = route.columns.iter().map(|c| quote_ident(&c.name)).collect();
    Ok(Decision::Replace {
        sql: format!("{head} ({}) {tail}", columns.join(", ")),
        verb: None,
    })
}

fn internal(what: &str) -> Refusal {
    Refusal::unsupported(
        format!("duet could not list the columns of this statement: {what}"),
        "name the columns (INSERT INTO t (a, b) …); the statement was not executed",
    )
}
