//! After the flip of a column rename, statements written for the old names are translated:
//! `a` → `b` wherever it names the column, and result columns keep the names the old client
//! expects (`b AS a`, `*` expanded with aliases).
//!
//! Translation is deliberately narrow and fails closed: only statements whose every relation is
//! the renamed table are translated, and every token spelling an old name must be accounted for
//! by a column reference or an assigned column the rewriter found in the parse tree; otherwise the
//! statement is refused rather than half-translated.

use pg_query::protobuf::{node::Node as NodeEnum, Node, ResTarget, Token};
use pg_query::NodeRef;

use super::names::{quote_ident, string_value};
use super::outcome::Refusal;
use super::route::TableRoute;
use super::shadow_table::Span;
use super::statement::Decision;
use super::tokens::Tokens;

/// Translates one statement that references the renamed table `route`. `renames` holds
/// `(old, new)`; `route.columns` are the table's current (new) columns.
pub fn translate(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    node: &NodeEnum,
    route: &TableRoute,
    renames: &[(String, String)],
) -> Result<Decision, Refusal> {
    let old_of = |new: &str| {
        renames
            .iter()
            .find(|(_, n)| n == new)
            .map(|(o, _)| o.as_str())
    };
    let new_of = |old: &str| {
        renames
            .iter()
            .find(|(o, _)| o == old)
            .map(|(_, n)| n.as_str())
    };
    let text = |a: usize, b: usize| sql.get(a..b).unwrap_or("");

    // INSERT … SELECT from other relations (or VALUES): only the column list, ON CONFLICT and
    // RETURNING name this table's columns; the SELECT's own column references belong to the
    // relations it reads and are left as written.
    let foreign_select = match node {
        NodeEnum::InsertStmt(ins) if ins.with_clause.is_none() => ins
            .select_stmt
            .as_deref()
            .and_then(|s| s.node.as_ref())
            .filter(|sel| {
                !sel.nodes().iter().any(|(n, ..)| {
                    matches!(n, NodeRef::RangeVar(rv) if route.is_named(&rv.schemaname, &rv.relname))
                })
            }),
        _ => None,
    };
    let mut all = match foreign_select {
        Some(_) => Vec::new(),
        None => node.nodes(),
    };
    // pg_query's walker does not enter ON CONFLICT … DO UPDATE; walk its parts too.
    if let NodeEnum::InsertStmt(ins) = node {
        if let Some(oc) = ins.on_conflict_clause.as_deref() {
            for target in &oc.target_list {
                if let Some(NodeEnum::ResTarget(rt)) = target.node.as_ref() {
                    if let Some(val) = rt.val.as_deref().and_then(|v| v.node.as_ref()) {
                        all.extend(val.nodes());
                    }
                }
            }
            if let Some(w) = oc.where_clause.as_deref().and_then(|w| w.node.as_ref()) {
                all.extend(w.nodes());
            }
        }
    }
    // …nor every RETURNING list.
    for target in top_level_targets(node) {
        if let Some(val) = target.val.as_deref().and_then(|v| v.node.as_ref()) {
            all.extend(val.nodes());
        }
    }
    let only_this_table = all.iter().all(|(n, ..)| match n {
        NodeRef::RangeVar(rv) => route.is_named(&rv.schemaname, &rv.relname),
        NodeRef::CommonTableExpr(_) | NodeRef::RangeFunction(_) => false,
        _ => true,
    });
    // Every token spelling an old name, by start offset.
    let old_tokens: Vec<usize> = tokens
        .within(span.start, span.end)
        .filter(|t| new_of(&normalize(text(t.start, t.end))).is_some())
        .map(|t| t.start)
        .collect();

    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut accounted: Vec<usize> = Vec::new();
    let targets = top_level_targets(node);
    let has_star = targets.iter().any(|t| star_of(t, tokens).is_some());
    if old_tokens.is_empty() && !has_star {
        return Ok(Decision::Pass);
    }
    if !only_this_table {
        return Err(refuse(route, "it reads other relations or CTEs"));
    }

    // Column references anywhere: rename the field that spells an old name.
    for (n, ..) in &all {
        let NodeRef::ColumnRef(c) = n else { continue };
        let Some(first) = usize::try_from(c.location)
            .ok()
            .and_then(|l| tokens.index_at(l))
        else {
            continue;
        };
        for (k, field) in c.fields.iter().enumerate() {
            let Some(name) = string_value(field) else {
                continue;
            };
            let Some(tok) = tokens.get(first + 2 * k) else {
                continue;
            };
            if let Some(new) = new_of(name) {
                if normalize(text(tok.start, tok.end)) == name {
                    edits.push((tok.start, tok.end, quote_ident(new)));
                    accounted.push(tok.start);
                }
            }
        }
    }
    // Assigned columns: INSERT (cols), UPDATE SET, ON CONFLICT DO UPDATE SET.
    for rt in assigned_targets(node) {
        if let Some(new) = new_of(&rt.name) {
            let at = usize::try_from(rt.location).unwrap_or(0);
            if let Some(tok) = tokens.at(at) {
                edits.push((tok.start, tok.end, quote_ident(new)));
                accounted.push(tok.start);
            }
        }
    }
    if let Some(select) = foreign_select {
        for (n, ..) in select.nodes() {
            let NodeRef::ColumnRef(c) = n else { continue };
            let Some(first) = usize::try_from(c.location)
                .ok()
                .and_then(|l| tokens.index_at(l))
            else {
                continue;
            };
            for k in 0..c.fields.len() {
                if let Some(tok) = tokens.get(first + 2 * k) {
                    accounted.push(tok.start);
                }
            }
        }
    }
    if old_tokens.iter().any(|t| !accounted.contains(t)) {
        return Err(refuse(
            route,
            "an old column name is used where duet cannot translate it",
        ));
    }
    // Result columns keep the old names.
    for target in &targets {
        if let Some((start, star_end, qualifier)) = star_of(target, tokens) {
            let qualifier = text(start, qualifier);
            let list: Vec<String> = route
                .columns
                .iter()
                .map(|c| match old_of(&c.name) {
                    Some(old) => format!(
                        "{qualifier}{} AS {}",
                        quote_ident(&c.name),
                        quote_ident(old)
                    ),
                    None => format!("{qualifier}{}", quote_ident(&c.name)),
                })
                .collect();
            edits.push((start, star_end, list.join(", ")));
            continue;
        }
        if !target.name.is_empty() {
            continue;
        }
        let Some(NodeEnum::ColumnRef(c)) = target.val.as_deref().and_then(|v| v.node.as_ref())
        else {
            continue;
        };
        let Some(old) = c
            .fields
            .last()
            .and_then(string_value)
            .filter(|o| new_of(o).is_some())
        else {
            continue;
        };
        let Some(first) = usize::try_from(c.location)
            .ok()
            .and_then(|l| tokens.index_at(l))
        else {
            continue;
        };
        if let Some(last) = tokens.get(first + 2 * (c.fields.len() - 1)) {
            edits.push((last.end, last.end, format!(" AS {}", quote_ident(old))));
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    edits.dedup_by_key(|e| (e.0, e.1));
    let mut out = text(span.start, span.end).to_string();
    for (start, end, replacement) in edits {
        let (a, b) = (start - span.start, end - span.start);
        if out.get(a..b).is_some() {
            out.replace_range(a..b, &replacement);
        }
    }
    Ok(Decision::Replace {
        sql: out,
        verb: None,
    })
}

/// An identifier token's name: quoted → as written (quotes doubled undone), else lower-cased.
fn normalize(token: &str) -> String {
    match token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => token.to_ascii_lowercase(),
    }
}

fn top_level_targets(node: &NodeEnum) -> Vec<&ResTarget> {
    let list: &[Node] = match node {
        NodeEnum::SelectStmt(s) => &s.target_list,
        NodeEnum::InsertStmt(s) => s
            .returning_clause
            .as_ref()
            .map(|r| r.exprs.as_slice())
            .unwrap_or(&[]),
        NodeEnum::UpdateStmt(s) => s
            .returning_clause
            .as_ref()
            .map(|r| r.exprs.as_slice())
            .unwrap_or(&[]),
        NodeEnum::DeleteStmt(s) => s
            .returning_clause
            .as_ref()
            .map(|r| r.exprs.as_slice())
            .unwrap_or(&[]),
        _ => &[],
    };
    list.iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::ResTarget(rt)) => Some(rt.as_ref()),
            _ => None,
        })
        .collect()
}

