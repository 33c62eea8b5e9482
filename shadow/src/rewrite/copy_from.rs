//! `COPY t [(cols)] FROM …` on a table under migration: the rows are staged in a temporary table
//! and moved into the table by an `INSERT … SELECT`, which is dual-written like every INSERT.
//!
//! One COPY statement becomes four, in the same query string (so in one transaction: the client's
//! open one, or the implicit one of the Query, which PostgreSQL continues after a COPY):
//!
//! ```sql
//! CREATE TEMP TABLE pg_temp."__duet_copy" ON COMMIT DROP AS SELECT <cols> FROM t WITH NO DATA;
//! COPY pg_temp."__duet_copy" (<cols>) FROM <the client's source, options and WHERE>;
//! <the dual-write rewrite of INSERT INTO t (<cols>) OVERRIDING SYSTEM VALUE
//!     SELECT <cols> FROM pg_temp."__duet_copy">;
//! DROP TABLE pg_temp."__duet_copy"
//! ```
//!
//! The staging table has the columns' types (typmods, domains and collations included) and
//! nothing else: input errors are the type's own, while NOT NULL, CHECK, unique and foreign-key
//! errors, defaults of the omitted columns (evaluated once, by the INSERT, and mirrored from its
//! `RETURNING`) and triggers come from the real table. `OVERRIDING SYSTEM VALUE` keeps COPY's
//! rule that listed identity columns take the given values. A failure anywhere rolls the whole
//! string back, staging table included. `ON COMMIT DROP` says in the statement itself that the
//! table ends with the transaction, so a session pooled per transaction (which refuses temporary
//! objects that outlive one) runs the rewrite too.
//!
//! The proxy hides the added statements' answers ([`Answer`]): the client sees the staging COPY's
//! CopyInResponse (same column count and formats as its own COPY would get), its `COPY n` in place
//! of the INSERT's tag, and in an input error's context the table's name instead of the staging
//! table's.
//!
//! Only the simple query protocol can carry several statements: a COPY prepared through the
//! extended protocol (tokio-postgres `copy_in`, pgx `CopyFrom` with a prepared COPY) is refused,
//! with a hint to send it as a simple query. Doing it there would mean injecting Parse/Bind/
//! Execute/Close for the CREATE before the client's Execute and for the INSERT and DROP after its
//! CopyDone, and dropping their ParseComplete/BindComplete/CloseComplete answers; the proxy matches
//! answers to requests by their completions and errors only, so those acks cannot be told from the
//! client's own without tracking every acknowledged message of a batch (and its error-skip up to
//! Sync). Not worth the risk of a desynchronised session.
//!
//! After the flip of a rename, a COPY's column list naming old columns is translated instead
//! ([`rename_columns`]): the table's rows are the same, only the names changed.

use pg_query::protobuf::{node::Node as NodeEnum, CopyStmt, RangeVar, Token};

use crate::parse::{parse_statement, statement_node, Parsed};

use super::names::{quote_ident, string_value};
use super::outcome::{Answer, Protocol, Refusal, StatementPatch};
use super::route::{Routes, TableRoute, Target};
use super::shadow_table::Span;
use super::statement::{self, Decision};
use super::tokens::Tokens;

/// The staging table's name (in the session's temporary schema; created and dropped within one
/// query string, so one name serves every COPY).
pub const STAGING_TABLE: &str = "__duet_copy";

