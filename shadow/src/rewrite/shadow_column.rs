//! Dual-writes into a shadow column of the same table (DUAL-WRITE.md §3.2): the new column is
//! set inline in the same `INSERT`/`UPDATE`, computed from the values the statement assigns to
//! its source columns. A CTE cannot be used (a sibling cannot modify the row just written).
//!
//! The value assigned to a source is duplicated into the expression only when duplicating it is
//! exact: a literal, an `UPDATE` expression of the old row's columns, literals and operators, or a
//! bare `$n` pinned with a cast to the source's base type (so parameter inference is unchanged;
//! never a typmod, which would truncate). Any other `UPDATE` value of a single source is hoisted —
//! `SET (s, c) = (SELECT x, f(x) FROM (SELECT (e)::type AS x) z)` — so it is evaluated once.
//! `ON CONFLICT DO UPDATE SET s = e` gets `c = f(e)` appended the same way (no hoisting there).
//! `INSERT … SELECT` is wrapped: the client's SELECT becomes a subquery whose columns are pinned
//! to the target columns' types, and the outer SELECT adds the shadow column computed from them,
//! so every row of the client's SELECT is evaluated once. `DEFAULT` and volatile `INSERT … VALUES`
//! values are refused (not implemented yet).

use pg_query::protobuf::{node::Node as NodeEnum, Node, OnConflictAction, RangeVar, Token};

use super::names::{quote_ident, string_value};
use super::outcome::Refusal;
use super::route::TableRoute;
use super::shadow_table::Span;
use super::statement::Decision;
use super::tokens::{Tok, Tokens};

/// Rewrites an INSERT/UPDATE on a shadow-column route; other statements pass.
#[allow(clippy::too_many_arguments)]
pub fn rewrite_inline(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    node: &NodeEnum,
    route: &TableRoute,
    column: &str,
    expr: &str,
    sources: &[String],
) -> Result<Decision, Refusal> {
    let column_spec = ColumnSpec {
        route,
        column,
        expr,
        sources,
    };
    match node {
        NodeEnum::InsertStmt(s) => {
            if let Some(ret) = &s.returning_clause {
                refuse_star(&ret.exprs, route)?;
            }
            let conflict_update = s.on_conflict_clause.as_deref().filter(|oc| {
                oc.action == OnConflictAction::OnconflictUpdate as i32
                    && assigned(&oc.target_list)
                        .iter()
                        .any(|n| sources.contains(n))
            });
            let names = assigned(&s.cols);
            if names.is_empty() {
                return Err(refuse(
                    route,
                    "INSERT without a column list is not rewritten yet",
                ));
            }
            if !names.iter().any(|n| sources.contains(n)) {
                return Err(refuse(
                    route,
                    "INSERT that leaves the source columns to their defaults is not rewritten yet",
                ));
            }
            let select = match s.select_stmt.as_deref().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::SelectStmt(sel)) => sel,
                _ => return Err(refuse(route, "INSERT without VALUES or SELECT")),
            };
            let mut edits: Vec<(usize, usize, String)> = if select.values_lists.is_empty() {
                let conflict_at = s
                    .on_conflict_clause
                    .as_deref()
                    .and_then(|oc| usize::try_from(oc.location).ok());
                insert_select(
                    sql,
                    tokens,
                    span,
                    s.relation.as_ref(),
                    &names,
                    conflict_at,
                    s.returning_clause.is_some(),
                    &column_spec,
                )?
            } else {
                insert_values(sql, tokens, span, &names, select, &column_spec)?
                    .into_iter()
                    .map(|(at, text)| (at, at, text))
                    .collect()
            };
            if let Some(oc) = conflict_update {
                let reference = reference_name(s.relation.as_ref(), route);
                match update_set(
                    sql,
                    tokens,
                    span,
                    &oc.target_list,
                    &reference,
                    &column_spec,
                    false,
                )? {
                    SetEdit::Append(at, text) => edits.push((at, at, text)),
                    SetEdit::Replaced(_) => {
                        return Err(refuse(
                            route,
                            "ON CONFLICT DO UPDATE value cannot be hoisted",
                        ))
                    }
                }
            }
            Ok(Decision::Replace {
                sql: splice_ranges(sql, span, edits),
                verb: None,
            })
        }
        NodeEnum::UpdateStmt(s) => {
            if let Some(ret) = &s.returning_clause {
                refuse_star(&ret.exprs, route)?;
            }
            let names = assigned(&s.target_list);
            if !names.iter().any(|n| sources.contains(n)) {
                return Ok(Decision::Pass);
            }
            let reference = reference_name(s.relation.as_ref(), route);
            let text = match update_set(
                sql,
                tokens,
                span,
                &s.target_list,
                &reference,
                &column_spec,
                true,
            )? {
                SetEdit::Append(at, text) => splice(sql, span, vec![(at, text)]),
                SetEdit::Replaced(text) => text,
            };
            Ok(Decision::Replace {
                sql: text,
                verb: None,
            })
        }
        _ => Ok(Decision::Pass),
    }
}

