//! The pipeline: split every file, parse every statement, classify it against the schema replayed
//! so far, run the rules, apply levels and ignores, then replay the statement into the schema.

use pg_query::protobuf::RawStmt;

use super::classify::{self, Classification, ClassifyContext};
use super::config::{CheckConfig, RuleSetting};
use super::markers;
use super::psql;
use super::report::{Finding, Level, Report, Risk, StatementReport};
use super::risk;
use super::rules::{self, RuleInput};
use super::schema::Schema;
use super::split::{self, SourceText};
use super::transaction::TxState;
use super::CheckError;
use crate::parse::{self, Parsed};

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

/// A file made ready for classification (which needs the schema, so runs in file order): its
/// SQL with psql lines blanked, split and, when it parses as a whole, parsed. This is most of the
/// work and needs nothing from other files, so it runs on worker threads ahead of classification.
struct Prepared<'a> {
    sql_only: std::borrow::Cow<'a, str>,
    raws: Vec<split::RawStatement>,
    pre_parsed: Option<Vec<Option<RawStmt>>>,
}

fn prepare(file: &SourceFile) -> Prepared<'_> {
    // The text [`SourceText`] keeps (without a byte-order mark), borrowed instead of copied.
    let text = file.text.strip_prefix('\u{feff}').unwrap_or(&file.text);
    let sql_only = psql::blank_non_sql(text);
    let (raws, pre_parsed) = split_and_parse(&sql_only);
    Prepared {
        sql_only,
        raws,
        pre_parsed,
    }
}

/// Files prepared ahead of classification are at most this many.
const PREPARED_AHEAD: usize = 64;

/// Prepares `files` (skipping excluded ones, which get `None`) on up to
/// `available_parallelism` worker threads with the parser's stack and hands them to `consume`
/// in file order, so the output does not depend on the threads.
fn prepare_in_order<'a, T>(
    files: &'a [SourceFile],
    config: &CheckConfig,
    consume: impl FnOnce(&mut dyn FnMut(usize) -> Option<Prepared<'a>>) -> T,
) -> T {
    let wanted = |file: &SourceFile| !config.path_excluded(&file.name);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(files.len());
    if workers <= 1 {
        return consume(&mut |i| files.get(i).filter(|f| wanted(f)).map(prepare));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (sender, receiver) = std::sync::mpsc::sync_channel(PREPARED_AHEAD);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let sender = sender.clone();
            let next = &next;
            let work = move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(file) = files.get(i) else {
                    break;
                };
                let prepared = wanted(file).then(|| prepare(file));
                if sender.send((i, prepared)).is_err() {
                    break;
                }
            };
            let spawned = std::thread::Builder::new()
                .name("duet-check-prepare".to_string())
                .stack_size(parse::PARSER_STACK_BYTES)
                .spawn_scoped(scope, work);
            if spawned.is_err() {
                // No thread: whatever is not taken by the others is prepared on this one.
                break;
            }
        }
        drop(sender);
        let mut early: std::collections::BTreeMap<usize, Option<Prepared<'a>>> =
            std::collections::BTreeMap::new();
        let mut receiver = Some(receiver);
        let result = consume(&mut |i| loop {
            if let Some(p) = early.remove(&i) {
                return p;
            }
            match receiver.as_ref().map(|r| r.recv()) {
                Some(Ok((j, p))) if j == i => return p,
                Some(Ok((j, p))) => {
                    early.insert(j, p);
                }
                // Every worker is gone (none started, or one panicked): prepare it here.
                _ => {
                    receiver = None;
                    return files.get(i).filter(|f| wanted(f)).map(prepare);
                }
            }
        });
        drop(receiver);
        result
    })
}

/// Checks files in order, starting from `schema` (empty, or read from a live database). Runs on a
/// thread with a large stack (see [`parse::run_on_parser_stack`]).
pub fn check_files(
    files: &[SourceFile],
    config: &CheckConfig,
    schema: Schema,
) -> Result<Report, CheckError> {
    Ok(parse::run_on_parser_stack(|| {
        check_files_here(files, config, schema)
    })?)
}

/// [`check_files`] on the calling thread (which must have a large stack for deep statements).
pub fn check_files_here(files: &[SourceFile], config: &CheckConfig, schema: Schema) -> Report {
    prepare_in_order(files, config, |next| {
        check_prepared(files, config, schema, next)
    })
}

fn check_prepared<'a>(
    files: &'a [SourceFile],
    config: &CheckConfig,
    mut schema: Schema,
    next: &mut dyn FnMut(usize) -> Option<Prepared<'a>>,
) -> Report {
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
    for (i, file) in files.iter().enumerate() {
        let Some(Prepared {
            sql_only,
            raws,
            mut pre_parsed,
        }) = next(i)
        else {
            continue;
        };
        let source = SourceText::new(&file.text);
        let directives = markers::read_directives(source.text());
        tx.start_file(
            config.assume_in_transaction
                && directives.no_transaction_marker.is_none()
                && file.no_transaction.is_none(),
            config.runner_sets_lock_timeout,
        );
        let file_start = report.statements.len();
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
