//! The pipeline: split every file, parse every statement, classify it against the schema replayed
//! so far, run the rules, apply levels and ignores, then replay the statement into the schema.

use pg_query::protobuf::RawStmt;

use super::classify::{self, Classification, ClassifyContext};
use super::config::{CheckConfig, RuleSetting};
use super::markers;
use super::parse::{self, Parsed};
use super::psql;
use super::report::{Finding, Level, Report, Risk, StatementReport};
use super::risk;
use super::rules::{self, RuleInput};
use super::schema::Schema;
use super::split::{self, SourceText};
use super::transaction::TxState;
use super::CheckError;

/// One migration file's name and contents.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Name shown in reports.
    pub name: String,
    /// Contents.
    pub text: String,
    /// The runner runs this file outside a transaction for a reason outside its text (diesel's
    /// `metadata.toml`, ory's `*.autocommit.up.sql`); says which (see [`super::walk`]).
    pub no_transaction: Option<String>,
}

/// Splits a file and, when the whole file parses, returns each statement's parse tree too (one
/// grammar pass instead of a split pass plus one parse per statement). When the file has a syntax
/// error, statements are split without parsing and each is parsed on its own, so the broken one is
/// reported and the rest still judged.
fn split_and_parse(text: &str) -> (Vec<split::RawStatement>, Option<Vec<Option<RawStmt>>>) {
    if !text.contains('\0') {
        if let Ok(result) = pg_query::parse(text, 0) {
            let stmts = result.protobuf.stmts;
            let ranges: Vec<std::ops::Range<usize>> = stmts
                .iter()
                .map(|s| {
                    let start = usize::try_from(s.stmt_location)
                        .unwrap_or(0)
                        .min(text.len());
                    let len = usize::try_from(s.stmt_len).unwrap_or(0);
                    let end = if len == 0 {
                        text.len()
                    } else {
                        (start + len).min(text.len())
                    };
                    start..end
                })
                .collect();
            let raws = split::statements_from_pieces(text, ranges);
            if raws.len() == stmts.len() {
                return (raws, Some(stmts.into_iter().map(Some).collect()));
            }
        }
    }
    (split::split_statements(text), None)
}

/// Checks files in order, starting from `schema` (empty, or read from a live database). Runs on a
/// thread with a large stack (see [`parse::run_on_parser_stack`]).
pub fn check_files(
    files: &[SourceFile],
    config: &CheckConfig,
    schema: Schema,
) -> Result<Report, CheckError> {
    parse::run_on_parser_stack(|| check_files_here(files, config, schema))
}