struct ColumnSpec<'a> {
    route: &'a TableRoute,
    column: &'a str,
    expr: &'a str,
    sources: &'a [String],
}

/// The name the statement's own expressions use for the written table: its alias, else its
/// name, else (no relation node) the route's table name.
fn reference_name(relation: Option<&RangeVar>, route: &TableRoute) -> String {
    relation
        .map(|r| {
            r.alias
                .as_ref()
                .map(|a| a.aliasname.clone())
                .unwrap_or_else(|| r.relname.clone())
        })
        .unwrap_or_else(|| route.name.clone())
}

/// `INSERT INTO t (cols) SELECT …`: the shadow column joins the column list, and the client's
/// SELECT (from after the column list to ON CONFLICT, RETURNING or the end) is wrapped so that
/// each of its rows is evaluated once and the shadow value is computed from the values as the
/// target columns' types hold them.
#[allow(clippy::too_many_arguments)]
fn insert_select(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    relation: Option<&RangeVar>,
    names: &[String],
    conflict_at: Option<usize>,
    has_returning: bool,
    spec: &ColumnSpec<'_>,
) -> Result<Vec<(usize, usize, String)>, Refusal> {
    let route = spec.route;
    if let Some(missing) = spec.sources.iter().find(|s| !names.contains(s)) {
        return Err(refuse(
            route,
            &format!("INSERT … SELECT that leaves source column {missing} to its default is not rewritten yet"),
        ));
    }
    let relation_at = relation
        .and_then(|r| usize::try_from(r.location).ok())
        .unwrap_or(span.start);
    let open = tokens
        .first_top_level(relation_at, span.end, &[Token::Ascii40])
        .ok_or_else(|| refuse(route, "cannot find the column list"))?;
    let close = tokens
        .within(open.end, span.end)
        .find(|t| t.kind == Token::Ascii41 && t.depth == open.depth + 1)
        .copied()
        .ok_or_else(|| refuse(route, "cannot find the end of the column list"))?;
    // `OVERRIDING SYSTEM|USER VALUE` sits between the column list and the SELECT.
    let mut after_list = close.end;
    if let Some(overriding) = tokens
        .next_from(after_list)
        .filter(|t| t.kind == Token::Overriding)
    {
        let value = tokens
            .within(overriding.end, span.end)
            .find(|t| t.kind == Token::ValueP)
            .ok_or_else(|| refuse(route, "cannot find the end of OVERRIDING … VALUE"))?;
        after_list = value.end;
    }
    let select_start = tokens
        .next_from(after_list)
        .map(|t| t.start)
        .filter(|&s| s < span.end)
        .ok_or_else(|| refuse(route, "cannot find the SELECT"))?;
    let mut select_end = span.end;
    if let Some(at) = conflict_at.filter(|&at| at > select_start) {
        select_end = select_end.min(at);
    }
    if has_returning {
        if let Some(ret) = tokens.first_top_level(select_start, span.end, &[Token::Returning]) {
            select_end = select_end.min(ret.start);
        }
    }
    // The end of the SELECT's last token, so whitespace before ON CONFLICT/RETURNING stays.
    let select_end = tokens.statement_end(select_start, select_end);
    let inner = sql
        .get(select_start..select_end)
        .ok_or_else(|| refuse(route, "cannot cut the SELECT out"))?;
    let mut pinned = Vec::with_capacity(names.len());
    for name in names {
        let column = route
            .column(name)
            .ok_or_else(|| refuse(route, &format!("unknown column {name}")))?;
        let q = quote_ident(name);
        pinned.push(format!("__duet_q.{q}::{} AS {q}", column.base_type));
    }
    let aliases: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
    let wrapped = format!(
        "SELECT __duet_r.*, {} FROM (SELECT {} FROM ({inner}) AS __duet_q ({})) AS __duet_r",
        spec.expr,
        pinned.join(", "),
        aliases.join(", ")
    );
    Ok(vec![
        (
            close.start,
            close.start,
            format!(", {}", quote_ident(spec.column)),
        ),
        (select_start, select_end, wrapped),
    ])
}