fn assigned_targets(node: &NodeEnum) -> Vec<&ResTarget> {
    let mut lists: Vec<&[Node]> = Vec::new();
    match node {
        NodeEnum::InsertStmt(s) => {
            lists.push(&s.cols);
            if let Some(oc) = s.on_conflict_clause.as_deref() {
                lists.push(&oc.target_list);
            }
        }
        NodeEnum::UpdateStmt(s) => lists.push(&s.target_list),
        _ => {}
    }
    lists
        .into_iter()
        .flatten()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::ResTarget(rt)) => Some(rt.as_ref()),
            _ => None,
        })
        .collect()
}

/// For `*` / `q.*`: (start of the reference, end of `*`, start of `*`).
fn star_of(target: &ResTarget, tokens: &Tokens) -> Option<(usize, usize, usize)> {
    let NodeEnum::ColumnRef(c) = target.val.as_deref()?.node.as_ref()? else {
        return None;
    };
    if !matches!(c.fields.last()?.node.as_ref(), Some(NodeEnum::AStar(_))) {
        return None;
    }
    let start = usize::try_from(c.location).ok()?;
    let first = tokens.index_at(start)?;
    let star = tokens.get(first + 2 * (c.fields.len() - 1))?;
    (star.kind == Token::Ascii42).then_some((start, star.end, star.start))
}

fn refuse(route: &TableRoute, why: &str) -> Refusal {
    Refusal::unsupported(
        format!(
            "statement on table {} uses a renamed column and cannot be translated: {why}",
            route.name
        ),
        "use the new column names",
    )
}