/// The dual-write form of a `COPY … FROM` on a routed table (not a renamed one), or its refusal.
#[allow(clippy::too_many_arguments)]
pub fn stage(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    copy: &CopyStmt,
    relation: &RangeVar,
    route: &TableRoute,
    routes: &Routes,
    protocol: Protocol,
) -> Result<Decision, Refusal> {
    if protocol == Protocol::Extended {
        return Err(Refusal::unsupported(
            format!(
                "COPY FROM into table {} through the extended query protocol is not supported while it is being migrated",
                route.name
            ),
            "send the COPY as a simple query (as psql \\copy and psycopg's cursor.copy() do), or load the rows with INSERT until the migration is complete",
        ));
    }
    if matches!(route.target, Target::Renamed { .. }) {
        return Err(internal("a renamed table's COPY is translated, not staged"));
    }
    refuse_freeze(copy, route)?;
    let columns = copied_columns(copy, route)?;
    refuse_where_outside(copy, &columns, route)?;

    let relation_at = relation_offset(relation, &span)?;
    let from = tokens
        .first_top_level(relation_at, span.end, &[Token::From])
        .ok_or_else(|| internal("cannot find FROM"))?;
    let head = sql
        .get(span.start..relation_at)
        .ok_or_else(|| internal("statement offsets outside the query"))?;
    let tail = sql
        .get(from.start..span.end)
        .ok_or_else(|| internal("statement offsets outside the query"))?;

    let staging = format!("pg_temp.{}", quote_ident(STAGING_TABLE));
    let table = written_name(relation);
    let list = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!(
        "INSERT INTO {table} ({list}) OVERRIDING SYSTEM VALUE SELECT {list} FROM {staging}"
    );
    let insert = dual_write_insert(&insert, routes, route)?;

    let text = format!(
        "CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {list} FROM {table} WITH NO DATA; \
         {head}{staging} ({list}) {tail}; {insert}; DROP TABLE {staging}"
    );
    let added = StatementPatch {
        rewritten: false,
        command_tag: None,
        answer: Answer::Added,
    };
    Ok(Decision::Staged {
        sql: text,
        statements: vec![
            added.clone(),
            StatementPatch {
                rewritten: false,
                command_tag: None,
                answer: Answer::StagedCopy {
                    staging: STAGING_TABLE.to_owned(),
                    table: relation.relname.clone(),
                },
            },
            StatementPatch {
                rewritten: true,
                command_tag: None,
                answer: Answer::StagedInsert,
            },
            added,
        ],
    })
}

/// `COPY t (old names) FROM …` after the flip of a rename: the column list is translated to the
/// new names (the rows are the same). Without a column list nothing changes; a WHERE that names
/// an old column is refused rather than half-translated.
pub fn rename_columns(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    copy: &CopyStmt,
    relation: &RangeVar,
    route: &TableRoute,
    renames: &[(String, String)],
) -> Result<Decision, Refusal> {
    let new_of = |old: &str| {
        renames
            .iter()
            .find(|(o, _)| o == old)
            .map(|(_, n)| n.as_str())
    };
    if let Some(condition) = copy.where_clause.as_deref().and_then(|w| w.node.as_ref()) {
        let names_old = condition.nodes().into_iter().any(|(node, ..)| match node {
            pg_query::NodeRef::ColumnRef(c) => c
                .fields
                .iter()
                .filter_map(string_value)
                .any(|f| new_of(f).is_some()),
            _ => false,
        });
        if names_old {
            return Err(Refusal::unsupported(
                format!(
                    "COPY FROM into table {} with a WHERE condition on a renamed column is not translated",
                    route.name
                ),
                "use the column's new name in the WHERE condition",
            ));
        }
    }
    let listed: Vec<&str> = copy.attlist.iter().filter_map(string_value).collect();
    if !listed.iter().any(|c| new_of(c).is_some()) {
        return Ok(Decision::Pass);
    }
    let relation_at = relation_offset(relation, &span)?;
    let open = tokens
        .first_top_level(relation_at, span.end, &[Token::Ascii40])
        .ok_or_else(|| internal("cannot find the column list"))?;
    let close = tokens
        .within(open.end, span.end)
        .find(|t| t.kind == Token::Ascii41 && t.depth == open.depth + 1)
        .copied()
        .ok_or_else(|| internal("cannot find the end of the column list"))?;
    let translated: Vec<String> = listed
        .iter()
        .map(|c| quote_ident(new_of(c).unwrap_or(c)))
        .collect();
    let head = sql
        .get(span.start..open.start)
        .ok_or_else(|| internal("statement offsets outside the query"))?;
    let tail = sql
        .get(close.end..span.end)
        .ok_or_else(|| internal("statement offsets outside the query"))?;
    Ok(Decision::Replace {
        sql: format!("{head}({}){tail}", translated.join(", ")),
        verb: None,
    })
}

/// The columns the COPY reads, in its order: its column list, or every column of the table (as
/// the application sees it: a shadow column is not one of them). Unknown or repeated names get
/// the server's own error (nothing is executed).
fn copied_columns(copy: &CopyStmt, route: &TableRoute) -> Result<Vec<String>, Refusal> {
    if copy.attlist.is_empty() {
        return Ok(route.columns.iter().map(|c| c.name.clone()).collect());
    }
    let mut columns: Vec<String> = Vec::with_capacity(copy.attlist.len());
    for item in &copy.attlist {
        let name = string_value(item).ok_or_else(|| internal("a column list entry"))?;
        if route.column(name).is_none() {
            return Err(Refusal {
                sqlstate: "42703",
                message: format!(
                    "column \"{name}\" of relation \"{}\" does not exist",
                    route.name
                ),
                hint: "check the COPY column list".to_owned(),
            });
        }
        if columns.iter().any(|c| c == name) {
            return Err(Refusal {
                sqlstate: "42701",
                message: format!("column \"{name}\" specified more than once"),
                hint: "name each column once in the COPY column list".to_owned(),
            });
        }
        columns.push(name.to_owned());
    }
    Ok(columns)
}