fn insert_values(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    names: &[String],
    select: &pg_query::protobuf::SelectStmt,
    spec: &ColumnSpec<'_>,
) -> Result<Vec<(usize, String)>, Refusal> {
    let route = spec.route;
    // The column list's closing parenthesis: the first top-level '(' after the relation opens it.
    let values_kw = tokens
        .first_top_level(span.start, span.end, &[Token::Values])
        .ok_or_else(|| refuse(route, "cannot find VALUES"))?;
    let col_close = tokens
        .within(span.start, values_kw.start)
        .filter(|t| t.kind == Token::Ascii41)
        .last()
        .ok_or_else(|| refuse(route, "cannot find the column list"))?;
    let rows = value_rows(tokens, values_kw, span.end);
    if rows.len() != select.values_lists.len() {
        return Err(refuse(route, "cannot find every VALUES row"));
    }
    // (offset, text) insertions, applied right to left.
    let mut inserts: Vec<(usize, String)> =
        vec![(col_close.start, format!(", {}", quote_ident(spec.column)))];
    for (row, list) in rows.iter().zip(&select.values_lists) {
        let Some(NodeEnum::List(list)) = list.node.as_ref() else {
            return Err(refuse(route, "unexpected VALUES row"));
        };
        if row.items.len() != list.items.len() || list.items.len() != names.len() {
            return Err(refuse(route, "VALUES row and column list differ in length"));
        }
        let mut values = Vec::new();
        for source in spec.sources {
            let pos = names.iter().position(|n| n == source).ok_or_else(|| {
                refuse(
                    route,
                    "INSERT that sets only some of the source columns is not rewritten yet",
                )
            })?;
            let (from, to) = row.items[pos];
            let text = sql.get(from..to).unwrap_or("");
            values.push((
                source.as_str(),
                duplicate(&list.items[pos], text, route, source)?,
            ));
        }
        inserts.push((
            row.close,
            format!(", {}", substitute(spec.expr, &values, route)?),
        ));
    }
    Ok(inserts)
}

/// How the shadow column joins a SET list.
enum SetEdit {
    /// Insert `text` at the offset (after the last SET item).
    Append(usize, String),
    /// The whole statement, with a source's SET item hoisted.
    Replaced(String),
}

fn update_set(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    targets: &[Node],
    reference: &str,
    spec: &ColumnSpec<'_>,
    allow_hoist: bool,
) -> Result<SetEdit, Refusal> {
    let route = spec.route;
    let set_kw = tokens
        .first_top_level(span.start, span.end, &[Token::Set])
        .ok_or_else(|| refuse(route, "cannot find SET"))?;
    let set_end = tokens
        .first_top_level(
            set_kw.end,
            span.end,
            &[Token::From, Token::Where, Token::Returning],
        )
        .map(|t| t.start)
        .unwrap_or(span.end);
    let items = split_top_level(tokens, set_kw.end, set_end);
    if items.len() != targets.len() {
        return Err(refuse(
            route,
            "multi-column SET (a, b) = … is not rewritten yet",
        ));
    }
    let mut values = Vec::new();
    for source in spec.sources {
        let found = targets
            .iter()
            .zip(&items)
            .find_map(|(t, range)| match t.node.as_ref() {
                Some(NodeEnum::ResTarget(rt)) if &rt.name == source => Some((rt, *range)),
                _ => None,
            });
        let text = match found {
            None => format!("{}.{}", quote_ident(reference), quote_ident(source)),
            Some((rt, (from, to))) => {
                if !rt.indirection.is_empty() {
                    return Err(refuse(
                        route,
                        "SET of a subscript or field of a source column is not rewritten yet",
                    ));
                }
                let eq = tokens
                    .within(from, to)
                    .find(|t| sql.get(t.start..t.end) == Some("="))
                    .ok_or_else(|| refuse(route, "cannot find = in SET"))?;
                let value = sql.get(eq.end..to).unwrap_or("").trim();
                let Some(val) = rt.val.as_deref() else {
                    return Err(refuse(route, "SET without a value"));
                };
                if is_row_expression(val) {
                    format!("({value})")
                } else if matches!(val.node, Some(NodeEnum::SetToDefault(_))) {
                    return Err(refuse(
                        route,
                        "SET of a source column to DEFAULT is not rewritten yet",
                    ));
                } else if let Ok(text) = duplicate(val, value, route, source) {
                    text
                } else if allow_hoist && spec.sources.len() == 1 {
                    // Hoist: evaluate the value once and feed both columns from it.
                    let ty = route
                        .column(source)
                        .map(|c| c.base_type.as_str())
                        .ok_or_else(|| refuse(route, "source column missing from the route"))?;
                    let shadow = substitute(
                        spec.expr,
                        &[(source.as_str(), "__duet_x".to_string())],
                        route,
                    )?;
                    let item = format!(
                        "({}, {}) = (SELECT __duet_x, {shadow} FROM (SELECT ({value})::{ty} AS __duet_x) AS __duet_z)",
                        quote_ident(source),
                        quote_ident(spec.column)
                    );
                    let mut out = sql.get(span.start..span.end).unwrap_or("").to_string();
                    let (a, b) = (from - span.start, to - span.start);
                    if out.get(a..b).is_none() {
                        return Err(refuse(route, "SET item outside the statement"));
                    }
                    out.replace_range(a..b, &item);
                    return Ok(SetEdit::Replaced(out));
                } else {
                    return Err(refuse(
                        route,
                        "this computed value for a source column cannot be hoisted here (ON CONFLICT, or several source columns)",
                    ));
                }
            }
        };
        values.push((source.as_str(), text));
    }
    let addition = format!(
        ", {} = {}",
        quote_ident(spec.column),
        substitute(spec.expr, &values, route)?
    );
    let at = tokens
        .within(set_kw.end, set_end)
        .map(|t| t.end)
        .last()
        .unwrap_or(set_end);
    Ok(SetEdit::Append(at, addition))
}

