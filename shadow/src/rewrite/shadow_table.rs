//! Dual-writes into a shadow table (DUAL-WRITE.md §3.3): the application's statement becomes a
//! data-modifying CTE whose `RETURNING` carries the whole new row, followed by ONE upsert into the
//! shadow, ordered by key. Values come from `RETURNING`, so defaults, sequences, volatile
//! functions and `BEFORE` trigger changes reach the shadow exactly as stored, and no `$n` is
//! duplicated. A `DELETE` writes tombstones, never a `DELETE` on the shadow (a shadow-side delete
//! loses the race with the copier and leaves ghost rows, §5).

use pg_query::protobuf::{
    node::Node as NodeEnum, Node, RangeVar, ResTarget, ReturningClause, Token, WithClause,
};

use super::names::{quote_ident, result_column_name, string_value};
use super::outcome::{Refusal, TagVerb};
use super::route::{ColumnMapping, TableRoute, Target};
use super::tokens::Tokens;

/// A view in schema `duet` (created with duet's state, `crate::migrate::state`) that counts the
/// rows inserted into it and keeps none (an INSTEAD OF trigger returns each row without storing
/// it). A rewritten DELETE without RETURNING ends with `INSERT INTO duet.row_sink SELECT … FROM`
/// the deleted rows, so its command tag carries exactly the number of rows the application's
/// DELETE removed, whatever the shadow side did.
pub const ROW_SINK: &str = "row_sink";

/// The CTE holding the original statement's `RETURNING` rows.
const ROWS_CTE: &str = "__duet_m";
/// The CTE (with an original `RETURNING`) holding the shadow upsert.
const SHADOW_CTE: &str = "__duet_s";
/// The CTE column carrying each row's `tableoid`.
const OID_COLUMN: &str = "__duet_oid";
pub use crate::ident::DELETED_COLUMN;

/// The shadow side of a route.
#[derive(Debug, Clone, Copy)]
pub struct Shadow<'a> {
    /// Unquoted shadow table name (same schema as the table).
    pub name: &'a str,
    /// Shadow columns and their expressions over the old row.
    pub mapping: &'a [ColumnMapping],
    /// Shadow key columns.
    pub key: &'a [String],
    /// Rows matching this predicate (over the old row's quoted columns) are not mirrored.
    pub skip_when: Option<&'a str>,
    /// Deletes are plain DELETEs on the shadow (no copier runs), not tombstones.
    pub plain_deletes: bool,
}

impl<'a> Shadow<'a> {
    /// The shadow side of a shadow-table target (`None` for other targets).
    pub fn of(target: &'a Target) -> Option<Shadow<'a>> {
        match target {
            Target::ShadowTable {
                shadow,
                mapping,
                shadow_key,
                skip_when,
                plain_deletes,
            } => Some(Shadow {
                name: shadow,
                mapping,
                key: shadow_key,
                skip_when: skip_when.as_deref(),
                plain_deletes: *plain_deletes,
            }),
            _ => None,
        }
    }
}

/// The parts of an `INSERT`/`UPDATE`/`DELETE` on the table that the rewrite needs.
#[derive(Debug, Clone, Copy)]
pub struct WriteStatement<'a> {
    /// The verb the client expects in CommandComplete.
    pub verb: TagVerb,
    /// The target relation as written.
    pub relation: &'a RangeVar,
    /// The statement's own `WITH`, if any.
    pub with_clause: Option<&'a WithClause>,
    /// The statement's `RETURNING`, if any.
    pub returning: Option<&'a ReturningClause>,
    /// Whether other relations are in scope (`UPDATE … FROM`, `DELETE … USING`), which makes an
    /// unqualified `RETURNING *` wider than the table.
    pub joins_others: bool,
}

/// Where the statement sits in the query string.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// Offset of the statement's first byte.
    pub start: usize,
    /// Offset just after its last token (no trailing `;` or comment).
    pub end: usize,
}

