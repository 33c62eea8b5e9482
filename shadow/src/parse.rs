//! Parsing one statement with PostgreSQL's own grammar (pg_query), safely.
//!
//! Two limits matter (measured in DUAL-WRITE.md §6): prost's default decode recursion limit of 100
//! rejects ordinary deep statements (≈47 chained operators, 30 nested subqueries), so the workspace
//! enables prost's `no-recursion-limit`; and without that limit a deep tree is decoded, walked and
//! dropped recursively in Rust, which aborts the process on a small thread stack. The C parser
//! guards its own stack ("stack depth limit exceeded"), so what reaches Rust is bounded: running
//! the whole analysis on one thread with [`PARSER_STACK_BYTES`] of stack (see
//! [`run_on_parser_stack`]) makes every input either parse or fail with an error — never abort.

use pg_query::protobuf::{node::Node as NodeEnum, RawStmt};

/// Why [`run_on_parser_stack`] could not give its work's result.
#[derive(Debug, thiserror::Error)]
pub enum ParserThreadError {
    /// The thread could not be started.
    #[error("cannot start the parser thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The work panicked (a bug): the panic's message.
    #[error("the parser thread panicked: {0}")]
    Panicked(String),
}

/// Stack size of the thread that parses and walks statements. Only touched pages are committed,
/// so the reservation costs address space, not memory.
pub const PARSER_STACK_BYTES: usize = 512 * 1024 * 1024;

/// The outcome of parsing one statement.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// The grammar accepted it: usually one statement (a split mistake could give more).
    Statements(Vec<RawStmt>),
    /// The grammar rejected it; the message is PostgreSQL's.
    Unparsed {
        /// PostgreSQL's error message (e.g. `syntax error at or near "x"`).
        message: String,
    },
}

/// Parses one statement's text.
pub fn parse_statement(sql: &str) -> Parsed {
    if sql.contains('\0') {
        return Parsed::Unparsed {
            message: "statement contains a NUL byte".to_string(),
        };
    }
    match pg_query::parse(sql, 0) {
        Ok(result) => Parsed::Statements(result.protobuf.stmts),
        Err(err) => Parsed::Unparsed {
            message: match err {
                pg_query::Error::Parse(m) => m,
                pg_query::Error::Decode(m) => format!("parse tree could not be decoded: {m}"),
                other => other.to_string(),
            },
        },
    }
}

/// The statement node of a raw statement, if any.
pub fn statement_node(raw: &RawStmt) -> Option<&NodeEnum> {
    raw.stmt.as_ref().and_then(|n| n.node.as_ref())
}

/// Runs `work` on a thread with a [`PARSER_STACK_BYTES`] stack and returns its result. A panic in
/// `work` (a bug) becomes an error instead of taking the caller down.
pub fn run_on_parser_stack<T, F>(work: F) -> Result<T, ParserThreadError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("duet-check-parser".to_string())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, work)
            .map_err(ParserThreadError::Spawn)?;
        handle.join().map_err(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            ParserThreadError::Panicked(what)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_statements_parse_or_fail_cleanly() {
        let depth_ok = format!("SELECT {}1{}", "(".repeat(200), ")".repeat(200));
        let chained = format!("SELECT 1{}", " + 1".repeat(500));
        let very_deep = format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000));
        let outcome = run_on_parser_stack(|| {
            let a = matches!(parse_statement(&depth_ok), Parsed::Statements(_));
            let b = matches!(parse_statement(&chained), Parsed::Statements(_));
            let c = matches!(parse_statement(&very_deep), Parsed::Unparsed { .. });
            (a, b, c)
        });
        assert!(matches!(outcome, Ok((true, true, true))), "{outcome:?}");
    }

    #[test]
    fn errors_are_values() {
        assert!(matches!(
            parse_statement("CREATE TABLE ("),
            Parsed::Unparsed { .. }
        ));
        assert!(matches!(
            parse_statement("SELECT '\0'"),
            Parsed::Unparsed { .. }
        ));
    }
}