/// Whether an UPDATE value reads only the old row, literals and built-in operators, so that
/// evaluating it twice gives the same result (`amount + 1`, `coalesce`-free arithmetic, casts).
fn is_row_expression(node: &Node) -> bool {
    match node.node.as_ref() {
        Some(NodeEnum::AConst(_)) => true,
        Some(NodeEnum::ColumnRef(c)) => !c
            .fields
            .iter()
            .any(|f| matches!(f.node, Some(NodeEnum::AStar(_)))),
        Some(NodeEnum::TypeCast(tc)) => tc.arg.as_deref().is_some_and(is_row_expression),
        Some(NodeEnum::AExpr(e)) => {
            e.kind == pg_query::protobuf::AExprKind::AexprOp as i32
                && e.lexpr.as_deref().is_none_or(is_row_expression)
                && e.rexpr.as_deref().is_none_or(is_row_expression)
        }
        Some(NodeEnum::BoolExpr(b)) => b.args.iter().all(is_row_expression),
        Some(NodeEnum::NullTest(n)) => n.arg.as_deref().is_some_and(is_row_expression),
        _ => false,
    }
}

/// The text of a value duplicated into the shadow expression, or a refusal when duplicating it
/// would not be exact.
fn duplicate(
    value: &Node,
    text: &str,
    route: &TableRoute,
    source: &str,
) -> Result<String, Refusal> {
    match value.node.as_ref() {
        Some(NodeEnum::AConst(_)) => Ok(format!("({text})")),
        Some(NodeEnum::ParamRef(_)) => {
            let ty = route
                .column(source)
                .map(|c| c.base_type.as_str())
                .ok_or_else(|| refuse(route, "source column missing from the route"))?;
            Ok(format!("({text}::{ty})"))
        }
        Some(NodeEnum::TypeCast(tc))
            if matches!(
                tc.arg.as_deref().and_then(|a| a.node.as_ref()),
                Some(NodeEnum::AConst(_)) | Some(NodeEnum::ParamRef(_))
            ) =>
        {
            Ok(format!("({text})"))
        }
        Some(NodeEnum::SetToDefault(_)) => Err(refuse(
            route,
            "DEFAULT for a source column is not rewritten yet",
        )),
        _ => Err(refuse(
            route,
            "a computed value for a source column cannot be duplicated safely (volatile values are not hoisted yet)",
        )),
    }
}