/// `FREEZE` needs the table created or truncated in the same transaction; on the staging table it
/// would always succeed, and it cannot freeze the rows the INSERT writes.
fn refuse_freeze(copy: &CopyStmt, route: &TableRoute) -> Result<(), Refusal> {
    let freeze = copy.options.iter().any(|o| match o.node.as_ref() {
        Some(NodeEnum::DefElem(d)) => d.defname == "freeze",
        _ => false,
    });
    if !freeze {
        return Ok(());
    }
    Err(Refusal::unsupported(
        format!(
            "COPY FROM … FREEZE into table {} is not supported while it is being migrated",
            route.name
        ),
        "drop the FREEZE option, or wait until the migration is complete",
    ))
}

/// The WHERE of a COPY sees the row after defaults; the staging table holds only the copied
/// columns, under their plain names. Other references are refused rather than evaluated wrongly.
fn refuse_where_outside(
    copy: &CopyStmt,
    columns: &[String],
    route: &TableRoute,
) -> Result<(), Refusal> {
    let Some(condition) = copy.where_clause.as_deref().and_then(|w| w.node.as_ref()) else {
        return Ok(());
    };
    for (node, ..) in condition.nodes() {
        let pg_query::NodeRef::ColumnRef(column) = node else {
            continue;
        };
        let names: Vec<&str> = column.fields.iter().filter_map(string_value).collect();
        let plain = match names.as_slice() {
            [name] if column.fields.len() == 1 => columns.iter().any(|c| c == name),
            _ => false,
        };
        if !plain {
            return Err(Refusal::unsupported(
                format!(
                    "COPY FROM into table {} with a WHERE condition on a column it does not copy (or a qualified column) is not supported while the table is being migrated",
                    route.name
                ),
                "filter on the copied columns by their plain names, or wait until the migration is complete",
            ));
        }
    }
    Ok(())
}

/// The dual-write form of the staged INSERT (the same rewrite a client's INSERT gets).
fn dual_write_insert(insert: &str, routes: &Routes, route: &TableRoute) -> Result<String, Refusal> {
    let wrap = |refusal: Refusal| {
        Refusal {
        message: format!(
            "COPY FROM into table {} is dual-written as an INSERT of the copied columns, which duet refuses: {}",
            route.name, refusal.message
        ),
        ..refusal
    }
    };
    let raw = match parse_statement(insert) {
        Parsed::Statements(stmts) if stmts.len() == 1 => stmts.into_iter().next(),
        _ => None,
    }
    .ok_or_else(|| internal("the staged INSERT does not parse"))?;
    let node = statement_node(&raw).ok_or_else(|| internal("the staged INSERT is empty"))?;
    let tokens =
        Tokens::scan(insert).ok_or_else(|| internal("the staged INSERT cannot be scanned"))?;
    let span = Span {
        start: 0,
        end: insert.len(),
    };
    match statement::decide(insert, &tokens, span, node, routes, Protocol::Simple).map_err(wrap)? {
        Decision::Replace { sql, .. } => Ok(sql),
        Decision::Pass => Ok(insert.to_owned()),
        Decision::Staged { .. } => Err(internal("the staged INSERT was staged again")),
    }
}

/// The relation as the statement wrote it (schema if given), quoted.
fn written_name(relation: &RangeVar) -> String {
    if relation.schemaname.is_empty() {
        quote_ident(&relation.relname)
    } else {
        format!(
            "{}.{}",
            quote_ident(&relation.schemaname),
            quote_ident(&relation.relname)
        )
    }
}

fn internal(what: &str) -> Refusal {
    Refusal::unsupported(
        format!("duet could not rewrite this COPY: {what}"),
        "report this statement to the duet operator; it was not executed",
    )
}

/// Where the COPY's table name starts, checked to lie within the statement.
fn relation_offset(relation: &RangeVar, span: &Span) -> Result<usize, Refusal> {
    usize::try_from(relation.location)
        .ok()
        .filter(|&at| at >= span.start && at < span.end)
        .ok_or_else(|| internal("cannot find the table name"))
}
