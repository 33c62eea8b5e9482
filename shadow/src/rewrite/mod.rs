//! The statement rewriter of duet's online schema changes: pure functions that turn an
//! application's write on a table under migration into its dual-writing form, or refuse it.
//!
//! The rewrite is the fast path: a rewritten statement writes the table and its shadow atomically,
//! with the values the table stored (taken from `RETURNING`), in one statement. It is not the only
//! path: what one duet does not see or cannot rewrite is mirrored by PostgreSQL itself, through the
//! trigger of [`net`], which skips the rows a rewritten statement already mirrored. The conventions
//! and the templates are summarised in shadow/docs/online-migrations.md.
//!
//! The proxy calls [`touches`] on every Query/Parse (a substring test: untouched statements pass
//! byte-for-byte, unparsed), then [`rewrite`] for the few that may concern a table under
//! migration, and caches the result per (SQL text, route epoch). Rewrites splice text around
//! parse-tree and token locations, so the client's text, comments and literal spellings are kept;
//! every rewritten query string is parsed again as a self-check before it is returned.
//!
//! - [`route`] — what the migration controller publishes (tables, columns, keys, targets).
//! - [`outcome`] — [`Rewrite`], [`StatementPatch`], [`Refusal`].
//! - [`prefilter`] — [`touches`].
//! - [`statement`] — per-statement decision (pass, rewrite, refuse).
//! - [`shadow_table`] — CTE + one upsert (tombstones for deletes).
//! - [`renamed`] — post-flip translation of old column names.
//! - [`net`] — the trigger that mirrors every write the rewrite did not (the safety net).
//! - [`ddl`] — utility statements naming a table under migration: refused, or GRANT carried over.
//! - [`copy_from`] — `COPY … FROM` staged in a temporary table, then dual-written as an INSERT.
//! - [`search_path`] — whether a session's unqualified names surely mean the migrating table.
//! - [`tokens`], [`names`] — splice points and result-column names.

pub mod copy_from;
pub mod ddl;
pub mod names;
pub mod net;
pub mod outcome;
pub mod prefilter;
pub mod renamed;
pub mod result_shape;
pub mod route;
pub mod search_path;
pub mod shadow_table;
pub mod statement;
pub mod tokens;
pub mod visible_columns;

pub use outcome::{Answer, Protocol, Refusal, Rewrite, StatementPatch, TagVerb};
pub use prefilter::touches;
pub use route::{Column, ColumnMapping, ParkedValue, Routes, TableRoute, Target};

use crate::parse::{parse_statement, run_on_parser_stack, statement_node, Parsed};
use shadow_table::Span;
use statement::Decision;
use tokens::Tokens;

/// Rewrites the query string `sql` for the tables in `routes`.
///
/// Returns [`Rewrite::Unchanged`] when nothing in it writes a table under migration, the
/// rewritten text with one [`StatementPatch`] per statement otherwise, or a [`Refusal`] to send to
/// the client instead of executing anything. Never panics; parsing runs on a big-stack thread so
/// deeply nested input parses or fails cleanly.
pub fn rewrite(sql: &str, routes: &Routes, protocol: Protocol) -> Result<Rewrite, Refusal> {
    if !touches(sql, routes) {
        return Ok(Rewrite::Unchanged);
    }
    match run_on_parser_stack(|| rewrite_parsed(sql, routes, protocol)) {
        Ok(result) => result,
        Err(err) => Err(Refusal::unsupported(
            format!("duet could not analyse a statement on a table under migration: {err}"),
            "report this statement to the duet operator; it was not executed",
        )),
    }
}

fn rewrite_parsed(sql: &str, routes: &Routes, protocol: Protocol) -> Result<Rewrite, Refusal> {
    let stmts = match parse_statement(sql) {
        Parsed::Statements(stmts) => stmts,
        Parsed::Unparsed { message } => {
            return Err(Refusal::unsupported(
                format!(
                    "statement mentions a table under migration and cannot be analysed: {message}"
                ),
                "fix the statement; duet refuses what it cannot check while a migration runs",
            ))
        }
    };
    if protocol == Protocol::Extended && stmts.len() > 1 {
        // The server rejects several commands in one Parse; let it say so.
        return Ok(Rewrite::Unchanged);
    }
    let tokens = Tokens::scan(sql).ok_or_else(|| {
        Refusal::unsupported(
            "statement mentions a table under migration and cannot be scanned",
            "fix the statement",
        )
    })?;
    let mut patches = Vec::with_capacity(stmts.len());
    let mut edits: Vec<(Span, String)> = Vec::new();
    for raw in &stmts {
        let start = usize::try_from(raw.stmt_location).unwrap_or(0);
        let len = usize::try_from(raw.stmt_len).unwrap_or(0);
        let limit = if len == 0 { sql.len() } else { start + len };
        let span = Span {
            start: tokens
                .within(start, limit)
                .next()
                .map(|t| t.start)
                .unwrap_or(start),
            end: tokens.statement_end(start, limit),
        };
        let Some(node) = statement_node(raw) else {
            patches.push(StatementPatch::default());
            continue;
        };
        match statement::decide(sql, &tokens, span, node, routes, protocol)? {
            Decision::Pass => patches.push(StatementPatch::default()),
            Decision::Replace { sql: text, verb } => {
                patches.push(StatementPatch {
                    rewritten: true,
                    command_tag: verb,
                    answer: Answer::Client,
                });
                edits.push((span, text));
            }
            Decision::Staged {
                sql: text,
                statements,
            } => {
                patches.extend(statements);
                edits.push((span, text));
            }
        }
    }
    if edits.is_empty() {
        return Ok(Rewrite::Unchanged);
    }
    let mut out = String::with_capacity(sql.len() + 512 * edits.len());
    let mut at = 0;
    for (span, text) in &edits {
        out.push_str(sql.get(at..span.start).unwrap_or(""));
        out.push_str(text);
        at = span.end;
    }
    out.push_str(sql.get(at..).unwrap_or(""));
    match parse_statement(&out) {
        Parsed::Statements(again) if again.len() == patches.len() => Ok(Rewrite::Changed {
            sql: out,
            statements: patches,
        }),
        Parsed::Statements(_) => Err(self_check_failed("statement count changed")),
        Parsed::Unparsed { message } => Err(self_check_failed(&message)),
    }
}

fn self_check_failed(what: &str) -> Refusal {
    Refusal::unsupported(
        format!("duet's rewrite of this statement failed its self-check: {what}"),
        "report this statement to the duet operator; it was not executed",
    )
}