/// `expr` with every reference to a source column replaced by its value text.
fn substitute(
    expr: &str,
    values: &[(&str, String)],
    route: &TableRoute,
) -> Result<String, Refusal> {
    let wrapped = format!("SELECT {expr}");
    let parsed = pg_query::parse(&wrapped, 0)
        .map_err(|e| refuse(route, &format!("bad shadow expression: {e}")))?;
    let tokens = Tokens::scan(&wrapped).ok_or_else(|| refuse(route, "bad shadow expression"))?;
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let Some(stmt) = raw.stmt.as_deref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        for (child, _, _, _) in stmt.nodes() {
            if let pg_query::NodeRef::ColumnRef(c) = child {
                let [field] = c.fields.as_slice() else {
                    continue;
                };
                let Some(name) = string_value(field) else {
                    continue;
                };
                let Some((_, text)) = values.iter().find(|(s, _)| *s == name) else {
                    continue;
                };
                let start = usize::try_from(c.location).unwrap_or(0);
                let end = tokens.at(start).map(|t| t.end).unwrap_or(start);
                edits.push((start, end, text.clone()));
            }
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = wrapped;
    for (start, end, text) in edits {
        if out.get(start..end).is_some() {
            out.replace_range(start..end, &text);
        }
    }
    Ok(out.trim_start_matches("SELECT ").to_string())
}

struct ValueRow {
    items: Vec<(usize, usize)>,
    close: usize,
}

/// A VALUES row being read: items so far, the current item's start, the last token's end.
type PendingRow = (Vec<(usize, usize)>, Option<usize>, usize);

/// The rows after `VALUES`: each row's item ranges and closing parenthesis.
fn value_rows(tokens: &Tokens, values_kw: Tok, to: usize) -> Vec<ValueRow> {
    let base = values_kw.depth;
    let mut rows = Vec::new();
    let mut current: Option<PendingRow> = None;
    for t in tokens.within(values_kw.end, to) {
        if t.depth < base {
            break;
        }
        if t.depth == base {
            if t.kind == Token::Ascii40 {
                current = Some((Vec::new(), None, 0));
            } else if t.kind != Token::Ascii44 {
                break;
            }
            continue;
        }
        let Some((items, start, last_end)) = current.as_mut() else {
            break;
        };
        if t.depth == base + 1 && t.kind == Token::Ascii41 {
            if let Some(s) = start.take() {
                items.push((s, *last_end));
            }
            rows.push(ValueRow {
                items: std::mem::take(items),
                close: t.start,
            });
            current = None;
        } else if t.depth == base + 1 && t.kind == Token::Ascii44 {
            if let Some(s) = start.take() {
                items.push((s, *last_end));
            }
        } else {
            if start.is_none() {
                *start = Some(t.start);
            }
            *last_end = t.end;
        }
    }
    rows
}

/// Ranges of the comma-separated items at the top level of `[from, to)`.
fn split_top_level(tokens: &Tokens, from: usize, to: usize) -> Vec<(usize, usize)> {
    let mut toks = tokens.within(from, to).peekable();
    let Some(base) = toks.peek().map(|t| t.depth) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = from;
    for t in toks {
        if t.depth == base && t.kind == Token::Ascii44 {
            if let Some(s) = start.take() {
                out.push((s, end));
            }
            continue;
        }
        if start.is_none() {
            start = Some(t.start);
        }
        end = t.end;
    }
    if let Some(s) = start {
        out.push((s, end));
    }
    out
}

fn splice(sql: &str, span: Span, inserts: Vec<(usize, String)>) -> String {
    splice_ranges(
        sql,
        span,
        inserts
            .into_iter()
            .map(|(at, text)| (at, at, text))
            .collect(),
    )
}

/// The span's text with `[start, end)` ranges (offsets in `sql`, not overlapping) replaced.
fn splice_ranges(sql: &str, span: Span, mut edits: Vec<(usize, usize, String)>) -> String {
    edits.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    let mut out = sql.get(span.start..span.end).unwrap_or("").to_string();
    for (start, end, text) in edits {
        let (a, b) = (
            start.saturating_sub(span.start),
            end.saturating_sub(span.start),
        );
        if a <= b && b <= out.len() && out.is_char_boundary(a) && out.is_char_boundary(b) {
            out.replace_range(a..b, &text);
        }
    }
    out
}

/// Column names assigned by a target list (`INSERT (cols)`, `SET` items).
fn assigned(targets: &[Node]) -> Vec<String> {
    targets
        .iter()
        .filter_map(|t| match t.node.as_ref() {
            Some(NodeEnum::ResTarget(rt)) => Some(rt.name.clone()),
            _ => None,
        })
        .collect()
}

fn refuse_star(returning: &[Node], route: &TableRoute) -> Result<(), Refusal> {
    let star = returning.iter().any(|r| match r.node.as_ref() {
        Some(NodeEnum::ResTarget(rt)) => matches!(
            rt.val.as_deref().and_then(|v| v.node.as_ref()),
            Some(NodeEnum::ColumnRef(c)) if c.fields.last().is_some_and(|f| matches!(f.node, Some(NodeEnum::AStar(_))))
        ),
        _ => false,
    });
    if star {
        return Err(refuse(
            route,
            "RETURNING * would expose the shadow column; list the columns",
        ));
    }
    Ok(())
}

fn refuse(route: &TableRoute, what: &str) -> Refusal {
    Refusal::unsupported(
        format!(
            "statement on table {} cannot be dual-written to its shadow column: {what}",
            route.name
        ),
        "rewrite the statement in a simpler form (explicit column list, literal or $n values) until the migration is complete",
    )
}