/// [`check_files`] on the calling thread (which must have a large stack for deep statements).
pub fn check_files_here(files: &[SourceFile], config: &CheckConfig, mut schema: Schema) -> Report {
    let rules = rules::all();
    let active: Vec<(&rules::Rule, Level)> = rules
        .iter()
        .filter_map(|r| match config.rules.get(r.id) {
            Some(RuleSetting::Off) => None,
            Some(RuleSetting::Level(l)) => Some((*r, *l)),
            None if r.opt_in => None,
            None => Some((*r, r.level)),
        })
        .collect();
    let mut report = Report {
        engine: "postgres",
        engine_version: config.engine_version.to_string(),
        statements: Vec::new(),
    };
    let mut tx = TxState::default();
    for file in files {
        if config.path_excluded(&file.name) {
            continue;
        }
        let source = SourceText::new(&file.text);
        let directives = markers::read_directives(source.text());
        tx.start_file(
            config.assume_in_transaction
                && directives.no_transaction_marker.is_none()
                && file.no_transaction.is_none(),
            config.runner_sets_lock_timeout,
        );
        let file_start = report.statements.len();
        let sql_only = psql::blank_non_sql(source.text());
        let (raws, mut pre_parsed) = split_and_parse(&sql_only);
        for (n, raw) in raws.into_iter().enumerate() {
            if !directives.includes(raw.range.start) {
                continue;
            }
            let sql = source.text().get(raw.range.clone()).unwrap_or("");
            let (line, column) = source.position(raw.range.start);
            let mut read_psql_variables = false;
            let parsed = match pre_parsed
                .as_mut()
                .and_then(|p| p.get_mut(n))
                .and_then(Option::take)
            {
                Some(stmt) => Parsed::Statements(vec![stmt]),
                None => match parse::parse_statement(sql) {
                    unparsed @ Parsed::Unparsed { .. } => {
                        match psql::substitute_variables(sql).map(|s| parse::parse_statement(&s)) {
                            Some(ok @ Parsed::Statements(_)) => {
                                read_psql_variables = true;
                                ok
                            }
                            _ => unparsed,
                        }
                    }
                    ok => ok,
                },
            };
            let stmt_nodes: Vec<_> = match &parsed {
                Parsed::Statements(s) => s
                    .iter()
                    .filter_map(parse::statement_node)
                    .cloned()
                    .collect(),
                Parsed::Unparsed { .. } => Vec::new(),
            };
            let index = report.statements.len();
            let stmt_tx = tx.statement_tx();
            let (class, node) = match (&parsed, stmt_nodes.first()) {
                (Parsed::Statements(_), Some(node)) => {
                    let cx = ClassifyContext {
                        schema: &schema,
                        version: config.engine_version,
                        tx: stmt_tx,
                        session_time_zone_utc: config.session_time_zone_utc,
                    };
                    (classify::classify(node, cx), Some(node))
                }
                (Parsed::Unparsed { message }, _) => {
                    let mut c = Classification::unparsed();
                    c.notes.push(format!("PostgreSQL's parser: {message}"));
                    (c, None)
                }
                _ => (Classification::unparsed(), None),
            };
            let mut class = class;
            if read_psql_variables {
                class.notes.push(
                    "psql variables (:name) were read as their names to parse this statement"
                        .to_string(),
                );
            }
            let input = RuleInput {
                stmt: node,
                sql,
                class: &class,
                schema: &schema,
                tx: &tx,
                version: config.engine_version,
            };
            let mut findings = Vec::new();
            for (rule, level) in &active {
                if raw.ignores.covers(rule.id) {
                    continue;
                }
                for hit in (rule.check)(&input) {
                    findings.push(Finding {
                        rule: rule.id.to_string(),
                        level: *level,
                        message: hit.message,
                        suggestion: hit.suggestion,
                    });
                }
            }
            findings.sort_by(|a, b| b.level.cmp(&a.level).then_with(|| a.rule.cmp(&b.rule)));
            let risk = if class.kind == "unparsed" {
                Risk::Medium
            } else {
                risk::assess(&class, &schema, tx.lock_timeout_set)
            };
            report.statements.push(StatementReport {
                file: file.name.clone(),
                line,
                column,
                sql: sql.to_string(),
                kind: class.kind.clone(),
                tables: class.tables.clone(),
                lock: class.strongest_lock(),
                locks: class.locks.clone(),
                blocks_reads: class.blocks_reads(),
                blocks_writes: class.blocks_writes(),
                rewrites_table: class.rewrites_table,
                scans_table: class.scans_table,
                phase: class.phase,
                risk,
                findings,
                notes: class.notes.clone(),
                facts: class.facts.clone(),
                source_line: source.line(line).to_string(),
            });
            for n in &stmt_nodes {
                schema.apply(n, stmt_tx);
            }
            tx.after(index, line, node, &class);
        }
        // A BEGIN without COMMIT at the end of a file: attach the finding to the BEGIN.
        if let Some(begin) = tx.open_begin {
            if let Some((_, level)) = active
                .iter()
                .find(|(r, _)| r.id == "ban-uncommitted-transaction")
            {
                if let Some(s) = report
                    .statements
                    .get_mut(begin)
                    .filter(|_| begin >= file_start)
                {
                    let covered = split::split_statements(&sql_only).iter().any(|r| {
                        source.position(r.range.start).0 == s.line
                            && r.ignores.covers("ban-uncommitted-transaction")
                    });
                    if !covered {
                        s.findings.push(Finding {
                            rule: "ban-uncommitted-transaction".to_string(),
                            level: *level,
                            message: "BEGIN without a matching COMMIT: the migration's locks stay held until the runner's connection closes".to_string(),
                            suggestion: Some("COMMIT;".to_string()),
                        });
                    }
                }
            }
        }
    }
    report
}