/// Rewrites one write statement on a shadow-table route. Returns the new statement text (for
/// `span` of `sql`) and the verb to restore.
pub fn rewrite_write(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    stmt: WriteStatement<'_>,
    route: &TableRoute,
    shadow: Shadow<'_>,
) -> Result<String, Refusal> {
    // The verb after the statement's own WITH clause: everything before it is hoisted.
    let body_start = match stmt.with_clause {
        None => span.start,
        Some(_) => {
            tokens
                .first_top_level(
                    span.start,
                    span.end,
                    &[Token::Insert, Token::Update, Token::DeleteP],
                )
                .ok_or_else(|| internal("cannot find the verb after the WITH clause"))?
                .start
        }
    };
    let hoisted = match stmt.with_clause {
        None => String::new(),
        Some(with) => {
            let mut from = tokens
                .at(usize::try_from(with.location).unwrap_or(span.start))
                .map(|t| t.end)
                .unwrap_or(span.start);
            if with.recursive {
                if let Some(t) = tokens.next_from(from) {
                    from = t.end;
                }
            }
            let text = sql.get(from..body_start).unwrap_or("").trim();
            format!("{text}, ")
        }
    };
    let recursive = stmt.with_clause.is_some_and(|w| w.recursive);

    let returning_kw = match stmt.returning {
        Some(_) => Some(
            tokens
                .first_top_level(body_start, span.end, &[Token::Returning])
                .ok_or_else(|| internal("cannot find the RETURNING keyword"))?,
        ),
        None => None,
    };
    let body_end = returning_kw.map(|t| t.start).unwrap_or(span.end);
    let body = sql
        .get(body_start..body_end)
        .ok_or_else(|| internal("statement offsets outside the query"))?
        .trim_end();

    let reference = reference_name(stmt.relation);
    let reference = quote_ident(reference);

    let n = route.columns.len();
    let mut cte_columns: Vec<String> = (1..=n).map(|i| format!("__duet_c{i}")).collect();
    let mut returning_items: Vec<String> = route
        .columns
        .iter()
        .map(|c| format!("{reference}.{}", quote_ident(&c.name)))
        .collect();

    // The original RETURNING: its text is kept and re-projected under its own names.
    let mut projection: Vec<String> = Vec::new();
    if let (Some(ret), Some(kw)) = (stmt.returning, returning_kw) {
        if !ret.options.is_empty() {
            return Err(Refusal::unsupported(
                format!(
                    "RETURNING WITH (OLD/NEW …) on table {} is not supported during its migration",
                    route.name
                ),
                "return the new values only, or wait until the migration is complete",
            ));
        }
        let names = returning_names(ret, stmt, route)?;
        for (i, name) in names.iter().enumerate() {
            let alias = format!("__duet_r{}", i + 1);
            projection.push(format!("{} AS {}", quote_ident(&alias), quote_ident(name)));
            cte_columns.push(alias);
        }
        let list = sql
            .get(kw.end..span.end)
            .ok_or_else(|| internal("RETURNING list outside the query"))?
            .trim();
        returning_items.push(list.to_string());
    }

    // The row's table, so that only rows of the table under migration reach its shadow: an
    // unqualified name can resolve elsewhere (another schema first on the session's search_path,
    // a temporary table of the same name), and such rows are none of the shadow's business.
    returning_items.push(format!("{reference}.tableoid"));
    cte_columns.push(OID_COLUMN.to_owned());

    let mut old_row: Vec<String> = route
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("\"__duet_c{}\" AS {}", i + 1, quote_ident(&c.name)))
        .collect();
    old_row.push(format!(
        "pg_catalog.set_config('{}', 'on', true) AS \"__duet_mark\"",
        super::net::DUAL_WRITTEN_SETTING
    ));
    let key_order = route
        .key
        .iter()
        .map(|k| {
            route
                .columns
                .iter()
                .position(|c| &c.name == k)
                .map(|i| format!("\"__duet_c{}\"", i + 1))
                .ok_or_else(|| internal(&format!("key column {k} is not a column of the table")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The marker that tells the safety net (`super::net`) these rows are dual-written already is
    // set above a sort of the CTE's rows: the sort consumes the whole CTE first, so every write
    // the application's statement makes (functions it calls included) happens before the marker.
    let rows = format!(
        "SELECT {} FROM (SELECT * FROM {ROWS_CTE} WHERE {} = '{}'::regclass ORDER BY {}) AS __duet_r",
        old_row.join(", "),
        quote_ident(OID_COLUMN),
        route_regclass(route).replace('\'', "''"),
        key_order.join(", ")
    );
    let shadow_table = format!(
        "{}.{}",
        quote_ident(&route.schema),
        quote_ident(shadow.name)
    );
    let upsert = shadow_upsert(&shadow_table, shadow, &rows, stmt.verb)?;

    let mut out = String::with_capacity(sql.len() + 512);
    out.push_str("WITH ");
    if recursive {
        out.push_str("RECURSIVE ");
    }
    out.push_str(&hoisted);
    out.push_str(ROWS_CTE);
    out.push('(');
    out.push_str(
        &cte_columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push_str(") AS (");
    out.push_str(body);
    out.push_str(" RETURNING ");
    out.push_str(&returning_items.join(", "));
    out.push_str(")\n");
    if projection.is_empty() && stmt.verb == TagVerb::Delete && shadow.plain_deletes {
        // The shadow DELETE may remove fewer rows than the application's (rows the mirror
        // skipped): the count the client sees comes from the deleted rows themselves.
        out.push_str(", ");
        out.push_str(SHADOW_CTE);
        out.push_str(" AS (");
        out.push_str(&upsert);
        out.push_str(")\nINSERT INTO \"duet\".");
        out.push_str(&quote_ident(ROW_SINK));
        out.push_str(" SELECT NULL FROM ");
        out.push_str(ROWS_CTE);
    } else if projection.is_empty() {
        out.push_str(&upsert);
    } else {
        out.push_str(", ");
        out.push_str(SHADOW_CTE);
        out.push_str(" AS (");
        out.push_str(&upsert);
        out.push_str(")\nSELECT ");
        out.push_str(&projection.join(", "));
        out.push_str(" FROM ");
        out.push_str(ROWS_CTE);
    }
    Ok(out)
}

/// The table of a route as a `regclass` literal's text (`"schema"."name"`).
fn route_regclass(route: &TableRoute) -> String {
    format!(
        "{}.{}",
        quote_ident(&route.schema),
        quote_ident(&route.name)
    )
}

/// The one write into the shadow (upsert, tombstone upsert or plain delete), fed by `rows`: a
/// query whose output columns are the old row's, by name (the CTE's rows re-labelled, or a
/// trigger's `OLD`/`NEW` row).
pub(super) fn shadow_upsert(
    shadow_table: &str,
    shadow: Shadow<'_>,
    rows: &str,
    verb: TagVerb,
) -> Result<String, Refusal> {
    let key_positions: Vec<usize> = shadow
        .key
        .iter()
        .map(|k| {
            shadow
                .mapping
                .iter()
                .position(|m| &m.target == k)
                .ok_or_else(|| internal(&format!("shadow key column {k} has no mapping")))
        })
        .collect::<Result<_, _>>()?;
    let key_list = shadow
        .key
        .iter()
        .map(|k| quote_ident(k))
        .collect::<Vec<_>>()
        .join(", ");
    // Rows the shadow cannot hold are filtered while they are still in the table's own shape
    // (the predicate reads the old row's column names, which `__duet_o` carries).
    let filter = shadow
        .skip_when
        .map(|p| format!(" WHERE NOT coalesce(({p}), false)"))
        .unwrap_or_default();
    let source = format!("({rows}) AS __duet_o{filter}");
    let deleted = quote_ident(DELETED_COLUMN);
    if verb == TagVerb::Delete && shadow.plain_deletes {
        let keys: Vec<String> = key_positions
            .iter()
            .zip(shadow.key)
            .map(|(&p, k)| format!("{} AS {}", shadow.mapping[p].expr, quote_ident(k)))
            .collect();
        let matches: Vec<String> = shadow
            .key
            .iter()
            .map(|k| {
                let k = quote_ident(k);
                format!("__duet_t.{k} = __duet_k.{k}")
            })
            .collect();
        return Ok(format!(
            "DELETE FROM {shadow_table} AS __duet_t USING (SELECT {} FROM {source}) AS __duet_k WHERE {}",
            keys.join(", "),
            matches.join(" AND ")
        ));
    }
    if verb == TagVerb::Delete {
        let exprs: Vec<String> = key_positions
            .iter()
            .map(|&p| shadow.mapping[p].expr.clone())
            .collect();
        let order: Vec<String> = (1..=exprs.len()).map(|i| i.to_string()).collect();
        return Ok(format!(
            "INSERT INTO {shadow_table} AS __duet_t ({key_list}, {deleted}) SELECT {}, true FROM {source} ORDER BY {} ON CONFLICT ({key_list}) DO UPDATE SET {deleted} = true",
            exprs.join(", "),
            order.join(", ")
        ));
    }
    let columns = shadow
        .mapping
        .iter()
        .map(|m| quote_ident(&m.target))
        .collect::<Vec<_>>()
        .join(", ");
    let exprs = shadow
        .mapping
        .iter()
        .map(|m| m.expr.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let order: Vec<String> = key_positions.iter().map(|p| (p + 1).to_string()).collect();
    let mut sets: Vec<String> = shadow
        .mapping
        .iter()
        .filter(|m| !shadow.key.contains(&m.target))
        .map(|m| {
            let c = quote_ident(&m.target);
            format!("{c} = EXCLUDED.{c}")
        })
        .collect();
    sets.push(format!("{deleted} = false"));
    Ok(format!(
        "INSERT INTO {shadow_table} AS __duet_t ({columns}, {deleted}) SELECT {exprs}, false FROM {source} ORDER BY {} ON CONFLICT ({key_list}) DO UPDATE SET {}",
        order.join(", "),
        sets.join(", ")
    ))
}

/// The name the statement's own expressions use for the written table: its alias if it has one,
/// else its name.
fn reference_name(relation: &RangeVar) -> &str {
    relation
        .alias
        .as_ref()
        .map(|a| a.aliasname.as_str())
        .filter(|a| !a.is_empty())
        .unwrap_or(relation.relname.as_str())
}

/// The output column names of the original `RETURNING` list, `*` expanded.
fn returning_names(
    ret: &ReturningClause,
    stmt: WriteStatement<'_>,
    route: &TableRoute,
) -> Result<Vec<String>, Refusal> {
    let reference = reference_name(stmt.relation);
    let mut names = Vec::new();
    for item in &ret.exprs {
        let Some(NodeEnum::ResTarget(target)) = item.node.as_ref() else {
            return Err(internal("RETURNING item is not a target"));
        };
        match star_qualifier(target) {
            None => names.push(result_column_name(target)),
            Some(qualifier) => {
                let whole_table = match qualifier.as_slice() {
                    [] => !stmt.joins_others,
                    [q] => *q == reference,
                    [s, q] => *q == reference && *s == route.schema,
                    _ => false,
                };
                if !whole_table {
                    return Err(Refusal::unsupported(
                        format!(
                            "RETURNING * over several relations is not supported on table {} during its migration",
                            route.name
                        ),
                        format!("qualify it (RETURNING {reference}.*) or list the columns"),
                    ));
                }
                names.extend(route.columns.iter().map(|c| c.name.clone()));
            }
        }
    }
    Ok(names)
}

/// `Some(qualifier)` when the target is `*` or `q.*`.
fn star_qualifier(target: &ResTarget) -> Option<Vec<&str>> {
    let val: &Node = target.val.as_deref()?;
    let NodeEnum::ColumnRef(c) = val.node.as_ref()? else {
        return None;
    };
    let (last, rest) = c.fields.split_last()?;
    if !matches!(last.node.as_ref(), Some(NodeEnum::AStar(_))) {
        return None;
    }
    rest.iter().map(string_value).collect()
}

fn internal(what: &str) -> Refusal {
    Refusal::unsupported(
        format!("duet could not rewrite this statement: {what}"),
        "report this statement to the duet operator; it was not executed",
    )
}
